"""One forward and one layer-stopped backward pass, shared by every one-pass CAM method.

The forward runs without autograd up to the first target layer; a hook there
swaps the layer's output for a fresh leaf tensor and turns autograd on, so the
graph (and the backward) covers only the layers after it. Gradients are taken
with ``torch.autograd.grad`` with respect to the layer outputs alone: no
parameter ``.grad`` is written and nothing before the layer is differentiated.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import pytorch_grad_cam as pgc
import torch
from threadpoolctl import threadpool_limits
from torch import nn


@dataclass
class ForwardCapture:
    logits: torch.Tensor  # (1, K)
    outputs: dict[str, torch.Tensor]  # layer name -> its output (graph node when gradients are on)
    grads_enabled: bool
    _order: list[str] = field(default_factory=list)


def forward_capture(clone: nn.Module, x: torch.Tensor, layers: Sequence[str], with_grads: bool,
                    grads_from_start: bool = False) -> ForwardCapture:
    """Run ``clone`` on ``x``, keeping each layer's output.

    Args:
        clone: a private model clone (hooks are added and removed here).
        x: (1, 3, H, W) input on the model's device.
        layers: module names to capture.
        with_grads: build the graph from the first captured layer onwards.
        grads_from_start: build it from the input on (transformer methods need every block's attention).
    """
    outputs: dict[str, torch.Tensor] = {}
    handles = []

    def capture(name: str) -> Callable:
        def hook(_module: nn.Module, _inputs, output):
            if not isinstance(output, torch.Tensor):
                from ..errors import LayerError
                raise LayerError(f"Layer {name!r} does not output a single tensor; pick another layer.")
            if with_grads and not torch.is_grad_enabled():
                output = output.detach().requires_grad_(True)  # the leaf the backward stops at
                torch.set_grad_enabled(True)  # thread-local; restored after the forward
            outputs[name] = output
            return output.clone() if with_grads else output  # later in-place ops must not touch it

        return hook

    modules = dict(clone.named_modules())
    previous = torch.is_grad_enabled()
    try:
        for name in layers:
            handles.append(modules[name].register_forward_hook(capture(name)))
        torch.set_grad_enabled(grads_from_start)
        logits = clone(x.detach().requires_grad_(True) if grads_from_start else x)  # graph even if weights are frozen
    finally:
        torch.set_grad_enabled(previous)
        for handle in handles:
            handle.remove()
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        from ..errors import ModelError
        raise ModelError("The model must return class scores of shape (batch, classes).")
    missing = [n for n in layers if n not in outputs]
    if missing:
        from ..errors import LayerError
        raise LayerError(f"Layer {missing[0]!r} was not used when the model ran; pick another layer.")
    return ForwardCapture(logits, outputs, with_grads)


def layer_gradients(capture: ForwardCapture, target: Callable[[torch.Tensor], torch.Tensor],
                    layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """d target(logits) / d layer output, for each layer; the graph is kept for the next target."""
    score = target(capture.logits).sum()
    tensors = [capture.outputs[n] for n in layers]
    grads = torch.autograd.grad(score, tensors, retain_graph=True, allow_unused=True)
    return {n: (g if g is not None else torch.zeros_like(t)) for n, g, t in zip(layers, grads, tensors)}


def to_numpy_map(tensor: torch.Tensor, reshape: Optional[Callable]) -> np.ndarray:
    """Layer output or gradient as (1, C, h, w) float32 numpy, after the model's reshape transform."""
    tensor = tensor.detach()
    if reshape is not None:
        tensor = reshape(tensor)
    if tensor.dim() != 4:
        from ..errors import LayerError
        raise LayerError(
            f"This layer's output has shape {tuple(tensor.shape)}, not (batch, channels, height, width); "
            "pick a convolutional layer (or a block for which the model defines a reshape transform).")
    return tensor.float().cpu().numpy()


_INSTANCES: dict[tuple, object] = {}


class _NoModel(nn.Module):
    """Stands in for the model so a library CAM object can be built without touching any real model."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)


def library_cam(cls: type, **kwargs) -> object:
    """A pytorch-grad-cam method object used only for its math (``get_cam_image``); no hooks anywhere."""
    key = (cls, tuple(sorted(kwargs.items())))
    if key not in _INSTANCES:
        _INSTANCES[key] = cls(_NoModel(), [], **kwargs)  # stateless between calls: safe to share
    return _INSTANCES[key]


def first_component(batch: np.ndarray) -> np.ndarray:
    """pytorch-grad-cam's ``get_2d_projection`` with an economy SVD: the library asks for the full
    (C x C) right-singular matrix though only its first row is used, about 10x slower for C = 1280."""
    batch = np.nan_to_num(batch.copy(), nan=0.0)
    projections = []
    for activations in batch:  # (C, h, w)
        flat = activations.reshape(activations.shape[0], -1).transpose()  # (h*w, C)
        flat = flat - flat.mean(axis=0)
        with threadpool_limits(1):  # idle BLAS threads spin for a while after a call, stealing torch's cores
            _, _, vt = np.linalg.svd(flat, full_matrices=False)
        projections.append((flat @ vt[0, :]).reshape(activations.shape[1:]))
    return np.float32(projections)


class ClassAgnosticMaps:
    """One image's maps of the methods that use no gradient (EigenCAM, KPCA-CAM, FEM): the same for every
    class, so computed once per layer and shared by all the classes asked for (top-k, true and predicted)."""

    def __init__(self) -> None:
        self._maps: dict[tuple[str, str], np.ndarray] = {}

    def get(self, spec, layer: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if spec.uses_gradients:
            return compute()
        key = (spec.key, layer)
        if key not in self._maps:
            self._maps[key] = compute()
        return self._maps[key].copy()  # each result owns its array


def shared_cam(cls: type, activations: np.ndarray, grads: Optional[np.ndarray],
               targets: list, eigen_smooth: bool = False, **kwargs) -> np.ndarray:
    """pytorch-grad-cam's per-layer map (before ReLU and scaling) from activations and gradients.

    Args:
        eigen_smooth: the library's ``eigen_smooth``: first principal component of the weighted activations.
    Returns:
        (h, w) float32.
    """
    if cls is pgc.EigenCAM:
        return first_component(activations)[0]
    if cls is pgc.EigenGradCAM:
        return first_component(grads * activations)[0]
    cam = library_cam(cls, **kwargs)
    if eigen_smooth and type(cam).get_cam_image is pgc.base_cam.BaseCAM.get_cam_image:
        weights = cam.get_cam_weights(None, None, targets, activations, grads)  # (1, C)
        return first_component(weights[:, :, None, None] * activations)[0]  # same math, economy SVD
    out = cam.get_cam_image(None, None, targets, activations, grads, eigen_smooth)  # (1, h, w)
    return np.asarray(out, dtype=np.float32)[0]
