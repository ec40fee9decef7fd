"""CAMscope's explanation engine: models, layers, CAM methods, targets, rendering.

No Streamlit here; usable from Python and from ``python -m explainers``.

Example:
    >>> from explainers import load_model, load_image, explain
    >>> model = load_model("efficientnet_lite0")
    >>> result = explain(model, load_image("cat.jpg"), methods=["gradcam", "gradcam++"])
    >>> result.results[0].map.shape  # (H, W) of the original image, values in [0, 1]
"""
from .errors import (ExplainerError, ImageError, LayerError, MethodError, ModelError, TargetError,
                     UnsafeCheckpointError)
from .results import CamResult, Explanation, Prediction

__all__ = [
    "ExplainerError", "ImageError", "LayerError", "MethodError", "ModelError", "TargetError",
    "UnsafeCheckpointError", "CamResult", "Explanation", "Prediction",
    "load_model", "list_models", "load_image", "predict", "explain", "list_layers", "list_methods",
    "overlay", "colorize", "normalize_maps",
]


def __getattr__(name: str):
    # Lazy imports keep ``import explainers`` light (torch is imported on first use).
    if name in ("load_model", "list_models", "MODELS"):
        from . import models
        return getattr(models, name)
    if name == "load_image":
        from .io import load_image
        return load_image
    if name in ("predict", "explain"):
        from . import explain as _explain
        return getattr(_explain, name)
    if name == "list_layers":
        from .layers import list_layers
        return list_layers
    if name in ("list_methods", "METHODS"):
        from . import methods
        return getattr(methods, name)
    if name in ("overlay", "colorize", "normalize_maps"):
        from . import render
        return getattr(render, name)
    raise AttributeError(f"module 'explainers' has no attribute {name!r}")
