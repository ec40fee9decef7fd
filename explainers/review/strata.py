"""Localisation by stratum (after Saporta et al., Nature Machine Intelligence 2022): the pointing
game and the energy inside the boxes of a store's images, broken down by object size, number of
instances and model confidence, each cell with n and a bootstrap 95% confidence interval.

Boxes: the evaluate CLI's JSON, ``[{"file": "tabby/0001.jpg", "box": [x0, y0, x1, y1], "class": 281}, ...]``
in pixels of the original image; "file" is the store's image_id (the path inside SOURCE); several
records of one file and class are that object's instances. Without "class" the predicted class's map
is used; with it, the store must hold a map of that class (``--targets true``, ``both`` or top-k).

The numbers per image are the metrics module's (``pointing_game``, ``energy``) on the stored map
drawn on the image grid (``on_grid``), with the evaluate CLI's tolerance (15 px at 224 px, scaled).

Strata (each a documented choice):
- size: share of the image covered by the union of the boxes; small < 5%, medium 5-25%, large >= 25%.
  COCO's 32² and 96² px of a 640 x 480 image are 0.3% and 3%; objects in classification sets are
  larger, so the cut-offs are higher.
- instances: the number of boxes: 1, 2, 3+.
- confidence: the model's probability of the explained class: < 0.5, 0.5-0.9, >= 0.9.

CIs: scipy.stats.bootstrap, percentile method, 2000 resamples, seeded (``seed``); a cell with
fewer than two images has no interval (NaN).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import EvaluationError
from ..metrics.localisation import TOLERANCE_AT_224, energy, ground_truth, pointing_game, scaled_tolerance
from ..models.spec import Preprocessing
from ..pipeline import on_grid
from ..scale.rows import decode_raw
from .stores import models_of, run_settings

SIZE_CUTS = (0.05, 0.25)  # box area / image area
CONFIDENCE_CUTS = (0.5, 0.9)
RESAMPLES = 2000
MAX_BOXES_BYTES = 20 * 2**20  # a boxes file larger than this is refused before parsing


@dataclass(frozen=True)
class BoxGroup:
    """The boxes of one object class in one image."""

    file: str
    class_ref: Optional[Any]  # index, class name, or None (the predicted class)
    boxes: tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class ImageLocalisation:
    image_id: str
    class_index: int
    hit: bool
    energy: float
    area_fraction: float
    instances: int
    probability: float


@dataclass(frozen=True)
class StratumCell:
    factor: str  # "all" | "size" | "instances" | "confidence"
    stratum: str  # e.g. "small (< 5%)"
    n: int
    pointing: float  # share of hits
    pointing_low: float
    pointing_high: float
    energy: float  # mean share of the map inside the boxes
    energy_low: float
    energy_high: float


@dataclass(frozen=True)
class StrataReport:
    images: list[ImageLocalisation]
    cells: list[StratumCell]
    unmatched: list[str]  # one sentence per box group with no map in the store
    model: str
    method: str
    layer: str


def parse_boxes(data: bytes | str | list) -> list[BoxGroup]:
    """The evaluate CLI's boxes JSON grouped per (file, class).

    Raises:
        EvaluationError: not JSON, not a non-empty list, too large, a record without file or box.
    """
    if isinstance(data, (bytes, str)):
        if len(data) > MAX_BOXES_BYTES:
            raise EvaluationError(f"The boxes file is larger than {MAX_BOXES_BYTES // 2**20} MB.")
        try:
            data = json.loads(data)
        except ValueError as error:
            raise EvaluationError(f"The boxes file is not valid JSON: {error}.") from None
    if not isinstance(data, list) or not data:
        raise EvaluationError('The boxes file must hold a non-empty JSON list of '
                              '{"file", "box": [x0, y0, x1, y1], "class"} records.')
    grouped: dict[tuple[str, str], BoxGroup] = {}
    for n, record in enumerate(data, 1):
        if not isinstance(record, dict) or "file" not in record or "box" not in record:
            raise EvaluationError(f"Record {n} of the boxes file needs a \"file\" and a \"box\".")
        box = record["box"]
        if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
            raise EvaluationError(f"Record {n}: a box is four numbers [x0, y0, x1, y1], not {box!r}.")
        key = (str(record["file"]), json.dumps(record.get("class")))
        old = grouped.get(key, BoxGroup(key[0], record.get("class"), ()))
        grouped[key] = BoxGroup(old.file, old.class_ref, old.boxes + (tuple(float(v) for v in box),))
    return list(grouped.values())


def localise_store(store: str | Path, groups: Sequence[BoxGroup], model: Optional[str] = None,
                   method: Optional[str] = None, layer: Optional[str] = None,
                   tolerance_at_224: float = TOLERANCE_AT_224) -> StrataReport:
    """Pointing game and energy of every box group's stored map (cells left empty; see ``strata``)."""
    from ..scale.query import connect

    settings = run_settings(store)
    models = models_of(settings)
    model = model or next(iter(models), None)
    if model not in models:
        raise EvaluationError(f"The store holds no model {model!r}; it holds {', '.join(models) or 'none'}.")
    method = method or settings.get("methods", ["gradcam"])[0]
    layer = layer or models[model]["layers"][0]
    preprocessing = _preprocessing(models[model].get("preprocessing"))
    files = sorted({g.file for g in groups})
    con = connect(store)
    try:
        cursor = con.execute("SELECT image_id, class_index, class_name, rank, probability, raw, raw_shape, "
                             "raw_scale, width, height FROM maps WHERE model = ? AND method = ? AND layer = ? "
                             "AND list_contains(?, image_id)", [model, method, layer, files])
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, r)) for r in cursor.fetchall()]
    finally:
        con.close()
    by_image: dict[str, list[dict]] = {}
    for row in rows:
        by_image.setdefault(row["image_id"], []).append(row)
    images, unmatched = [], []
    for group in groups:
        row = _map_for(by_image.get(group.file, []), group.class_ref)
        if row is None:
            what = "the predicted class" if group.class_ref is None else f"class {group.class_ref!r}"
            unmatched.append(f"{group.file}: no {method} map of {what} in the store.")
            continue
        width, height = int(row["width"]), int(row["height"])
        saliency = on_grid(decode_raw(row["raw"], row["raw_shape"], row["raw_scale"]), width, height, preprocessing)
        saliency = np.nan_to_num(saliency)  # a crop fit leaves the unseen border NaN: it holds no evidence
        try:
            truth = ground_truth(height, width, boxes=group.boxes)
        except EvaluationError as error:  # e.g. a box outside the image: that group only is left out
            unmatched.append(f"{group.file}: {error}")
            continue
        tolerance = scaled_tolerance(height, width, tolerance_at_224)
        images.append(ImageLocalisation(group.file, int(row["class_index"]),
                                        pointing_game(saliency, truth, tolerance).hit, energy(saliency, truth),
                                        float(truth.mean()), len(group.boxes), float(row["probability"])))
    return StrataReport(images, [], unmatched, model, method, layer)


def strata(images: Sequence[ImageLocalisation], size_cuts: tuple[float, float] = SIZE_CUTS,
           confidence_cuts: tuple[float, float] = CONFIDENCE_CUTS, seed: int = 0,
           resamples: int = RESAMPLES) -> list[StratumCell]:
    """One cell per stratum (empty strata left out), "all" first."""
    small, large = size_cuts
    low, high = confidence_cuts
    sizes = (f"small (< {small:.0%})", f"medium ({small:.0%}-{large:.0%})", f"large (>= {large:.0%})")
    confidences = (f"< {low:g}", f"{low:g}-{high:g}", f">= {high:g}")
    factors = {  # per factor, the stratum names in order and each image's position among them
        "all": (("all",), lambda r: 0),
        "size": (sizes, lambda r: int(np.searchsorted(size_cuts, r.area_fraction, side="right"))),
        "instances": (("1", "2", "3+"), lambda r: min(r.instances, 3) - 1),
        "confidence": (confidences, lambda r: int(np.searchsorted(confidence_cuts, r.probability, side="right"))),
    }
    cells = []
    for factor, (names, position) in factors.items():
        buckets: list[list[ImageLocalisation]] = [[] for _ in names]
        for r in images:
            buckets[position(r)].append(r)
        for name, members in zip(names, buckets):
            if not members:
                continue
            p, p_lo, p_hi = mean_ci(np.array([r.hit for r in members], np.float64), seed, resamples)
            e, e_lo, e_hi = mean_ci(np.array([r.energy for r in members], np.float64), seed, resamples)
            cells.append(StratumCell(factor, name, len(members), p, p_lo, p_hi, e, e_lo, e_hi))
    return cells


def mean_ci(values: np.ndarray, seed: int = 0, resamples: int = RESAMPLES, level: float = 0.95
            ) -> tuple[float, float, float]:
    """(mean, low, high): scipy.stats.bootstrap's percentile interval, seeded; NaN bounds below 2 values."""
    from scipy.stats import bootstrap

    values = np.asarray(values, np.float64)
    mean = float(values.mean()) if values.size else float("nan")
    if values.size < 2:
        return mean, float("nan"), float("nan")
    if np.all(values == values[0]):  # every resample has the same mean (scipy would warn it is degenerate)
        return mean, mean, mean
    result = bootstrap((values,), np.mean, n_resamples=resamples, confidence_level=level, method="percentile",
                       vectorized=True, rng=np.random.default_rng(seed))
    return mean, float(result.confidence_interval.low), float(result.confidence_interval.high)


def localisation_by_stratum(store: str | Path, boxes: bytes | str | list, model: Optional[str] = None,
                            method: Optional[str] = None, layer: Optional[str] = None, seed: int = 0,
                            resamples: int = RESAMPLES) -> StrataReport:
    """``parse_boxes``, ``localise_store`` and ``strata`` in one call."""
    report = localise_store(store, parse_boxes(boxes), model, method, layer)
    if not report.images:
        raise EvaluationError("No box of the boxes file matches an image of the store: "
                              + (report.unmatched[0] if report.unmatched else "the file lists none."))
    return StrataReport(report.images, strata(report.images, seed=seed, resamples=resamples), report.unmatched,
                        report.model, report.method, report.layer)


def _map_for(rows: list[dict], class_ref: Optional[Any]) -> Optional[dict]:
    if class_ref is None:
        return next((r for r in rows if r["rank"] == 1), None)
    if isinstance(class_ref, str) and not class_ref.strip().isdigit():
        wanted = class_ref.strip().lower()
        return next((r for r in rows if str(r["class_name"]).lower() == wanted), None)
    try:
        index = int(class_ref)
    except (TypeError, ValueError):
        return None
    return next((r for r in rows if r["class_index"] == index), None)


def _preprocessing(recorded: Optional[dict]) -> Optional[Preprocessing]:
    """The run's recorded preprocessing (only its fit matters to ``on_grid``); None: squash.

    run.json does not record ``crop_pct``: a crop fit is redrawn with the default 0.875.
    """
    if not recorded or recorded.get("fit", "squash") == "squash":
        return None
    return Preprocessing(input_size=tuple(recorded["input_size"]), mean=tuple(recorded["mean"]),
                         std=tuple(recorded["std"]), interpolation=recorded["interpolation"], fit=recorded["fit"])
