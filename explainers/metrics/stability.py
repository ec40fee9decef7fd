"""Stability: how much a map moves when the image changes in ways that should not matter.

Each view of the image (a mirror image, a zoom out or in, added noise) is explained, its map
brought back onto the original image's grid, and the per-pixel standard deviation over the
original and the views is an uncertainty map; its mean is one number (0 = perfectly stable).

A zoom out (scale < 1) shrinks the image inside a canvas of its own size, padded with its mean
colour; a zoom in (scale > 1) crops the centre. Pixels a view does not show are NaN in its map
and left out of that pixel's statistics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
from PIL import Image, ImageOps

from ..errors import EvaluationError
from ..pipeline import explain
from ..methods.catalog import resolve_method
from ..models.spec import LoadedModel
from .common import Progress, check_class, rank_correlation


@dataclass(frozen=True)
class View:
    """One changed copy of the image and how to bring its map back to the original grid."""

    name: str  # e.g. "mirror", "zoom 0.9", "noise 1"
    image: Image.Image
    back: Callable[[np.ndarray], np.ndarray]  # view's (h, w) map -> (H, W) map, NaN where unseen


@dataclass(frozen=True)
class Stability:
    """The spread of one method's map over the views."""

    method: str
    method_name: str
    original: np.ndarray  # (H, W) map of the unchanged image
    views: tuple[str, ...]
    maps: list[np.ndarray]  # per view, (H, W) on the original grid, NaN where the view did not see
    std_map: np.ndarray  # (H, W) per-pixel standard deviation over the original and the views
    mean_std: float  # mean of std_map: 0 is perfectly stable; maps in [0, 1] give at most 0.5
    spearman: list[float]  # per view, rank correlation with the original map on the pixels it saw

    @property
    def mean_spearman(self) -> float:
        return float(np.mean(self.spearman)) if self.spearman else 1.0


def make_views(image: Image.Image, mirror: bool = True, scales: Sequence[float] = (0.9, 1.1),
               noise_sigma: float = 0.05, noise_samples: int = 2, seed: int = 0) -> list[View]:
    """The changed copies of ``image``.

    Args:
        mirror: add the left-right mirror image.
        scales: zoom factors; below 1 zooms out (padding), above 1 zooms in (centre crop).
        noise_sigma: standard deviation of Gaussian noise, as a share of the 0..255 range.
        noise_samples: how many noisy copies (0 for none).
        seed: for the noise.
    """
    rgb = np.asarray(image.convert("RGB"))
    height, width = rgb.shape[:2]
    views: list[View] = []
    if mirror:
        views.append(View("mirror", ImageOps.mirror(image), lambda m: np.fliplr(m).copy()))
    for scale in scales:
        scale = float(scale)
        if not 0.2 <= scale <= 5.0 or scale == 1.0:
            raise EvaluationError(f"A zoom factor must lie between 0.2 and 5 and differ from 1; got {scale:g}.")
        views.append(_zoom_out(rgb, scale) if scale < 1 else _zoom_in(rgb, scale))
    if noise_samples < 0 or noise_sigma < 0:
        raise EvaluationError("The noise level and the number of noisy copies cannot be negative.")
    rng = np.random.default_rng(seed)
    for i in range(int(noise_samples) if noise_sigma > 0 else 0):
        noisy = rgb.astype(np.float64) + rng.normal(0.0, 255.0 * noise_sigma, rgb.shape)
        views.append(View(f"noise {i + 1}", Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8)),
                          lambda m: np.asarray(m, np.float32).copy()))
    if not views:
        raise EvaluationError("Choose at least one change: mirror, a zoom factor or noise.")
    return views


def _zoom_out(rgb: np.ndarray, scale: float) -> View:
    height, width = rgb.shape[:2]
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    y0, x0 = (height - h) // 2, (width - w) // 2
    canvas = np.empty_like(rgb)
    canvas[:] = rgb.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
    canvas[y0:y0 + h, x0:x0 + w] = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)

    def back(m: np.ndarray) -> np.ndarray:
        m = _on(m, height, width)[y0:y0 + h, x0:x0 + w]
        return cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR)

    return View(f"zoom {scale:g}", Image.fromarray(canvas), back)


def _zoom_in(rgb: np.ndarray, scale: float) -> View:
    height, width = rgb.shape[:2]
    h, w = max(1, round(height / scale)), max(1, round(width / scale))
    y0, x0 = (height - h) // 2, (width - w) // 2

    def back(m: np.ndarray) -> np.ndarray:
        full = np.full((height, width), np.nan, dtype=np.float32)
        full[y0:y0 + h, x0:x0 + w] = _on(m, h, w)
        return full

    return View(f"zoom {scale:g}", Image.fromarray(np.ascontiguousarray(rgb[y0:y0 + h, x0:x0 + w])), back)


def _on(m: np.ndarray, height: int, width: int) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    return m if m.shape == (height, width) else cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR)


def spread(original: np.ndarray, maps: Sequence[np.ndarray]) -> tuple[np.ndarray, float, list[float]]:
    """Per-pixel standard deviation over ``original`` and ``maps`` (NaN = not seen), its mean,
    and each map's rank correlation with the original on the pixels it saw.

    Returns:
        (std_map (H, W) float32, mean of std_map, [Spearman per map]).
    """
    original = np.asarray(original, dtype=np.float32)
    stack = np.stack([original] + [np.asarray(m, dtype=np.float32) for m in maps])
    if stack.shape[1:] != original.shape:
        raise EvaluationError("Every map must have the original map's size.")
    std_map = np.nanstd(stack, axis=0).astype(np.float32)  # the original is never NaN: no empty pixel
    rhos = []
    for m in stack[1:]:
        seen = np.isfinite(m)
        rhos.append(rank_correlation(original[seen], m[seen]))
    return std_map, float(std_map.mean()), rhos


def stability_check(model: LoadedModel, image: Image.Image, methods: Sequence[str] = ("gradcam",),
              class_index: int | None = None, layer: str | None = None, mirror: bool = True,
              scales: Sequence[float] = (0.9, 1.1), noise_sigma: float = 0.05, noise_samples: int = 2,
              seed: int = 0, progress: Progress = None) -> dict[str, Stability]:
    """The uncertainty of each method's map under small changes of the image.

    One ``explain`` call per view computes every method at once. Args as in ``make_views``;
    class_index defaults to the top-1 class of the unchanged image, layer to the recommended one.

    Returns:
        {method key: Stability}.
    """
    keys = list(dict.fromkeys(resolve_method(m).key for m in methods))
    if not keys:
        raise EvaluationError("Choose at least one method.")
    class_index = check_class(model, class_index, image)
    views = make_views(image, mirror, scales, noise_sigma, noise_samples, seed)
    first = explain(model, image, methods=keys, classes=[class_index], layers=[layer] if layer else None)
    per_view: list[dict[str, np.ndarray]] = []
    for i, view in enumerate(views):
        if progress is not None:
            progress(i / len(views), f"explaining the view '{view.name}'")
        result = explain(model, view.image, methods=keys, classes=[class_index], layers=[first.results[0].layer])
        per_view.append({k: view.back(result.result(k).map) for k in keys})
    if progress is not None:
        progress(1.0, "views done")
    out = {}
    for k in keys:
        original = first.result(k).map
        maps = [v[k] for v in per_view]
        std_map, mean_std, rhos = spread(original, maps)
        out[k] = Stability(k, first.result(k).method_name, original, tuple(v.name for v in views), maps,
                           std_map, mean_std, rhos)
    return out
