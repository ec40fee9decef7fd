"""What a metric run was set to, in words, so a report's numbers can be computed again.

Each function returns {"setting name": "value"} rows for the report's metric table.
"""
from __future__ import annotations

import hashlib
import time
import warnings
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam.metrics.road import ROADMostRelevantFirst

from ..models.spec import LoadedModel
from .common import normalize, pixels
from .faithfulness import ROAD_REMOVED, random_saliency

FILLS = {"blur": "the image blurred (Gaussian 11 × 11, sigma 5)", "zeros": "black",
         "mean": "the model's normalization mean colour"}


def faithfulness_settings(steps: int, deletion: str, insertion: str, random_reference: bool,
                          road: bool, removed: Sequence[float] = ROAD_REMOVED) -> dict[str, str]:
    """The deletion/insertion (and ROAD) settings, with what each fill means."""
    rows = {"Faithfulness setting · steps": f"{int(steps)} ({int(steps) + 1} forward passes per curve)",
            "Faithfulness setting · deletion fills removed pixels with": f"{deletion}: {FILLS.get(deletion, '?')}",
            "Faithfulness setting · insertion starts from": f"{insertion}: {FILLS.get(insertion, '?')}",
            "Faithfulness setting · random reference": (
                "random_saliency(seed=0): uniform noise on a 7 × 7 grid, upsampled bilinearly"
                if random_reference else "none")}
    if road:
        shares = ", ".join(f"{100 * s:g}%" for s in removed)
        rows["Faithfulness setting · ROAD"] = (f"pixels imputed: {shares}; noisy linear imputation "
                                               "(pytorch-grad-cam), seed 0")
    return rows


def localisation_settings(height: int, width: int, tolerance_at_224: float, tolerance: float, threshold: float,
                          box: Optional[Sequence[float]] = None, mask: Optional[np.ndarray] = None,
                          mask_name: str = "") -> dict[str, str]:
    """The ground truth (box coordinates, or the mask's file name, size and checksum) and the thresholds."""
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        truth = f"box x0={x0}, y0={y0}, x1={x1}, y1={y1} (pixels of the {width} × {height} image; x0 ≤ x < x1)"
    elif mask is not None:
        digest = hashlib.sha256(np.ascontiguousarray(mask).tobytes()).hexdigest()[:12]
        truth = (f"mask {mask_name or '(uploaded)'}, {mask.shape[1]} × {mask.shape[0]} px, pixels sha256 {digest}, "
                 f"resized to {width} × {height}")
    else:
        truth = "none"
    return {"Localisation setting · ground truth": truth,
            "Localisation setting · pointing tolerance": f"{tolerance_at_224:g} px at 224 px = {tolerance:.1f} px here",
            "Localisation setting · IoU threshold": f"{threshold:g} of the map's maximum"}


def time_road_step(model: LoadedModel, image: Image.Image, share: float = 0.5) -> float:
    """Seconds ONE ROAD imputation takes here (the middle share, on the model's input grid).

    A ROAD run imputes ``2 * len(removed)`` images (most and least relevant first), so one method's
    run takes about ``2 * len(removed) * time_road_step(...)`` seconds (measured on the cat with
    EfficientNet-Lite0 on one CPU thread: 1.2 s here, 10.1 s for the whole run of 10 imputations).
    """
    rgb = pixels(model, image)
    x = normalize(model, rgb).cpu()
    mask = torch.from_numpy(random_saliency(*rgb.shape[:2]))
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "__array_wrap__", DeprecationWarning)  # the library's numpy call
        torch.manual_seed(0)
        start = time.perf_counter()
        ROADMostRelevantFirst(100.0 * (1.0 - share)).perturbation(x, mask)
        return time.perf_counter() - start


def road_seconds(step_seconds: float, removed: Sequence[float] = ROAD_REMOVED) -> float:
    """One method's ROAD run, from one imputation's time: every share, most and least relevant first."""
    return 2 * len(removed) * float(step_seconds)
