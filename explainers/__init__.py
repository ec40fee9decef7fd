"""CAMscope's explanation engine: models, layers, CAM methods, targets, rendering.

No Streamlit here; usable from Python and from ``python -m explainers``.

Example:
    >>> from explainers import load_model, load_image, explain
    >>> model = load_model("efficientnet_lite0")
    >>> result = explain(model, load_image("cat.jpg"), methods=["gradcam", "gradcam++"])
    >>> result.results[0].map.shape  # (H, W) of the original image, values in [0, 1]
"""
import importlib
import sys
import types

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
        from . import pipeline
        return getattr(pipeline, name)
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


class _PipelineAlias(types.ModuleType):
    """``explainers.explain`` as an import path: the old name of ``explainers.pipeline``.

    No file ``explain.py`` exists on purpose: importing a submodule sets it as an attribute of
    its package, so ``import explainers.explain`` used to replace the function ``explain`` by the
    module. This entry in ``sys.modules`` is found before any file, so nothing is ever set on
    the package, and ``from explainers.explain import explain, on_grid`` keeps working (lazily).
    """

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(importlib.import_module(f"{__name__}.pipeline"), name)


sys.modules.setdefault(f"{__name__}.explain", _PipelineAlias(f"{__name__}.explain"))
