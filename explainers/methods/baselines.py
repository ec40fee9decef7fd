"""Baselines a saliency map should beat (Arun et al., Radiology: AI 2021, doi:10.1148/ryai.2021200267):
RandomCAM and SobelCAM, as pytorch-grad-cam ships them."""
from __future__ import annotations

import numpy as np
from PIL import Image
from pytorch_grad_cam.sobel_cam import sobel_cam

BASELINE_METHODS = ("randomcam", "sobelcam")  # shown as references on the Evaluate page and in the report


def random_cam(activations: np.ndarray, seed: int = 0) -> np.ndarray:
    """pytorch-grad-cam's RandomCAM: channel weights drawn uniformly from [-1, 1], the activations summed with them.

    Drawn from ``np.random.RandomState(seed)`` (the library uses the global generator): the same map for
    the same seed, equal to the library's after ``np.random.seed(seed)``.

    Args:
        activations: (1, C, h, w).
    Returns:
        (h, w) float32 map before ReLU.
    """
    weights = np.random.RandomState(seed).uniform(-1, 1, size=activations.shape[:2])  # (1, C)
    return (weights[:, :, None, None] * activations).sum(axis=1)[0].astype(np.float32)


def sobel_map(image: Image.Image) -> np.ndarray:
    """pytorch-grad-cam's SobelCAM on the image as the model sees it: the gradient magnitude of its grey levels.

    Returns:
        (H, W) float32, 0..255.
    """
    return sobel_cam(np.asarray(image.convert("RGB"), dtype=np.uint8)).astype(np.float32)
