"""timm models: a folder saved by timm (config.json + model.safetensors), or a timm architecture
with preprocessing from its ``pretrained_cfg``.

The folder's config.json names the architecture and the arguments it was built with; the
weights are read as plain tensors (safetensors) and checked against the model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import torch

from ..errors import ModelError
from .spec import ModelSpec, Preprocessing
from .user import load_checked, read_state_dict

_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def is_timm_folder(folder: Path) -> bool:
    """A folder written by timm (config.json with an "architecture" and no transformers model_type)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and isinstance(config.get("architecture"), str) and "model_type" not in config


def preprocessing_from_cfg(cfg: dict) -> Preprocessing:
    """timm's pretrained_cfg (input_size, mean, std, interpolation) as CAMscope preprocessing, no crop."""
    default = Preprocessing()
    size = cfg.get("input_size") or (3, *default.input_size)  # as timm's resolve_data_config
    interpolation = cfg.get("interpolation", default.interpolation)
    return Preprocessing(input_size=(int(size[-2]), int(size[-1])),
                         mean=tuple(float(v) for v in cfg.get("mean", default.mean)),  # type: ignore[arg-type]
                         std=tuple(float(v) for v in cfg.get("std", default.std)),  # type: ignore[arg-type]
                         interpolation=interpolation if interpolation in _INTERPOLATIONS else "bicubic")


def timm_preprocessing(name: str) -> Preprocessing:
    """The preprocessing of a timm architecture's default pretrained config (no download)."""
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # timm raises several kinds for unknown names
        cfg = None
    return preprocessing_from_cfg(cfg.to_dict()) if cfg is not None else Preprocessing()


def read_timm_config(folder: Path) -> dict:
    from .huggingface import read_config  # same remote-code refusal for every folder

    config = read_config(folder)
    if not isinstance(config.get("architecture"), str):
        raise ModelError(f"{folder / 'config.json'} names no timm architecture.")
    return config


def build_timm_folder(folder: Path, random_weights: bool = False) -> torch.nn.Module:
    """The folder's timm model with its weights (or random ones when asked)."""
    import timm

    config = read_timm_config(folder)
    architecture = config["architecture"]
    if not timm.is_model(architecture):
        raise ModelError(f"timm has no architecture {architecture!r} (from {folder / 'config.json'}).")
    args = dict(config.get("model_args") or {})
    args.setdefault("num_classes", int(config.get("num_classes", 1000)))
    model = timm.create_model(architecture, pretrained=False, **args)
    if not random_weights:
        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise ModelError(f"The timm folder {folder} has no model.safetensors; save it with "
                             "timm's save_for_hf(..., safe_serialization=True).")
        load_checked(model, read_state_dict(weights), f"{architecture} from {folder.name}",
                     f"{folder.name}/{weights.name}")
    return model.eval()


def timm_folder_spec(name: str, folder: Union[str, Path], labels: Optional[list[str]] = None,
                     display_name: Optional[str] = None, head: str = "softmax",
                     preprocessing: Optional[Preprocessing] = None, target_layer: Optional[str] = None,
                     description: str = "") -> ModelSpec:
    """A registry entry for a timm folder; class names from ``labels``, the config's label_names, or numbers."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"Model {name!r}: the model folder {folder} does not exist.")
    config = read_timm_config(folder)
    num_classes = int(config.get("num_classes", (config.get("model_args") or {}).get("num_classes", 1000)))
    names = list(labels or config.get("label_names") or [f"class {i}" for i in range(num_classes)])
    if len(names) != num_classes:
        raise ModelError(f"Model {name!r}: {len(names)} class names for a model with {num_classes} classes.")
    weights = folder / "model.safetensors"
    return ModelSpec(
        name=name,
        display_name=display_name or f"{name} (timm {config['architecture']}, {num_classes} classes)",
        architecture=f"timm/{config['architecture']}",
        build=lambda random_weights=False: build_timm_folder(folder, random_weights),
        categories=lambda: list(names),
        target_layer=target_layer or "",
        preprocessing=preprocessing or preprocessing_from_cfg(config.get("pretrained_cfg") or {}),
        source="user",
        weights_file=str(weights),
        weights_available=weights.is_file,
        description=description or f"timm folder {folder.name} ({config['architecture']}).",
        head=head,
        inspect=True,
    )


def cached_timm_folder(name: str) -> Path:
    """The folder of ``timm/<name>`` in the Hugging Face cache, found offline (nothing is downloaded).

    Raises:
        ModelError: the model is not in the cache, saying how to put it there.
    """
    import os

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo = name if name.startswith("timm/") else f"timm/{name}"
    try:
        return Path(snapshot_download(repo, local_files_only=True, cache_dir=os.environ.get("HF_HUB_CACHE")))
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise ModelError(f"{repo} is not in the Hugging Face cache on this machine; on a machine online, run "
                         f"`timm.create_model('hf-hub:{repo}', pretrained=True)` once and copy the cache "
                         "(~/.cache/huggingface/hub) here.") from None


def model_folder_spec(folder: Union[str, Path], name: Optional[str] = None, **kwargs) -> ModelSpec:
    """A spec for a Hugging Face or timm folder, whichever it is (the CLI's ``--model PATH``)."""
    from .huggingface import huggingface_spec, is_huggingface_folder, read_config

    folder = Path(folder)
    name = name or folder.resolve().name
    if not (folder / "config.json").is_file():
        raise ModelError(f"The folder {folder} is not a model folder: it has no config.json.")
    read_config(folder)  # refuses remote code before anything else
    if is_huggingface_folder(folder):
        return huggingface_spec(name, folder, **kwargs)
    if is_timm_folder(folder):
        return timm_folder_spec(name, folder, **kwargs)
    raise ModelError(f"The folder {folder} holds neither a Hugging Face model (config.json with model_type) "
                     "nor a timm model (config.json with architecture).")
