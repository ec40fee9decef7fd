"""Hugging Face image classifiers saved with ``save_pretrained``: loaded offline, never with remote code.

A folder holds config.json and model.safetensors (optionally preprocessor_config.json).
Any ``AutoModelForImageClassification`` family works: ViT, DeiT, BEiT, Swin, ConvNeXt,
ResNet, EfficientNet, MobileViT, DINOv2 with a classifier head, ...
Class names come from ``config.id2label``; a config whose ``problem_type`` is
"multi_label_classification" gives a sigmoid head; a single-logit head becomes
("negative", "positive") with logits (-z, z) and a sigmoid head.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from ..errors import ModelError, UnsafeCheckpointError
from .spec import Preprocessing, ModelSpec
from .weights_check import refuse_non_finite

_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}  # PIL codes used in preprocessor_config.json
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


class LogitsOnly(nn.Module):
    """A Hugging Face classifier as a plain ``x -> logits`` module (B, K)."""

    def __init__(self, model: nn.Module, binary: bool = False) -> None:
        super().__init__()
        self.model = model
        self.binary = binary  # single-logit head: return (-z, z) = ("negative", "positive")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(pixel_values=x).logits  # (B, K)
        return torch.cat([-logits, logits], dim=-1) if self.binary else logits


def read_config(folder: Path) -> dict:
    """config.json of a model folder, checked for remote code.

    Raises:
        UnsafeCheckpointError: the folder needs code from the folder or the Hub to run.
        ModelError: no readable config.json.
    """
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"The model folder {folder} has no readable config.json ({exc.strerror or exc}).") from None
    except ValueError as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}).") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} must hold a JSON object.")
    if "auto_map" in config or any(folder.glob("*.py")):
        raise UnsafeCheckpointError(
            f"The model folder {folder} needs remote code (its config.json has 'auto_map' or the folder holds "
            "Python files): loading it would run code from the folder, which CAMscope never does "
            "(trust_remote_code is always off). Use a model whose architecture transformers ships.")
    return config


def is_huggingface_folder(folder: Path) -> bool:
    """A folder written by transformers' ``save_pretrained`` (config.json names a model_type)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and ("model_type" in config or "architectures" in config)


def head_of(config: dict) -> str:
    """"sigmoid" for multi-label and single-logit heads, else "softmax"."""
    if config.get("problem_type") == "multi_label_classification" or _num_labels(config) == 1:
        return "sigmoid"
    return "softmax"


def _num_labels(config: dict) -> int:
    labels = config.get("id2label")
    if isinstance(labels, dict) and labels:
        return len(labels)
    return int(config.get("num_labels", 2))


def categories_of(config: dict) -> list[str]:
    """Class names in index order from id2label (binary single-logit heads: negative, positive)."""
    labels = config.get("id2label") or {}
    names = [str(labels[k]) for k in sorted(labels, key=int)] if isinstance(labels, dict) else []
    if not names:
        names = [f"LABEL_{i}" for i in range(_num_labels(config))]
    if len(names) == 1:
        name = names[0]
        return ["negative", "positive"] if name == "LABEL_0" else [f"not {name}", name]
    return names


def preprocessing_of(folder: Path, config: Optional[dict] = None) -> Preprocessing:
    """Mean, std, size and resample from preprocessor_config.json (without one: ImageNet mean and std
    at the config's image_size).

    The whole image is resized to the model's size; the processor's crop is not applied.
    """
    path = folder / "preprocessor_config.json"
    if not path.is_file():
        side = (config or {}).get("image_size")
        return Preprocessing(input_size=(side, side)) if isinstance(side, int) and side > 0 else Preprocessing()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} cannot be read ({exc}).") from None
    default = Preprocessing()
    size = data.get("size", default.input_size[0])
    if isinstance(size, dict):
        if "height" in size and "width" in size:
            size = (int(size["height"]), int(size["width"]))
        else:
            side = int(size.get("shortest_edge") or size.get("longest_edge") or default.input_size[0])
            size = (side, side)
    elif isinstance(size, (list, tuple)):
        size = (int(size[0]), int(size[-1]))
    else:
        size = (int(size), int(size))
    crop = data.get("crop_size")
    if data.get("do_center_crop") and isinstance(crop, dict) and "height" in crop:
        size = (int(crop["height"]), int(crop["width"]))  # what the model was trained on
    mean = tuple(float(v) for v in data.get("image_mean", default.mean))
    std = tuple(float(v) for v in data.get("image_std", default.std))
    interpolation = _RESAMPLE.get(data.get("resample"), "bicubic")
    return Preprocessing(input_size=size, mean=mean, std=std, interpolation=interpolation)  # type: ignore[arg-type]


def build_huggingface(folder: Path, random_weights: bool = False) -> LogitsOnly:
    """The folder's model, offline, eager attention (so attention weights can be read), as logits.

    Raises:
        UnsafeCheckpointError: remote code needed.
        ModelError: missing weights, or a model transformers cannot build as an image classifier.
    """
    import transformers
    from transformers import AutoConfig, AutoModelForImageClassification

    config_dict = read_config(folder)
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bars in logs
    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except (ValueError, KeyError, OSError) as exc:
        raise ModelError(f"transformers cannot read the model folder {folder} ({exc}).") from None
    if not random_weights and not any((folder / name).is_file() for name in _WEIGHT_FILES):
        raise ModelError(f"The model folder {folder} has no model.safetensors; save the model with "
                         "save_pretrained (safetensors is its default).")
    try:
        if random_weights:
            model = AutoModelForImageClassification.from_config(config, attn_implementation="eager")
        else:
            model = AutoModelForImageClassification.from_pretrained(
                str(folder), local_files_only=True, trust_remote_code=False, use_safetensors=True,
                attn_implementation="eager")
    except ValueError as exc:
        raise ModelError(f"The model folder {folder} is not an image classifier transformers knows ({exc}).") from None
    if not random_weights:
        refuse_non_finite(model.state_dict(), f"{folder.name}/model.safetensors")
    return LogitsOnly(model.eval(), binary=_num_labels(config_dict) == 1)


def huggingface_spec(name: str, folder: Union[str, Path], display_name: Optional[str] = None,
                     head: Optional[str] = None, preprocessing: Optional[Preprocessing] = None,
                     target_layer: Optional[str] = None, description: str = "") -> ModelSpec:
    """A registry entry for a Hugging Face folder; weights are read when the model is loaded."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"Model {name!r}: the model folder {folder} does not exist.")
    config = read_config(folder)
    categories = categories_of(config)
    family = config.get("model_type", "model")
    weights = folder / "model.safetensors"
    return ModelSpec(
        name=name,
        display_name=display_name or f"{name} (Hugging Face {family}, {len(categories)} classes)",
        architecture=f"huggingface/{family}",
        build=lambda random_weights=False: build_huggingface(folder, random_weights),
        categories=lambda: list(categories),
        target_layer=target_layer or "",
        preprocessing=preprocessing or preprocessing_of(folder, config),
        source="user",
        weights_file=str(weights),
        weights_available=weights.is_file,
        description=description or f"Hugging Face folder {folder.name} ({family}), loaded offline.",
        head=head or head_of(config),
        inspect=True,
    )
