"""A frozen TorchScript copy of a model for the many hook-free, gradient-free passes of perturbation methods.

``torch.jit.freeze`` folds each BatchNorm into its convolution and ``optimize_for_inference`` picks
oneDNN kernels on the CPU: 2-3x faster passes for occlusion, SS-CAM and IS-CAM, with logits equal to
the eager model's within float rounding (checked on the first input; otherwise the eager model is used).
PyTorch deprecates TorchScript in favour of torch.compile, whose compile time is minutes on a small CPU;
the copy is built once per model, input shape and device, and kept while the model lives.
"""
from __future__ import annotations

import threading
import warnings
import weakref

import torch
from torch import nn

from ..clones import shell_clone

_COPIES: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, nn.Module]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def inference_copy(model: nn.Module, example: torch.Tensor, differentiable: bool = False) -> nn.Module:
    """The frozen copy of ``model`` for inputs shaped like ``example`` (any batch size); ``model`` itself
    when it cannot be traced or the copy's logits differ from the model's.

    Args:
        model: the shared model (never modified: a clone is traced).
        example: (1, 3, H, W) input on the model's device.
        differentiable: a copy that gradients w.r.t. the input can flow through (BatchNorm folded, but
            no oneDNN kernels, which have no backward): Integrated Gradients' passes.
    """
    key = (tuple(example.shape[1:]), str(example.device), example.dtype, differentiable)
    with _LOCK:
        copies = _COPIES.setdefault(model, {})
        if key not in copies:
            copies[key] = _freeze(model, example, differentiable) or model
        return copies[key]


def _freeze(model: nn.Module, example: torch.Tensor, differentiable: bool = False) -> nn.Module | None:
    try:
        frozen = frozen_trace(shell_clone(model), example)
        frozen = frozen if differentiable else optimized_for_inference(frozen)
        with torch.no_grad():
            expected, got = model(example), frozen(example)
    except torch.OutOfMemoryError:
        raise  # not a property of the model: nothing is cached, the caller reports it
    except Exception:  # an untraceable model (control flow, non-tensor outputs) simply keeps the eager path
        return None
    return frozen if agrees(got, expected) else None


def frozen_trace(module: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """``module`` traced on ``example`` and frozen: parameters become constants, BatchNorm folds into the
    convolutions. Shared by this copy and the model cut of ``layer_split.py``."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation and tracer warnings
        return torch.jit.freeze(torch.jit.trace(module, example, check_trace=False).eval())


def optimized_for_inference(frozen: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """``frozen`` with oneDNN (MKLDNN) convolution kernels on the CPU: no backward through them."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optimize_for_inference's deprecation warning
        return torch.jit.optimize_for_inference(frozen)


_CHANNELS_LAST: "weakref.WeakKeyDictionary[nn.Module, bool]" = weakref.WeakKeyDictionary()
_PROBE_LOCK = threading.Lock()  # its own: a probe's forward must not hold up other models' copies


def accepts_channels_last(model: nn.Module, example: torch.Tensor) -> bool:
    """Whether ``model`` runs on a channels-last input (probed once per model, on one image of ``example``).

    On the CPU, convolutions run faster in that layout, but a forward that flattens with ``.view(b, -1)``
    (older CNNs' heads) cannot take it: such models get contiguous batches instead of an error.
    """
    with _PROBE_LOCK:
        if model not in _CHANNELS_LAST:
            try:
                with torch.inference_mode():  # the shared model is only read: no hooks, no graph
                    model(example[:1].contiguous(memory_format=torch.channels_last))
                _CHANNELS_LAST[model] = True
            except torch.OutOfMemoryError:
                raise  # not a property of the model: the caller reports it
            except Exception:  # any failure: the contiguous input the model was written for (a real error shows there)
                _CHANNELS_LAST[model] = False
        return _CHANNELS_LAST[model]


CHECK_TOLERANCE = 1e-4  # relative to the largest eager value: float rounding of the folded BatchNorm, no more


def agrees(got: object, expected: torch.Tensor) -> bool:
    """Whether a frozen model's output ``got`` equals the eager ``expected`` within float rounding."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return False
    scale = float(expected.detach().abs().max()) or 1.0
    return float((got.detach() - expected.detach()).abs().max()) <= CHECK_TOLERANCE * scale


CPU_PIXELS_PER_PASS = 4 * 224 * 224  # measured on a 2-core EPYC: 4 images of 224 x 224 per call cost the least


def cache_sized_batch(x: torch.Tensor, batch_size: int) -> int:
    """How many inputs shaped like ``x`` one pass should take: ``batch_size``, at most a few on the CPU."""
    if x.device.type != "cpu":
        return batch_size
    return max(1, min(batch_size, CPU_PIXELS_PER_PASS // max(x.shape[-2] * x.shape[-1], 1)))


class CacheSizedPasses(nn.Module):
    """Runs a batch through ``model`` a few images at a time on the CPU.

    A CPU pass over 4 images of 224 x 224 keeps each layer's activations in the cache; at 8-64 images
    they spill, and each image costs about twice as much (eager or frozen). The GPU gets the whole batch.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step = cache_sized_batch(x, len(x))
        if len(x) <= step:
            return self.model(x)
        return torch.cat([self.model(chunk) for chunk in x.split(step)])
