"""What a map explains: a class score, or "class A rather than class B".

Targets are tiny callables from the model's output (B, K) or (K,) to a score,
as in pytorch-grad-cam, so the library's methods accept them unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from pytorch_grad_cam.utils.model_targets import FinerWeightedTarget

from .errors import TargetError


@dataclass(frozen=True)
class ClassTarget:
    """The logit of one class."""

    index: int

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return output[..., self.index]


@dataclass(frozen=True)
class ContrastTarget:
    """Why ``index`` rather than ``other``: logit of ``index`` minus logit of ``other``."""

    index: int
    other: int

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return output[..., self.index] - output[..., self.other]


Target = ClassTarget | ContrastTarget


def check_index(index: object, num_classes: int) -> int:
    if isinstance(index, bool) or not isinstance(index, (int,)) and not hasattr(index, "__index__"):
        raise TargetError(f"A class must be a whole number from 0 to {num_classes - 1}, not {index!r}.")
    value = int(index)  # numpy integers too
    if not 0 <= value < num_classes:
        raise TargetError(f"Class {value} is out of range: this model has classes 0 to {num_classes - 1}.")
    return value


def build_targets(logits: torch.Tensor, classes: Sequence[int] | None = None, top_k: int | None = None,
                  contrast: tuple[int, int] | None = None) -> list[Target]:
    """Turn the caller's choice into targets; default: the top-1 class.

    Args:
        logits: (1, K) model output for the image.
        classes: explicit class indices (mutually exclusive with top_k).
        top_k: the k best-scoring classes, best first.
        contrast: (A, B) adds a target "A rather than B".
    """
    num_classes = int(logits.shape[-1])
    if classes is not None and top_k is not None:
        raise TargetError("Give either classes or top_k, not both.")
    if classes is not None and isinstance(classes, (int, str)):
        classes = [classes]  # type: ignore[list-item]
    targets: list[Target] = []
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= num_classes:
            raise TargetError(f"top_k must be a whole number from 1 to {num_classes}, not {top_k!r}.")
        order = torch.argsort(logits[0], descending=True)[:top_k]
        targets = [ClassTarget(int(i)) for i in order]
    elif classes is not None:
        if len(classes) == 0 and contrast is None:
            raise TargetError("No class was given: pick at least one class.")
        targets = [ClassTarget(check_index(c, num_classes)) for c in dict.fromkeys(classes)]
    if contrast is not None:
        if len(contrast) != 2:
            raise TargetError("A contrast needs exactly two classes: A rather than B.")
        a, b = (check_index(c, num_classes) for c in contrast)
        if a == b:
            raise TargetError("A contrast needs two different classes.")
        targets.append(ContrastTarget(a, b))
    if not targets:
        targets = [ClassTarget(int(torch.argmax(logits[0])))]
    return targets


def finer_target(logits: torch.Tensor, index: int, alpha: float = 1.0,
                 comparisons: Sequence[int] = (1, 2, 3)) -> FinerWeightedTarget:
    """Finer-CAM's target for class ``index``: compared with the classes whose logits are closest.

    Mirrors pytorch-grad-cam's FinerCAM.forward with ``target_idx=index``.
    """
    scores = logits.detach().cpu().numpy()[0]
    order = np.argsort(np.abs(scores - scores[index])).tolist()  # as the library sorts
    comparisons = [c for c in comparisons if c < len(order)]
    return FinerWeightedTarget(int(order[0]), [int(order[c]) for c in comparisons], alpha)
