"""Integrated Gradients (Sundararajan et al., ICML 2017, arXiv:1703.01365), as Captum computes it by default:
a black (all-zero) baseline, Gauss-Legendre quadrature; the steps go through the model in batches.
Under Captum's noise tunnel the noisy copies' steps share those batches."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .options import NoiseSource, NoiseTunnel

Progress = Optional[Callable[[float, str], None]]


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Captum's ``gausslegendre`` points on [0, 1] and their weights."""
    points, weights = np.polynomial.legendre.leggauss(steps)
    return 0.5 * (1 + points), 0.5 * weights


def integrated_gradients(model: nn.Module, x: torch.Tensor, targets: Sequence[Callable], steps: int = 50,
                         baseline: Optional[torch.Tensor] = None, batch_size: int = 50,
                         progress: Progress = None) -> list[torch.Tensor]:
    """(x - baseline) * sum_i w_i * d target / d x at baseline + a_i (x - baseline), for each input of x.

    Args:
        model: a private clone; x: (B, 3, H, W), B inputs (B = 1, or a noise tunnel's noisy copies);
        batch_size: (input, step) pairs per forward.
    Returns:
        per target, the (B, 3, H, W) attribution (Captum's ``IntegratedGradients.attribute`` output).
    """
    baseline = torch.zeros_like(x) if baseline is None else baseline
    alphas, step_weights = gauss_legendre(steps)
    alphas = torch.tensor(alphas, dtype=x.dtype, device=x.device)
    step_weights = torch.tensor(step_weights, dtype=x.dtype, device=x.device)
    delta = x - baseline  # (B, 3, H, W)
    totals = [torch.zeros_like(x) for _ in targets]
    pairs = len(x) * steps  # pair p: input p // steps at step p % steps
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:  # only the input's gradient is wanted: no graph through the weights
        p.requires_grad_(False)
    try:
        for start in range(0, pairs, batch_size):
            index = torch.arange(start, min(start + batch_size, pairs), device=x.device)
            item, step = index // steps, index % steps
            a = alphas[step][:, None, None, None]
            scaled = (baseline[item] + a * delta[item]).requires_grad_(True)  # (n, 3, H, W)
            with torch.enable_grad():
                logits = model(scaled)
                for t_i, target in enumerate(targets):
                    (grad,) = torch.autograd.grad(target(logits).sum(), scaled, retain_graph=t_i < len(targets) - 1)
                    totals[t_i].index_add_(0, item, grad * step_weights[step][:, None, None, None])
            if progress is not None:
                progress(min((start + len(index)) / pairs, 1.0), "Integrated Gradients steps")
    finally:
        for p in params:
            p.requires_grad_(True)
    return [total * delta for total in totals]


def noisy_integrated_gradients(model: nn.Module, x: torch.Tensor, targets: Sequence[Callable], steps: int,
                               tunnel: NoiseTunnel, noise: NoiseSource, batch_size: int = 50,
                               progress: Progress = None) -> list[torch.Tensor]:
    """Captum's ``NoiseTunnel(IntegratedGradients)``: Integrated Gradients of ``tunnel.samples`` noisy copies
    of x (each from the black baseline), combined as the tunnel says; every (copy, step) pair batched together.

    Args:
        x: (1, 3, H, W); noise: called once with shape (N, 3, H, W), as Captum draws it.
    Returns:
        per target, the combined (1, 3, H, W) attribution.
    """
    noisy = tunnel.noisy_copies(x, noise)  # (N, 3, H, W)
    attributions = integrated_gradients(model, noisy, targets, steps, batch_size=batch_size, progress=progress)
    return [tunnel.combine(a)[None] for a in attributions]
