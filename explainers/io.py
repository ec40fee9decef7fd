"""Reading images from a path, bytes or an upload into a fully decoded RGB PIL image."""
from __future__ import annotations

import hashlib
import io
import struct
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .dicom import MAX_FRAMES, DicomImage, DicomInfo, is_dicom, read_dicom
from .errors import ImageError
from .image_limits import (DEFAULT_MAX_PIXELS, MAX_ASPECT, MAX_PIXELS_ENV, NOTES_KEY,  # noqa: F401 (public here)
                           WARNINGS_LOCK, add_note, check_size, load_notes, max_pixels, note_if_flat,
                           release_memory, too_large_message)
from .pixel_scaling import scale_to_uint8

NOT_AN_IMAGE = "This file is not an image CAMscope can read (PNG, JPEG, WebP, BMP, TIFF, GIF or DICOM)."
EMPTY = "The image file is empty."
DAMAGED = "The image file is truncated or damaged."

ImageSource = Union[str, Path, bytes, bytearray, BinaryIO]

_OPEN_LOCK = WARNINGS_LOCK  # also held while Image.MAX_IMAGE_PIXELS is set to this deployment's limit


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
    if header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return "WEBP"
    found = next((name for magic, name in _MAGIC if header.startswith(magic)), None)
    if found not in (None, "TIFF"):  # a PNG may hold 'DICM' at byte 128 by chance; its own magic decides
        return found
    # a DICOM preamble may itself be a TIFF header (dual-format files): 'DICM' wins over TIFF
    return "DICOM" if is_dicom(header) else found


def _header(opened: Union[str, io.BytesIO]) -> bytes:
    if isinstance(opened, io.BytesIO):
        return opened.getvalue()[:132]
    with open(opened, "rb") as file:
        return file.read(132)


def load_image(source: ImageSource, frame: int = 0, window: tuple[float, float] | None = None) -> Image.Image:
    """Read an image and return it as a fully decoded RGB image.

    EXIF orientation is applied; transparency is composited on white; 16-bit and
    float images are scaled to 8 bits by their actual maximum (over their whole finite range when
    it goes below zero; NaN and infinite pixels become black); only the first
    frame of an animated or multi-page file is kept (files with more than
    MAX_FRAMES frames are refused). DICOM goes through its modality LUT and VOI window.

    Args:
        source: a path, the file's bytes, or a binary file object (e.g. an upload).
        frame: DICOM only: the frame of a multi-frame file (0 first).
        window: DICOM only: (center, width) instead of the file's own window.

    Returns:
        An RGB ``PIL.Image.Image`` with its pixels loaded. ``load_notes(image)`` lists what was
        done to the pixels that the user must know (rescaled range, NaN replaced, one flat colour).

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
        return _load_pillow(opened, kind, limit)
    finally:
        release_memory()  # a large decode must not leave the server holding its peak


def _load_pillow(opened: Union[str, io.BytesIO], kind: str, limit: int) -> Image.Image:
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            # Pillow's own check uses this deployment's limit, so the setting works both ways (Pillow's
            # default, 89.5 MP, would cap it); its warning (limit .. 2 x limit) is left to check_size
            # below, which names the size; its error (over 2 x limit) is caught here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, limit
            try:
                image = Image.open(opened, formats=[kind])
            finally:
                Image.MAX_IMAGE_PIXELS = pillow_limit
    except Image.DecompressionBombError:
        raise ImageError(too_large_message(None, limit)) from None
    except UnidentifiedImageError:
        raise ImageError(_unsupported_tiff(opened) if kind == "TIFF" else NOT_AN_IMAGE) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ImageError(DAMAGED) from None
    with image:
        check_size(*image.size, limit)
        frames = getattr(image, "n_frames", 1)
        if frames > MAX_FRAMES:  # counting frames reads headers only; this bounds work on hostile files
            raise ImageError(f"The file has {frames:,} frames; CAMscope reads files with up to {MAX_FRAMES:,}.")
        try:
            image.seek(0)  # first frame of an animation or first page of a TIFF
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error):
            # PIL's decoders report corrupt data with any of these
            raise ImageError(DAMAGED) from None
        oriented = _oriented(image)
        rgb, notes = _to_rgb(oriented)
        oriented.close()
    rgb.info.clear()  # no EXIF, ICC profile or text travels on: exports carry no metadata
    for note in notes:
        add_note(rgb, note)
    note_if_flat(rgb)
    return rgb


def _unsupported_tiff(opened: Union[str, io.BytesIO]) -> str:
    """Why Pillow could not open a TIFF, when its first page's tags tell (e.g. 64-bit floats)."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    try:
        with (open(opened, "rb") if isinstance(opened, str) else io.BytesIO(opened.getvalue())) as file:
            header = file.read(8)
            directory = ImageFileDirectory_v2(header)
            file.seek(directory.next)
            directory.load(file)
        bits = directory.get(258, (8,))
        fmt = directory.get(339, (1,))
        bits, fmt = (bits[0] if isinstance(bits, tuple) else bits), (fmt[0] if isinstance(fmt, tuple) else fmt)
    except Exception:  # a TIFF too damaged to read its tags: the plain sentence stands
        return NOT_AN_IMAGE
    kinds = {1: "unsigned whole", 2: "signed whole", 3: "floating-point"}
    if fmt in kinds and (bits, fmt) not in ((8, 1), (16, 1), (16, 2), (32, 1), (32, 2), (32, 3)):
        return (f"This TIFF holds {bits}-bit {kinds[fmt]} numbers, which CAMscope cannot read: save it "
                "with 8 or 16 bits per channel, or as 32-bit floating point.")
    return NOT_AN_IMAGE


def _oriented(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block should not make good pixels unreadable
        return image


def _to_rgb(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """Convert any PIL mode to RGB, with the notes on what was done: alpha over white, high bit
    depths and floats scaled to 0..255 (see pixel_scaling). Large images are converted with one
    extra copy at most (alpha is pasted in place; numbers are scaled by blocks of rows)."""
    mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image if mode == "RGBA" else image.convert("RGBA")
        rgb, alpha = rgba.convert("RGB"), rgba.getchannel("A")
        if rgba is not image:
            rgba.close()
        image.close()  # the decoded file is no longer needed: free it before the next copy
        alpha = alpha.point(lambda value: 255 - value)  # paste below blends white in by this mask
        rgb.paste((255, 255, 255), (0, 0, *rgb.size), alpha)
        return rgb, []
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image)
        image.close()
        gray, notes = scale_to_uint8(values, unit_floats=mode == "F")
        return Image.fromarray(gray).convert("RGB"), notes
    if mode == "RGB":
        return image.copy(), []
    return image.convert("RGB"), []  # L, 1, P, CMYK, YCbCr, ...


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
