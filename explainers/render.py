"""Rendering: pure functions from an image and a map to RGB arrays. No torch here.

A rendering change (opacity, colormap, shared scale) never recomputes a map: these
functions take the maps the engine already returned.
"""
from __future__ import annotations

import io
from typing import Sequence

import cv2
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import ExplainerError

_EPS = 1e-7  # same epsilon as pytorch-grad-cam's scale_cam_image


def _colormap(name: str):
    try:
        return matplotlib.colormaps[name]
    except KeyError:
        examples = "jet, turbo, viridis, inferno, magma, plasma, gray"
        raise ExplainerError(f"Unknown colormap {name!r}: use a matplotlib colormap name such as {examples}.") from None


def colorize(cam: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """Color a map with a matplotlib colormap.

    Args:
        cam: (H, W) values in [0, 1]; NaN counts as 0, values outside are clipped.
        colormap: any name in ``matplotlib.colormaps``.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    cam = np.asarray(cam, dtype=np.float64)
    if cam.ndim != 2:
        raise ExplainerError(f"A map must be two-dimensional (height x width); this one has shape {cam.shape}.")
    cmap = _colormap(colormap)
    values = np.clip(np.nan_to_num(cam, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    rgba = cmap(values, bytes=True)  # (H, W, 4) uint8, matplotlib's own quantization
    return np.ascontiguousarray(rgba[..., :3])


def _as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    elif array.ndim == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    if array.ndim != 3 or array.shape[2] != 3:
        raise ExplainerError(f"An image must be (height, width, 3) RGB; this one has shape {array.shape}.")
    if array.dtype != np.uint8:
        # Float images are taken as [0, 1] (matplotlib's convention).
        scale = 255.0 if np.issubdtype(array.dtype, np.floating) else 1.0
        array = np.clip(np.rint(array.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    return array


def overlay(image: Image.Image | np.ndarray, cam: np.ndarray, opacity: float = 0.5,
            colormap: str = "jet") -> np.ndarray:
    """Blend a colored map over an image.

    Args:
        image: PIL image or (H, W[, 3]) array; grayscale is turned into RGB.
        cam: (h, w) map in [0, 1]; resized bilinearly to the image's (H, W) when it differs.
        opacity: weight of the heatmap, in [0, 1]: 0 gives the image, 1 the heatmap.
        colormap: matplotlib colormap name.

    Returns:
        (H, W, 3) uint8 RGB, ``(1 - opacity) * image + opacity * colorize(cam)`` rounded.
    """
    if not 0.0 <= float(opacity) <= 1.0:
        raise ExplainerError(f"Opacity must be between 0 and 1; got {opacity}.")
    rgb = _as_rgb_array(image)
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ExplainerError(f"A map must be two-dimensional (height x width); this one has shape {cam.shape}.")
    if cam.shape != rgb.shape[:2]:
        cam = upsample(cam, rgb.shape[:2])
    heat = colorize(cam, colormap)
    if opacity == 0.0:
        blended = rgb.copy()
    elif opacity == 1.0:
        blended = heat
    else:
        blended = np.clip(np.rint((1.0 - opacity) * rgb.astype(np.float64) + opacity * heat.astype(np.float64)),
                          0, 255).astype(np.uint8)
    return hatch_outside(blended, np.isnan(cam), rgb)


def hatch_outside(rgb: np.ndarray, outside: np.ndarray, image: np.ndarray, period: int = 12) -> np.ndarray:
    """Grey diagonal hatching over ``image`` where ``outside`` is True: the part of the image the model did
    not see (a centre crop), so no one reads a missing map as a cold one."""
    if not outside.any():
        return rgb
    out = rgb.copy()
    rows, cols = np.indices(outside.shape)
    stripes = ((rows + cols) % period) < period // 3
    light = image[outside].astype(np.float64).mean(axis=-1, keepdims=True)  # (n, 1): a faint grey picture
    out[outside] = (0.35 * light + 0.65 * 160).astype(np.uint8)
    out[outside & stripes] = 96
    return out


def upsample(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a map bilinearly, without normalizing it.

    Args:
        raw: (h, w) map.
        size: (height, width) wanted.

    Returns:
        (height, width) float32.
    """
    height, width = int(size[0]), int(size[1])
    if height <= 0 or width <= 0:
        raise ExplainerError(f"A map can only be resized to a positive size; got {size}.")
    raw = np.asarray(raw, dtype=np.float32)
    if raw.ndim != 2:
        raise ExplainerError(f"A map must be two-dimensional (height x width); this one has shape {raw.shape}.")
    if raw.shape == (height, width):
        return raw.copy()
    return cv2.resize(raw, (width, height), interpolation=cv2.INTER_LINEAR)  # cv2 takes (w, h)


def normalize_maps(raws: Sequence[np.ndarray], size: tuple[int, int], shared: bool = False,
                   preprocessing=None) -> list[np.ndarray]:
    """Upsample maps to one size and scale them to [0, 1].

    Args:
        raws: maps at layer resolution (``CamResult.raw``), not normalized.
        size: (height, width) of the output maps.
        shared: False scales each map by its own min..max (pytorch-grad-cam's
            ``scale_cam_image``); True scales all by one min..max over the set, so a
            weaker map stays weaker.
        preprocessing: the model's ``Preprocessing``; with a "letterbox" or "crop" fit the maps go
            back through it (``explainers.fit``), NaN where the model did not see the image.

    Returns:
        One (height, width) float32 map per input, values in [0, 1] (NaN outside a crop).
    """
    maps = [_on_size(r, size, preprocessing) for r in raws]
    if not maps:
        return []
    if shared:
        low = min(float(np.nanmin(m)) for m in maps)
        high = max(float(np.nanmax(m)) for m in maps)
        return [_scale(m, low, high) for m in maps]
    return [_scale(m, float(np.nanmin(m)), float(np.nanmax(m))) for m in maps]


def scale_to_range(raw: np.ndarray, size: tuple[int, int], low: float, high: float,
                   preprocessing=None) -> np.ndarray:
    """Upsample a raw map to ``size`` (height, width) and scale ``low..high`` (raw units) to 0..1.

    Used for a range shared by maps of the same units (e.g. one method family); values outside clip.
    With a "letterbox" or "crop" ``preprocessing`` the map goes back through its fit (NaN outside a crop).
    """
    return np.clip(_scale(_on_size(raw, size, preprocessing), float(low), float(high)), 0.0, 1.0)


def _on_size(raw: np.ndarray, size: tuple[int, int], preprocessing=None) -> np.ndarray:
    """A raw map at ``size`` (height, width), unscaled: upsampled, or placed back through a letterbox or
    crop fit (NaN where the model did not see the image)."""
    raw = np.nan_to_num(np.asarray(raw, dtype=np.float32))
    if preprocessing is None or preprocessing.fit == "squash":
        return upsample(raw, size)
    from .fit import raw_on_image  # fit imports nothing from here, but stays out of render's import time

    place = preprocessing.placement(size[1], size[0])
    return raw_on_image(raw, preprocessing.input_size, place, size[1], size[0])


def with_colorbar(picture: Image.Image | np.ndarray, colormap: str, low: float, high: float) -> np.ndarray:
    """``picture`` with a colorbar strip under it, labelled with the raw values at its two ends.

    Returns:
        (H + b + t, W, 3) uint8 with b = max(6, W // 40) and t = max(12, W // 14): the picture, the
        colormap from 0 (left) to 1 (right), and a white label row with ``low`` at the left and
        ``high`` at the right (large enough to read when the panel is shown a third of its size).
    """
    rgb = _as_rgb_array(picture)
    width = rgb.shape[1]
    bar_height, height = max(6, width // 40), max(12, width // 14)
    bar = colorize(np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (bar_height, 1)), colormap)
    labels = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(labels)
    font = _font(height - 4)
    right = f"{high:.3g}"
    draw.text((2, 0), f"{low:.3g}", fill=(0, 0, 0), font=font)
    draw.text((max(2, width - 2 - int(draw.textlength(right, font=font))), 0), right, fill=(0, 0, 0), font=font)
    return np.concatenate([rgb, bar, np.asarray(labels)], axis=0)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(8, int(size)))  # Pillow's bundled font, scalable with FreeType


def blank_panel(image: Image.Image | np.ndarray, message: str) -> np.ndarray:
    """The image dimmed to gray with ``message`` (lines split on newlines) across it: a map with
    nothing to draw says so instead of showing a flat tint.

    Returns:
        (H, W, 3) uint8.
    """
    gray = _as_rgb_array(image).astype(np.float32).mean(axis=2, keepdims=True)
    canvas = Image.fromarray(np.repeat(np.rint(0.35 * gray + 0.65 * 235).astype(np.uint8), 3, axis=2))
    draw = ImageDraw.Draw(canvas)
    lines = message.split("\n")
    font = _font(max(10, canvas.width // 16))
    step = int(font.size * 1.3) if hasattr(font, "size") else 14
    top = max(0, canvas.height // 2 - step * len(lines) // 2)
    for i, line in enumerate(lines):
        x = max(2, (canvas.width - int(draw.textlength(line, font=font))) // 2)
        draw.text((x, top + step * i), line, fill=(160, 0, 0), font=font)
    return np.asarray(canvas)


def _scale(m: np.ndarray, low: float, high: float) -> np.ndarray:
    # range first, then epsilon (as scale_cam_image does), so a constant map gives 0, not 0/0
    return ((m - low) / (_EPS + (high - low))).astype(np.float32)


def side_by_side(images: list[np.ndarray], labels: list[str], columns: int = 4, caption_height: int = 18,
                 background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Tile RGB images in a grid, each with a caption above it (PIL's default font).

    Args:
        images: (H, W, 3) uint8 arrays; each cell is as large as the largest image.
        labels: one caption per image.
        columns: cells per row.

    Returns:
        (rows * (cell_h + caption_height), columns * cell_w, 3) uint8.
    """
    if len(images) != len(labels):
        raise ExplainerError(f"Got {len(images)} images but {len(labels)} captions; give one caption per image.")
    if not images:
        raise ExplainerError("There are no images to put side by side.")
    arrays = [_as_rgb_array(i) for i in images]
    cell_h = max(a.shape[0] for a in arrays)
    cell_w = max(a.shape[1] for a in arrays)
    columns = max(1, min(columns, len(arrays)))
    rows = -(-len(arrays) // columns)
    canvas = Image.new("RGB", (columns * cell_w, rows * (cell_h + caption_height)), background)
    draw = ImageDraw.Draw(canvas)
    for i, (array, label) in enumerate(zip(arrays, labels)):
        x, y = (i % columns) * cell_w, (i // columns) * (cell_h + caption_height)
        draw.text((x + 2, y + 2), label, fill=(0, 0, 0))
        canvas.paste(Image.fromarray(array), (x, y + caption_height))
    return np.asarray(canvas)


def to_png_bytes(array: np.ndarray | Image.Image) -> bytes:
    """Encode an RGB (or grayscale) uint8 array as PNG, without metadata."""
    image = array if isinstance(array, Image.Image) else Image.fromarray(np.asarray(array))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
