"""Integrated Gradients (Sundararajan et al., ICML 2017, arXiv:1703.01365), as Captum computes it by default:
a black (all-zero) baseline, Gauss-Legendre quadrature; the steps go through the model in batches."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

Progress = Optional[Callable[[float, str], None]]


def gauss_legendre(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Captum's ``gausslegendre`` points on [0, 1] and their weights."""
    points, weights = np.polynomial.legendre.leggauss(steps)
    return 0.5 * (1 + points), 0.5 * weights


def integrated_gradients(model: nn.Module, x: torch.Tensor, targets: Sequence[Callable], steps: int = 50,
                         baseline: Optional[torch.Tensor] = None, batch_size: int = 50,
                         progress: Progress = None) -> list[torch.Tensor]:
    """(x - baseline) * sum_i w_i * d target / d x at baseline + a_i (x - baseline).

    Args:
        model: a private clone; x: (1, 3, H, W).
    Returns:
        per target, the (1, 3, H, W) attribution (Captum's ``IntegratedGradients.attribute`` output).
    """
    baseline = torch.zeros_like(x) if baseline is None else baseline
    alphas, step_weights = gauss_legendre(steps)
    delta = x - baseline
    totals = [torch.zeros_like(x) for _ in targets]
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:  # only the input's gradient is wanted: no graph through the weights
        p.requires_grad_(False)
    try:
        for start in range(0, steps, batch_size):
            a = torch.tensor(alphas[start:start + batch_size], dtype=x.dtype, device=x.device)
            w = torch.tensor(step_weights[start:start + batch_size], dtype=x.dtype, device=x.device)
            scaled = (baseline + a[:, None, None, None] * delta).requires_grad_(True)  # (n, 3, H, W)
            with torch.enable_grad():
                logits = model(scaled)
                for t_i, target in enumerate(targets):
                    (grad,) = torch.autograd.grad(target(logits).sum(), scaled, retain_graph=t_i < len(targets) - 1)
                    totals[t_i] += (grad * w[:, None, None, None]).sum(dim=0, keepdim=True)
            if progress is not None:
                progress(min((start + len(a)) / steps, 1.0), "Integrated Gradients steps")
    finally:
        for p in params:
            p.requires_grad_(True)
    return [total * delta for total in totals]
