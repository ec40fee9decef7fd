"""The maps SpRAy clusters, read from a store with DuckDB: one map per image for one method, model,
layer and class rule (the predicted class, or the true class)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, TYPE_CHECKING

import numpy as np

from ..scale.query import connect
from ..scale.rows import decode_raw
from ..scale.store import committed, read_run

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
    by_class: dict[tuple[int, str], list[tuple[str, np.ndarray, Optional[bool]]]]  # (id, raw, correct)


def parts_key(store: str | Path) -> tuple[str, ...]:
    """The names of the committed parts: a cache key that changes whenever a run adds to the store."""
    return tuple(p.name for p in committed(store, "predictions"))


def store_choices(store: str | Path) -> StoreChoices:
    con = connect(store)
    try:
        found = con.execute("SELECT DISTINCT model, layer FROM maps").fetchall()
        methods = [r[0] for r in con.execute("SELECT DISTINCT method FROM maps ORDER BY 1").fetchall()]
        classes = con.execute("SELECT class_index, min(class_name) FROM maps GROUP BY 1 ORDER BY 1").fetchall()
    finally:
        con.close()
    order = [(m.get("name"), layer) for m in (read_run(store) or {}).get("settings", {}).get("models", [])
             for layer in m.get("layers", [])]
    pairs = [p for p in order if p in set(found)] + sorted(set(found) - set(order))
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


def load_maps(store: str | Path, settings: "StrategySettings") -> LoadedMaps:
    """One map per (image, class) for the settings; raises StrategiesError when there is none."""
    from .strategies import StrategiesError

    if settings.by not in BY:
        raise StrategiesError(f"Unknown class rule {settings.by!r}: use predicted or true.")
    choices = store_choices(store)
    model, layer = _pick(choices, settings)
    classes = _class_filter(choices, settings.classes)
    rule = "m.rank = 1" if settings.by == "predicted" else "m.is_true"
    sql = ("SELECT m.image_id, m.class_index, m.class_name, m.raw, m.raw_shape, m.raw_scale, p.correct "
           "FROM maps m JOIN predictions p USING (image_id, model) "
           f"WHERE m.method = ? AND m.model = ? AND m.layer = ? AND {rule} "
           + ("" if classes is None else f"AND m.class_index IN ({', '.join(map(str, classes))}) ")
           + "ORDER BY m.class_index, m.image_id")
    con = connect(store)
    try:
        rows = con.execute(sql, [settings.method, model, layer]).fetchall()
    finally:
        con.close()
    if not rows:
        hint = " (the true class is stored by runs with --targets true or both, on labelled images)" \
            if settings.by == "true" else ""
        raise StrategiesError(f"The store holds no {settings.method} maps of the {settings.by} class "
                              f"for {model} at {layer}{hint}.")
    by_class: dict[tuple[int, str], list] = {}
    for image_id, index, name, raw, shape, scale, correct in rows:
        by_class.setdefault((int(index), str(name)), []).append((image_id, decode_raw(raw, shape, scale), correct))
    return LoadedMaps(model, layer, by_class)
