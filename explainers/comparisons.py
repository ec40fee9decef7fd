"""Helpers for comparing explanations: two classes' maps, and which layers show where evidence forms.

The contrastive map itself ("A rather than B": the Grad-CAM of logit A minus logit B)
comes from ``explain(..., contrast=(a, b))``; the difference here is the other view,
the two class maps subtracted on one shared scale.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from .errors import ExplainerError
from .layers import LayerInfo
from .render import colorize, normalize_maps
from .results import CamResult

if TYPE_CHECKING:
    from .models.spec import Preprocessing


def class_difference(first: CamResult, second: CamResult, size: tuple[int, int],
                     preprocessing: Optional[Preprocessing] = None) -> np.ndarray:
    """Map of ``first`` minus map of ``second``, both scaled by ONE shared range.

    Args:
        first, second: maps of the same image, method and layer (two classes).
        size: (height, width) of the output.
        preprocessing: the model's; with a "letterbox" or "crop" fit the maps go back through it, as
            the class maps beside the difference do (else they are stretched over the whole image).
    Returns:
        (height, width) float32 in [-1, 1]: positive where ``first``'s evidence is stronger; NaN
        where the model did not see the image (outside a centre crop).
    """
    if first.raw.shape != second.raw.shape:
        raise ExplainerError("The two maps come from layers of different sizes; compare maps of one layer.")
    a, b = normalize_maps([first.raw, second.raw], size, shared=True, preprocessing=preprocessing)
    return (a - b).astype(np.float32)


SIGNED_COLORMAP = "RdBu_r"  # diverging: blue below 0, white at 0, red above


def colorize_signed(diff: np.ndarray, colormap: str = SIGNED_COLORMAP) -> np.ndarray:
    """A map in [-1, 1] colored with a diverging colormap, 0 at its middle; (H, W, 3) uint8."""
    return colorize((np.clip(diff, -1.0, 1.0) + 1.0) / 2.0, colormap)


def stage_layers(layers: Sequence[LayerInfo], most: int = 6) -> list[str]:
    """Layers from early to late, one per spatial resolution, for a "where does evidence form" view.

    For each output resolution, the last of the least nested modules (a stage, not a conv inside
    it), so a CNN gives e.g. ``layer1, layer2, layer3, layer4``; a stage that only repeats its last
    block's output is given as that block (``blocks.1`` of EfficientNet is ``blocks.1.1``). With three
    resolutions or more, the first one (the stem) is left out: its edge-like maps are often all zero
    (Grad-CAM at EfficientNet-Lite0's ``bn1`` on the cat). The recommended layer always ends the list.
    Models without resolution changes (ViT) get evenly spaced siblings of the recommended layer, or
    of its block (``encoder_layer_2.ln_1``, ``…_5.ln_1``, … for ``encoder_layer_11.ln_1``).

    Args:
        layers: from ``list_layers``, in model order.
        most: at most this many layers (the latest kept).
    Returns:
        Layer names, early to late; each one makes a map of its own (or is the recommended layer).
    """
    recommended = next((i.name for i in layers if i.recommended), None)
    order = [i.name for i in layers]
    listed = {i.name for i in layers if i.makes_own_map or i.recommended}

    def carrier(info: LayerInfo) -> str:  # the listed layer that gives this module's map
        return info.name if info.name in listed else info.same_map_as if info.same_map_as in listed else ""

    by_size: dict[tuple[int, int], list[LayerInfo]] = {}
    for info in layers:
        if len(info.output_shape) == 4 and carrier(info):
            by_size.setdefault(tuple(info.output_shape[-2:]), []).append(info)
    groups = [by_size[size] for size in sorted(by_size, key=lambda hw: -hw[0] * hw[1])]  # fine (early) to coarse
    picked: list[str] = []
    if len(groups) >= 2:
        for group in groups[1:] if len(groups) >= 3 else groups:
            depth = min(i.name.count(".") for i in group)
            name = carrier([i for i in group if i.name.count(".") == depth][-1])
            if name not in picked:
                picked.append(name)
    elif recommended is not None:
        picked = _spaced_siblings(layers, recommended, listed)
    if recommended is not None:
        picked = [n for n in picked if n != recommended]
        late = [n for n in picked if order.index(n) > order.index(recommended)  # after it, not inside it
                and not n.startswith(recommended + ".")]
        picked = [n for n in picked if n not in late] + [recommended]
    return picked[-most:]


def layers_in_range(names: Sequence[str], first: str, last: str, count: int,
                    prefer: Sequence[str] = ()) -> list[str]:
    """``count`` layers from ``first`` to ``last`` (both in ``names``, which is in model order).

    The range's last layer, then its first; then the ``prefer`` layers inside the range (e.g.
    ``stage_layers``), latest first; then layers evenly spaced over the range until there are ``count``.

    Returns:
        At most ``count`` names (fewer when the range is shorter), early to late.
    """
    start, stop = sorted((list(names).index(first), list(names).index(last)))
    span = list(names[start:stop + 1])
    count = max(1, min(int(count), len(span)))
    picked = [span[-1]] + ([span[0]] if count > 1 and len(span) > 1 else [])
    for name in reversed([p for p in prefer if p in span]):
        if len(picked) < count and name not in picked:
            picked.append(name)
    spots = count
    while len(picked) < count:  # more and more evenly spaced spots until enough are new
        for position in np.linspace(0, len(span) - 1, spots).round().astype(int):
            if len(picked) < count and span[position] not in picked:
                picked.append(span[position])
        spots += 1
    return sorted(picked, key=span.index)


def _spaced_siblings(layers: Sequence[LayerInfo], recommended: str, listed: set[str], count: int = 4) -> list[str]:
    """Up to ``count`` evenly spaced layers like the recommended one (same shape, not after it): its
    siblings, else the same child of its block's siblings, and so on up the name."""
    order = [i.name for i in layers]
    shape = _shape(layers, recommended)
    parts = recommended.split(".")
    for level in range(len(parts) - 1, -1, -1):  # the part of the name that varies
        found = [i.name for i in layers if i.name in listed and i.output_shape == shape
                 and len(i.name.split(".")) == len(parts) and i.name.split(".")[:level] == parts[:level]
                 and i.name.split(".")[level + 1:] == parts[level + 1:]
                 and order.index(i.name) <= order.index(recommended)]
        if len(found) >= 2:
            step = max(1, len(found) // count)
            return found[len(found) - 1::-step][::-1]
    return []


def _shape(layers: Sequence[LayerInfo], name: str) -> tuple[int, ...]:
    return next(i.output_shape for i in layers if i.name == name)
