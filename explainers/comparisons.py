"""Helpers for comparing explanations: two classes' maps, and which layers show where evidence forms.

The contrastive map itself ("A rather than B": the Grad-CAM of logit A minus logit B)
comes from ``explain(..., contrast=(a, b))``; the difference here is the other view,
the two class maps subtracted on one shared scale.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import ExplainerError
from .layers import LayerInfo
from .render import colorize, normalize_maps
from .results import CamResult


def class_difference(first: CamResult, second: CamResult, size: tuple[int, int]) -> np.ndarray:
    """Map of ``first`` minus map of ``second``, both scaled by ONE shared range.

    Args:
        first, second: maps of the same image, method and layer (two classes).
        size: (height, width) of the output.
    Returns:
        (height, width) float32 in [-1, 1]: positive where ``first``'s evidence is stronger.
    """
    if first.raw.shape != second.raw.shape:
        raise ExplainerError("The two maps come from layers of different sizes; compare maps of one layer.")
    a, b = normalize_maps([first.raw, second.raw], size, shared=True)
    return (a - b).astype(np.float32)


def colorize_signed(diff: np.ndarray, colormap: str = "RdBu_r") -> np.ndarray:
    """A map in [-1, 1] colored with a diverging colormap, 0 at its middle; (H, W, 3) uint8."""
    return colorize((np.clip(diff, -1.0, 1.0) + 1.0) / 2.0, colormap)


def stage_layers(layers: Sequence[LayerInfo], most: int = 6) -> list[str]:
    """Layers from early to late, one per spatial resolution, for a "where does evidence form" view.

    For each output resolution, the last of the least nested modules (a stage, not a conv inside
    it), so a CNN gives e.g. ``layer1, layer2, layer3, layer4``; the recommended layer always ends
    the list. Models without resolution changes (ViT) get evenly spaced siblings of the recommended layer.

    Args:
        layers: from ``list_layers``, in model order.
        most: at most this many layers (the latest kept).
    Returns:
        Layer names, early to late.
    """
    recommended = next((i.name for i in layers if i.recommended), None)
    spatial = [i for i in layers if len(i.output_shape) == 4]
    by_size: dict[tuple[int, int], list[LayerInfo]] = {}
    for info in spatial:
        by_size.setdefault(tuple(info.output_shape[-2:]), []).append(info)
    picked: list[str] = []
    if len(by_size) >= 2:
        for group in by_size.values():  # dicts keep first-seen order: early resolutions first
            depth = min(i.name.count(".") for i in group)
            picked.append([i.name for i in group if i.name.count(".") == depth][-1])
    elif recommended is not None:
        parent = recommended.rpartition(".")[0]
        siblings = [i.name for i in layers if i.name.rpartition(".")[0] == parent and
                    i.name.count(".") == recommended.count(".") and i.output_shape == _shape(layers, recommended)]
        step = max(1, len(siblings) // 4)
        picked = siblings[len(siblings) - 1::-step][::-1] if siblings else []
    if recommended is not None:
        picked = [n for n in picked if n != recommended]
        order = [i.name for i in layers]
        late = [n for n in picked if order.index(n) > order.index(recommended)]
        picked = [n for n in picked if n not in late] + [recommended]
    return picked[-most:]


def _shape(layers: Sequence[LayerInfo], name: str) -> tuple[int, ...]:
    return next(i.output_shape for i in layers if i.name == name)
