"""Downloads: one overlay as PNG, one map as .npy, and everything as a zip with settings.json."""
from __future__ import annotations

import io
import json
import platform
import zipfile
from importlib import metadata

import numpy as np
from PIL import Image

from explainers.models.spec import LoadedModel
from explainers.render import to_png_bytes
from explainers.results import CamResult

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
             results: list[CamResult], rendering: dict) -> dict:
    """Everything needed to reproduce the page: model, weights, layer, class, methods, preprocessing."""
    first = results[0] if results else None
    return {
        "model": {"name": model.name, "display_name": model.spec.display_name,
                  "architecture": model.spec.architecture, "weights_sha256": model.weights_sha256,
                  "random_weights": model.random_weights, "device": str(model.device)},
        "image": {"name": image_name, "pixels_sha256": image_sha, "width": image_size[0], "height": image_size[1]},
        "layer": layer,
        "class": {"index": first.class_index, "name": first.class_name, "probability": first.probability,
                  "score": first.score} if first else None,
        "methods": [{"key": r.method, "name": r.method_name, "seconds": round(r.seconds, 4),
                     "map_shape": list(r.map.shape), "raw_shape": list(r.raw.shape)} for r in results],
        "preprocessing": model.preprocessing.as_dict(),
        "rendering": rendering,
        "versions": versions(),
    }


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def zip_bytes(image: Image.Image, results: list[CamResult], overlays: dict[str, np.ndarray], settings_: dict) -> bytes:
    """A zip with the original image, per method its overlay PNG, map .npy and raw .npy, and settings.json.

    Args:
        overlays: {method key: (H, W, 3) uint8} as shown on the page.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("original.png", to_png_bytes(image))
        for r in results:
            stem = file_stem(r)
            archive.writestr(f"{stem}/overlay.png", to_png_bytes(overlays[r.method]))
            archive.writestr(f"{stem}/map.npy", npy_bytes(r.map))  # (H, W) on the image grid, [0, 1]
            archive.writestr(f"{stem}/raw.npy", npy_bytes(r.raw))  # (h, w) at layer resolution, unnormalized
        archive.writestr("settings.json", json.dumps(settings_, indent=2))
    return buffer.getvalue()


def file_stem(result: CamResult) -> str:
    """A file-system-safe name for one result, e.g. 'gradcam++_class281'."""
    safe = "".join(c if c.isalnum() or c in "+-_" else "_" for c in result.method)
    return f"{safe}_class{result.class_index}"
