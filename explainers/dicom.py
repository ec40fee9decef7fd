"""DICOM images for display: modality LUT, then VOI windowing, then 8-bit RGB.

Privacy: only the fields needed to display the image are read from the header
(size, modality, photometric interpretation, rescale and window). Nothing from the
header is logged, returned beyond ``DicomInfo``, or used as a cache key.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image

from .dicom_read import DAMAGED, quiet, read_dataset
from .errors import ImageError
from .image_limits import add_note, check_size, note_if_flat, release_memory
from .pixel_scaling import NO_FINITE, by_blocks, finite_range

DICOMDIR_UID = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
MAX_FRAMES = 1000
DICOMDIR = ("This is a DICOMDIR (the index of a DICOM folder), not an image: "
            "choose one of the image files it lists.")
NO_PIXELS = "This DICOM file holds no image (it has no pixel data)."
BAD_WINDOW = ("The file's window (WindowCenter / WindowWidth) is not a usable number: the data's own range "
              "is shown instead.")


@dataclass(frozen=True)
class DicomInfo:
    """What the app shows about a DICOM image, and nothing else from its header."""

    modality: str  # e.g. "CT", "MR", "CR"; "" when absent
    width: int
    height: int
    frames: int
    window_center: float  # the window used (the override, the header's, or the data's range)
    window_width: float


@dataclass(frozen=True)
class DicomImage:
    image: Image.Image  # RGB, 8 bits
    info: DicomInfo


def is_dicom(header: bytes) -> bool:
    """True if the bytes start like a DICOM Part 10 file ('DICM' after a 128-byte preamble)."""
    return len(header) >= 132 and header[128:132] == b"DICM"


def read_dicom(data: bytes, frame: int = 0, window: Optional[tuple[float, float]] = None,
               max_pixels: Optional[int] = None) -> DicomImage:
    """Decode one frame of a DICOM file for display.

    Args:
        data: the file's bytes.
        frame: which frame of a multi-frame image (0 first).
        window: (center, width) to use instead of the header's window, in modality units (e.g. HU).
        max_pixels: refuse frames larger than this (width x height).

    Returns:
        DicomImage: the RGB image and its DicomInfo. What the user must know about the pixels
        (a header window that is not a number, a flat picture) is in ``image.info``'s notes.

    Raises:
        ImageError: DICOMDIR, no pixel data, compressed without a decoder, bad frame, window or
            rescale values, too large or too narrow, damaged.
    """
    try:
        with quiet():  # pydicom decodes header values lazily and warns quoting them
            return _read(data, frame, window, max_pixels)
    finally:
        release_memory()


def _read(data: bytes, frame: int, window: Optional[tuple[float, float]], max_pixels: Optional[int]) -> DicomImage:
    ds = read_dataset(data)
    meta = getattr(ds, "file_meta", None)
    if str(getattr(meta, "MediaStorageSOPClassUID", "")) == DICOMDIR_UID or "DirectoryRecordSequence" in ds:
        raise ImageError(DICOMDIR)
    if "PixelData" not in ds:
        raise ImageError(NO_PIXELS)
    rows, columns = _whole(ds, "Rows", "number of rows"), _whole(ds, "Columns", "number of columns")
    frames = _whole(ds, "NumberOfFrames", "number of frames") if ds.get("NumberOfFrames") not in (None, "") else 1
    check_size(columns, rows, max_pixels if max_pixels is not None else rows * columns)
    if frames > MAX_FRAMES:
        raise ImageError(f"The DICOM file has {frames:,} frames; CAMscope reads files with up to {MAX_FRAMES:,}.")
    if not 0 <= frame < frames:
        raise ImageError(f"Frame {frame} does not exist: this DICOM file has {frames} frame(s), numbered 0 to {frames - 1}.")
    pixels = _decode_frame(ds, frame)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    modality = str(ds.get("Modality", ""))
    if photometric == "PALETTE COLOR" and pixels.ndim == 2:
        pixels = _palette(pixels, ds)
    if pixels.ndim == 3:  # colour (RGB after pydicom's YBR conversion, or a palette): no LUTs apply
        image = Image.fromarray(_colour_to_uint8(pixels)).convert("RGB")
        note_if_flat(image)
        return DicomImage(image, DicomInfo(modality, columns, rows, frames, 0.0, 0.0))
    display, center, width, notes = _window(pixels, ds, window)
    del pixels
    if photometric == "MONOCHROME1":
        np.subtract(255, display, out=display)  # MONOCHROME1: the lowest value is white
    image = Image.fromarray(display).convert("RGB")
    for note in notes:
        add_note(image, note)
    note_if_flat(image)
    return DicomImage(image, DicomInfo(modality, columns, rows, frames, center, width))


def _whole(ds, keyword: str, what: str) -> int:
    """A header count (rows, columns, frames) that must be a positive whole number."""
    try:
        value = int(ds.get(keyword))
    except (TypeError, ValueError, OverflowError):
        value = 0
    if value < 1:
        raise ImageError(f"The DICOM header's {what} is not a positive whole number: the file is damaged.")
    return value


def _number(ds, keyword: str) -> Optional[float]:
    """The first value of a numeric header field; None when absent, NaN when it is not a number."""
    element = ds.get(keyword)
    if element is None or element == "":
        return None
    from pydicom.multival import MultiValue

    try:
        value = ds[keyword].value
        return float(value[0] if isinstance(value, MultiValue) else value)  # several presets: the first
    except (TypeError, ValueError, IndexError, OverflowError):
        return math.nan


def _decode_frame(ds, frame: int) -> np.ndarray:
    from pydicom.pixels import get_decoder, pixel_array

    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    decoder = None
    if syntax is not None and syntax.is_compressed:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:
            raise ImageError(f"This DICOM file is compressed ({syntax.name}) and CAMscope knows no decoder "
                             "for it: export it uncompressed.") from None
        if not decoder.is_available:
            raise ImageError(f"This DICOM file is compressed ({syntax.name}) and no decoder for it is "
                             f"installed here: {_install_advice(decoder)}, or export it uncompressed.")
    try:
        return np.asarray(pixel_array(ds, index=frame))
    except (ValueError, RuntimeError, AttributeError, KeyError, TypeError, NotImplementedError, OSError):
        if decoder is not None:  # a decoder is installed but cannot read this variant (e.g. 12-bit JPEG)
            used = ", ".join(decoder.available_plugins) or "none"
            raise ImageError(f"This DICOM file is compressed ({syntax.name}) and the decoder installed here "
                             f"({used}) cannot decode it (it may need another decoder, or be damaged): "
                             f"{_install_advice(decoder)}, or export it uncompressed.") from None
        raise ImageError(DAMAGED) from None


def _install_advice(decoder) -> str:
    """'install pylibjpeg and pylibjpeg-libjpeg (pip install ...)' from pydicom's list of missing plugins."""
    wanted = [re.findall(r"([A-Za-z][\w.-]*?)\s*[<>=]", line.partition("requires")[2])
              for line in getattr(decoder, "missing_dependencies", [])]
    wanted = [names for names in wanted if names]
    if not wanted:
        return "install a pydicom pixel-data plugin for it"
    best = min(wanted, key=lambda names: ("gdcm" in " ".join(names).lower(), len(names)))
    return f"install {' and '.join(best)} (pip install {' '.join(best)})"


def _palette(pixels: np.ndarray, ds) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    try:
        return np.asarray(apply_color_lut(pixels, ds))
    except (ValueError, KeyError, AttributeError, TypeError, IndexError):
        raise ImageError("This PALETTE COLOR DICOM file's colour lookup tables are missing or damaged, "
                         "so its colours cannot be shown.") from None


def _colour_to_uint8(pixels: np.ndarray) -> np.ndarray:
    """RGB of any depth to 8 bits, by its maximum (a palette's 16-bit output: 65535 is full)."""
    if pixels.dtype == np.uint8:
        return pixels
    top = finite_range(pixels.reshape(-1, pixels.shape[-1]))[1]
    if not np.isfinite(top) or top <= 0:
        return np.zeros(pixels.shape, np.uint8)
    return by_blocks(pixels, lambda v: v / top)


def _window(pixels: np.ndarray, ds, window: Optional[tuple[float, float]]) -> tuple[np.ndarray, float, float, list]:
    """Modality LUT, then the VOI: the override, else the header's LUT or window, else the data's range.

    A plain rescale (slope, intercept) is applied block by block with the window, so a large frame
    never has a float64 copy; only a modality LUT sequence (rare) makes one."""
    values, slope, intercept = _modality(pixels, ds)
    notes: list[str] = []
    if window is not None:
        center, width = float(window[0]), float(window[1])
        if not np.isfinite(center) or not np.isfinite(width) or width < 1:
            raise ImageError("The window width must be a number of at least 1 (and the center a number).")
    elif ds.get("VOILUTSequence"):
        return _voi_sequence(values * slope + intercept, ds) + (notes,)
    else:
        center, width = _number(ds, "WindowCenter"), _number(ds, "WindowWidth")
        if center is None or width is None:
            center = width = None
        elif not (np.isfinite(center) and np.isfinite(width) and width >= 1):
            notes.append(BAD_WINDOW)
            center = width = None
    if center is None:  # no usable window: the data's own range, mapped exactly onto 0..255
        low, high, nans, infs = finite_range(values)
        if not np.isfinite(low):
            raise ImageError(NO_FINITE)
        if nans or infs:
            notes.append(f"{nans + infs:,} pixel value(s) were NaN or infinite: they are shown black.")
        low, high = sorted((low * slope + intercept, high * slope + intercept))  # the rescale is linear
        span = high - low if high > low else 1.0
        shown = by_blocks(values, lambda v: np.where(np.isfinite(v), (v * slope + intercept - low) / span, 0.0))
        return shown, (low + high) / 2, max(high - low, 1.0), notes
    function = str(ds.get("VOILUTFunction", "LINEAR")).strip().upper() or "LINEAR"
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        raise ImageError("The DICOM window cannot be applied: its VOI LUT function is not LINEAR, "
                         "LINEAR_EXACT or SIGMOID.")
    voi = _voi_function(center, width, function)
    return by_blocks(values, lambda v: voi(v * slope + intercept)), center, width, notes


def _voi_function(center: float, width: float, function: str):
    """PS3.3 C.11.2.1.2 as a map to [0, 1]. By hand: pydicom's apply_voi_lut answers in the stored
    bit range, which needs a float64 copy of the frame and sentinels to scale; this is three lines."""
    if function == "LINEAR_EXACT":
        return lambda v: (v - center) / width + 0.5
    if function == "SIGMOID":
        return lambda v: 1.0 / (1.0 + np.exp(-4.0 * (v - center) / width))
    c, w = center - 0.5, width - 1.0  # LINEAR: at most c - w/2 is black, above c + w/2 white
    return lambda v: np.where(v <= c - w / 2, 0.0, np.where(v > c + w / 2, 1.0, (v - c) / max(w, 1e-12) + 0.5))


def _modality(pixels: np.ndarray, ds) -> tuple[np.ndarray, float, float]:
    """(values, slope, intercept) with values * slope + intercept in modality units (e.g. HU):
    the stored values and the header's rescale, or the header's modality LUT applied (1, 0)."""
    from pydicom.pixels import apply_modality_lut

    if ds.get("ModalityLUTSequence"):
        try:
            return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64), 1.0, 0.0
        except (ValueError, KeyError, AttributeError, TypeError, IndexError):
            raise ImageError("This DICOM file's modality lookup table is damaged.") from None
    slope, intercept = _number(ds, "RescaleSlope"), _number(ds, "RescaleIntercept")
    for name, value in (("RescaleSlope", slope), ("RescaleIntercept", intercept)):
        if value is not None and not np.isfinite(value):
            raise ImageError(f"This DICOM file's {name} is not a finite number, so its pixel values cannot "
                             "be converted to modality units (e.g. HU): the file is damaged.")
    return pixels, (1.0 if slope is None else slope), (intercept or 0.0)


def _voi_sequence(values: np.ndarray, ds) -> tuple[np.ndarray, float, float]:
    from pydicom.pixels import apply_voi_lut

    try:
        shown = np.asarray(apply_voi_lut(values, ds), dtype=np.float64)
    except (ValueError, KeyError, AttributeError, TypeError, IndexError):
        raise ImageError("The DICOM window cannot be applied: its VOI lookup table is damaged.") from None
    low, high, _, _ = finite_range(shown)
    span = high - low if high > low else 1.0
    return by_blocks(shown, lambda v: (v - low) / span), 0.0, 0.0
