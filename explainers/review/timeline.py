"""Checkpoint timeline: one image's maps across the checkpoints of a store, and how far they drift.

A store made with ``python -m explainers run SRC --out S --model ckpt_a --model ckpt_b ...`` holds
each checkpoint's maps; run.json lists the checkpoints in the order given. For every pair of
checkpoints (consecutive ones, and first -> last) the drift of each image's map is measured as
Arun et al. (Radiology: AI 2021) measure repeatability: SSIM and Spearman rank correlation of the
two maps, each upsampled to ``size`` x ``size`` (bilinear) and min-max normalized to [0, 1]
(``data_range=1``). A constant map normalizes to zeros; its rank correlation is NaN (undefined).

Which class: maps are compared for ONE class per image, the same in every checkpoint.
``target="auto"`` (default) takes the true class when every checkpoint has a map of it (runs with
``--targets true`` or ``both``), else the class the LAST checkpoint predicts when every checkpoint has
a map of it; images with neither are counted in ``Timeline.missing``.

Example:
    >>> review = review_timeline("store", method="gradcam")
    >>> [(d.first, d.second, float(np.nanmedian(d.ssim))) for d in review.drifts]
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import ExplainerError
from ..render import upsample
from ..scale.rows import decode_raw
from .stores import models_of, run_settings, stored_models

TARGETS = ("auto", "true", "last")
DEFAULT_SIZE = 32  # pixels per side of the common grid: SSIM's 7 x 7 window needs at least 7
DEFAULT_SHARE = 0.05  # flag the 5% of images whose first -> last SSIM is lowest


class TimelineError(ExplainerError):
    """The store cannot give a timeline (one checkpoint only, an unknown method or layer, ...)."""


@dataclass(frozen=True)
class Timeline:
    """Each image's maps across the checkpoints, on one grid. N images, M checkpoints."""

    models: tuple[str, ...]  # checkpoints in run order
    method: str
    layer: str
    size: int
    image_ids: tuple[str, ...]  # (N,) sorted
    class_index: np.ndarray  # (N,) int: the class compared in every checkpoint
    class_source: tuple[str, ...]  # (N,) "true" or "last": how that class was picked
    maps: np.ndarray  # (N, M, size, size) float32 in [0, 1]
    raw_max: np.ndarray  # (N, M) float32: each raw map's maximum (its strength)
    probability: np.ndarray  # (N, M) float32: each checkpoint's probability of the class
    missing: int  # images in the store without a map of one class in every checkpoint

    def index(self, image_id: str) -> int:
        return self.image_ids.index(image_id)


@dataclass(frozen=True)
class PairDrift:
    """Drift between two checkpoints, per image (arrays aligned with ``Timeline.image_ids``)."""

    first: str
    second: str
    ssim: np.ndarray  # (N,) in [-1, 1]; 1 = same map
    spearman: np.ndarray  # (N,) in [-1, 1]; NaN when a map is constant

    @property
    def label(self) -> str:
        return f"{self.first} -> {self.second}"

    def quantiles(self, qs: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> dict[str, dict[float, float]]:
        """{"ssim": {q: value}, "spearman": {q: value}} over the images (NaN ignored)."""
        return {name: {q: _nanquantile(values, q) for q in qs}
                for name, values in (("ssim", self.ssim), ("spearman", self.spearman))}

    def histogram(self, measure: str = "ssim", bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges) of ``measure`` over [-1, 1] (NaN left out)."""
        values = getattr(self, measure)
        return np.histogram(values[np.isfinite(values)], bins=bins, range=(-1.0, 1.0))


@dataclass(frozen=True)
class MovedImage:
    image_id: str
    class_index: int
    ssim: float  # first -> last
    spearman: float


@dataclass(frozen=True)
class TimelineReview:
    timeline: Timeline
    drifts: list[PairDrift]  # consecutive pairs, then first -> last (when there are 3 or more)
    flagged: list[MovedImage]  # lowest first -> last SSIM first


def checkpoints(store: str | Path) -> list[str]:
    """The store's models in run order (run.json's settings)."""
    return list(stored_models(store))


def load_timeline(store: str | Path, method: Optional[str] = None, layer: Optional[str] = None,
                  models: Optional[Sequence[str]] = None, target: str = "auto",
                  size: int = DEFAULT_SIZE) -> Timeline:
    """Read every image's maps of ``method`` at ``layer`` for ``models`` (default: all, in run order).

    Raises:
        TimelineError: fewer than two checkpoints, a model not in the store, no common layer, or a bad target.
    """
    from ..scale.query import connect

    settings = run_settings(store)
    stored = models_of(settings)
    names = list(models) if models is not None else list(stored)
    unknown = [n for n in names if n not in stored]
    if unknown:
        raise TimelineError(f"The store holds no model {unknown[0]!r}; it holds {', '.join(stored) or 'none'}.")
    if len(names) < 2:
        raise TimelineError("A timeline needs at least two checkpoints in one store: run "
                            "`python -m explainers run SOURCE --out STORE --model ckpt_a --model ckpt_b ...`.")
    if target not in TARGETS:
        raise TimelineError(f"Unknown target {target!r}: use one of {', '.join(TARGETS)}.")
    if size < 7:
        raise TimelineError(f"The common grid must be at least 7 pixels a side (SSIM's window), not {size}.")
    method = method or settings.get("methods", ["gradcam"])[0]
    common = set.intersection(*(set(stored[n].get("layers", [])) for n in names))
    layer = layer or next((l for l in stored[names[0]].get("layers", []) if l in common), None)
    if layer is None or layer not in common:
        raise TimelineError("These checkpoints share no layer; a timeline compares one layer of one architecture.")
    con = connect(store)
    try:
        cursor = con.execute(
            "SELECT image_id, model, class_index, rank, is_true, probability, raw, raw_shape, raw_scale, max "
            "FROM maps WHERE method = ? AND layer = ? AND list_contains(?, model)", [method, layer, names])
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, r)) for r in cursor.fetchall()]
    finally:
        con.close()
    return _assemble(rows, tuple(names), method, layer, target, int(size))


def _assemble(rows: list[dict], names: tuple[str, ...], method: str, layer: str, target: str,
              size: int) -> Timeline:
    by_image: dict[str, dict[tuple[str, int], dict]] = {}
    for row in rows:
        by_image.setdefault(row["image_id"], {})[(row["model"], row["class_index"])] = row
    ids, classes, sources, picked = [], [], [], []
    for image_id in sorted(by_image):
        maps = by_image[image_id]
        choice = _pick_class(maps, names, target)
        if choice is None:
            continue
        ids.append(image_id)
        classes.append(choice[0])
        sources.append(choice[1])
        picked.append([maps[(n, choice[0])] for n in names])
    n, m = len(ids), len(names)
    grid = np.zeros((n, m, size, size), np.float32)
    raw_max = np.zeros((n, m), np.float32)
    probability = np.zeros((n, m), np.float32)
    for i, row_set in enumerate(picked):
        for j, row in enumerate(row_set):
            raw = decode_raw(row["raw"], row["raw_shape"], row["raw_scale"])
            grid[i, j] = upsample(np.maximum(raw, 0.0), (size, size))
            raw_max[i, j] = row["max"]
            probability[i, j] = row["probability"]
    low = grid.min(axis=(2, 3), keepdims=True)
    span = grid.max(axis=(2, 3), keepdims=True) - low
    grid = np.where(span > 0, (grid - low) / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)
    return Timeline(names, method, layer, size, tuple(ids), np.asarray(classes, np.int64), tuple(sources),
                    grid, raw_max, probability, len(by_image) - n)


def _pick_class(maps: dict[tuple[str, int], dict], names: tuple[str, ...], target: str) -> Optional[tuple[int, str]]:
    def everywhere(index: int) -> bool:
        return all((n, index) in maps for n in names)

    if target in ("auto", "true"):
        truths = {c for (model, c), row in maps.items() if model == names[-1] and row["is_true"]}
        for c in truths:
            if everywhere(c):
                return c, "true"
        if target == "true":
            return None
    last = [c for (model, c), row in maps.items() if model == names[-1] and row["rank"] == 1]
    if last and everywhere(last[0]):
        return last[0], "last"
    return None


def pair_drift(timeline: Timeline, first: int, second: int, ranks: Optional[np.ndarray] = None) -> PairDrift:
    """SSIM (skimage, data_range=1) and Spearman rank correlation of every image's two maps.

    ``ranks``: ``standard_ranks(timeline)``, computed once for all pairs (ranking is the slow part).
    """
    from skimage.metrics import structural_similarity

    a, b = timeline.maps[:, first], timeline.maps[:, second]  # (N, S, S)
    ssim = np.array([structural_similarity(x, y, data_range=1.0) for x, y in zip(a, b)], np.float64)
    ranks = standard_ranks(timeline) if ranks is None else ranks
    with np.errstate(invalid="ignore"):  # a constant map's ranks are NaN: its correlation is undefined
        spearman = (ranks[:, first] * ranks[:, second]).mean(axis=1)
    return PairDrift(timeline.models[first], timeline.models[second], ssim, spearman)


def standard_ranks(timeline: Timeline) -> np.ndarray:
    """(N, M, S*S) ranks of each map's pixels (average ranks for ties, as scipy.stats.spearmanr), centred
    and scaled to unit variance: the mean of two maps' products is their Spearman correlation (Pearson of ranks)."""
    from scipy.stats import rankdata

    n, m = timeline.maps.shape[:2]
    ranks = rankdata(timeline.maps.reshape(n, m, -1), axis=2)
    ranks -= ranks.mean(axis=2, keepdims=True)
    spread = ranks.std(axis=2, keepdims=True)
    return ranks / np.where(spread > 0, spread, np.nan)  # NaN for a constant map


def default_pairs(count: int) -> list[tuple[int, int]]:
    """Consecutive checkpoints, then first -> last when that is not already a consecutive pair."""
    pairs = [(i, i + 1) for i in range(count - 1)]
    return pairs + ([(0, count - 1)] if count > 2 else [])


def most_moved(timeline: Timeline, drift: PairDrift, share: float = DEFAULT_SHARE,
               threshold: Optional[float] = None) -> list[MovedImage]:
    """The images whose evidence moved most, lowest SSIM first.

    Either the lowest ``share`` of the images by SSIM (at least one), or, with ``threshold``, every
    image whose SSIM is below it. Ties are broken by image id.
    """
    if not 0 < share <= 1:
        raise TimelineError(f"The share of images to flag lies in (0, 1], not {share}.")
    order = sorted(range(len(timeline.image_ids)), key=lambda i: (drift.ssim[i], timeline.image_ids[i]))
    if threshold is None:
        chosen = order[:max(1, math.ceil(share * len(order)))] if order else []
    else:
        chosen = [i for i in order if drift.ssim[i] < threshold]
    return [MovedImage(timeline.image_ids[i], int(timeline.class_index[i]), float(drift.ssim[i]),
                       float(drift.spearman[i])) for i in chosen]


def review_timeline(store: str | Path, method: Optional[str] = None, layer: Optional[str] = None,
                    models: Optional[Sequence[str]] = None, target: str = "auto", size: int = DEFAULT_SIZE,
                    share: float = DEFAULT_SHARE, threshold: Optional[float] = None) -> TimelineReview:
    """The timeline, the drift of every default pair, and the images flagged on first -> last."""
    timeline = load_timeline(store, method, layer, models, target, size)
    ranks = standard_ranks(timeline)
    drifts = [pair_drift(timeline, i, j, ranks) for i, j in default_pairs(len(timeline.models))]
    return TimelineReview(timeline, drifts, most_moved(timeline, drifts[-1], share, threshold))


def _nanquantile(values: np.ndarray, q: float) -> float:
    finite = values[np.isfinite(values)]
    return float(np.quantile(finite, q)) if finite.size else float("nan")
