"""DICOM images for display: modality LUT, then VOI windowing, then 8-bit RGB.

Privacy: only the fields needed to display the image are read from the header
(size, modality, photometric interpretation, rescale and window). Nothing from the
header is logged, returned beyond ``DicomInfo``, or used as a cache key.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image

from .errors import ImageError

DICOMDIR_UID = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
MAX_FRAMES = 1000
DICOMDIR = ("This is a DICOMDIR (the index of a DICOM folder), not an image: "
            "choose one of the image files it lists.")
NO_PIXELS = "This DICOM file holds no image (it has no pixel data)."
DAMAGED = "The DICOM file is truncated or damaged."


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
        DicomImage: the RGB image and its DicomInfo.

    Raises:
        ImageError: DICOMDIR, no pixel data, compressed without a decoder, bad frame or window, damaged.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, AttributeError):
        raise ImageError(DAMAGED) from None
    meta = getattr(ds, "file_meta", None)
    if str(getattr(meta, "MediaStorageSOPClassUID", "")) == DICOMDIR_UID or "DirectoryRecordSequence" in ds:
        raise ImageError(DICOMDIR)
    if "PixelData" not in ds:
        raise ImageError(NO_PIXELS)
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        raise ImageError(DAMAGED) from None
    if max_pixels is not None and rows * columns > max_pixels:
        raise ImageError(f"The image is too large ({columns} x {rows} pixels): CAMscope reads images up to "
                         f"{max_pixels:,} pixels (set CAMSCOPE_MAX_PIXELS to change this).")
    if frames > MAX_FRAMES:
        raise ImageError(f"The DICOM file has {frames:,} frames; CAMscope reads files with up to {MAX_FRAMES:,}.")
    if not 0 <= frame < frames:
        raise ImageError(f"Frame {frame} does not exist: this DICOM file has {frames} frame(s), numbered 0 to {frames - 1}.")
    pixels = _decode_frame(ds, frame)
    if pixels.ndim == 3:  # colour (RGB after pydicom's YBR conversion): no LUTs apply
        image = Image.fromarray(_to_uint8(pixels.astype(np.float64), 0.0, float(pixels.max() or 1)))
        info = DicomInfo(str(ds.get("Modality", "")), columns, rows, frames, 0.0, 0.0)
        return DicomImage(image.convert("RGB"), info)
    display, center, width = _window(pixels, ds, window)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        display = 255 - display  # MONOCHROME1: the lowest value is white
    info = DicomInfo(str(ds.get("Modality", "")), columns, rows, frames, center, width)
    return DicomImage(Image.fromarray(display).convert("RGB"), info)


def _decode_frame(ds, frame: int) -> np.ndarray:
    from pydicom.pixels import get_decoder, pixel_array

    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_compressed:
        try:
            available = get_decoder(syntax).is_available
        except NotImplementedError:
            available = False
        if not available:
            raise ImageError(f"This DICOM file is compressed ({syntax.name}) and no decoder for it is installed "
                             "here: export it uncompressed, or install pylibjpeg with its plugins.")
    try:
        return np.asarray(pixel_array(ds, index=frame))
    except (ValueError, RuntimeError, AttributeError, KeyError, TypeError, NotImplementedError, OSError):
        raise ImageError(DAMAGED) from None


def _window(pixels: np.ndarray, ds, window: Optional[tuple[float, float]]) -> tuple[np.ndarray, float, float]:
    """Modality LUT, then the VOI: the override, else the header's LUT or window, else the data's range."""
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    header_window = ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None
    if window is None and (header_window or ds.get("VOILUTSequence")):
        view, function = ds, None
        center, width = (_first(ds.WindowCenter), _first(ds.WindowWidth)) if header_window else (0.0, 0.0)
    else:
        if window is not None:
            center, width = float(window[0]), float(window[1])
            function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
        else:  # no window anywhere: the data's own range, mapped exactly onto 0..255
            low, high = float(values.min()), float(values.max())
            center, width, function = (low + high) / 2, max(high - low, 1.0), "LINEAR_EXACT"
        if not np.isfinite(center) or not np.isfinite(width) or width < 1:
            raise ImageError("The window width must be a number of at least 1 (and the center a number).")
        view = Dataset()  # only what apply_windowing reads; the header's own window is replaced
        for keyword in ("PhotometricInterpretation", "BitsStored", "PixelRepresentation", "RescaleSlope",
                        "RescaleIntercept", "ModalityLUTSequence"):
            if keyword in ds:
                setattr(view, keyword, ds[keyword].value)
        view.WindowCenter, view.WindowWidth, view.VOILUTFunction = center, width, function
    # pydicom does not expose the VOI output range; two sentinels far outside any window give
    # its bottom and top, so the result can be scaled to 0..255 without clipping or guessing.
    sentinels = np.array([-1e30, 1e30]) if not view.get("VOILUTSequence") else np.array([values.min(), values.max()])
    try:
        shown = np.asarray(apply_voi_lut(np.concatenate([values.ravel(), sentinels]), view), dtype=np.float64)
    except ValueError as error:  # e.g. an unsupported VOI LUT function in the header
        raise ImageError(f"The DICOM window cannot be applied: {error}") from None
    low, high = float(shown[-2:].min()), float(shown[-2:].max())
    if view.get("VOILUTSequence"):
        low, high = float(shown.min()), float(shown.max())
    return _to_uint8(shown[:-2].reshape(values.shape), low, high), center, width


def _first(value) -> float:
    """A window value may be multi-valued (several presets): the first is the default."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def _to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    span = high - low if high > low else 1.0
    return np.clip(np.rint((values - low) * (255.0 / span)), 0, 255).astype(np.uint8)
