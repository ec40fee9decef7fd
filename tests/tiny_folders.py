"""Tiny Hugging Face and timm models with random weights, saved as folders (nothing downloaded)."""
from __future__ import annotations

from pathlib import Path

import torch

LABELS = {0: "cat", 1: "dog", 2: "fox"}
SIZE = 32  # input side: tiny models run in milliseconds


def _labelled(config_cls, **kwargs):
    return config_cls(id2label=dict(LABELS), label2id={v: k for k, v in LABELS.items()}, **kwargs)


def _processor(folder: Path) -> None:
    from transformers import ViTImageProcessor

    ViTImageProcessor(size={"height": SIZE, "width": SIZE}, image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.25, 0.3],
                      resample=2).save_pretrained(folder)


def save_hf(folder: Path, family: str, **overrides) -> Path:
    """Save a tiny HF classifier of ``family`` (vit, deit, swin, convnext) with random weights."""
    import transformers as T

    torch.manual_seed(0)
    if family == "vit":
        config = _labelled(T.ViTConfig, image_size=SIZE, patch_size=8, hidden_size=24, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=48, **overrides)
        model = T.ViTForImageClassification(config)
    elif family == "deit":
        config = _labelled(T.DeiTConfig, image_size=SIZE, patch_size=8, hidden_size=24, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=48)
        model = T.DeiTForImageClassificationWithTeacher(config)
    elif family == "swin":
        config = _labelled(T.SwinConfig, image_size=SIZE, patch_size=4, embed_dim=12, depths=[1, 1],
                           num_heads=[2, 2], window_size=4)
        model = T.SwinForImageClassification(config)
    elif family == "convnext":
        config = _labelled(T.ConvNextConfig, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, image_size=SIZE)
        model = T.ConvNextForImageClassification(config)
    else:
        raise ValueError(family)
    model.eval().save_pretrained(folder)
    _processor(folder)
    return folder


def save_timm(folder: Path, architecture: str = "vit_tiny_patch16_224", **args) -> tuple[Path, torch.nn.Module]:
    """A tiny timm model saved as timm saves one (config.json + model.safetensors)."""
    import timm
    from timm.models._hub import save_for_hf

    torch.manual_seed(0)
    if architecture.startswith("vit"):
        args = {"img_size": SIZE, "patch_size": 8, "depth": 2, "embed_dim": 24, "num_heads": 2, **args}
    model = timm.create_model(architecture, pretrained=False, num_classes=3, **args).eval()
    save_for_hf(model, str(folder), safe_serialization=True)
    return folder, model
