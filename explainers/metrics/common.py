"""Helpers shared by the metrics: checking maps, resizing them, and scoring images with a model."""
from __future__ import annotations

from typing import Callable, Optional

import cv2
import numpy as np
import torch
from PIL import Image
from scipy.stats import spearmanr

from ..clones import borrowed_clone
from ..device import plain_out_of_memory
from ..errors import EvaluationError
from ..heads import probabilities
from ..models.spec import LoadedModel

Progress = Optional[Callable[[float, str], None]]


def as_map(saliency: object, what: str = "map") -> np.ndarray:
    """A 2D float32 copy of ``saliency`` (a CamResult's ``map`` is taken as it is).

    Raises:
        EvaluationError: not two-dimensional, empty, or holding NaN or infinity.
    """
    saliency = getattr(saliency, "map", saliency)
    array = np.asarray(saliency, dtype=np.float32)
    if array.ndim != 2 or array.size == 0:
        raise EvaluationError(f"The {what} must be a two-dimensional array (height x width); "
                              f"this one has shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise EvaluationError(f"The {what} holds NaN or infinite values; compute it again or clean it first.")
    return array.copy()


def resize_map(saliency: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize to (height, width), unnormalized (the whole image is resized too, never cropped)."""
    if saliency.shape == (height, width):
        return saliency.astype(np.float32, copy=True)
    return cv2.resize(saliency.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def pixels(model: LoadedModel, image: Image.Image) -> np.ndarray:
    """The image as the model sees it, before normalization: (H, W, 3) float32 in [0, 1]."""
    return np.asarray(model.preprocessing.resize(image), dtype=np.float32) / 255.0


def normalize(model: LoadedModel, rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(..., H, W, 3) pixels in [0, 1] -> (..., 3, H, W) model input on the model's device."""
    tensor = torch.as_tensor(np.asarray(rgb, dtype=np.float32) if not torch.is_tensor(rgb) else rgb)
    mean = torch.tensor(model.preprocessing.mean, dtype=torch.float32)
    std = torch.tensor(model.preprocessing.std, dtype=torch.float32)
    return ((tensor - mean) / std).movedim(-1, -3).contiguous().to(model.device)


def class_probabilities(model: LoadedModel, batch: torch.Tensor, class_index: int,
                        batch_size: int = 32) -> np.ndarray:
    """Probability (softmax, or sigmoid for a sigmoid head) of ``class_index`` for each input of ``batch`` (B, 3, H, W), in chunks.

    Runs on a private clone of the model under inference mode: nothing shared is touched.
    """
    out = []
    with plain_out_of_memory(model.device, "this evaluation"), borrowed_clone(model.module) as clone, \
            torch.inference_mode():
        for start in range(0, batch.shape[0], batch_size):
            logits = clone(batch[start:start + batch_size].to(model.device))
            out.append(probabilities(logits, model.head)[:, class_index].cpu())  # sigmoid heads: per label
    return torch.cat(out).numpy().astype(np.float64)


def top_class(model: LoadedModel, image: Image.Image) -> int:
    """The model's top-1 class for ``image``."""
    with borrowed_clone(model.module) as clone, torch.inference_mode():
        logits = clone(model.preprocessing.to_tensor(image).to(model.device))
    return int(torch.argmax(logits[0]))


def check_class(model: LoadedModel, class_index: int | None, image: Image.Image) -> int:
    """``class_index`` checked against the model, or the top-1 class when None."""
    if class_index is None:
        return top_class(model, image)
    if isinstance(class_index, bool) or not 0 <= int(class_index) < model.num_classes:
        raise EvaluationError(f"Class {class_index!r} is out of range: this model has classes "
                              f"0 to {model.num_classes - 1}.")
    return int(class_index)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps. A constant map has no ranking: two equal constant
    maps count as 1 (nothing changed), a constant and a varying one as 0."""
    a = np.nan_to_num(np.asarray(a, dtype=np.float64)).ravel()
    b = np.nan_to_num(np.asarray(b, dtype=np.float64)).ravel()
    if a.size == 0:
        return 0.0
    if a.std() == 0 or b.std() == 0:
        return 1.0 if a.std() == 0 and b.std() == 0 and np.allclose(a, b) else 0.0
    return float(spearmanr(a, b).statistic)
