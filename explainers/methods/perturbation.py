"""Perturbation methods: occlusion sensitivity, SS-CAM and IS-CAM.

Every masked or occluded input goes through the hook-free model under inference mode, in batches;
the clean logits come from the shared pass, and each batch serves every target at once.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .options import NoiseSource

Progress = Optional[Callable[[float, str], None]]


def _windows(size: int, window: int, stride: int) -> list[tuple[int, int]]:
    """Captum's window positions along one axis: ceil((size - window) / stride) + 1, the last one cut at the edge."""
    window = min(window, size)
    return [(i * stride, min(i * stride + window, size)) for i in range(math.ceil((size - window) / stride) + 1)]


def occlusion(model: nn.Module, x: torch.Tensor, logits: torch.Tensor, targets: Sequence[Callable], window: int,
              stride: int, fill: float = 0.0, batch_size: int = 16, progress: Progress = None) -> list[np.ndarray]:
    """Occlusion sensitivity (Zeiler & Fergus, ECCV 2014, arXiv:1311.2901) as Captum's ``Occlusion`` computes it
    with ``sliding_window_shapes=(3, window, window)``, ``strides=(3, stride, stride)``, ``baselines=fill``:
    each pixel gets the mean drop in the target score over the patches that cover it.

    Args:
        model: hook-free model; x: (1, 3, H, W); logits: (1, K) clean logits.
    Returns:
        per target, an (H, W) float32 map at the model input's resolution.
    """
    height, width = x.shape[-2:]
    boxes = [(y, x_) for y in _windows(height, window, stride) for x_ in _windows(width, window, stride)]
    base = torch.stack([t(logits)[0] for t in targets]).float()  # (T,)
    drops = torch.empty(len(targets), len(boxes), device=x.device)  # (T, n_windows)
    with torch.inference_mode():
        for start in range(0, len(boxes), batch_size):
            chunk = boxes[start:start + batch_size]
            batch = x.repeat(len(chunk), 1, 1, 1)
            for b, ((y0, y1), (x0, x1)) in enumerate(chunk):
                batch[b, :, y0:y1, x0:x1] = fill
            out = model(batch)
            for t_i, target in enumerate(targets):
                drops[t_i, start:start + len(chunk)] = base[t_i] - target(out).float()
            if progress is not None:
                progress(min((start + len(chunk)) / len(boxes), 1.0), "occluded passes")
        total = torch.zeros(len(targets), height, width, device=x.device)
        counts = torch.zeros(height, width, device=x.device)
        for i, ((y0, y1), (x0, x1)) in enumerate(boxes):
            total[:, y0:y1, x0:x1] += drops[:, i, None, None]
            counts[y0:y1, x0:x1] += 1
    return list((total / counts).cpu().numpy().astype(np.float32))


def normalized_masks(activations: np.ndarray, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """TorchCAM's Score-CAM masks: each channel scaled to [0, 1] at the layer's grid, then upsampled bilinearly.

    Returns:
        (C, 1, H, W).
    """
    acts = torch.from_numpy(activations).to(device).float()  # (1, C, h, w)
    acts = acts - acts.amin(dim=(2, 3), keepdim=True)
    acts = acts / (acts.amax(dim=(2, 3), keepdim=True) + 1e-8)
    return F.interpolate(acts, size, mode="bilinear", align_corners=False)[0][:, None]


def _flat_sweep(model: nn.Module, rounds: int, channels: int, make: Callable[[int, slice], torch.Tensor],
                targets: Sequence[Callable], base: torch.Tensor, gains: torch.Tensor, batch_size: int,
                progress: Progress, label: str) -> None:
    """Adds target(model(masked input)) - base to ``gains`` (T, C) for every (round, channel) pair.

    The pairs run in (round, channel) order, ``batch_size`` at a time, so one batch may span two rounds
    (the peers batch one round at a time). ``make(round, channels)`` builds the masked inputs (n, 3, H, W).
    """
    total = rounds * channels
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        spans = [(r, slice(max(start - r * channels, 0), min(stop - r * channels, channels)))
                 for r in range(start // channels, (stop - 1) // channels + 1)]
        out = model(torch.cat([make(r, sl) for r, sl in spans]))  # (n, K)
        scores = torch.stack([t(out).float() for t in targets]) - base[:, None]  # (T, n)
        offset = 0
        for _r, sl in spans:
            width = sl.stop - sl.start
            gains[:, sl] += scores[:, offset:offset + width]
            offset += width
        if progress is not None:
            progress(stop / total, label)


def smoothed_score_cam(model: nn.Module, x: torch.Tensor, logits: torch.Tensor, activations: np.ndarray,
                       targets: Sequence[Callable], samples: int, noise: NoiseSource, batch_size: int = 32,
                       progress: Progress = None) -> list[np.ndarray]:
    """SS-CAM (Wang et al., 2020, arXiv:2006.14255) as TorchCAM 0.5's SSCAM: Gaussian noise added to each
    upsampled, normalized channel mask; the class-score gains averaged over ``samples``, then softmaxed.

    Args:
        noise: called once per sample with shape (1, C, H, W), in order, as TorchCAM draws it.
    Returns:
        per target, the (h, w) map before ReLU.
    """
    masks = normalized_masks(activations, tuple(x.shape[-2:]), x.device)  # (C, 1, H, W)
    channels = masks.shape[0]
    base = torch.stack([t(logits)[0] for t in targets]).float()
    weights = torch.zeros(len(targets), channels, device=x.device)
    noisy: dict[int, torch.Tensor] = {}  # the current sample's noisy masks (drawn when first needed)

    def make(sample: int, sl: slice) -> torch.Tensor:
        if sample not in noisy:
            noisy.clear()
            noisy[sample] = masks + noise((1, channels, *x.shape[-2:])).to(x.device)[0][:, None]
        return noisy[sample][sl] * x

    with torch.inference_mode():
        _flat_sweep(model, samples, channels, make, targets, base, weights, batch_size, progress,
                    "SS-CAM noisy masked passes")
    return _combine(weights / samples, activations)


def integrated_score_cam(model: nn.Module, x: torch.Tensor, logits: torch.Tensor, activations: np.ndarray,
                         targets: Sequence[Callable], samples: int, batch_size: int = 32,
                         progress: Progress = None) -> list[np.ndarray]:
    """IS-CAM (Naidu et al., 2020, arXiv:2010.03023) as TorchCAM 0.5's ISCAM: masked inputs scaled by the
    cumulative coefficients sum_{j<=i} j/N, the score gains averaged over the N steps, then softmaxed.
    Channels with a constant map mask the input to zeros at every step: that input runs once.

    Returns:
        per target, the (h, w) map before ReLU.
    """
    masks = normalized_masks(activations, tuple(x.shape[-2:]), x.device)  # (C, 1, H, W)
    varying = torch.nonzero(masks.flatten(1).amax(dim=1) > 0).flatten()  # a constant channel normalizes to 0
    base = torch.stack([t(logits)[0] for t in targets]).float()
    weights = torch.zeros(len(targets), masks.shape[0], device=x.device)
    coeffs = np.cumsum([(s + 1) / samples for s in range(samples)])  # as TorchCAM accumulates them
    with torch.inference_mode():
        if len(varying) < masks.shape[0]:
            zero_out = model(torch.zeros_like(x))
            for t_i, target in enumerate(targets):
                weights[t_i] = (target(zero_out).float()[0] - base[t_i]) * samples
        moving = masks[varying]  # (C', 1, H, W)
        gains = torch.zeros(len(targets), len(varying), device=x.device)
        _flat_sweep(model, samples, len(varying), lambda s, sl: float(coeffs[s]) * (moving[sl] * x), targets,
                    base, gains, batch_size, progress, "IS-CAM scaled masked passes")
        weights[:, varying] = gains
    return _combine(weights / samples, activations)


def _combine(mean_gains: torch.Tensor, activations: np.ndarray) -> list[np.ndarray]:
    """softmax over channels of the mean score gains, then the weighted sum of the layer's activations."""
    acts = torch.from_numpy(activations[0]).to(mean_gains.device)  # (C, h, w)
    weights = torch.softmax(mean_gains, dim=-1)  # (T, C)
    return [torch.nansum(w[:, None, None] * acts, dim=0).cpu().numpy().astype(np.float32) for w in weights]
