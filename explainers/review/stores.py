"""The stores a deployment offers (folders holding run.json under ``CAMSCOPE_STORES_DIR``), what a
store's run.json records, and the key that tells a cache the store has grown."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..scale.store import StoreError, committed, read_run

STORES_DIR_ENV = "CAMSCOPE_STORES_DIR"
NO_MAPS_YET = "This store holds no maps yet; run `python -m explainers run SOURCE --out STORE` into it."


def stores_dir() -> Optional[Path]:
    """The deployment's stores folder, or None when ``CAMSCOPE_STORES_DIR`` is unset or not a folder."""
    value = os.environ.get(STORES_DIR_ENV, "").strip()
    if not value:
        return None
    folder = Path(value).expanduser()
    return folder if folder.is_dir() else None


def list_stores(root: Optional[Path] = None) -> list[Path]:
    """Store folders (those with run.json) directly inside ``root`` (default: ``stores_dir()``), by name."""
    root = stores_dir() if root is None else root
    if root is None:
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "run.json").is_file())


def run_settings(store: str | Path) -> dict:
    """The run settings run.json records (models with their layers and preprocessing, methods, targets).

    Raises:
        StoreError: ``store`` is not a store (no run.json), or its run.json does not parse.
    """
    run = read_run(store)
    if run is None:
        raise StoreError(f"{Path(store).name} is not a CAMscope store (no run.json); "
                         "make one with `python -m explainers run SOURCE --out STORE`.")
    return dict(run.get("settings") or {})


def stored_models(store: str | Path) -> dict[str, dict]:
    """{model name: its run.json entry (layers, preprocessing, ...)} in run order."""
    return models_of(run_settings(store))


def models_of(settings: dict) -> dict[str, dict]:
    """``stored_models`` from run settings already read (run.json read once per call)."""
    return {m["name"]: m for m in settings.get("models", [])}


def parts_key(store: str | Path) -> tuple[str, ...]:
    """The names of the store's committed parts: the cache key of every Review view, which changes
    whenever a run adds to the store (a part counts once its predictions are committed)."""
    return tuple(p.name for p in committed(store, "predictions"))
