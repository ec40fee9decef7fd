"""The CAM store: one folder of Parquet part files plus run.json.

    STORE/maps/part-*.parquet         one row per (image, model, method, layer, class); rows.MAPS_SCHEMA
    STORE/predictions/part-*.parquet  one row per (image, model); rows.PREDICTIONS_SCHEMA
    STORE/skipped/part-*.parquet      one row per image that could not be read, with the reason
    STORE/run.json                    settings, versions, every run's engine, start, end and counts

Writes are atomic and commit in one order: each table's part is written to a hidden temporary
file and renamed into place, maps and skipped first, predictions LAST. A part counts once its
predictions file exists; anything else (a kill between renames) is removed when the store is next
opened, and readers (``committed``) never see it. A rerun skips every image_id already committed,
so a killed run loses at most the batches in flight and a rerun adds each missing image once.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from pathlib import Path
from typing import Optional

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import ExplainerError
from .rows import SCHEMAS

TABLES = ("maps", "skipped", "predictions")  # commit order: predictions marks a part as complete
RUN_FILE = "run.json"
STORE_VERSION = 1


class StoreError(ExplainerError):
    """A store folder cannot be used: other settings, another run holds it, or it is not a store."""


def committed(folder: str | Path, name: str) -> list[Path]:
    """The committed part files of one table (``maps``, ``predictions`` or ``skipped``), sorted."""
    root = Path(folder)
    done = {p.name for p in (root / "predictions").glob("part-*.parquet")}
    return sorted(p for p in (root / name).glob("part-*.parquet") if p.name in done)


def stored_ids(folder: str | Path) -> set[str]:
    """image_ids in the committed parts of a store folder (predicted or skipped); empty when none."""
    ids: set[str] = set()
    for name in ("predictions", "skipped"):
        for part in committed(folder, name):
            ids.update(pq.read_table(part, columns=["image_id"]).column("image_id").to_pylist())
    return ids


def read_run(folder: str | Path) -> Optional[dict]:
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        raise StoreError(f"{path} is not a readable run.json; this folder is not a CAMscope store.") from None


def check_requested(folder: str | Path, requested: dict) -> None:
    """Refuse other model names, methods, layers or targets before any model is loaded (a fast no).

    Args:
        requested: {"models": [names], "methods": [keys], "layers": [names] or None, "targets": rule}.
    """
    existing = read_run(folder)
    if existing is None:
        return
    stored = existing.get("settings", {})
    have = {"models": [m.get("name") for m in stored.get("models", [])], "methods": stored.get("methods"),
            "targets": stored.get("targets")}
    want = {k: requested[k] for k in have}
    if requested.get("layers"):
        have["layers"] = sorted({n for m in stored.get("models", []) for n in m.get("layers", [])})
        want["layers"] = sorted(requested["layers"])
    if have != want:
        raise StoreError(f"The store {Path(folder)} holds other settings ({_difference(have, want)}); "
                         "use the same settings to add to it, or another --out folder.")


class Store:
    """A store opened for writing by one run (a lock file keeps a second run out)."""

    def __init__(self, folder: Path, run: dict, lock) -> None:
        self.folder, self.run, self._lock = folder, run, lock
        self._prefix = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        self._sequence = 0

    @classmethod
    def open(cls, folder: str | Path, settings: dict, source: str, engine: str) -> "Store":
        """Create or reopen a store for these settings.

        Raises:
            StoreError: the store holds other settings, or another run is writing to it.
        """
        root = Path(folder)
        settings = json.loads(json.dumps(settings))  # as run.json holds it (lists, not tuples)
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root} is a file; give a folder for the store.")
        existing = read_run(root)
        if existing is None and root.is_dir() and any(root.iterdir()):
            raise StoreError(f"{root} is a folder with other files but no run.json; give a new or empty folder.")
        if existing is not None and existing.get("settings") != settings:
            raise StoreError(f"The store {root} holds other settings ({_difference(existing['settings'], settings)}); "
                             "use the same settings to add to it, or another --out folder.")
        for name in TABLES:
            (root / name).mkdir(parents=True, exist_ok=True)
        lock = open(root / ".lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise StoreError(f"Another run is writing to {root}; wait for it or use another --out folder.") from None
        run = existing or {"store_version": STORE_VERSION, "settings": settings, "source": source, "runs": []}
        store = cls(root, run, lock)
        store._clean()
        store.run["runs"].append({"engine": engine, "source": source, "started": _now(), "ended": None,
                                  "status": "running", "images": 0})
        store._write_run()
        return store

    def done_ids(self) -> set[str]:
        """image_ids already stored (predicted or skipped)."""
        return stored_ids(self.folder)

    def write(self, tables: dict[str, pa.Table]) -> None:
        """Commit one part: every table's rows (empty tables too), predictions last."""
        self._sequence += 1
        name = f"{self._prefix}-{self._sequence:06d}.parquet"
        for table in TABLES:
            temporary = self.folder / table / f".{name}.tmp"
            pq.write_table(tables[table].cast(SCHEMAS[table]), temporary)
            os.replace(temporary, self.folder / table / name)  # atomic on one filesystem
        self.run["runs"][-1]["images"] += tables["predictions"].num_rows // max(len(self.models), 1) \
            + tables["skipped"].num_rows

    @property
    def models(self) -> list[str]:
        return [m["name"] for m in self.run["settings"]["models"]]

    def close(self, status: str, versions: dict) -> dict:
        """Record the run's end and the store's counts in run.json; release the lock."""
        try:
            last = self.run["runs"][-1]
            last.update(ended=_now(), status=status, versions=versions)
            self.run.update(engine=last["engine"], started=last["started"], ended=last["ended"],
                            status=status, counts=self.counts(), versions=versions)
            self._write_run()
            return self.run
        finally:
            self._lock.close()

    def counts(self) -> dict[str, int]:
        rows = {name: sum(pq.ParquetFile(p).metadata.num_rows for p in committed(self.folder, name))
                for name in TABLES}
        return {"images": rows["predictions"] // max(len(self.models), 1) + rows["skipped"],
                "maps": rows["maps"], "predictions": rows["predictions"], "skipped": rows["skipped"]}

    def _clean(self) -> None:
        """Remove temporary files and parts a killed run left uncommitted."""
        done = {p.name for p in (self.folder / "predictions").glob("part-*.parquet")}
        for name in TABLES:
            for path in (self.folder / name).iterdir():
                if path.name.endswith(".tmp") or (path.name.startswith("part-") and path.name not in done):
                    path.unlink()

    def _write_run(self) -> None:
        temporary = self.folder / f".{RUN_FILE}.tmp"
        temporary.write_text(json.dumps(self.run, indent=2) + "\n")
        os.replace(temporary, self.folder / RUN_FILE)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _difference(old: dict, new: dict) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return "; ".join(f"{k}: stored {_short(old.get(k))}, asked {_short(new.get(k))}" for k in keys[:2])


def _short(value: object) -> str:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        value = [v.get("name") if v.get("weights_sha256") is None else f"{v.get('name')} ({str(v['weights_sha256'])[:8]})"
                 for v in value] if all("name" in v for v in value) else value
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."

