"""Reading images from a path, bytes or an upload into a fully decoded RGB PIL image."""
from __future__ import annotations

import hashlib
import io
import os
import struct
import threading
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

MAX_PIXELS_ENV = "CAMSCOPE_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 50_000_000

NOT_AN_IMAGE = "This file is not an image CAMscope can read (PNG, JPEG, WebP, BMP, TIFF)."
EMPTY = "The image file is empty."
DAMAGED = "The image file is truncated or damaged."

ImageSource = Union[str, Path, bytes, bytearray, BinaryIO]

# warnings.catch_warnings changes process-wide state (Python 3.11); the lock keeps
# concurrent loads from restoring each other's filters in the wrong order.
_OPEN_LOCK = threading.Lock()


def max_pixels() -> int:
    """The largest image (width x height) accepted: env CAMSCOPE_MAX_PIXELS, default 50 megapixels."""
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(float(value))
    except ValueError:
        raise ImageError(f"{MAX_PIXELS_ENV} must be a number of pixels; it is {value!r}.") from None
    if limit <= 0:
        raise ImageError(f"{MAX_PIXELS_ENV} must be a positive number of pixels; it is {value!r}.")
    return limit


def _open_source(source: ImageSource) -> Union[str, io.BytesIO]:
    """A path or an in-memory buffer for Image.open; refuses missing and empty files."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"There is no file at {str(path)!r}.")
        if not path.is_file():
            raise ImageError(f"{str(path)!r} is not a file.")
        if path.stat().st_size == 0:
            raise ImageError(EMPTY)
        return str(path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        if hasattr(source, "seek"):
            source.seek(0)  # an upload may have been read before (e.g. by a preview)
        data = source.read()
        if not isinstance(data, (bytes, bytearray)):
            raise ImageError("The image must be read from a file opened in binary mode.")
    else:
        raise ImageError(f"Cannot read an image from a {type(source).__name__}; give a path, bytes or a file.")
    if not data:
        raise ImageError(EMPTY)
    return io.BytesIO(data)


def load_image(source: ImageSource) -> Image.Image:
    """Read an image and return it as a fully decoded RGB image.

    EXIF orientation is applied; transparency is composited on white; 16-bit and
    float images are scaled to 8 bits by their actual maximum; only the first
    frame of an animated or multi-page file is kept.

    Args:
        source: a path, the file's bytes, or a binary file object (e.g. an upload).

    Returns:
        An RGB ``PIL.Image.Image`` with its pixels loaded.

    Raises:
        ImageError: missing, empty, truncated, not an image, or too large.
    """
    opened = _open_source(source)
    limit = max_pixels()
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(_too_large_message(None, limit)) from None
    except UnidentifiedImageError:
        raise ImageError(NOT_AN_IMAGE) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ImageError(DAMAGED) from None
    with image:
        width, height = image.size
        if width * height > limit:
            raise ImageError(_too_large_message((width, height), limit))
        try:
            image.seek(0)  # first frame of an animation or first page of a TIFF
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error):
            # PIL's decoders report corrupt data with any of these
            raise ImageError(DAMAGED) from None
        return _to_rgb(_oriented(image))


def _oriented(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block should not make good pixels unreadable
        return image


def _too_large_message(size: tuple[int, int] | None, limit: int) -> str:
    found = f" ({size[0]} x {size[1]} pixels)" if size else ""
    return (f"The image is too large{found}: CAMscope reads images up to {limit:,} pixels "
            f"(set {MAX_PIXELS_ENV} to change this).")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: alpha over white, high bit depths scaled by their max."""
    mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        top = float(values.max()) if values.size else 0.0
        if mode == "F" and values.size and values.min() >= 0.0 and top <= 1.0:
            top = 1.0  # a float image already in [0, 1]
        scaled = np.clip(values, 0.0, None) * (255.0 / top) if top > 0 else np.zeros_like(values)
        gray = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))
        return gray.convert("RGB")
    if mode == "RGB":
        return image.copy()
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, ...


def image_sha256(image: Image.Image) -> str:
    """A hash of the decoded pixels, size and mode, for cache keys (same pixels -> same hash)."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()
