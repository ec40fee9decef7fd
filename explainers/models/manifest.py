"""A deployment's own models, listed in ``models.toml`` in a models directory.

Example ``models.toml`` (paths are relative to the manifest's folder and must stay inside it, or
in a folder listed in ``CAMSCOPE_WEIGHTS_DIRS``; see ``contained.py``)::

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
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..errors import ModelError
from .contained import contained_file
from .spec import ModelSpec, Preprocessing
from .user import read_labels, resolve_architecture, user_model_spec

MANIFEST_NAME = "models.toml"
_REQUIRED = ("name", "architecture", "weights", "labels")
_OPTIONAL = ("num_classes", "target_layer", "display_name", "description", "preprocessing", "head")
_PREPROCESSING_FIELDS = ("input_size", "mean", "std", "interpolation")
_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
INPUT_SIZE_RANGE = (16, 4096)  # pixels per side; beyond this a single input tensor alone can exhaust memory


@dataclass
class ManifestReading:
    """What a manifest gave: the specs of its valid entries and one sentence per broken entry."""

    specs: list[ModelSpec] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_manifest_entries(folder: Union[str, Path]) -> ManifestReading:
    """Parse ``<folder>/models.toml``; each entry stands alone (nothing is registered or loaded).

    A broken entry (missing file, unknown architecture, bad field, a name used twice) is left out
    with its own sentence in ``problems``; the other entries are still read.

    Raises:
        ModelError: only when the manifest itself cannot be used (unreadable, not UTF-8, not TOML,
            no [[model]] tables).
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"The models manifest {path} cannot be read ({exc.strerror or exc}).") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"The models manifest {path} is not UTF-8 text (byte {exc.start}); "
                         "save it as UTF-8.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"The models manifest {path} is not valid TOML ({exc}).") from None
    entries = data.get("model", [])
    if not isinstance(entries, list) or not entries:
        raise ModelError(f"The models manifest {path} lists no models: add [[model]] tables.")
    reading = ManifestReading()
    for position, entry in enumerate(entries, start=1):
        try:
            spec = _entry_spec(folder, entry, position)
        except ModelError as exc:
            reading.problems.append(f"{path}: {exc}")
            continue
        if any(s.name == spec.name for s in reading.specs):
            reading.problems.append(f"{path}: model #{position} is named {spec.name!r} like an earlier entry; "
                                    "choose another name.")
            continue
        reading.specs.append(spec)
    return reading


def read_manifest(folder: Union[str, Path]) -> list[ModelSpec]:
    """Parse ``<folder>/models.toml`` into model specs, refusing the manifest at its first broken entry.

    Raises:
        ModelError: naming the model and the field for a missing file, an unknown
            architecture, a missing or malformed field, or a duplicate name.
    """
    reading = read_manifest_entries(folder)
    if reading.problems:
        raise ModelError(reading.problems[0])
    return reading.specs


def register_manifest(folder: Union[str, Path]) -> ManifestReading:
    """Register every valid model of ``<folder>/models.toml`` as source "user".

    One broken entry does not hide the others: it is listed in the returned ``problems``
    (as is an entry whose name is already registered) and the valid entries are registered.

    Raises:
        ModelError: the manifest itself cannot be used (see ``read_manifest_entries``).
    """
    from . import MODELS, register_model  # here, not at the top: the package imports this module

    reading = read_manifest_entries(folder)
    registered = []
    for spec in reading.specs:
        if spec.name in MODELS:
            reading.problems.append(f"{Path(folder) / MANIFEST_NAME}: model {spec.name!r} has the name of a model "
                                    "that is already registered; choose another name.")
            continue
        registered.append(register_model(spec))
    reading.specs = registered
    return reading


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
    try:
        weights = contained_file(folder, entry["weights"], "weights")
        labels = contained_file(folder, entry["labels"], "labels")
    except ModelError as exc:
        raise ModelError(f"Model {label}: {exc}") from None
    num_classes = entry.get("num_classes")
    if num_classes is None:
        try:
            num_classes = len(read_labels(labels))
        except ModelError as exc:
            raise ModelError(f"Model {label}: {exc}") from None
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
    low, high = INPUT_SIZE_RANGE
    if not (isinstance(size, list) and len(size) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) and low <= s <= high for s in size)):
        raise ModelError(f"Model {label}: 'preprocessing.input_size' must be [height, width] in pixels, "
                         f"each from {low} to {high}.")
    values = {}
    for key in ("mean", "std"):
        value = table.get(key, list(getattr(default, key)))
        if not (isinstance(value, list) and len(value) == 3
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise ModelError(f"Model {label}: 'preprocessing.{key}' must be three numbers (R, G, B).")
        if not all(math.isfinite(v) for v in value):
            raise ModelError(f"Model {label}: 'preprocessing.{key}' must be finite numbers, not {value}.")
        values[key] = tuple(float(v) for v in value)
    if any(v <= 0 for v in values["std"]):
        raise ModelError(f"Model {label}: 'preprocessing.std' must be positive.")
    interpolation = table.get("interpolation", default.interpolation)
    if interpolation not in _INTERPOLATIONS:
        raise ModelError(f"Model {label}: 'preprocessing.interpolation' must be one of {', '.join(_INTERPOLATIONS)}.")
    return Preprocessing(input_size=(size[0], size[1]), mean=values["mean"], std=values["std"],
                         interpolation=interpolation)
