"""Guided Backprop: the input gradient with negative gradients stopped at every ReLU."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUasModule
from torch import nn

from ..clones import replace_module, shell_clone


class _GuidedReLU6(torch.autograd.Function):
    """ReLU6 with the guided backward rule (the library swaps only nn.ReLU; EfficientNet-Lite uses ReLU6)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(0, 6)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * ((x > 0) & (x < 6)).to(grad.dtype) * (grad > 0).to(grad.dtype)


class GuidedReLU6(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _GuidedReLU6.apply(x)


def guided_clone(model: nn.Module) -> nn.Module:
    """A clone whose ReLU and ReLU6 modules use the guided backward rule."""
    clone = shell_clone(model)
    swaps = [(name, type(m)) for name, m in clone.named_modules() if type(m) in (nn.ReLU, nn.ReLU6)]
    for name, kind in swaps:
        replace_module(clone, name, GuidedBackpropReLUasModule() if kind is nn.ReLU else GuidedReLU6())
    return clone


def guided_backprop(model: nn.Module, x: torch.Tensor, target: Callable) -> np.ndarray:
    """Guided-backprop gradient of ``target`` with respect to the input.

    Returns:
        (H, W, 3) float32, as pytorch-grad-cam's GuidedBackpropReLUModel returns it.
    """
    clone = guided_clone(model)
    inputs = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        score = target(clone(inputs)).sum()
        (grad,) = torch.autograd.grad(score, inputs)
    return grad[0].permute(1, 2, 0).cpu().numpy().astype(np.float32)


def saliency(gradient: np.ndarray) -> np.ndarray:
    """One value per pixel from an (H, W, 3) gradient: the largest absolute channel."""
    return np.abs(gradient).max(axis=-1).astype(np.float32)
