"""Filters, sorts and pages over a store's maps, in DuckDB SQL (user values only as parameters).

One gallery row is one stored map (image, model, method, layer, class) joined with its image's
prediction. Only the rows of the page shown carry their raw map (a second query fetches them).

Sorts need no more than the store, except two that are computed once per store and passed in:
- disagreement between methods (``disagreements``): per (image, model, layer, class), 1 − the mean
  Pearson correlation over every pair of methods' raw maps (at layer resolution, all on one grid).
  Pearson is invariant to each map's scale and offset, so methods with other units compare; 0 means
  the methods agree up to scale, 1 uncorrelated, 2 opposite. A flat map has no correlation and is
  left out of the pairs; with fewer than two usable maps the value is null (sorted last).
- mass outside the object (``outside_mass``), from a boxes JSON in the evaluate CLI's format
  (``[{"file": image_id, "box": [x0, y0, x1, y1]}, ...]``; several boxes of a file are one object):
  the share of the map's mass (negatives count 0) outside the boxes, on the image (at most 256 px).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Optional

import numpy as np
import pyarrow as pa

from ..errors import ExplainerError
from ..metrics.localisation import energy, ground_truth
from ..render import upsample
from ..scale.query import connect
from ..scale.rows import decode_raw
from .verdicts import VERDICTS, latest

NO_VERDICT = "no verdict yet"
CORRECTNESS = ("any", "correct", "incorrect")
TARGETS = ("any", "predicted", "true")  # which maps: any class, the predicted class (rank 1), the true class
SORTS: dict[str, tuple[str, str]] = {  # key -> (label, ORDER BY expression: fixed text, never user input)
    "confidence_desc": ("Confidence, highest first", "p.probability DESC"),
    "confidence_asc": ("Confidence, lowest first", "p.probability ASC"),
    "entropy_desc": ("Map entropy, most spread first", "m.entropy DESC"),
    "entropy_asc": ("Map entropy, most focused first", "m.entropy ASC"),
    "disagreement": ("Disagreement between methods, most first", "d.disagreement DESC"),
    "outside": ("Map mass outside the object, most first", "o.outside DESC"),
}
OUTSIDE_SIDE = 256  # the mass outside a box is measured on the image shrunk to at most this side
_KEYS = ("image_id", "model", "method", "layer", "class_index")
DISAGREEMENT_SCHEMA = pa.schema([("image_id", pa.string()), ("model", pa.string()), ("layer", pa.string()),
                                 ("class_index", pa.int32()), ("disagreement", pa.float64())])
OUTSIDE_SCHEMA = pa.schema([*(pa.field(k, pa.int32() if k == "class_index" else pa.string()) for k in _KEYS),
                            ("outside", pa.float64())])
_VERDICT_SCHEMA = pa.schema([("image_id", pa.string()), ("model", pa.string()), ("verdict", pa.string())])


class BrowseError(ExplainerError):
    """A filter, sort or boxes file that cannot be used on this store."""


@dataclass(frozen=True)
class Filter:
    """Which maps to show; None (or "any") means no condition."""

    true_class: Optional[str] = None  # the image's true class name
    predicted_class: Optional[str] = None
    correct: str = "any"  # one of CORRECTNESS
    probability: tuple[float, float] = (0.0, 1.0)  # of the top-1 prediction, both ends included
    method: Optional[str] = None
    model: Optional[str] = None
    target: str = "any"  # one of TARGETS
    verdict: Optional[str] = None  # one of VERDICTS, or NO_VERDICT


@dataclass(frozen=True)
class GalleryRow:
    image_id: str
    model: str
    method: str
    layer: str
    class_index: int
    class_name: str
    probability: float  # of the map's class
    max: float  # the raw map's maximum: its strength, in the method's raw units
    entropy: Optional[float]
    width: int
    height: int
    image_sha256: str
    predicted_name: str
    predicted_probability: float
    true_name: Optional[str]
    correct: Optional[bool]
    verdict: Optional[str]  # the latest verdict of (image, model)
    sort_value: Optional[float]  # what the sort ordered by (disagreement, mass outside, ...)
    raw: bytes = b""
    raw_shape: tuple[int, ...] = ()
    raw_scale: float = 1.0

    def raw_map(self) -> np.ndarray:
        """(h, w) float32 raw map at layer resolution."""
        return decode_raw(self.raw, self.raw_shape, self.raw_scale)


@dataclass(frozen=True)
class Page:
    rows: list[GalleryRow]
    total: int  # rows matching the filter, on every page
    page_number: int  # from 0
    page_size: int
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pages", max(1, -(-self.total // self.page_size)))


def choices(store: str | Path) -> dict[str, list]:
    """The values the filters can take in this store: models, methods, true and predicted class names."""
    con = connect(store)
    try:
        def values(sql: str) -> list:
            return [r[0] for r in con.execute(sql).fetchall() if r[0] is not None]

        return {"models": values("SELECT DISTINCT model FROM predictions ORDER BY 1"),
                "methods": values("SELECT DISTINCT method FROM maps ORDER BY 1"),
                "true_classes": values("SELECT DISTINCT true_name FROM predictions ORDER BY 1"),
                "predicted_classes": values("SELECT DISTINCT predicted_name FROM predictions ORDER BY 1")}
    finally:
        con.close()


def page(store: str | Path, filter: Filter = Filter(), sort: str = "confidence_desc", page_number: int = 0,
         page_size: int = 12, disagreement: Optional[pa.Table] = None,
         outside: Optional[pa.Table] = None) -> Page:
    """One page of the maps that pass ``filter``, in the order of ``sort`` (a key of SORTS).

    Args:
        disagreement: ``disagreements(store)`` (computed here when the sort needs it and it is None).
        outside: ``outside_mass(store, boxes)``; needed for the "outside" sort.

    Raises:
        BrowseError: an unknown sort, correctness, target or verdict; "outside" without boxes.
    """
    if sort not in SORTS:
        raise BrowseError(f"Unknown sort {sort!r}: use one of {', '.join(SORTS)}.")
    if sort == "outside" and outside is None:
        raise BrowseError("Sorting by the mass outside the object needs a boxes file.")
    if sort == "disagreement" and disagreement is None:
        disagreement = disagreements(store)
    where, params = _where(filter)
    con = connect(store)
    try:
        con.register("_disagreement", disagreement if disagreement is not None else DISAGREEMENT_SCHEMA.empty_table())
        con.register("_outside", outside if outside is not None else OUTSIDE_SCHEMA.empty_table())
        con.register("_verdicts", _verdict_table(store))
        order = SORTS[sort][1]
        value = order.split()[0]
        joined = (" FROM maps m JOIN predictions p USING (image_id, model)"
                  " LEFT JOIN _disagreement d USING (image_id, model, layer, class_index)"
                  " LEFT JOIN _outside o USING (image_id, model, method, layer, class_index)"
                  " LEFT JOIN _verdicts v USING (image_id, model) WHERE " + where)
        total = con.execute("SELECT count(*)" + joined, params).fetchone()[0]
        size = max(1, int(page_size))
        number = min(max(0, int(page_number)), max(0, (total - 1) // size))
        columns = ("m.image_id, m.model, m.method, m.layer, m.class_index, m.class_name, m.probability, m.max, "
                   "m.entropy, m.width, m.height, m.image_sha256, p.predicted_name, p.probability, p.true_name, "
                   f"p.correct, v.verdict, {value}")
        keys = con.execute(f"SELECT {columns}{joined} ORDER BY {order} NULLS LAST, "
                           "m.image_id, m.model, m.method, m.layer, m.class_index LIMIT ? OFFSET ?",
                           [*params, size, number * size]).fetchall()
        rows = _with_raw(con, keys)
    finally:
        con.close()
    return Page(rows, int(total), number, size)


def _where(f: Filter) -> tuple[str, list]:
    if f.correct not in CORRECTNESS:
        raise BrowseError(f"Unknown correctness {f.correct!r}: use one of {', '.join(CORRECTNESS)}.")
    if f.target not in TARGETS:
        raise BrowseError(f"Unknown target {f.target!r}: use one of {', '.join(TARGETS)}.")
    if f.verdict is not None and f.verdict not in (*VERDICTS, NO_VERDICT):
        raise BrowseError(f"Unknown verdict {f.verdict!r}: use one of {', '.join(VERDICTS)} or {NO_VERDICT!r}.")
    low, high = (float(v) for v in f.probability)
    # the store keeps float32: compare in float32, so a slider's 0.6 includes a stored 0.6
    clauses, params = ["p.probability BETWEEN CAST(? AS REAL) AND CAST(? AS REAL)"], [low, high]
    for column, value in (("p.true_name", f.true_class), ("p.predicted_name", f.predicted_class),
                          ("m.method", f.method), ("m.model", f.model)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    clauses += {"any": [], "correct": ["p.correct"], "incorrect": ["NOT p.correct"]}[f.correct]
    clauses += {"any": [], "predicted": ["m.rank = 1"], "true": ["m.is_true"]}[f.target]
    if f.verdict == NO_VERDICT:
        clauses.append("v.verdict IS NULL")
    elif f.verdict is not None:
        clauses.append("v.verdict = ?")
        params.append(f.verdict)
    return " AND ".join(clauses), params


def _with_raw(con, keys: list[tuple]) -> list[GalleryRow]:
    """The page's rows with their raw maps (read for these rows only)."""
    if not keys:
        return []
    wanted = pa.table({k: [r[i] for r in keys] for i, k in enumerate(_KEYS)},
                      schema=OUTSIDE_SCHEMA.remove(len(_KEYS)))
    con.register("_page", wanted)
    raws = {tuple(r[:5]): r[5:] for r in con.execute(
        "SELECT m.image_id, m.model, m.method, m.layer, m.class_index, m.raw, m.raw_shape, m.raw_scale "
        "FROM maps m SEMI JOIN _page USING (image_id, model, method, layer, class_index)").fetchall()}
    rows = []
    for r in keys:
        raw, shape, scale = raws[tuple(r[:5])]
        rows.append(GalleryRow(*r, raw=bytes(raw), raw_shape=tuple(shape), raw_scale=float(scale)))
    return rows


def _verdict_table(store: str | Path) -> pa.Table:
    verdicts = latest(store)
    return pa.table({"image_id": [k[0] for k in verdicts], "model": [k[1] for k in verdicts],
                     "verdict": [v.verdict for v in verdicts.values()]}, schema=_VERDICT_SCHEMA)


def pearson_disagreement(maps: list[np.ndarray]) -> Optional[float]:
    """1 − mean Pearson correlation over the pairs of maps (flat maps left out); None under two usable maps."""
    flat = [m.astype(np.float64).ravel() for m in maps if np.ptp(m) > 0]
    pairs = [float(np.corrcoef(a, b)[0, 1]) for a, b in combinations(flat, 2) if a.shape == b.shape]
    return 1.0 - float(np.mean(pairs)) if pairs else None


def disagreements(store: str | Path) -> pa.Table:
    """Disagreement between methods per (image_id, model, layer, class_index) (see the module docstring)."""
    con = connect(store)
    try:
        rows = con.execute("SELECT image_id, model, layer, class_index, raw, raw_shape, raw_scale FROM maps "
                           "ORDER BY image_id, model, layer, class_index").fetchall()
    finally:
        con.close()
    groups: dict[tuple, list[np.ndarray]] = {}
    for image_id, model, layer, class_index, raw, shape, scale in rows:
        groups.setdefault((image_id, model, layer, class_index), []).append(decode_raw(raw, shape, scale))
    keys = list(groups)
    values = [pearson_disagreement(groups[k]) for k in keys]
    return pa.table([pa.array([k[i] for k in keys], DISAGREEMENT_SCHEMA.field(i).type) for i in range(4)]
                    + [pa.array(values, pa.float64())], schema=DISAGREEMENT_SCHEMA)


def parse_boxes(records: str | bytes | list) -> dict[str, list[list[float]]]:
    """Boxes records (``[{"file", "box": [x0, y0, x1, y1]}, ...]``, or their JSON) as {file: [box, ...]}:
    the Localisation view's parser (``strata.parse_boxes``), every class of a file one object."""
    from .strata import parse_boxes as groups_of

    try:
        groups = groups_of(records)
    except ExplainerError as error:
        raise BrowseError(str(error)) from None
    boxes: dict[str, list[list[float]]] = {}
    for group in groups:
        boxes.setdefault(group.file, []).extend(list(box) for box in group.boxes)
    return boxes


boxes_from_json = parse_boxes  # a boxes file's text (the name ui/review_filters.py calls)


def outside_mass(store: str | Path, boxes: dict[str, list[list[float]]]) -> pa.Table:
    """The share of each map's mass outside its image's boxes; maps of images without boxes are left out."""
    con = connect(store)
    try:
        con.register("_files", pa.table({"image_id": list(boxes)}, schema=pa.schema([("image_id", pa.string())])))
        rows = con.execute("SELECT image_id, model, method, layer, class_index, raw, raw_shape, raw_scale, width, "
                           "height FROM maps SEMI JOIN _files USING (image_id)").fetchall()
    finally:
        con.close()
    out: dict[str, list] = {k: [] for k in (*_KEYS, "outside")}
    for *key, raw, shape, scale, width, height in rows:
        factor = min(1.0, OUTSIDE_SIDE / max(width, height))
        h, w = max(1, round(height * factor)), max(1, round(width * factor))
        truth = ground_truth(h, w, boxes=[[v * factor for v in b] for b in boxes[key[0]]])
        cam = np.maximum(upsample(decode_raw(raw, shape, scale), (h, w)), 0.0)
        for name, value in zip(_KEYS, key):
            out[name].append(value)
        out["outside"].append(1.0 - energy(cam, truth) if cam.sum() > 0 else None)
    return pa.table(out, schema=OUTSIDE_SCHEMA)
