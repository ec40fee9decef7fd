"""What an input image may be (size, shape) and the notes a loaded image carries about its reading.

Shared by ordinary images (io.py) and DICOM (dicom.py) so both refuse the same things
with the same sentences, and both tell the user when pixels were rescaled or replaced.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from typing import Optional

from PIL import Image

from .errors import ImageError

MAX_PIXELS_ENV = "CAMSCOPE_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 50_000_000
# A map of a 3000 x 2 strip squeezed into a square input means nothing, and such
# strips cannot be drawn (they round to zero pixels high when shown at page width).
MAX_ASPECT = 100
# warnings.catch_warnings changes process-wide state (Python 3.11); every reader that uses it
# holds this one lock, so concurrent loads never restore each other's filters in the wrong order.
WARNINGS_LOCK = threading.RLock()
NOTES_KEY = "camscope_notes"  # in Image.info: a list of sentences about how the pixels were read
FLAT = "Every pixel of the image has the same colour: a map of it says nothing about what the model sees."


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


def too_large_message(size: Optional[tuple[int, int]], limit: int) -> str:
    found = f" ({size[0]} x {size[1]} pixels)" if size else ""
    return (f"The image is too large{found}: CAMscope reads images up to {limit:,} pixels "
            f"(set {MAX_PIXELS_ENV} to change this).")


def check_size(width: int, height: int, limit: int) -> None:
    """Refuse an image over the pixel limit, empty, or whose sides are more than MAX_ASPECT times apart."""
    if width < 1 or height < 1:
        raise ImageError(f"The image has no pixels ({width} x {height}).")
    if width * height > limit:
        raise ImageError(too_large_message((width, height), limit))
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageError(f"The image is too narrow ({width} x {height} pixels): CAMscope reads images "
                         f"whose width and height are at most {MAX_ASPECT} times apart.")


def add_note(image: Image.Image, note: str) -> None:
    """Attach a sentence about how the pixels were read (shown by the app, written by the CLI)."""
    notes = image.info.setdefault(NOTES_KEY, [])
    if note not in notes:
        notes.append(note)


def load_notes(image: Image.Image) -> list[str]:
    """The sentences ``load_image`` attached: rescaled ranges, replaced NaN/Inf, a flat image, ..."""
    return list(image.info.get(NOTES_KEY, []))


def note_if_flat(image: Image.Image) -> None:
    """A picture of one colour must not reach the model unannounced."""
    if all(low == high for low, high in image.getextrema()):
        add_note(image, FLAT)


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


def release_memory() -> None:
    """Hand freed heap back to the OS after a large decode (glibc only; elsewhere nothing happens).

    Without it a server keeps the peak of its largest decode for good (measured: 518 MB
    after one tiny WebP of 7000 x 7000 pixels).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
