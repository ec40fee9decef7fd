"""Weights that are not what they seem: NaN or infinite values (refused) and tensors cast on load (noted).

``load_state_dict`` copies an fp16 or int8 tensor into a float32 parameter without a word; an int8
tensor from a quantized model loses its scale that way and predicts nonsense. The notes go to
whoever asked for the model (``load_model`` collects them in ``LoadedModel.weights_notes``), or
become a Python warning when nobody collects them.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Optional

import torch

from ..errors import ModelError


class WeightsWarning(UserWarning):
    """The weights loaded, but not as stored (e.g. fp16 or int8 tensors cast to float32)."""


_NOTES: ContextVar[Optional[list[str]]] = ContextVar("camscope_weights_notes", default=None)


@contextmanager
def collecting_notes() -> Iterator[list[str]]:
    """Collect the weights notes made inside the block (per thread and task: sessions do not mix)."""
    notes: list[str] = []
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


def note(message: str) -> None:
    """Hand a weights note to the collector, or warn when there is none."""
    notes = _NOTES.get()
    if notes is None:
        warnings.warn(message, WeightsWarning, stacklevel=3)
    else:
        notes.append(message)


def refuse_non_finite(state: dict[str, torch.Tensor], file_name: str) -> None:
    """Raise ModelError naming the first tensor with NaN or infinite values.

    Such a model gives NaN probabilities ("p=nan") for every image.
    """
    bad = [key for key, value in state.items()
           if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all())]
    if bad:
        more = f" and {len(bad) - 1} more tensor(s)" if len(bad) > 1 else ""
        raise ModelError(f"{file_name} has NaN or infinite values in {bad[0]}{more}: the model would predict "
                         "nothing meaningful; check the training run that saved it.")


def note_casts(state: dict[str, torch.Tensor], model: torch.nn.Module, file_name: str) -> None:
    """A note per stored dtype that differs from the model's (e.g. float16 or int8 where it holds float32)."""
    expected = model.state_dict()
    casts: dict[tuple[torch.dtype, torch.dtype], list[str]] = {}
    for key, value in state.items():
        if key in expected and value.dtype != expected[key].dtype:
            casts.setdefault((value.dtype, expected[key].dtype), []).append(key)
    for (stored, wanted), keys in casts.items():
        stored_name, wanted_name = str(stored).removeprefix("torch."), str(wanted).removeprefix("torch.")
        risk = ("integer values were copied as plain numbers, without any quantization scale, so the "
                "predictions are likely wrong" if not stored.is_floating_point else
                "the predictions may differ slightly from the training run's")
        note(f"{file_name} stores {len(keys)} tensor(s) as {stored_name} (e.g. {keys[0]}); they were cast to "
             f"{wanted_name} for the model: {risk}.")
