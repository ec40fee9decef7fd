"""Panels that say how strong their map is: a colorbar in raw units, the strength against the top
class, and a plain "all zero" instead of a flat tint. Shared by the Compare pages.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
from PIL import Image

from explainers.methods.options import MethodOptions
from explainers.models.spec import LoadedModel
from explainers.render import blank_panel, overlay, scale_to_range, with_colorbar
from explainers.results import CamResult
from explainers.strength import MapStrength, family_ranges, map_strength, strength_note

from . import loaders


def strengths(results: Sequence[CamResult], references: Mapping[str, np.ndarray]) -> list[MapStrength]:
    """Each result's strength; ``references`` maps a method to its raw map for the top class."""
    return [map_strength(r.raw, references.get(r.method)) for r in results]


def top_class_maps(model: LoadedModel, image: Image.Image, image_sha: str, layer: str, top1: int,
                   results: Mapping[str, CamResult], slow: Sequence[str] = (),
                   options: Optional[MethodOptions] = None) -> dict[str, np.ndarray]:
    """Raw maps of the top class for the methods of ``results`` (same layer, same method ``options``):
    the reference of strength.

    The one-pass methods are computed (cached); slow methods are used only if already cached.
    """
    if not results:
        return {}
    if next(iter(results.values())).class_index == top1:
        return {m: r.raw for m, r in results.items()}
    fast = [m for m in results if m not in slow]
    found = loaders.explanations(model, image, image_sha, layer, top1, fast, options=options) if fast else {}
    found |= loaders.explanations(model, image, image_sha, layer, top1, [m for m in slow if m in results],
                                  compute=False, options=options)
    return {m: r.raw for m, r in found.items()}


def spans(results: Sequence[CamResult], shared: bool) -> list[tuple[float, float]]:
    """The raw (low, high) each panel's colors stretch over: its own, or its unit family's."""
    if shared:
        return family_ranges(results)
    own = [map_strength(r.raw) for r in results]
    return [(max(s.low, 0.0), s.high) for s in own]


def scaled_maps(results: Sequence[CamResult], size: tuple[int, int], shared: bool, preprocessing=None,
                ranges: Optional[Sequence[tuple[float, float]]] = None) -> list[np.ndarray]:
    """Maps in [0, 1] at ``size`` (height, width), each over its own range or its family's (``ranges``:
    ``spans(results, shared)`` when the caller has them); through the fit of ``preprocessing`` (the
    model's, or one per result) when given (NaN outside a crop)."""
    ranges = spans(results, shared) if ranges is None else ranges
    return [r.map if not shared and r.map.shape == size else scale_to_range(r.raw, size, lo, hi, p)
            for r, (lo, hi), p in zip(results, ranges, per_result(preprocessing, len(results)))]


def per_result(preprocessing, n: int) -> list:
    """``preprocessing`` as one entry per result: a sequence (one model's each, e.g. Compare models,
    where the two models may crop differently) is kept; one model's is repeated."""
    if isinstance(preprocessing, (list, tuple)):
        if len(preprocessing) != n:
            raise ValueError(f"{len(preprocessing)} preprocessings for {n} maps")
        return list(preprocessing)
    return [preprocessing] * n


def scaled_map(results: Sequence[CamResult], index: int, size: tuple[int, int], shared: bool,
               preprocessing=None) -> np.ndarray:
    """``scaled_maps(...)[index]`` without scaling the other maps (one panel's view or download)."""
    return scaled_maps(results[index:index + 1], size, shared, per_result(preprocessing, len(results))[index],
                       spans(results, shared)[index:index + 1])[0]


def pictures(shown: Image.Image, results: Sequence[CamResult], strengths_: Sequence[MapStrength], opacity: float,
             colormap: str, shared: bool, preprocessing=None) -> list[np.ndarray]:
    """One picture per result: the overlay with a colorbar in raw units, or a gray "all zero" panel
    (``preprocessing``: the model's, or one per result, for the fit of its maps)."""
    size = (shown.height, shown.width)
    out = []
    ranges = spans(results, shared)
    maps = scaled_maps(results, size, shared, preprocessing, ranges)
    for r, m, s, (low, high) in zip(results, maps, strengths_, ranges):
        if s.all_zero:
            what = "all zero" if s.high == 0 else f"constant {s.high:.3g}"
            blank = with_colorbar(blank_panel(shown, f"{r.method_name}: map is {what}\nat layer {r.layer}"),
                                  "gray", s.low, s.high)
            blank[shown.height:] = 255  # no colorbar for a map with no range; the panel keeps the grid's height
            out.append(blank)
        else:
            out.append(with_colorbar(overlay(shown, m, opacity, colormap), colormap, low, high))
    return out


def caption(result: CamResult, strength: MapStrength, top_class: Optional[str], first: str,
            probability: bool = True, last: str = "") -> str:
    """``first`` (e.g. the method's name), the class and layer, [its probability,] the strength note[, ``last``]."""
    parts = [first, f"{result.label} @ {result.layer}"]
    parts += [f"p={result.probability:.1%}"] if probability and result.contrast_index is None else []
    parts += [strength_note(result, strength, top_class)] + ([last] if last else [])
    return " · ".join(parts)
