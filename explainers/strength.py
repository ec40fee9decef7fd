"""How strong a map is, in its own raw units, and which maps may share one color scale.

Each method's raw map has its own units (EigenCAM reaches ~24 on the cat photo, Grad-CAM++ ~9,
Grad-CAM ~0.4), so one color range across methods would paint most of them flat. A shared range
means something only between maps of the same units: one method over classes, layers or models,
or methods of one *unit family* below.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .results import CamResult

# Methods whose raw maps are sums of gradient x activation terms (logit per location): same units.
GRADIENT_X_ACTIVATION = "gradient × activation"
UNIT_FAMILIES: dict[str, str] = {
    "gradcam": GRADIENT_X_ACTIVATION, "hirescam": GRADIENT_X_ACTIVATION, "xgradcam": GRADIENT_X_ACTIVATION,
    "layercam": GRADIENT_X_ACTIVATION, "gradcam_elementwise": GRADIENT_X_ACTIVATION,
}
CLASS_AGNOSTIC = frozenset({"eigencam", "kpcacam", "fem"})  # same map whatever the class


@dataclass(frozen=True)
class MapStrength:
    """One raw map's range and, for a class map, its strength against the top class's map.

    ``relative`` is ``high / reference_high`` where the reference is the same method's map (same
    layer) for the model's top class: 0.09 means the map peaks at 9% of the top class's peak.
    """

    low: float  # smallest raw value
    high: float  # largest raw value
    relative: Optional[float] = None  # None when there is no reference (or the reference is all zero)

    @property
    def all_zero(self) -> bool:
        """True when the map holds nothing to draw (all zero, or one constant value)."""
        return not self.high > self.low


def map_strength(raw: np.ndarray, reference: Optional[np.ndarray] = None) -> MapStrength:
    """The raw range of ``raw`` and, given the top class's raw map, its peak relative to that map's peak.

    Args:
        raw: (h, w) map at layer resolution (``CamResult.raw``), not normalized; NaN counts as 0.
        reference: the same method's raw map for the top class, or None.
    """
    values = np.nan_to_num(np.asarray(raw, dtype=np.float64))
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    relative = None
    if reference is not None:
        peak = float(np.nan_to_num(np.asarray(reference, dtype=np.float64)).max(initial=0.0))
        relative = high / peak if peak > 0 else None
    return MapStrength(low, high, relative)


def unit_family(method: str) -> str:
    """The family of methods whose raw maps share units with ``method`` (a method alone is its own family)."""
    return UNIT_FAMILIES.get(method, method)


def family_ranges(results: Sequence[CamResult]) -> list[tuple[float, float]]:
    """Per result, the (low, high) raw range that all maps of its unit family span together.

    Maps of different families never share a range, so no panel goes flat because of another
    method's units.
    """
    spans: dict[str, tuple[float, float]] = {}
    for r in results:
        s = map_strength(r.raw)
        low, high = spans.get(unit_family(r.method), (s.low, s.high))
        spans[unit_family(r.method)] = (min(low, s.low), max(high, s.high))
    return [spans[unit_family(r.method)] for r in results]


def strength_note(result: CamResult, strength: MapStrength, top_class: Optional[str] = None) -> str:
    """A short caption: the raw range, and the strength against the top class (or why there is none)."""
    if strength.all_zero:
        return f"all zero at {result.layer}: no evidence to show" if strength.high == 0 else \
            f"constant {strength.high:.3g}: no evidence to show"
    text = f"raw {strength.low:.3g}–{strength.high:.3g}"
    if result.method in CLASS_AGNOSTIC:
        return f"{text} · same map for every class"
    if strength.relative is not None and top_class is not None:
        text += f" · {strength.relative:.0%} of top class" if top_class != result.class_name else " · top class"
    return text
