"""Which torch device the engine uses: CUDA, else MPS, else CPU; CAMSCOPE_DEVICE overrides."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch

from .errors import ExplainerError, OutOfMemory

DEVICE_ENV = "CAMSCOPE_DEVICE"


def pick_device(requested: str | None = None) -> torch.device:
    """Return the device to run on.

    Args:
        requested: "cpu", "cuda", "cuda:1", "mps" or None. None reads the
            ``CAMSCOPE_DEVICE`` environment variable, then picks the best available.
    """
    name = requested or os.environ.get(DEVICE_ENV) or ""
    if not name:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ExplainerError(f"Unknown device {name!r}: use cpu, cuda or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ExplainerError(f"Device {name!r} was asked for but no CUDA GPU is available here.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ExplainerError("Device 'mps' was asked for but Apple's MPS is not available here.")
    return device


@contextmanager
def plain_out_of_memory(device: torch.device, what: str) -> Iterator[None]:
    """Turn an out-of-memory error into OutOfMemory with a sentence, after giving cached GPU memory back."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError) as error:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        place = "GPU" if device.type == "cuda" else "computer"
        raise OutOfMemory(f"The {place} ran out of memory for {what}. Try fewer methods or layers, a smaller "
                          "image or batch, or a smaller model; nothing else was affected.") from error
