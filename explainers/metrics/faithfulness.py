"""Faithfulness: does the model lose its class when the pixels the map points at are removed?

- Deletion and insertion curves (Petsiuk et al., RISE, BMVC 2018, arXiv:1806.07421): remove
  (or reveal) pixels in order of the map's importance and follow the class probability.
  A faithful map gives a LOW deletion area and a HIGH insertion area.
- ROAD (Rong et al., ICML 2022, arXiv:2202.00449), through pytorch-grad-cam's metrics: pixels are
  removed by noisy linear imputation, which leaks less of the removed shape than a constant colour.
- Average drop and increase in confidence (Chattopadhyay et al., Grad-CAM++, WACV 2018), through
  pytorch-grad-cam's ``CamMultImageConfidenceChange``: the model sees the image multiplied by the map.

Every score is the model's softmax probability of the class. Pixels are ordered on the model's
input grid (the whole image resized), where the perturbations happen.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
from scipy.integrate import trapezoid

from ..clones import borrowed_clone
from ..errors import EvaluationError
from ..models.spec import LoadedModel
from .common import Progress, as_map, check_class, class_probabilities, normalize, pixels, resize_map

# What a removed pixel becomes (pixel values, before normalization):
#   "blur":  the image blurred by a Gaussian (11 x 11, sigma 5), RISE's insertion start;
#   "zeros": black;
#   "mean":  the model's normalization mean colour, i.e. 0 after normalization (RISE's deletion substrate).
BASELINES = ("blur", "zeros", "mean")
DEFAULT_STEPS = 50
ROAD_REMOVED = (0.1, 0.3, 0.5, 0.7, 0.9)  # shares of pixels imputed (the ROAD paper sweeps 10%..90%)


@dataclass(frozen=True)
class Curve:
    """A deletion or insertion curve: the class probability as pixels are removed or revealed."""

    kind: str  # "deletion" | "insertion"
    fractions: np.ndarray  # (steps + 1,) share of the pixels removed (deletion) or revealed (insertion)
    probabilities: np.ndarray  # (steps + 1,) softmax probability of the class at each step
    area: float  # area under the curve (trapezoid rule over fractions 0..1), in [0, 1]
    baseline: str
    class_index: int


@dataclass(frozen=True)
class Faithfulness:
    """Deletion and insertion for one map."""

    deletion: Curve  # lower area is better
    insertion: Curve  # higher area is better

    @property
    def difference(self) -> float:
        """Insertion area minus deletion area: one number, higher is better."""
        return self.insertion.area - self.deletion.area


@dataclass(frozen=True)
class RoadScores:
    """ROAD: the class probability after imputing the most (MoRF) or least (LeRF) relevant pixels."""

    removed: np.ndarray  # (n,) share of the pixels imputed
    original: float  # probability on the untouched image
    most_relevant_first: np.ndarray  # (n,) probability after imputing the top share; low is better
    least_relevant_first: np.ndarray  # (n,) probability after imputing the bottom share; high is better

    @property
    def combined(self) -> float:
        """(mean LeRF - mean MoRF) / 2, as pytorch-grad-cam's ROADCombined; higher is better."""
        return float((self.least_relevant_first.mean() - self.most_relevant_first.mean()) / 2)


@dataclass(frozen=True)
class ConfidenceChange:
    """The class probability on the image and on the image multiplied by the map."""

    original: float
    masked: float

    @property
    def drop(self) -> float:
        """max(0, original - masked) / original: this image's share of the Average Drop."""
        return max(0.0, self.original - self.masked) / self.original if self.original > 0 else 0.0

    @property
    def increase(self) -> bool:
        """True when the masked image is MORE confident (counted by Increase in Confidence)."""
        return self.masked > self.original


def random_saliency(height: int, width: int, seed: int = 0, cells: tuple[int, int] | None = (7, 7)) -> np.ndarray:
    """A random map: the reference a real map must beat.

    Args:
        height, width: the map's size.
        seed: fixes the map.
        cells: uniform noise on this (rows, columns) grid, upsampled bilinearly like a CAM
            (default 7 x 7, a typical last-layer grid). None gives per-pixel noise, whose deletion
            curve falls fast for a wrong reason: scattered grey pixels wreck any image.
    Returns:
        (height, width) float32 in [0, 1].
    """
    rng = np.random.default_rng(seed)
    if cells is None:
        return rng.random((height, width)).astype(np.float32)
    coarse = rng.random(tuple(int(c) for c in cells)).astype(np.float32)
    fine = resize_map(coarse, height, width)
    return (fine - fine.min()) / max(float(fine.max() - fine.min()), 1e-7)


def baseline_pixels(rgb: np.ndarray, kind: str, mean: Sequence[float]) -> np.ndarray:
    """The image every removed pixel is taken from. Args: rgb (H, W, 3) in [0, 1]; kind in BASELINES."""
    if kind == "blur":
        return cv2.GaussianBlur(rgb, (11, 11), 5)
    if kind == "zeros":
        return np.zeros_like(rgb)
    if kind == "mean":
        return np.broadcast_to(np.asarray(mean, np.float32), rgb.shape).copy()
    raise EvaluationError(f"Unknown baseline {kind!r}: choose one of {', '.join(BASELINES)}.")


def importance_ranks(saliency: np.ndarray, seed: int = 0) -> np.ndarray:
    """Rank of each pixel, 0 = most important. Ties are broken at random (fixed seed): a flat map
    must not remove pixels top-left first, which would favour any object on the right."""
    flat = saliency.ravel()
    order = np.lexsort((np.random.default_rng(seed).random(flat.size), -flat))
    ranks = np.empty(flat.size, dtype=np.int64)
    ranks[order] = np.arange(flat.size)
    return ranks.reshape(saliency.shape)


def curve(model: LoadedModel, image: Image.Image, saliency: np.ndarray, kind: str = "deletion",
          class_index: int | None = None, steps: int = DEFAULT_STEPS, baseline: str | None = None,
          batch_size: int = 32, progress: Progress = None) -> Curve:
    """One deletion or insertion curve (RISE's CausalMetric, with batched passes).

    Args:
        model: from ``load_model``.
        image: the explained image.
        saliency: (h, w) map (any size; resized to the model's input) or a CamResult.
        kind: "deletion" (start from the image, remove the most important pixels first) or
            "insertion" (start from the baseline, reveal the most important pixels first).
        class_index: the class to follow (default: the model's top-1 class).
        steps: how many steps from 0 to all pixels; ``steps + 1`` forward passes.
        baseline: "blur", "zeros" or "mean" (default: "mean" for deletion, "blur" for insertion, as RISE).
        batch_size: images per forward pass.
        progress: called with (fraction done, message).
    Returns:
        A Curve with ``steps + 1`` points and its area.
    """
    if kind not in ("deletion", "insertion"):
        raise EvaluationError(f"A curve is 'deletion' or 'insertion', not {kind!r}.")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise EvaluationError(f"steps must be a whole number of at least 1, not {steps!r}.")
    baseline = baseline or ("mean" if kind == "deletion" else "blur")
    class_index = check_class(model, class_index, image)
    rgb = pixels(model, image)  # (H, W, 3)
    height, width = rgb.shape[:2]
    ranks = torch.from_numpy(importance_ranks(resize_map(as_map(saliency), height, width)))
    x = normalize(model, rgb)  # (3, H, W)
    base = normalize(model, baseline_pixels(rgb, baseline, model.preprocessing.mean))
    start, end = (x, base) if kind == "deletion" else (base, x)
    counts = np.rint(np.arange(steps + 1) * (height * width) / steps).astype(np.int64)
    ranks = ranks.to(x.device)
    probs = []
    for first in range(0, steps + 1, batch_size):
        chunk = torch.from_numpy(counts[first:first + batch_size]).to(x.device)
        changed = (ranks[None] < chunk[:, None, None])[:, None]  # (B, 1, H, W): pixels already swapped
        batch = torch.where(changed, end[None], start[None])  # (B, 3, H, W)
        probs.append(class_probabilities(model, batch, class_index, batch_size))
        if progress is not None:
            progress(min((first + len(chunk)) / (steps + 1), 1.0), f"{kind} curve")
    fractions = counts / float(height * width)
    values = np.concatenate(probs)
    return Curve(kind, fractions, values, float(trapezoid(values, fractions)), baseline, class_index)


def deletion_insertion(model: LoadedModel, image: Image.Image, saliency: np.ndarray,
                       class_index: int | None = None, steps: int = DEFAULT_STEPS,
                       deletion_baseline: str = "mean", insertion_baseline: str = "blur",
                       batch_size: int = 32, progress: Progress = None) -> Faithfulness:
    """Both RISE curves for one map; ``2 * (steps + 1)`` forward passes. Args as in ``curve``."""
    class_index = check_class(model, class_index, image)
    half = (lambda f, m: progress(f / 2, m)) if progress else None
    later = (lambda f, m: progress(0.5 + f / 2, m)) if progress else None
    deletion = curve(model, image, saliency, "deletion", class_index, steps, deletion_baseline, batch_size, half)
    insertion = curve(model, image, saliency, "insertion", class_index, steps, insertion_baseline, batch_size,
                      later)
    return Faithfulness(deletion, insertion)


def road(model: LoadedModel, image: Image.Image, saliency: np.ndarray, class_index: int | None = None,
         removed: Sequence[float] = ROAD_REMOVED, seed: int = 0, progress: Progress = None) -> RoadScores:
    """ROAD most- and least-relevant-first with pytorch-grad-cam's imputation (one batched pass).

    Each share costs a sparse linear solve (about a second at 224 x 224).

    Args:
        removed: shares of the pixels to impute, each in (0, 1).
        seed: for the imputer's noise (it draws from torch's generator; the global one is left as it was).
    """
    shares = np.asarray(removed, dtype=np.float64)
    if shares.ndim != 1 or shares.size == 0 or np.any((shares <= 0) | (shares >= 1)):
        raise EvaluationError("ROAD's removed shares must be numbers strictly between 0 and 1, e.g. 0.1, 0.5, 0.9.")
    class_index = check_class(model, class_index, image)
    rgb = pixels(model, image)
    x = normalize(model, rgb).cpu()
    mask = torch.from_numpy(resize_map(as_map(saliency), *rgb.shape[:2]))
    perturbed = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i, share in enumerate(shares):
            percentile = 100.0 * (1.0 - share)  # the library keeps pixels below this percentile
            for metric in (ROADMostRelevantFirst, ROADLeastRelevantFirst):
                # the library's perturbation alone: its __call__ runs one pass per image, we batch them
                perturbed.append(metric(percentile).perturbation(x, mask))
            if progress is not None:
                progress((i + 1) / (len(shares) + 1), f"ROAD imputation {i + 1}/{len(shares)}")
    batch = torch.stack([x] + perturbed)
    probs = class_probabilities(model, batch, class_index)
    if progress is not None:
        progress(1.0, "ROAD done")
    return RoadScores(shares, float(probs[0]), probs[1::2], probs[2::2])


def confidence_change(model: LoadedModel, image: Image.Image, saliency: np.ndarray,
                      class_index: int | None = None) -> ConfidenceChange:
    """The class probability on the image and on the image times the map (scaled to [0, 1]).

    The map multiplies the NORMALIZED input, as in pytorch-grad-cam, so a zero pulls a pixel
    to the normalization mean colour.
    """
    class_index = check_class(model, class_index, image)
    rgb = pixels(model, image)
    cam = resize_map(as_map(saliency), *rgb.shape[:2])
    span = float(cam.max() - cam.min())
    cam = (cam - cam.min()) / span if span > 0 else np.zeros_like(cam)
    x = normalize(model, rgb)[None]
    target = ClassifierOutputSoftmaxTarget(class_index)
    with borrowed_clone(model.module) as clone:
        masked = CamMultImageConfidenceChange()(x, cam[None], [target], clone, return_diff=False)
    original = class_probabilities(model, x, class_index)[0]
    return ConfidenceChange(float(original), float(np.asarray(masked).ravel()[0]))


def average_drop(changes: Sequence[ConfidenceChange]) -> float:
    """Average Drop over images, in percent (Grad-CAM++): lower is better."""
    return 100.0 * float(np.mean([c.drop for c in changes])) if changes else float("nan")


def increase_in_confidence(changes: Sequence[ConfidenceChange]) -> float:
    """Increase in Confidence over images, in percent (Grad-CAM++): higher is better."""
    return 100.0 * float(np.mean([c.increase for c in changes])) if changes else float("nan")
