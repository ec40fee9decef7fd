"""A batch's results as Arrow tables: the store's three schemas, the raw-map encoding, map statistics.

``raw`` is the map at layer resolution (after ReLU, not normalized) as little-endian float16 bytes,
divided by ``raw_scale``, a power of two chosen so the stored maximum lies in (0.5, 1]: float16
keeps 3 significant digits there and never overflows (65504) on models with large scores. Since
the scale is positive, a reader that only normalizes the map can ignore it; ``decode_raw`` applies it.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa

from ..results import CamResult, Explanation

MAPS_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("image_sha256", pa.string()), ("model", pa.string()),
    ("width", pa.int32()), ("height", pa.int32()),
    ("method", pa.string()), ("layer", pa.string()), ("class_index", pa.int32()), ("class_name", pa.string()),
    ("rank", pa.int32()),  # of class_index among the model's scores: 1 = the predicted class
    ("is_true", pa.bool_()),  # class_index is the image's true class (null: label unknown)
    ("score", pa.float32()), ("probability", pa.float32()),
    ("raw", pa.binary()), ("raw_shape", pa.list_(pa.int32())), ("raw_scale", pa.float32()),
    ("max", pa.float32()), ("mean", pa.float32()),  # of the raw map
    ("entropy", pa.float32()),  # of the map as a distribution, / log(cells): 0 = one cell, 1 = flat
    ("peak_x", pa.float32()), ("peak_y", pa.float32()),  # fractions of width and height (0 = left/top)
    ("com_x", pa.float32()), ("com_y", pa.float32()),  # centre of mass, same units
])
PREDICTIONS_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("image_sha256", pa.string()), ("model", pa.string()),
    ("width", pa.int32()), ("height", pa.int32()),
    ("predicted_index", pa.int32()), ("predicted_name", pa.string()), ("probability", pa.float32()),
    ("top_indices", pa.list_(pa.int32())), ("top_names", pa.list_(pa.string())),
    ("top_probabilities", pa.list_(pa.float32())),
    ("label", pa.string()),  # as written in SOURCE (folder name or listing value)
    ("true_index", pa.int32()), ("true_name", pa.string()), ("true_probability", pa.float32()),
    ("correct", pa.bool_()),  # null when the label is unknown
])
SKIPPED_SCHEMA = pa.schema([("image_id", pa.string()), ("label", pa.string()), ("reason", pa.string())])
SCHEMAS = {"maps": MAPS_SCHEMA, "predictions": PREDICTIONS_SCHEMA, "skipped": SKIPPED_SCHEMA}


def encode_raw(raw: np.ndarray) -> tuple[bytes, float]:
    """(float16 little-endian bytes, scale) with raw == decode(bytes) * scale up to float16 rounding."""
    top = float(np.max(raw)) if raw.size else 0.0
    scale = 2.0 ** math.ceil(math.log2(top)) if top > 0 and math.isfinite(top) else 1.0
    return (np.asarray(raw, np.float64) / scale).astype("<f2").tobytes(), scale


def decode_raw(raw: bytes, shape: Sequence[int], scale: float = 1.0) -> np.ndarray:
    """A stored map back as (h, w) float32 (``on_grid(decode_raw(...), width, height)`` draws it)."""
    return np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(tuple(shape)) * np.float32(scale)


def map_stats(raw: np.ndarray) -> dict[str, Optional[float]]:
    """max, mean, normalized entropy, peak and centre of mass (fractions of the image) of a raw map."""
    raw = np.maximum(np.asarray(raw, np.float64), 0.0)
    h, w = raw.shape
    total = raw.sum()
    stats: dict[str, Optional[float]] = {"max": float(raw.max()), "mean": float(raw.mean())}
    if not total > 0 or not math.isfinite(total):
        return {**stats, "entropy": None, "peak_x": None, "peak_y": None, "com_x": None, "com_y": None}
    p = raw / total
    nonzero = p[p > 0]
    cells = h * w
    stats["entropy"] = float(-(nonzero * np.log(nonzero)).sum() / math.log(cells)) if cells > 1 else 0.0
    ys, xs = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w  # cell centres
    py, px = np.unravel_index(int(np.argmax(raw)), raw.shape)
    stats.update(peak_x=float(xs[px]), peak_y=float(ys[py]),
                 com_x=float((p.sum(axis=0) * xs).sum()), com_y=float((p.sum(axis=1) * ys).sum()))
    return stats


def map_row(image_id: str, sha: str, model: str, size: tuple[int, int], result: CamResult, rank: int,
            true_index: Optional[int]) -> dict:
    raw = np.asarray(result.raw, np.float32)
    data, scale = encode_raw(raw)
    return {"image_id": image_id, "image_sha256": sha, "model": model, "width": size[0], "height": size[1],
            "method": result.method, "layer": result.layer, "class_index": result.class_index,
            "class_name": result.class_name, "rank": rank,
            "is_true": None if true_index is None else result.class_index == true_index,
            "score": result.score, "probability": result.probability, "raw": data,
            "raw_shape": list(raw.shape), "raw_scale": scale, **map_stats(raw)}


def prediction_row(image_id: str, sha: str, model: str, explanation: Explanation, label: Optional[str],
                   true_index: Optional[int], true_name: Optional[str], true_probability: Optional[float]) -> dict:
    top = explanation.predictions
    return {"image_id": image_id, "image_sha256": sha, "model": model,
            "width": explanation.image_size[0], "height": explanation.image_size[1],
            "predicted_index": top[0].index, "predicted_name": top[0].name, "probability": top[0].probability,
            "top_indices": [p.index for p in top], "top_names": [p.name for p in top],
            "top_probabilities": [p.probability for p in top], "label": label, "true_index": true_index,
            "true_name": true_name, "true_probability": true_probability,
            "correct": None if true_index is None else top[0].index == true_index}


def table(name: str, rows: list[dict]) -> pa.Table:
    """Rows as a table of the named schema (an empty table when there are none)."""
    return pa.Table.from_pylist(rows, schema=SCHEMAS[name])
