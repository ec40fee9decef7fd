"""Result types shared by the engine, the command line and the app."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Prediction:
    """One class of the model's prediction for an image."""

    index: int
    name: str
    score: float  # the logit
    probability: float  # softmax over all classes, or sigmoid of this label's logit (sigmoid heads)
    head: str = "softmax"  # "sigmoid": an independent label, its probability not part of one distribution


@dataclass(frozen=True)
class CamResult:
    """One explanation map: one method, one layer, one target."""

    method: str  # registry key, e.g. "gradcam"
    method_name: str  # display name, e.g. "Grad-CAM"
    layer: str  # module name in the model, e.g. "bn2"
    class_index: int
    class_name: str
    score: float  # logit of class_index (or logit difference for a contrast)
    probability: float  # probability of class_index
    raw: np.ndarray  # (h, w) float32 at layer resolution, after ReLU, NOT normalized
    map: np.ndarray  # (H, W) float32 on the original image grid, normalized to [0, 1]
    seconds: float  # time attributed to this map (shared pass split evenly)
    contrast_index: int | None = None  # set for "class_index rather than contrast_index"
    contrast_name: str | None = None

    @property
    def label(self) -> str:
        if self.contrast_index is None:
            return self.class_name
        return f"{self.class_name} rather than {self.contrast_name}"


@dataclass(frozen=True)
class Explanation:
    """Everything one call to explain() produced for one image."""

    model: str
    image_size: tuple[int, int]  # (width, height) of the original image
    input_size: tuple[int, int]  # (height, width) the model saw
    predictions: list[Prediction]  # top 5, best first
    results: list[CamResult]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    head: str = "softmax"  # "sigmoid": probabilities are independent labels, not one distribution
    fit: str = "squash"  # how the image met the input: "squash", "letterbox" or "crop" (explainers.fit)

    def result(self, method: str, class_index: int | None = None, layer: str | None = None) -> CamResult:
        for r in self.results:
            if r.method == method and class_index in (None, r.class_index) and layer in (None, r.layer):
                return r
        raise KeyError(f"no result for method {method!r}, class {class_index}, layer {layer}")
