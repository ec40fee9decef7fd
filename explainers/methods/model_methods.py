"""Methods that need more than the shared pass: Score-CAM, Ablation-CAM, FullGrad, ShapleyCAM.

Each runs on a throw-away clone of the model (see ``clones.py``), so layer
swaps, hooks and ``.grad`` writes by pytorch-grad-cam never reach the shared model.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import functools
import types

import numpy as np
import torch
import tqdm
from pytorch_grad_cam import AblationCAM, FullGrad, ShapleyCAM
from pytorch_grad_cam import ablation_cam as _library_ablation_cam
from pytorch_grad_cam.ablation_layer import AblationLayer, AblationLayerVit
from torch import nn

from ..clones import shell_clone

PassCounter = Optional[Callable[[int, int], None]]  # (masked passes done, passes this call makes)

# The library's Ablation-CAM loop prints a tqdm bar to stderr (the server log) and has no switch;
# progress is reported through _ReportingModel instead. Set once at import: no per-call race.
_library_ablation_cam.tqdm = types.SimpleNamespace(tqdm=functools.partial(tqdm.tqdm, disable=True))


class _ReportingModel(nn.Module):
    """Wraps a model to report each batch it runs (the library's loops only print tqdm bars)."""

    def __init__(self, inner: nn.Module, total: int, progress: PassCounter) -> None:
        super().__init__()
        self.inner = inner
        self.total, self.progress, self.done, self.calls = total, progress, 0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (n, 3, H, W), n masked inputs
        out = self.inner(x)
        self.calls += 1
        if self.calls > 1:  # the first call is the plain (unablated) pass
            self.done += x.shape[0]
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)
        return out


def score_cam(model: nn.Module, x: torch.Tensor, activations: np.ndarray, targets: Sequence[Callable],
              batch_size: int = 16, progress: PassCounter = None) -> list[np.ndarray]:
    """Score-CAM maps for several targets from ONE sweep of masked passes.

    Same math as pytorch-grad-cam's ScoreCAM.get_cam_weights; written here because the
    library keeps its hooks firing on every masked pass, builds all C masked inputs at
    once, sweeps again for every target, cannot report progress and re-runs channels whose
    mask is empty. Constant channels all give the same all-zero input, run once.

    Args:
        model: the model (or a clone) WITHOUT hooks; run under inference mode.
        x: (1, 3, H, W) model input.
        activations: (1, C, h, w) target-layer activations.
    Returns:
        one (h, w) float32 map (before ReLU) per target.
    """
    with torch.inference_mode():
        acts = torch.from_numpy(activations).to(x.device)
        upsampled = nn.UpsamplingBilinear2d(size=x.shape[-2:])(acts)[0]  # (C, H, W)
        flat = upsampled.reshape(upsampled.shape[0], -1)
        maxs, mins = flat.max(dim=-1)[0], flat.min(dim=-1)[0]
        upsampled = (upsampled - mins[:, None, None]) / (maxs - mins + 1e-8)[:, None, None]
        varying = torch.nonzero(maxs != mins).flatten().tolist()
        constant = torch.nonzero(maxs == mins).flatten().tolist()
        runs = varying + constant[:1]  # every constant channel masks the input to zeros
        n_batches = math.ceil(len(runs) / batch_size)
        if progress is not None:
            progress(0, len(runs))
        logits: dict[int, torch.Tensor] = {}
        for b in range(n_batches):
            chunk = runs[b * batch_size:(b + 1) * batch_size]
            batch = x[0][None] * upsampled[chunk][:, None]  # (n, 3, H, W)
            out = model(batch)
            for c, row in zip(chunk, out):
                logits[c] = row
            if progress is not None:
                progress(min((b + 1) * batch_size, len(runs)), len(runs))
        for c in constant[1:]:
            logits[c] = logits[constant[0]]
        all_logits = torch.stack([logits[c] for c in range(upsampled.shape[0])])  # (C, K)
        maps = []
        for target in targets:
            scores = target(all_logits).float().cpu()  # (C,): one transfer, not one per channel
            weights = torch.softmax(scores, dim=-1).numpy()  # (C,)
            maps.append((weights[:, None, None] * activations[0]).sum(axis=0).astype(np.float32))
    return maps


def ablation_cam(model: nn.Module, layer: str, x: torch.Tensor, activations: np.ndarray,
                 target: Callable, reshape: Optional[Callable], batch_size: int = 16,
                 progress: PassCounter = None) -> np.ndarray:
    """pytorch-grad-cam's Ablation-CAM on a clone; a fresh AblationLayer per call (the
    library's default argument is one object shared by every caller: not thread-safe)."""
    clone = shell_clone(model)
    channels = activations.shape[1]
    wrapped = _ReportingModel(clone, channels, progress)  # the library ablates every channel (ratio 1.0)
    layer_module = wrapped.get_submodule("inner." + layer)
    ablation = AblationLayerVit() if reshape is not None else AblationLayer()
    cam = AblationCAM(wrapped, [], reshape_transform=reshape, ablation_layer=ablation, batch_size=batch_size)
    try:
        out = cam.get_cam_image(x, layer_module, [target], activations, None, False)
    finally:
        cam.activations_and_grads.release()
    return np.asarray(out, dtype=np.float32)[0]


def library_full_map(method: str, model: nn.Module, layer: str, x: torch.Tensor, target: Callable,
                     reshape: Optional[Callable]) -> np.ndarray:
    """FullGrad or ShapleyCAM through the library's own call, on a clone.

    Returns:
        (H, W) map at input resolution, normalized by the library.
    """
    clone = shell_clone(model)
    if method == "fullgrad":
        cam = FullGrad(clone, [], reshape_transform=reshape)
    else:
        cam = ShapleyCAM(clone, [clone.get_submodule(layer)], reshape_transform=reshape)
    try:
        out = cam(input_tensor=x, targets=[target])
    finally:
        cam.activations_and_grads.release()
    return np.asarray(out, dtype=np.float32)[0]
