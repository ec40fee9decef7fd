"""A deployment's own models, listed in ``models.toml`` in a models directory.

Example ``models.toml`` (paths are relative to the manifest's folder)::

    [[model]]
    name = "chest_xray_resnet18"
    architecture = "resnet18"          # torchvision name, or "timm/<name>"
    weights = "chest.safetensors"      # or a .pt/.pth state_dict
    labels = "chest_labels.txt"        # one name per line, or a JSON list
    num_classes = 2                    # optional: defaults to the number of labels
    target_layer = "layer4"            # optional for the torchvision zoo architectures
    display_name = "Chest X-ray (ResNet-18)"   # optional
    [model.preprocessing]              # optional: defaults to ImageNet, bicubic, 224 x 224
    input_size = [224, 224]            # [height, width]
    mean = [0.5, 0.5, 0.5]
    std = [0.25, 0.25, 0.25]
    interpolation = "bilinear"         # bilinear | bicubic | nearest

    [[model]]                          # a Hugging Face folder (save_pretrained) or a timm folder
    name = "findings_vit"
    architecture = "huggingface"       # or "timm" for a folder saved by timm
    weights = "findings-vit"           # the folder; labels come from its config (optional here)
    head = "sigmoid"                   # optional: softmax | sigmoid (multi-label); HF configs say it
"""
from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any, Union

from ..errors import ModelError
from .spec import ModelSpec, Preprocessing
from .user import read_labels, resolve_architecture, user_model_spec

MANIFEST_NAME = "models.toml"
_REQUIRED = ("name", "architecture", "weights", "labels")
_OPTIONAL = ("num_classes", "target_layer", "display_name", "description", "preprocessing", "head")
_PREPROCESSING_FIELDS = ("input_size", "mean", "std", "interpolation")
_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def read_manifest(folder: Union[str, Path]) -> list[ModelSpec]:
    """Parse ``<folder>/models.toml`` into model specs (nothing is registered or loaded).

    Raises:
        ModelError: naming the model and the field for a missing file, an unknown
            architecture, a missing or malformed field, or a duplicate name.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"The models manifest {path} cannot be read ({exc.strerror or exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"The models manifest {path} is not valid TOML ({exc}).") from None
    entries = data.get("model", [])
    if not isinstance(entries, list) or not entries:
        raise ModelError(f"The models manifest {path} lists no models: add [[model]] tables.")
    specs: list[ModelSpec] = []
    for position, entry in enumerate(entries, start=1):
        spec = _entry_spec(folder, entry, position)
        if any(s.name == spec.name for s in specs):
            raise ModelError(f"The models manifest {path} names two models {spec.name!r}.")
        specs.append(spec)
    return specs


def register_manifest(folder: Union[str, Path]) -> list[ModelSpec]:
    """Read ``<folder>/models.toml`` and register every model in it as source "user".

    All entries are checked before any is registered, so a bad manifest registers nothing.

    Returns:
        The registered specs, in manifest order.
    """
    from . import MODELS, register_model  # here, not at the top: the package imports this module

    specs = read_manifest(folder)
    for spec in specs:
        if spec.name in MODELS:
            raise ModelError(f"Model {spec.name!r} in {Path(folder) / MANIFEST_NAME} has the name of a model "
                             "that is already registered; choose another name.")
    for spec in specs:
        register_model(spec)
    return specs


def _entry_spec(folder: Path, entry: Any, position: int) -> ModelSpec:
    if not isinstance(entry, dict):
        raise ModelError(f"Model #{position} of the manifest is not a table.")
    label = repr(entry["name"]) if isinstance(entry.get("name"), str) else f"#{position}"
    from .folder_entries import folder_entry_spec, is_folder_entry  # Hugging Face and timm folders

    if is_folder_entry(folder, entry):
        return folder_entry_spec(folder, entry, label)
    unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ModelError(f"Model {label}: unknown field {unknown[0]!r}; fields are {', '.join(_REQUIRED + _OPTIONAL)}.")
    for key in _REQUIRED:
        if key not in entry:
            raise ModelError(f"Model {label}: the field {key!r} is missing.")
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise ModelError(f"Model {label}: the field {key!r} must be a non-empty string.")
    for key in ("target_layer", "display_name", "description"):
        if key in entry and not isinstance(entry[key], str):
            raise ModelError(f"Model {label}: the field {key!r} must be a string.")
    try:
        resolve_architecture(entry["architecture"])
    except ModelError as exc:
        raise ModelError(f"Model {label}: the field 'architecture': {exc}") from None
    weights, labels = folder / entry["weights"], folder / entry["labels"]
    for key, file in (("weights", weights), ("labels", labels)):
        if not file.is_file():
            raise ModelError(f"Model {label}: the {key} file {file} does not exist.")
    num_classes = entry.get("num_classes")
    if num_classes is None:
        num_classes = len(read_labels(labels))
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ModelError(f"Model {label}: the field 'num_classes' must be a positive whole number.")
    head = _head(entry, label)
    try:
        return dataclasses.replace(user_model_spec(
            name=entry["name"], weights=weights, architecture=entry["architecture"], num_classes=num_classes,
            labels=labels, target_layer=entry.get("target_layer"),
            preprocessing=(_preprocessing(entry["preprocessing"], label) if "preprocessing" in entry
                           else default_preprocessing(entry["architecture"])),
            display_name=entry.get("display_name"), description=entry.get("description", "")), head=head)
    except ModelError as exc:
        message = str(exc)
        raise ModelError(message if message.startswith("Model ") else f"Model {label}: {message}") from None


def default_preprocessing(architecture: str) -> Preprocessing:
    """timm architectures: their pretrained_cfg's; others: ImageNet, bicubic, 224 x 224."""
    library, name = resolve_architecture(architecture)
    if library == "timm":
        from .timm_folders import timm_preprocessing

        return timm_preprocessing(name)
    return Preprocessing()


def _head(entry: dict, label: str) -> str:
    head = entry.get("head", "softmax")
    if head not in ("softmax", "sigmoid"):
        raise ModelError(f"Model {label}: the field 'head' must be \"softmax\" or \"sigmoid\".")
    return head


def _preprocessing(table: Any, label: str) -> Preprocessing:
    if not isinstance(table, dict):
        raise ModelError(f"Model {label}: the field 'preprocessing' must be a table.")
    unknown = sorted(set(table) - set(_PREPROCESSING_FIELDS))
    if unknown:
        raise ModelError(f"Model {label}: unknown field 'preprocessing.{unknown[0]}'; "
                         f"fields are {', '.join(_PREPROCESSING_FIELDS)}.")
    default = Preprocessing()
    size = table.get("input_size", list(default.input_size))
    if isinstance(size, int):
        size = [size, size]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise ModelError(f"Model {label}: 'preprocessing.input_size' must be [height, width] in pixels.")
    values = {}
    for key in ("mean", "std"):
        value = table.get(key, list(getattr(default, key)))
        if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
            raise ModelError(f"Model {label}: 'preprocessing.{key}' must be three numbers (R, G, B).")
        values[key] = tuple(float(v) for v in value)
    if any(v <= 0 for v in values["std"]):
        raise ModelError(f"Model {label}: 'preprocessing.std' must be positive.")
    interpolation = table.get("interpolation", default.interpolation)
    if interpolation not in _INTERPOLATIONS:
        raise ModelError(f"Model {label}: 'preprocessing.interpolation' must be one of {', '.join(_INTERPOLATIONS)}.")
    return Preprocessing(input_size=(size[0], size[1]), mean=values["mean"], std=values["std"],
                         interpolation=interpolation)
