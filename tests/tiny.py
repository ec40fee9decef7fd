"""A tiny CNN with hand-set weights whose Grad-CAM is worked out by hand in test_tiny_cnn.py."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch import nn

from explainers.models.spec import Preprocessing, wrap_module

# x = pixel / 255 (mean 0, std 1); features = 255 * (R, G); logits = W @ mean(features)
W = [[1.0, -1.0], [0.5, 2.0]]


BACKWARD_CALLS: list[str] = []  # the stem's backward appends here: proves how deep a backward went


class _Probe(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        BACKWARD_CALLS.append("stem")
        return grad


class Stem(nn.Module):
    """Identity with a parameter, so a full backward (one that fills .grad) must pass through it."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Probe.apply(x * self.scale)


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = Stem()
        self.features = nn.Conv2d(3, 2, kernel_size=1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.features.weight.zero_()
            self.features.weight[0, 0] = 255.0  # feature 0 = R * 255
            self.features.weight[1, 1] = 255.0  # feature 1 = G * 255
            self.head.weight.copy_(torch.tensor(W))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(self.stem(x))).flatten(1))


def tiny_model():
    pre = Preprocessing(input_size=(4, 4), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation="nearest")
    return wrap_module(TinyCNN(), ["left", "right"], "features", name="tiny", preprocessing=pre)


def tiny_image() -> Image.Image:
    """4x4: R = 4 in the top-left 2x2 block, G = 2 in the bottom-right 2x2 block."""
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[:2, :2, 0] = 4
    pixels[2:, 2:, 1] = 2
    return Image.fromarray(pixels)
