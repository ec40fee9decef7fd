"""RefineCAM ("How to Evaluate and Refine your CAM", arXiv:2605.14641): per-layer Grad-CAM++ maps multiplied.

pytorch-grad-cam (master, 1.5.7) and TorchCAM 0.5 both ship it. We follow pytorch-grad-cam's: each
layer's map is scaled to [0, 1] at the input resolution, the maps are multiplied element-wise and the
product is scaled again. (TorchCAM resizes to the largest layer's grid instead of the input's.)
All layers come from CAMscope's ONE shared forward/backward pass.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pytorch_grad_cam as pgc
from pytorch_grad_cam.utils.image import scale_cam_image

from ..errors import MethodError
from .shared_pass import shared_cam


def refine_cam(acts: Sequence[np.ndarray], grads: Sequence[np.ndarray], target, size: tuple[int, int],
               eigen_smooth: bool = False) -> np.ndarray:
    """RefineCAM over two or more layers.

    Args:
        acts, grads: per layer, (1, C, h, w) activations and gradients from the shared pass.
        size: (width, height) of the model input.
    Returns:
        (H, W) float32 in [0, 1] at the model input's resolution.
    """
    if len(acts) < 2:
        raise MethodError("RefineCAM multiplies the maps of several layers: pick two or more layers.")
    per_layer = []
    for a, g in zip(acts, grads):
        cam = np.maximum(shared_cam(pgc.GradCAMPlusPlus, a, g, [target], eigen_smooth=eigen_smooth), 0)[None]
        cam = scale_cam_image(cam, size)  # BaseCAM.compute_cam_per_layer
        per_layer.append(scale_cam_image(np.maximum(cam, 0))[0])  # aggregate_multi_layers of one layer
    return scale_cam_image(np.prod(np.stack(per_layer), axis=0)[None])[0]
