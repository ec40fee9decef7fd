"""Numbers to 8-bit gray for display and for the model, honestly: finite values only, over their real range.

16-bit and float images (and DICOM frames) hold numbers, not display levels. They are
scaled here, by blocks of rows so a 50-megapixel float image costs a few extra
megabytes rather than a float64 copy, and every step a user must know of (a range below
zero, NaN or infinite pixels) comes back as a sentence.
"""
from __future__ import annotations

import numpy as np

from .errors import ImageError

BLOCK = 1 << 20  # elements scaled at a time
NO_FINITE = "Every pixel of the image is NaN or infinite: there is no picture to show or explain."


def _blocks(values: np.ndarray):
    rows = max(1, BLOCK // max(1, values[0].size if values.ndim > 1 and len(values) else 1))
    for start in range(0, len(values), rows):
        yield slice(start, start + rows)


def finite_range(values: np.ndarray) -> tuple[float, float, int, int]:
    """(lowest, highest) finite value, and the counts of NaN and of infinite values."""
    low, high, nans, infs = np.inf, -np.inf, 0, 0
    is_float = np.issubdtype(values.dtype, np.floating)
    for rows in _blocks(values):
        block = values[rows]
        if is_float:
            finite = np.isfinite(block)
            if not finite.all():
                nan = np.isnan(block)
                nans += int(nan.sum())
                infs += int((~finite).sum()) - int(nan.sum())
                block = block[finite]
        if block.size:
            low, high = min(low, float(block.min())), max(high, float(block.max()))
    return low, high, nans, infs


def scale_to_uint8(values: np.ndarray, unit_floats: bool = True) -> tuple[np.ndarray, list[str]]:
    """8-bit gray for a 2-D array of numbers, and the notes on what was done.

    Data from 0 up is scaled by its maximum (0 stays black; floats already within [0, 1]
    keep that scale when ``unit_floats``), as CAMscope always did. Data that goes below
    zero is scaled over its whole finite range and says so. NaN and infinite pixels become
    black (the lowest value) and are counted in a note.

    Raises:
        ImageError: no finite value at all.
    """
    low, high, nans, infs = finite_range(values)
    if not np.isfinite(low):
        raise ImageError(NO_FINITE)
    notes = []
    if nans or infs:
        parts = ([f"{nans:,} pixel(s) were not a number (NaN)"] if nans else []) + \
                ([f"{infs:,} pixel(s) were infinite"] if infs else [])
        notes.append(f"{' and '.join(parts)}: they are shown black, and the other pixels are scaled "
                     f"over their finite values ({low:g} to {high:g}).")
    if low < 0:
        notes.append(f"The pixel values run from {low:g} to {high:g}, below zero: they were scaled from that "
                     "range to black..white.")
        bottom = low
    else:
        bottom = 0.0
        if np.issubdtype(values.dtype, np.floating) and unit_floats and high <= 1.0:
            high = 1.0  # a float image already in [0, 1]
    span = high - bottom
    factor = 255.0 / span if span > 0 else 0.0
    fill = 255 if span <= 0 and high > 0 else 0  # a flat positive image stays white, as before
    out = np.empty(values.shape, np.uint8)
    for rows in _blocks(values):
        block = values[rows].astype(np.float64)
        block[~np.isfinite(block)] = bottom
        if factor:
            np.subtract(block, bottom, out=block)
            np.multiply(block, factor, out=block)
            np.rint(block, out=block)
            np.clip(block, 0, 255, out=block)
            out[rows] = block
        else:
            out[rows] = fill
    return out, notes


def by_blocks(values: np.ndarray, to_unit) -> np.ndarray:
    """uint8 of ``to_unit(values)`` (a map onto [0, 1]; NaN becomes 0), computed by blocks of rows."""
    out = np.empty(values.shape, np.uint8)
    for rows in _blocks(values):
        unit = np.nan_to_num(np.asarray(to_unit(values[rows].astype(np.float64)), np.float64), nan=0.0,
                             posinf=1.0, neginf=0.0)
        out[rows] = np.clip(np.rint(unit * 255.0), 0, 255)
    return out
