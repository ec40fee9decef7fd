"""A store's images and maps back as pictures: the original read from the run's SOURCE, the stored map on it.

Only files inside the SOURCE that run.json records are read: a folder's files (resolved, symbolic
links refused), a zip's members, or the files of a listing that lie in the listing's folder.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from ..errors import ExplainerError
from ..io import image_sha256, load_image
from ..pipeline import on_grid
from ..render import overlay
from ..scale.rows import decode_raw
from ..scale.store import StoreError, read_run
from .stores import stores_dir


@dataclass(frozen=True)
class SourceImage:
    """The original of a stored image, or why there is none (``image`` None, ``problem`` a sentence)."""

    image: Optional[Image.Image]
    problem: str = ""
    changed: bool = False  # the file's pixels differ from those the run explained (image_sha256)


def run_source(store: str | Path) -> str:
    """The SOURCE recorded in the store's run.json."""
    run = read_run(store)
    if run is None:
        raise StoreError(f"{Path(store)} is not a CAMscope store (no run.json).")
    return str(run.get("source", ""))


def check_store(store: str | Path) -> Path:
    """``store`` resolved, when it is a store folder inside CAMSCOPE_STORES_DIR.

    Raises:
        StoreError: CAMSCOPE_STORES_DIR unset, or ``store`` outside it or not a store.
    """
    root = stores_dir()
    folder = Path(store).resolve()
    if root is None or not folder.is_relative_to(root.resolve()) or read_run(folder) is None:
        raise StoreError(f"{Path(store).name} is not a store of this deployment (CAMSCOPE_STORES_DIR).")
    return folder


def source_bytes(store: str | Path, image_id: str) -> bytes:
    """The file of ``image_id`` from the run's SOURCE (never outside it).

    Raises:
        SourceMissing: the file is gone, or lies outside SOURCE.
    """
    return _read(Path(run_source(store)), image_id)


def source_image(store: str | Path, image_id: str, sha256: Optional[str] = None) -> SourceImage:
    """Read the original of ``image_id`` from the run's SOURCE (never outside it)."""
    try:
        data = source_bytes(store, image_id)
    except SourceMissing as missing:
        return SourceImage(None, str(missing))
    try:
        image = load_image(data)
    except ExplainerError as error:
        return SourceImage(None, f"{image_id} cannot be read any more: {error}")
    return SourceImage(image, "", sha256 is not None and image_sha256(image) != sha256)


class SourceMissing(ExplainerError):
    """The original of a stored image cannot be read from the run's SOURCE (gone, or outside it)."""


def _read(source: Path, image_id: str) -> bytes:
    gone = f"The original of {image_id} is not at the run's SOURCE ({source}) any more"
    if source.is_dir():
        root = source.resolve()
        path = root / image_id
        if path.is_symlink() or not path.resolve().is_relative_to(root):
            raise SourceMissing(f"{image_id} lies outside the run's SOURCE; it is not read.")
        if not path.is_file():
            raise SourceMissing(gone + ".")
        return path.read_bytes()
    if source.is_file() and zipfile.is_zipfile(source):
        from ..scale.sources import list_source  # the zip's members as the run named them

        ref = next((r for r in list_source(source) if r.image_id == image_id), None)
        if ref is None:
            raise SourceMissing(gone + ".")
        return ref.read()
    if source.is_file():  # a listing: its files, if they lie in the listing's folder
        from ..scale.sources import list_source

        root = source.parent.resolve()
        ref = next((r for r in list_source(source) if r.image_id == image_id), None)
        if ref is None or not Path(ref.location).is_file():
            raise SourceMissing(gone + ".")
        if not Path(ref.location).resolve().is_relative_to(root):
            raise SourceMissing(f"{image_id} lies outside the listing's folder; it is not read.")
        return Path(ref.location).read_bytes()
    raise SourceMissing(gone + ".")


def stored_map(raw: bytes, shape: Sequence[int], scale: float) -> np.ndarray:
    """A stored raw map as (h, w) float32 at layer resolution (raw units)."""
    return decode_raw(raw, shape, scale)


def draw(raw_map: np.ndarray, image: Optional[Image.Image], size: tuple[int, int], opacity: float,
         colormap: str, side: int = 320) -> np.ndarray:
    """The map on the image (or alone when ``image`` is None), at most ``side`` px, each map on its own range.

    Args:
        raw_map: (h, w) raw map (``stored_map``).
        size: the original's (width, height), for the map alone.
    """
    width, height = size
    factor = min(1.0, side / max(width, height))
    w, h = max(1, round(width * factor)), max(1, round(height * factor))
    cam = on_grid(raw_map, w, h)  # over the whole image, as the default "squash" fit (the gallery says when not)
    if image is None:
        return overlay(np.full((h, w, 3), 255, np.uint8), cam, 1.0, colormap)
    return overlay(image.resize((w, h), Image.Resampling.BILINEAR), cam, opacity, colormap)
