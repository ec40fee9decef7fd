"""The model registry: the embedded default, torchvision's zoo and a deployment's own models.

Importing this package registers the embedded EfficientNet-Lite0, the torchvision zoo
and, when ``CAMSCOPE_MODELS_DIR`` names a folder holding ``models.toml``, the models
listed there.

Example:
    >>> from explainers.models import load_model
    >>> model = load_model("efficientnet_lite0", device="cpu")
    >>> model.target_layer, model.num_classes
    ('bn2', 1000)
"""
from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path
from typing import Optional

from ..device import pick_device
from ..errors import ModelError
from ..registry import Registry
from .spec import LoadedModel, ModelSpec, Preprocessing, sha256_of_file
from .weights_check import collecting_notes

MODELS_DIR_ENV = "CAMSCOPE_MODELS_DIR"
MODELS: Registry[ModelSpec] = Registry("model")
MANIFEST_ERRORS: list[str] = []  # broken manifest entries (or manifest) never stop the app; each shown from here

__all__ = ["MODELS", "MANIFEST_ERRORS", "LoadedModel", "ModelSpec", "Preprocessing", "register_model",
           "list_models", "get_spec", "load_model"]


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry.

    Raises:
        ModelError: a model with that name is already registered.
    """
    try:
        return MODELS.add(spec.name, spec)
    except ValueError:
        raise ModelError(f"A model named {spec.name!r} is already registered; choose another name.") from None


def list_models() -> list[ModelSpec]:
    """Every registered model spec, in registration order (embedded first)."""
    return [spec for _, spec in MODELS.items()]


def get_spec(name: str) -> ModelSpec:
    """The spec registered under ``name`` (case-insensitive).

    Raises:
        ModelError: unknown name; the message lists the known names.
    """
    if not isinstance(name, str) or name not in MODELS:
        for problem in MANIFEST_ERRORS:  # a manifest entry left out says why
            if f"Model {name!r}:" in problem:
                raise ModelError(f"Model {name!r} is not available: {problem}")
        raise ModelError(f"Unknown model {name!r}; choose one of: {', '.join(MODELS)}.")
    return MODELS.get(name)


def load_model(name: str, device: Optional[str] = None, random_weights: bool = False) -> LoadedModel:
    """Build a registered model with its weights, in eval mode, on its device.

    Args:
        name: registry name, e.g. "efficientnet_lite0", "resnet50", or the path of a Hugging Face
            or timm model folder (config.json + model.safetensors).
        device: "cpu", "cuda", "mps" or None (``CAMSCOPE_DEVICE``, else the best available).
        random_weights: build untrained (tests, sanity checks); never done unless asked.

    Returns:
        LoadedModel with its categories, the SHA-256 of its weights file and, in ``weights_notes``,
        what was changed on loading (e.g. fp16 or int8 tensors cast to float32).

    Raises:
        ModelError: unknown model, or weights that are missing, unsafe, NaN/infinite or do not fit.
    """
    spec = _folder_spec(name) if _names_a_folder(name) else get_spec(name)
    target = pick_device(device)
    with collecting_notes() as notes:
        module = spec.build(bool(random_weights))
    module.eval()
    module.to(target)
    digest = None
    if not random_weights and spec.weights_file and Path(spec.weights_file).is_file():
        digest = _file_sha256(spec.weights_file)
    loaded = LoadedModel(spec=spec, module=module, device=target, categories=list(spec.categories()),
                         weights_sha256=digest, random_weights=bool(random_weights), weights_notes=notes)
    if spec.inspect:
        from .token_layout import inspect_into

        inspect_into(loaded)
    return loaded


def _names_a_folder(name: object) -> bool:
    # a path to a Hugging Face or timm folder loads without a manifest (the CLI's --model PATH)
    return isinstance(name, str) and name not in MODELS and Path(name).is_dir()


def _folder_spec(path: str) -> ModelSpec:
    from .timm_folders import model_folder_spec

    return model_folder_spec(path)


_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGESTS_LOCK = threading.Lock()


def _file_sha256(path: str) -> str:
    # Hashing a 500 MB zoo file takes seconds; reuse it while the file is unchanged.
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    with _DIGESTS_LOCK:
        if key in _DIGESTS:
            return _DIGESTS[key]
    digest = sha256_of_file(path)
    with _DIGESTS_LOCK:
        _DIGESTS[key] = digest
    return digest


def _register_defaults() -> None:
    from .embedded import spec as embedded_spec
    from .zoo import zoo_specs

    register_model(embedded_spec())
    for spec in zoo_specs():
        register_model(spec)
    folder = os.environ.get(MODELS_DIR_ENV)
    if folder:
        from .manifest import register_manifest

        try:
            problems = register_manifest(folder).problems
        except ModelError as exc:
            problems = [f"{MODELS_DIR_ENV}={folder}: {exc}"]
        for problem in problems:  # each broken entry alone; the valid ones are registered
            MANIFEST_ERRORS.append(problem)
            warnings.warn(problem, stacklevel=2)


_register_defaults()
