"""How an image of any shape fits the model's input, and how a map goes back onto the image.

Three fits (``Preprocessing.fit``):
- ``squash``: the whole image resized to the input size (aspect ratio lost; the map covers everything);
- ``letterbox``: the whole image resized to fit, keeping its aspect ratio, centred on a canvas of the
  mean color (the padding is 0 after normalization); the map's padded part is dropped;
- ``crop``: the model's own evaluation transform (torchvision / timm): shorter side resized to
  ``input / crop_pct``, then a centre crop; the map covers the crop only, NaN outside it.

Geometry only (numpy and OpenCV, no torch), so rendering can use it too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ExplainerError

FITS = ("squash", "letterbox", "crop")
FIT_LABELS = {"squash": "Squash (whole image, stretched)", "letterbox": "Letterbox (whole image, padded)",
              "crop": "Centre crop (the model's own transform)"}
_EPS = 1e-7  # pytorch-grad-cam's epsilon


@dataclass(frozen=True)
class Placement:
    """Where the model's input lies on the image, and which part of the input holds image pixels.

    ``source``: (x0, y0, x1, y1) box of the original image, in its pixels, that the input shows.
    ``content``: (x0, y0, x1, y1) box of the input, in input pixels, that holds that part of the image.
    ``scaled``: (width, height) of the image once resized (before padding or cropping).
    """

    source: tuple[int, int, int, int]
    content: tuple[int, int, int, int]
    scaled: tuple[int, int]


def check_fit(fit: str) -> str:
    if fit not in FITS:
        raise ExplainerError(f"Unknown fit {fit!r}: use one of {', '.join(FITS)}.")
    return fit


def placement(fit: str, input_size: tuple[int, int], width: int, height: int, crop_pct: float = 0.875) -> Placement:
    """The placement of a ``width`` x ``height`` image in an input of ``input_size`` (height, width)."""
    h_in, w_in = input_size
    if check_fit(fit) == "squash":
        return Placement((0, 0, width, height), (0, 0, w_in, h_in), (w_in, h_in))
    if fit == "letterbox":
        scale = min(w_in / width, h_in / height)
        sw, sh = max(1, min(w_in, round(width * scale))), max(1, min(h_in, round(height * scale)))
        x0, y0 = (w_in - sw) // 2, (h_in - sh) // 2
        return Placement((0, 0, width, height), (x0, y0, x0 + sw, y0 + sh), (sw, sh))
    # crop: torchvision's Resize(shorter side) (which truncates the longer side) + CenterCrop
    short = math.floor(min(h_in, w_in) / crop_pct + 1e-6)  # as timm; the epsilon keeps 224 / (224 / 236) at 236
    if width <= height:
        sw, sh = short, int(short * height / width)
    else:
        sw, sh = int(short * width / height), short
    if sw < w_in or sh < h_in:  # a non-square input the short side cannot cover: scale up until it fits
        grow = max(w_in / sw, h_in / sh)
        sw, sh = max(w_in, math.ceil(sw * grow)), max(h_in, math.ceil(sh * grow))
    left, top = int(round((sw - w_in) / 2.0)), int(round((sh - h_in) / 2.0))  # as CenterCrop rounds
    box = (left / sw * width, top / sh * height, (left + w_in) / sw * width, (top + h_in) / sh * height)
    x0, y0 = int(math.floor(box[0])), int(math.floor(box[1]))
    x1, y1 = min(width, max(x0 + 1, int(math.ceil(box[2])))), min(height, max(y0 + 1, int(math.ceil(box[3]))))
    return Placement((x0, y0, x1, y1), (0, 0, w_in, h_in), (sw, sh))


def raw_on_image(raw: np.ndarray, input_size: tuple[int, int], place: Placement, width: int,
                 height: int) -> np.ndarray:
    """A map (layer or input resolution, not normalized) on the image grid, NaN where the input did not
    show the image (crop). Bilinear throughout, values kept in the map's own units."""
    import cv2  # here, so `python -m explainers --help` (which lists FITS) stays light

    h_in, w_in = input_size
    raw = np.asarray(raw, dtype=np.float32)
    on_input = cv2.resize(raw, (w_in, h_in), interpolation=cv2.INTER_LINEAR) if raw.shape != (h_in, w_in) else raw
    cx0, cy0, cx1, cy1 = place.content
    sx0, sy0, sx1, sy1 = place.source
    region = cv2.resize(np.ascontiguousarray(on_input[cy0:cy1, cx0:cx1]), (sx1 - sx0, sy1 - sy0),
                        interpolation=cv2.INTER_LINEAR)
    out = np.full((height, width), np.nan, dtype=np.float32)
    out[sy0:sy1, sx0:sx1] = region
    return out


def normalized_on_image(raw: np.ndarray, input_size: tuple[int, int], place: Placement, width: int,
                        height: int) -> np.ndarray:
    """As pytorch-grad-cam scales one map (ReLU, normalize, resize, normalize) but through the placement:
    values in [0, 1] over the part of the image the model saw, NaN elsewhere."""
    raw = np.maximum(np.asarray(raw, dtype=np.float32), 0)
    raw = (raw - raw.min()) / (_EPS + raw.max() - raw.min())
    out = raw_on_image(raw, input_size, place, width, height)
    inside = ~np.isnan(out)
    low, high = float(out[inside].min()), float(out[inside].max())
    out[inside] = np.clip((out[inside] - low) / (_EPS + high - low), 0.0, 1.0)
    return out


def aspect_warning(width: int, height: int, input_size: tuple[int, int], fit: str, limit: float = 2.0) -> str | None:
    """A sentence when the image's aspect ratio is more than ``limit`` times the input's, else None."""
    h_in, w_in = input_size
    ratio = (width / height) / (w_in / h_in)
    if max(ratio, 1 / ratio) <= limit:
        return None
    effect = {"squash": "squashed: shapes are distorted, which can change the prediction and the map",
              "letterbox": "letterboxed: the image fills only part of the input, at a lower resolution",
              "crop": "cropped: the map covers only the centre, the rest is hatched"}[fit]
    return (f"This image is {width} × {height} (aspect {width / height:.2f}), far from the model's "
            f"{w_in} × {h_in}; it is {effect}. Try another fit in the sidebar.")
