"""A store's images and maps back as pictures: the original read from the run's SOURCE, the stored map on it.

Only files inside the SOURCE that run.json records are read: a folder's files (resolved, symbolic
links refused), a zip's members, or the files of a listing that lie in the listing's folder.
Every Review view reads originals here and captions its maps with ``map_caption`` (scale and strength).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from ..errors import ExplainerError
from ..io import image_sha256, load_image
from ..pipeline import on_grid
from ..render import overlay
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


class SourceMissing(ExplainerError):
    """The original of a stored image cannot be read from the run's SOURCE (gone, or outside it)."""


class SourceFiles:
    """Reads originals from one run's SOURCE (never outside it); a zip's or a listing's entries are
    listed once per reader, not once per image."""

    def __init__(self, source: str | Path) -> None:
        self.source = Path(source) if str(source) else None  # run.json without a SOURCE: nothing to read
        self._refs: Optional[dict] = None

    @classmethod
    def of(cls, store: str | Path) -> "SourceFiles":
        """A reader of the SOURCE that the store's run.json records."""
        return cls(run_source(store))

    def read_bytes(self, image_id: str) -> bytes:
        """The file of ``image_id``.

        Raises:
            SourceMissing: the file is gone, or lies outside SOURCE.
        """
        source = self.source
        if source is None:
            raise SourceMissing(f"The run recorded no SOURCE; the original of {image_id} cannot be read.")
        gone = f"The original of {image_id} is not at the run's SOURCE ({source}) any more."
        if source.is_dir():
            root = source.resolve()
            path = root / image_id
            if path.is_symlink() or not path.resolve().is_relative_to(root):
                raise SourceMissing(f"{image_id} lies outside the run's SOURCE; it is not read.")
            if not path.is_file():
                raise SourceMissing(gone)
            return path.read_bytes()
        ref = self._ref(image_id) if source.is_file() else None
        if ref is None:
            raise SourceMissing(gone)
        if zipfile.is_zipfile(source):  # a zip's members as the run named them
            return ref.read()
        location = Path(ref.location)  # a listing: its files, if they lie in the listing's folder
        if not location.is_file():
            raise SourceMissing(gone)
        if not location.resolve().is_relative_to(source.parent.resolve()):
            raise SourceMissing(f"{image_id} lies outside the listing's folder; it is not read.")
        return location.read_bytes()

    def image(self, image_id: str, sha256: Optional[str] = None) -> SourceImage:
        """The original of ``image_id``, or why there is none; ``changed`` when its pixels differ from ``sha256``."""
        try:
            data = self.read_bytes(image_id)
        except SourceMissing as missing:
            return SourceImage(None, str(missing))
        try:
            image = load_image(data)
        except ExplainerError as error:
            return SourceImage(None, f"{image_id} cannot be read any more: {error}")
        return SourceImage(image, "", sha256 is not None and image_sha256(image) != sha256)

    def _ref(self, image_id: str):
        if self._refs is None:
            from ..scale.sources import list_source

            try:
                self._refs = {r.image_id: r for r in list_source(self.source)}
            except (ExplainerError, OSError):  # SOURCE replaced by something unreadable: every image is missing
                self._refs = {}
        return self._refs.get(image_id)


def source_bytes(store: str | Path, image_id: str) -> bytes:
    """The file of ``image_id`` from the run's SOURCE (never outside it).

    Raises:
        SourceMissing: the file is gone, or lies outside SOURCE.
    """
    return SourceFiles.of(store).read_bytes(image_id)


def source_image(store: str | Path, image_id: str, sha256: Optional[str] = None) -> SourceImage:
    """Read the original of ``image_id`` from the run's SOURCE (never outside it)."""
    return SourceFiles.of(store).image(image_id, sha256)


def draw(raw_map: np.ndarray, image: Optional[Image.Image], size: tuple[int, int], opacity: float,
         colormap: str, side: int = 320) -> np.ndarray:
    """The map on the image (or alone when ``image`` is None), at most ``side`` px, each map on its own range.

    Args:
        raw_map: (h, w) raw map (``GalleryRow.raw_map()``, ``scale.rows.decode_raw``).
        size: the original's (width, height), for the map alone.
    """
    width, height = size
    factor = min(1.0, side / max(width, height))
    w, h = max(1, round(width * factor)), max(1, round(height * factor))
    cam = on_grid(raw_map, w, h)  # over the whole image, as the default "squash" fit (the gallery says when not)
    if image is None:
        return overlay(np.full((h, w, 3), 255, np.uint8), cam, 1.0, colormap)
    return overlay(image.resize((w, h), Image.Resampling.BILINEAR), cam, opacity, colormap)


OWN_SCALE = "own min to max"  # each map's colours span its own range (negatives count as 0)
OWN_MAX_SCALE = "0 to its own max"


def map_caption(raw_max: Optional[float], scale: str = OWN_SCALE, strength: str = "raw max") -> str:
    """What every map of the Review views says about itself: how its colours are scaled and its strength.

    Args:
        raw_max: the raw map's maximum in the method's units (None when unknown).
        scale: what the colours span (OWN_SCALE, OWN_MAX_SCALE, or a fixed range in words).
        strength: what ``raw_max`` is (e.g. "median raw max" for a cluster's mean map).

    Example:
        >>> map_caption(0.4213)
        'scale: own min to max · strength: raw max 0.421'
    """
    if raw_max is None:
        return f"scale: {scale} · strength: unknown"
    empty = " (an empty map)" if not raw_max > 0 else ""
    return f"scale: {scale} · strength: {strength} {raw_max:.3g}{empty}"
