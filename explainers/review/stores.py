"""The stores a deployment offers: folders holding run.json under ``CAMSCOPE_STORES_DIR``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

STORES_DIR_ENV = "CAMSCOPE_STORES_DIR"


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
