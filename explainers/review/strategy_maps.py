"""The maps SpRAy clusters, read from a store with DuckDB: one map per image for one method, model,
layer and class rule (the predicted class, or the true class)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, TYPE_CHECKING

import numpy as np

from ..scale.query import connect
from ..scale.rows import decode_raw
from .stores import run_settings

if TYPE_CHECKING:
    from .strategies import StrategySettings

BY = ("predicted", "true")


@dataclass(frozen=True)
class StoreChoices:
    """What a store offers to cluster: (model, layer) pairs in run.json's order, methods, class names."""

    pairs: list[tuple[str, str]]
    methods: list[str]
    classes: list[tuple[int, str]]  # (class_index, class_name) of the stored maps, by index


@dataclass(frozen=True)
class LoadedMaps:
    model: str
    layer: str
    classes: list[tuple[int, str]]  # (class_index, class_name), by index
    # class -> (image_id, raw map, correct, the map's max as stored: float32, before the map's float16 encoding)
    rows: Callable[[int], list[tuple[str, np.ndarray, Optional[bool], float]]]
    close: Callable[[], None]  # the store's connection, opened by the first ``rows`` call


def store_choices(store: str | Path, run: Optional[dict] = None) -> StoreChoices:
    """``run``: the store's ``run_settings`` when the caller has read them already."""
    con = connect(store)
    try:
        found = con.execute("SELECT DISTINCT model, layer FROM maps").fetchall()
        methods = [r[0] for r in con.execute("SELECT DISTINCT method FROM maps ORDER BY 1").fetchall()]
        classes = con.execute("SELECT class_index, min(class_name) FROM maps GROUP BY 1 ORDER BY 1").fetchall()
    finally:
        con.close()
    run = run_settings(store) if run is None else run
    order = [(m.get("name"), layer) for m in run.get("models", [])
             for layer in m.get("layers", [])]
    found = set(found)
    pairs = [p for p in order if p in found] + sorted(found - set(order))
    return StoreChoices(pairs, methods, [(int(i), str(n)) for i, n in classes])


def _pick(choices: StoreChoices, settings: "StrategySettings") -> tuple[str, str]:
    from .strategies import StrategiesError

    if not choices.pairs:
        raise StrategiesError("The store holds no maps yet; run `python -m explainers run` into it first.")
    if settings.method not in choices.methods:
        raise StrategiesError(f"The store holds no {settings.method!r} maps; it holds: {', '.join(choices.methods)}.")
    pairs = [p for p in choices.pairs if settings.model in (None, p[0]) and settings.layer in (None, p[1])]
    if not pairs:
        held = ", ".join(f"{m} at {layer}" for m, layer in choices.pairs)
        raise StrategiesError(f"The store holds no maps of model {settings.model or 'any'} at layer "
                              f"{settings.layer or 'any'}; it holds: {held}.")
    return pairs[0]


def _class_filter(choices: StoreChoices, wanted: Optional[tuple[str, ...]]) -> Optional[list[int]]:
    from .strategies import StrategiesError

    if not wanted:
        return None
    indices = []
    for text in wanted:
        value = str(text).strip()
        matches = [i for i, n in choices.classes if value == str(i) or value.lower() == n.lower()]
        if not matches:
            raise StrategiesError(f"No stored map is of class {value!r} (give a class index or name).")
        indices.extend(matches)
    return sorted(set(indices))


def _strength(stored_max: Optional[float], raw_map: np.ndarray) -> float:
    """The map's max as the run stored it (float32); the decoded float16 map's where none was stored."""
    if stored_max is not None and np.isfinite(stored_max):
        return float(stored_max)
    return float(np.nanmax(raw_map, initial=0.0))


def load_maps(store: str | Path, settings: "StrategySettings") -> LoadedMaps:
    """The settings' model, layer and classes; ``rows(class)`` reads one class's maps at a time (so a
    large store never holds every class's maps at once). Raises StrategiesError when there is none."""
    from .strategies import StrategiesError

    if settings.by not in BY:
        raise StrategiesError(f"Unknown class rule {settings.by!r}: use predicted or true.")
    run = run_settings(store)
    targets = run.get("targets")
    if settings.by == "true" and targets not in ("true", "both"):  # else only the correct images have one
        raise StrategiesError(f"The store's maps are of the {targets} class; grouping by the true class needs "
                              "a run with --targets true or both (on labelled images).")
    choices = store_choices(store, run)
    model, layer = _pick(choices, settings)
    wanted = _class_filter(choices, settings.classes)
    rule = "m.rank = 1" if settings.by == "predicted" else "m.is_true"
    where = f"WHERE m.method = ? AND m.model = ? AND m.layer = ? AND {rule}"
    con = connect(store)
    try:
        classes = con.execute(f"SELECT m.class_index, min(m.class_name) FROM maps m {where} GROUP BY 1 ORDER BY 1",
                              [settings.method, model, layer]).fetchall()
    finally:
        con.close()
    classes = [(int(i), str(n)) for i, n in classes if wanted is None or i in wanted]
    if not classes:
        hint = " (the true class is stored by runs with --targets true or both, on labelled images)" \
            if settings.by == "true" else ""
        raise StrategiesError(f"The store holds no {settings.method} maps of the {settings.by} class "
                              f"for {model} at {layer}{hint}.")

    opened: list = []  # one connection for every class (opening one reads run.json and lists the parts)

    def rows(class_index: int) -> list[tuple[str, np.ndarray, Optional[bool], float]]:
        sql = ("SELECT m.image_id, m.raw, m.raw_shape, m.raw_scale, p.correct, m.max "
               f"FROM maps m JOIN predictions p USING (image_id, model) {where} AND m.class_index = ? "
               "ORDER BY m.image_id")
        if not opened:
            opened.append(connect(store))
        found = opened[0].execute(sql, [settings.method, model, layer, class_index]).fetchall()
        out = []
        for image_id, raw, shape, scale, correct, top in found:
            raw_map = decode_raw(raw, shape, scale)
            out.append((image_id, raw_map, correct, _strength(top, raw_map)))
        return out

    def close() -> None:
        while opened:
            opened.pop().close()

    return LoadedMaps(model, layer, classes, rows, close)
