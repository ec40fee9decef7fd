"""Localisation: does the map point at the object? Checked against a box or a mask the user gives.

- Pointing game (Zhang et al., ECCV 2016; TorchRay's ``PointingGame``): the map's maximum is a hit
  when it lies inside the ground truth or within a tolerance of it (15 px at 224 px in TorchRay).
- Energy-based pointing game (Wang et al., Score-CAM, CVPR-W 2020): the share of the map's mass
  inside the ground truth.
- IoU of the thresholded map with the ground truth.

Coordinates are pixels of the map's grid (the original image for ``CamResult.map``). A box
``(x0, y0, x1, y1)`` covers the pixels with ``x0 <= x < x1`` and ``y0 <= y < y1``, as the slice
``mask[y0:y1, x0:x1]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt

from ..errors import EvaluationError
from .common import as_map

TOLERANCE_AT_224 = 15.0  # TorchRay's pointing-game tolerance, in pixels of a 224-pixel image
Box = Sequence[float]


@dataclass(frozen=True)
class PointingResult:
    """One pointing-game trial."""

    point: tuple[int, int]  # (x, y) of the map's maximum
    hit: bool
    distance: float  # pixels from the point to the nearest ground-truth pixel (0 inside)
    tolerance: float  # pixels


@dataclass(frozen=True)
class Localisation:
    """Every localisation number for one map and one ground truth."""

    pointing: PointingResult
    energy: float  # share of the map's mass inside the ground truth, in [0, 1]
    iou: float  # of (map >= threshold * max) with the ground truth, in [0, 1]
    threshold: float  # relative to the map's maximum
    ground_truth_pixels: int


def scaled_tolerance(height: int, width: int, at_224: float = TOLERANCE_AT_224) -> float:
    """TorchRay's 15 px at 224 px, scaled to the shorter side of this image."""
    return float(at_224) * min(int(height), int(width)) / 224.0


def box_mask(box: Box, height: int, width: int) -> np.ndarray:
    """A boolean (height, width) mask of ``box`` = (x0, y0, x1, y1), clipped to the image.

    Raises:
        EvaluationError: not four numbers, x1 <= x0 or y1 <= y0, or entirely outside the image.
    """
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise EvaluationError(f"A box is four numbers x0, y0, x1, y1; got {box!r}.") from None
    if not (x1 > x0 and y1 > y0):
        raise EvaluationError(f"A box needs x1 > x0 and y1 > y0; got ({x0:g}, {y0:g}, {x1:g}, {y1:g}).")
    cols = slice(max(int(round(x0)), 0), min(int(round(x1)), width))
    rows = slice(max(int(round(y0)), 0), min(int(round(y1)), height))
    mask = np.zeros((height, width), dtype=bool)
    mask[rows, cols] = True
    if not mask.any():
        raise EvaluationError(f"The box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) lies outside the "
                              f"{width} x {height} image.")
    return mask


def ground_truth(height: int, width: int, box: Optional[Box] = None, mask: Optional[np.ndarray] = None,
                 boxes: Sequence[Box] = ()) -> np.ndarray:
    """The ground truth as a boolean (height, width) mask: a box, several boxes (their union) or a mask.

    A mask of another size is resized (nearest neighbour): an uploaded mask may be stored smaller.
    """
    given = [b for b in ([box] if box is not None else []) + list(boxes)]
    if mask is None and not given:
        raise EvaluationError("Give the ground truth as a box (x0, y0, x1, y1) or as a mask.")
    result = np.zeros((height, width), dtype=bool)
    for b in given:
        result |= box_mask(b, height, width)
    if mask is not None:
        array = np.asarray(mask)
        if array.ndim == 3:
            array = array.max(axis=-1)  # an RGB mask: any channel set counts
        if array.ndim != 2 or array.size == 0:
            raise EvaluationError(f"A mask must be a two-dimensional array; this one has shape {np.shape(mask)}.")
        # half the maximum: a 0/1 label mask, a 0/255 PNG and a noisy JPEG all binarize right
        binary = array if array.dtype == bool else array.astype(np.float64) > float(array.max()) / 2
        if binary.shape != (height, width):
            binary = cv2.resize(binary.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        result |= binary
    if not result.any():
        raise EvaluationError("The ground-truth mask is empty: mark the object's pixels in white.")
    return result


def peak(saliency: np.ndarray) -> tuple[int, int]:
    """(x, y) of the map's maximum; the first one in row order on a tie, as TorchRay's argmax."""
    row, col = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    return int(col), int(row)


def point_hits(point: tuple[float, float], truth: np.ndarray, tolerance: float) -> PointingResult:
    """Whether ``point`` = (x, y) lies within ``tolerance`` pixels of a ground-truth pixel.

    Same as TorchRay, which dilates the ground truth by a disc of radius ``tolerance``.
    """
    height, width = truth.shape
    x, y = int(round(point[0])), int(round(point[1]))
    if not (0 <= x < width and 0 <= y < height):
        raise EvaluationError(f"The point ({x}, {y}) lies outside the {width} x {height} image.")
    distance = float(distance_transform_edt(~truth)[y, x])  # Euclidean distance to the nearest True pixel
    return PointingResult((x, y), distance <= tolerance, distance, float(tolerance))


def pointing_game(saliency: np.ndarray, truth: np.ndarray, tolerance: float | None = None) -> PointingResult:
    """The pointing game: a hit when the map's maximum is within ``tolerance`` of the ground truth.

    Args:
        saliency: (H, W) map (or a CamResult).
        truth: (H, W) boolean ground truth (see ``ground_truth``).
        tolerance: pixels (default: 15 px at 224 px, scaled to this image).
    """
    saliency = _same_grid(saliency, truth)
    tolerance = scaled_tolerance(*truth.shape) if tolerance is None else float(tolerance)
    return point_hits(peak(saliency), truth, tolerance)


def centre_baseline(truth: np.ndarray, tolerance: float | None = None) -> PointingResult:
    """The pointing game played by the image's centre: the baseline every map must beat."""
    height, width = truth.shape
    tolerance = scaled_tolerance(height, width) if tolerance is None else float(tolerance)
    return point_hits(((width - 1) / 2, (height - 1) / 2), truth, tolerance)


def energy(saliency: np.ndarray, truth: np.ndarray) -> float:
    """Share of the map's mass (negative values count as 0) inside the ground truth; 0 for an empty map."""
    saliency = np.maximum(_same_grid(saliency, truth), 0.0).astype(np.float64)
    total = float(saliency.sum())
    return float(saliency[truth].sum()) / total if total > 0 else 0.0


def iou(saliency: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of the pixels where the map reaches ``threshold`` times its maximum with the ground truth."""
    if not 0.0 < float(threshold) <= 1.0:
        raise EvaluationError(f"The IoU threshold is a share of the map's maximum in (0, 1]; got {threshold}.")
    saliency = _same_grid(saliency, truth)
    top = float(saliency.max())
    if top <= 0:
        return 0.0
    region = saliency >= threshold * top
    return float((region & truth).sum()) / float((region | truth).sum())


def localise(saliency: np.ndarray, truth: np.ndarray, tolerance: float | None = None,
             threshold: float = 0.5) -> Localisation:
    """Pointing game, energy and IoU of one map against one ground truth."""
    return Localisation(pointing_game(saliency, truth, tolerance), energy(saliency, truth),
                        iou(saliency, truth, threshold), float(threshold), int(truth.sum()))


def _same_grid(saliency: np.ndarray, truth: np.ndarray) -> np.ndarray:
    saliency = as_map(saliency)
    if saliency.shape != truth.shape:
        raise EvaluationError(f"The map is {saliency.shape[1]} x {saliency.shape[0]} pixels but the ground truth "
                              f"is {truth.shape[1]} x {truth.shape[0]}; give both on the same image.")
    return saliency
