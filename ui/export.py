"""Downloads: one overlay as PNG, one map as .npy, and everything as a zip with settings.json.

Sized with care: maps are kept at layer resolution (float32, a few KB) plus one float16 map on
the written grid; pictures are capped at ``CAP`` pixels on the long side unless the user asks
for full size (``on_grid(raw, width, height)`` rebuilds a full-size map from raw.npy exactly).
"""
from __future__ import annotations

import io
import json
import platform
import zipfile
from importlib import metadata
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from explainers.models.spec import LoadedModel
from explainers.pipeline import on_grid
from explainers.render import to_png_bytes
from explainers.results import CamResult

CAP = 2048  # long side of written pictures and image-grid maps unless full size is asked for
PACKAGES = ("torch", "torchvision", "timm", "grad-cam", "streamlit", "pillow", "numpy", "plotly", "matplotlib")


def versions() -> dict[str, str]:
    """Python and the versions of the packages that shape a result."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def settings(model: LoadedModel, image_name: str, image_sha: str, image_size: tuple[int, int], layer: str,
             results: list[CamResult], rendering: dict, full_size: bool = False, notes: Sequence[str] = ()) -> dict:
    """Everything needed to reproduce the page: model, weights, layer, class, methods, preprocessing,
    what the downloads hold (sizes written, whether they were capped), and what reading the image
    changed (``notes``: e.g. NaN pixels made black, a window that fell back to the data's range)."""
    first = results[0] if results else None
    width, height = written_size(image_size, full_size)
    return {
        "model": {"name": model.name, "display_name": model.spec.display_name,
                  "architecture": model.spec.architecture, "weights_sha256": model.weights_sha256,
                  "random_weights": model.random_weights, "device": str(model.device)},
        "image": {"name": image_name, "pixels_sha256": image_sha, "width": image_size[0], "height": image_size[1],
                  "notes": list(notes)},
        "layer": layer,
        "class": {"index": first.class_index, "name": first.class_name, "probability": first.probability,
                  "score": first.score} if first else None,
        "methods": [{"key": r.method, "name": r.method_name, "seconds": round(r.seconds, 4),
                     "map_shape": [height, width], "raw_shape": list(r.raw.shape),
                     "raw_min": float(r.raw.min()), "raw_max": float(r.raw.max())} for r in results],
        "preprocessing": model.preprocessing.as_dict(),
        "rendering": rendering,
        "downloads": size_note(image_size, full_size),
        "versions": versions(),
    }


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def written_size(size: tuple[int, int], full_size: bool = False, cap: int = CAP) -> tuple[int, int]:
    """(width, height) of the pictures and image-grid maps written for an image of ``size``."""
    width, height = size
    if full_size or max(width, height) <= cap:
        return width, height
    ratio = cap / max(width, height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def size_note(size: tuple[int, int], full_size: bool, cap: int = CAP) -> dict:
    """What settings.json says about the sizes written (and whether they were capped)."""
    written = written_size(size, full_size, cap)
    return {"original_size": list(size), "written_size": list(written), "capped": written != tuple(size),
            "cap_long_side": None if full_size else cap, "full_size_asked": bool(full_size),
            "map_npy": "float16 in [0, 1] on the written grid", "raw_npy": "float32 at layer resolution, "
            "not normalized; explainers.pipeline.on_grid(raw, width, height) gives the map at any size"}


def written_original(image: Image.Image, full_size: bool = False, cap: int = CAP) -> Image.Image:
    """The original at the written size (capped unless ``full_size``)."""
    size = written_size(image.size, full_size, cap)
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def grid_map(result: CamResult, size: tuple[int, int], preprocessing=None) -> np.ndarray:
    """The result's map on a (width, height) grid as float16 in [0, 1] (through the fit of
    ``preprocessing``, the model's, when given: NaN outside a crop)."""
    if result.map.shape == (size[1], size[0]):
        return result.map.astype(np.float16)
    return on_grid(result.raw, size[0], size[1], preprocessing).astype(np.float16)


def zip_upper_bound(size: tuple[int, int], results: list[CamResult]) -> int:
    """Bytes the zip can reach at most for pictures of ``size`` (width, height): every PNG stored
    as raw RGB (a PNG is about that or smaller), the float16 maps, the raw maps, and room for the rest."""
    width, height = size
    picture = 3 * width * height + height  # RGB plus PNG's one filter byte per row
    per_result = picture + 2 * width * height + sum(r.raw.nbytes for r in results) // max(1, len(results))
    return picture + len(results) * (per_result + 1024) + 64 * 1024


def zip_bytes(original: Image.Image, results: list[CamResult], overlays: dict[str, np.ndarray], settings_: dict,
              progress: Optional[Callable[[float, str], None]] = None, preprocessing=None) -> bytes:
    """A zip with the original, per method its overlay PNG, map .npy (float16) and raw .npy, and settings.json.

    Args:
        original: the image at the written size (``written_original``).
        overlays: {method key: (h, w, 3) uint8} at the written size; the maps are written on that grid.
        progress: called with (fraction done, what is being written).
    """
    size = original.size
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("original.png", to_png_bytes(original))
        for i, r in enumerate(results):
            if progress:
                progress(i / max(1, len(results)), f"Writing {r.method_name} ({i + 1} of {len(results)})")
            stem = file_stem(r)
            archive.writestr(f"{stem}/overlay.png", to_png_bytes(overlays[r.method]))
            archive.writestr(f"{stem}/map.npy", npy_bytes(grid_map(r, size, preprocessing)))  # (h, w) float16 in [0, 1]
            archive.writestr(f"{stem}/raw.npy", npy_bytes(r.raw))  # (h, w) at layer resolution, unnormalized
        archive.writestr("settings.json", json.dumps(settings_, indent=2))
    if progress:
        progress(1.0, "Done")
    return buffer.getvalue()


def file_stem(result: CamResult) -> str:
    """A file-system-safe name for one result, e.g. 'gradcam++_class281'."""
    safe = "".join(c if c.isalnum() or c in "+-_" else "_" for c in result.method)
    return f"{safe}_class{result.class_index}"
