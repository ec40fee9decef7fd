"""Manifest entries that name a model folder: ``architecture = "huggingface"`` or ``"timm"``
(or ``"timm/<name>"``) with ``weights = "<folder>"``, relative to models.toml."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelError
from .spec import ModelSpec

HF_CACHE = "hf-cache"  # weights = "hf-cache": timm/<name> from the Hugging Face cache, offline
_FOLDER_FIELDS = ("name", "architecture", "weights", "labels", "display_name", "description", "head",
                  "target_layer", "preprocessing", "num_classes")


def is_folder_entry(folder: Path, entry: dict) -> bool:
    architecture = entry.get("architecture")
    if architecture == "huggingface":
        return True
    weights = entry.get("weights")
    return (isinstance(architecture, str) and architecture.split("/")[0] == "timm" and isinstance(weights, str)
            and (weights == HF_CACHE or (folder / weights).is_dir()))


def folder_entry_spec(folder: Path, entry: dict, label: str) -> ModelSpec:
    """The spec of a folder entry; labels are optional (the folder's config names the classes)."""
    from .huggingface import huggingface_spec
    from .manifest import _head, _preprocessing
    from .timm_folders import cached_timm_folder, timm_folder_spec
    from .contained import contained_file, contained_folder
    from .user import read_labels

    unknown = sorted(set(entry) - set(_FOLDER_FIELDS))
    if unknown:
        raise ModelError(f"Model {label}: unknown field {unknown[0]!r}; fields are {', '.join(_FOLDER_FIELDS)}.")
    for key in ("name", "weights"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ModelError(f"Model {label}: the field {key!r} must be a non-empty string.")
    try:
        path = (cached_timm_folder(entry["architecture"].removeprefix("timm/")) if entry["weights"] == HF_CACHE
                else contained_folder(folder, entry["weights"]))
        labels_file = contained_file(folder, entry["labels"], "labels") if "labels" in entry else None
    except ModelError as exc:
        raise ModelError(f"Model {label}: {exc}") from None
    common: dict[str, Any] = {
        "display_name": entry.get("display_name"), "description": entry.get("description", ""),
        "target_layer": entry.get("target_layer"),
        "preprocessing": _preprocessing(entry["preprocessing"], label) if "preprocessing" in entry else None}
    try:
        if entry["architecture"] == "huggingface":
            return huggingface_spec(entry["name"], path, head=_head(entry, label) if "head" in entry else None,
                                    **common)
        labels = read_labels(labels_file) if labels_file is not None else None
        return timm_folder_spec(entry["name"], path, labels=labels, head=_head(entry, label), **common)
    except ModelError as exc:
        message = str(exc)
        raise ModelError(message if message.startswith("Model ") else f"Model {label}: {message}") from None
