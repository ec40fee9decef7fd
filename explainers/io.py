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

from .dicom import MAX_FRAMES, DicomImage, DicomInfo, is_dicom, read_dicom
from .errors import ImageError

MAX_PIXELS_ENV = "CAMSCOPE_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 50_000_000
# A map of a 3000 x 2 strip squeezed into a square input means nothing, and such
# strips cannot be drawn (they round to zero pixels high when shown at page width).
MAX_ASPECT = 100

NOT_AN_IMAGE = "This file is not an image CAMscope can read (PNG, JPEG, WebP, BMP, TIFF, GIF or DICOM)."
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


# The allowlist: a file is read only if its first bytes say it is one of these
# (its name is never trusted); each maps to the one PIL decoder allowed to open it.
_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
]


def sniff_format(header: bytes) -> str | None:
    """The format the file's first bytes announce ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF",
    "DICOM"), or None when it is none of the allowed ones."""
    if is_dicom(header):  # checked first: a DICOM preamble may itself look like a TIFF header
        return "DICOM"
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in _MAGIC if header.startswith(magic)), None)


def _header(opened: Union[str, io.BytesIO]) -> bytes:
    if isinstance(opened, io.BytesIO):
        return opened.getvalue()[:132]
    with open(opened, "rb") as file:
        return file.read(132)


def load_image(source: ImageSource, frame: int = 0, window: tuple[float, float] | None = None) -> Image.Image:
    """Read an image and return it as a fully decoded RGB image.

    EXIF orientation is applied; transparency is composited on white; 16-bit and
    float images are scaled to 8 bits by their actual maximum; only the first
    frame of an animated or multi-page file is kept (files with more than
    MAX_FRAMES frames are refused). DICOM goes through its modality LUT and VOI window.

    Args:
        source: a path, the file's bytes, or a binary file object (e.g. an upload).
        frame: DICOM only: the frame of a multi-frame file (0 first).
        window: DICOM only: (center, width) instead of the file's own window.

    Returns:
        An RGB ``PIL.Image.Image`` with its pixels loaded.

    Raises:
        ImageError: missing, empty, truncated, not an image, or too large.
    """
    opened = _open_source(source)
    limit = max_pixels()
    kind = sniff_format(_header(opened))
    if kind is None:
        raise ImageError(NOT_AN_IMAGE)
    if kind == "DICOM":
        data = opened.getvalue() if isinstance(opened, io.BytesIO) else Path(opened).read_bytes()
        return read_dicom(data, frame=frame, window=window, max_pixels=limit).image
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(opened, formats=[kind])
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
        if max(width, height) > MAX_ASPECT * min(width, height):
            raise ImageError(f"The image is too narrow ({width} x {height} pixels): CAMscope reads images "
                             f"whose width and height are at most {MAX_ASPECT} times apart.")
        frames = getattr(image, "n_frames", 1)
        if frames > MAX_FRAMES:  # counting frames reads headers only; this bounds work on hostile files
            raise ImageError(f"The file has {frames:,} frames; CAMscope reads files with up to {MAX_FRAMES:,}.")
        try:
            image.seek(0)  # first frame of an animation or first page of a TIFF
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error):
            # PIL's decoders report corrupt data with any of these
            raise ImageError(DAMAGED) from None
        rgb = _to_rgb(_oriented(image))
    rgb.info.clear()  # no EXIF, ICC profile or text travels on: exports carry no metadata
    return rgb


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


def load_dicom(source: ImageSource, frame: int = 0, window: tuple[float, float] | None = None) -> DicomImage:
    """Read a DICOM file: the displayed image and the few facts the app shows (modality, size, window).

    Args:
        source: a path, the file's bytes, or a binary file object.
        frame, window: as for ``load_image``.

    Returns:
        DicomImage(image, info); ``info`` carries no other header field.

    Raises:
        ImageError: not a DICOM file, or any reason ``load_image`` gives.
    """
    opened = _open_source(source)
    if sniff_format(_header(opened)) != "DICOM":
        raise ImageError("This file is not a DICOM file (no 'DICM' marker after its 128-byte preamble).")
    data = opened.getvalue() if isinstance(opened, io.BytesIO) else Path(opened).read_bytes()
    return read_dicom(data, frame=frame, window=window, max_pixels=max_pixels())


def dicom_info(source: ImageSource, frame: int = 0) -> DicomInfo:
    """Modality, size, frame count and default window of a DICOM file; no other header field."""
    return load_dicom(source, frame=frame).info
