"""torchvision's ImageNet models through its weights API.

Each weights enum carries its category names and its preprocessing; CAMscope keeps
its mean, std, interpolation and crop size but resizes the WHOLE image to the crop
size (no crop), so that an explanation map covers everything the user uploaded.
Weights download into the torch hub cache on first use (torchvision's own behaviour);
offline and not cached, loading fails with a message that says what to download where.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional
from urllib.error import URLError

import torch
from torchvision.models import get_model, get_model_weights
from torchvision.transforms import InterpolationMode

from ..errors import ModelError
from .spec import ModelSpec, Preprocessing


def swin_reshape_transform(tensor: torch.Tensor) -> torch.Tensor:
    """torchvision's Swin stages output (B, H, W, C) channels-last; CAM methods want (B, C, H, W)."""
    # pytorch-grad-cam's swinT_reshape_transform expects timm's (B, L, C) tokens, not this layout.
    return tensor.permute(0, 3, 1, 2)


def vit_tokens_to_map(tensor: torch.Tensor) -> torch.Tensor:
    """(B, 1 + 14*14, C) tokens of ViT-B/16 at 224 x 224 -> (B, C, 14, 14), class token dropped."""
    # Imported here: pytorch-grad-cam pulls in OpenCV, which listing models does not need.
    from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

    return vit_reshape_transform(tensor, height=14, width=14)


@dataclass(frozen=True)
class ZooEntry:
    """What torchvision does not say about a model: where to look for an explanation."""

    name: str  # torchvision model name
    display: str
    target_layer: str
    reshape_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None


ZOO = (
    ZooEntry("resnet18", "ResNet-18", "layer4"),
    ZooEntry("resnet50", "ResNet-50", "layer4"),
    ZooEntry("vgg16", "VGG-16", "features.29"),  # last ReLU: 14 x 14, before the final max-pool
    ZooEntry("densenet121", "DenseNet-121", "features.norm5"),  # features[-1], as pytorch-grad-cam
    ZooEntry("mobilenet_v3_large", "MobileNetV3-Large", "features.16"),
    ZooEntry("efficientnet_b0", "EfficientNet-B0", "features.8"),
    ZooEntry("convnext_tiny", "ConvNeXt-Tiny", "features.7"),  # last stage
    ZooEntry("vit_b_16", "ViT-B/16", "encoder.layers.encoder_layer_11.ln_1", vit_tokens_to_map),
    ZooEntry("swin_t", "Swin-T", "features.7", swin_reshape_transform),  # last stage, channels-last
)

_INTERPOLATION = {InterpolationMode.BILINEAR: "bilinear", InterpolationMode.BICUBIC: "bicubic",
                  InterpolationMode.NEAREST: "nearest"}


def default_weights(name: str):
    """torchvision's recommended weights enum member for a model name."""
    return get_model_weights(name).DEFAULT


def weights_file_path(weights) -> Path:
    """Where torch hub keeps (or will keep) this weights file: <hub dir>/checkpoints/<file name>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def preprocessing_of(weights) -> Preprocessing:
    """The weights' normalization and interpolation, with a whole-image resize to the crop size."""
    transforms = weights.transforms()
    crop = list(transforms.crop_size)
    height, width = (crop[0], crop[0]) if len(crop) == 1 else (crop[0], crop[1])
    interpolation = _INTERPOLATION.get(transforms.interpolation)
    if interpolation is None:
        raise ModelError(f"{weights} uses interpolation {transforms.interpolation}, which CAMscope does not support.")
    resize = list(getattr(transforms, "resize_size", None) or [])
    crop_pct = min(height, width) / resize[0] if resize else 0.875  # for the "crop" fit: e.g. 224 / 236 (ConvNeXt)
    return Preprocessing(input_size=(height, width), mean=tuple(transforms.mean), std=tuple(transforms.std),
                         interpolation=interpolation, crop_pct=crop_pct)


def build_pretrained(name: str, weights) -> torch.nn.Module:
    """Build ``name`` with ``weights``, downloading them into the torch cache when needed.

    Raises:
        ModelError: naming the file, its URL and the folder to put it in when the
            download fails, or the damaged file when a cached one cannot be read.
    """
    path = weights_file_path(weights)
    was_cached = path.is_file()
    try:
        return get_model(name, weights=weights)
    except (URLError, OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        reason = getattr(exc, "reason", None) or exc
        if was_cached:
            raise ModelError(f"The weights file {path} of {name} could not be read ({reason}); delete it to "
                             f"download it again, or replace it with {weights.url}.") from exc
        raise ModelError(f"The weights of {name} are not on this machine and could not be downloaded "
                         f"({reason}): download {weights.url} and save it as {path.name} in the folder "
                         f"{path.parent}.") from exc


def zoo_spec(entry: ZooEntry) -> ModelSpec:
    """The registry entry of one torchvision model with its default ImageNet weights."""
    weights = default_weights(entry.name)

    def build(random_weights: bool = False) -> torch.nn.Module:
        if random_weights:
            return get_model(entry.name, weights=None)
        return build_pretrained(entry.name, weights)

    return ModelSpec(
        name=entry.name,
        display_name=f"{entry.display} (ImageNet, torchvision)",
        architecture=f"torchvision/{entry.name}",
        build=build,
        categories=lambda: list(weights.meta["categories"]),
        target_layer=entry.target_layer,
        preprocessing=preprocessing_of(weights),
        reshape_transform=entry.reshape_transform,
        source="torchvision",
        weights_file=str(weights_file_path(weights)),
        weights_available=lambda: weights_file_path(weights).is_file(),
        description=f"torchvision {weights}; {weights.meta.get('num_params', 0) / 1e6:.1f} M parameters; "
                    f"downloads {os.path.basename(weights.url)} on first use.",
    )


def zoo_specs() -> list[ModelSpec]:
    """One spec per model of ``ZOO``, in order."""
    return [zoo_spec(entry) for entry in ZOO]


def zoo_entry(architecture: str) -> Optional[ZooEntry]:
    """The zoo entry of a torchvision model name (also accepts "torchvision/<name>"), or None."""
    name = architecture.removeprefix("torchvision/")
    return next((entry for entry in ZOO if entry.name == name), None)
