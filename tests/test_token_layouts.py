"""Token layouts found from the model: one-pass methods on a tiny ViT and a tiny Swin equal
pytorch-grad-cam run with its documented reshape transforms; channels-last timm blocks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

from explainers.pipeline import explain
from explainers.methods.catalog import METHODS
from explainers.models import load_model
from explainers.models.token_layout import TokenLayout
from tests.tiny_folders import SIZE, save_hf, save_timm

METHODS_CHECKED = ["gradcam", "hirescam", "gradcam++", "xgradcam", "layercam", "eigencam"]


def swin_reshape_transform(tensor, height=4, width=4):
    # pytorch-grad-cam's tutorial transform for Swin tokens (B, L, C), verbatim
    result = tensor.reshape(tensor.size(0), height, width, tensor.size(2))
    return result.transpose(2, 3).transpose(1, 2)


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(5).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8))


def library(model, image, method, layer, reshape, class_index):
    cls = METHODS.get(method).library_class
    x = model.preprocessing.to_tensor(image)
    with cls(model=model.module, target_layers=[model.module.get_submodule(layer)], reshape_transform=reshape) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(class_index)])[0]


@pytest.mark.parametrize("family, layer, reshape", [
    ("vit", "model.vit.layers.1.layernorm_before", lambda t: vit_reshape_transform(t, 4, 4)),
    ("swin", "model.swin.encoder.layers.1.blocks.0.layernorm_before", swin_reshape_transform),
])
def test_one_pass_methods_equal_pytorch_grad_cam_with_its_reshape(tmp_path, image, family, layer, reshape):
    model = load_model(str(save_hf(tmp_path / family, family)), device="cpu")
    ex = explain(model, image, methods=METHODS_CHECKED, classes=[1], layers=[layer])
    for r in ex.results:
        reference = library(model, image, r.method, layer, reshape, 1)
        assert reference.max() > 0.99, r.method
        assert np.abs(r.map - reference).max() <= 1e-4, r.method


def test_timm_swin_channels_last_blocks_become_maps(tmp_path, image):
    folder, module = save_timm(tmp_path / "swin", "swin_tiny_patch4_window7_224", img_size=SIZE, embed_dim=12,
                               depths=(1, 1), num_heads=(2, 2), window_size=4)
    model = load_model(str(folder), device="cpu")
    layer = "layers.1.blocks.0.norm1"
    out = {}
    handle = module.get_submodule(layer).register_forward_hook(lambda m, i, o: out.setdefault("o", o))
    with torch.no_grad():
        module(model.preprocessing.to_tensor(image))
    handle.remove()
    assert out["o"].shape == (1, 4, 4, 24)  # (B, H, W, C): channels last
    assert torch.equal(model.reshape_transform(out["o"]), out["o"].permute(0, 3, 1, 2))
    ex = explain(model, image, methods=["gradcam"], classes=[0], layers=[layer])
    reference = library(model, image, "gradcam", layer, lambda t: t.permute(0, 3, 1, 2), 0)
    assert np.abs(ex.results[0].map - reference).max() <= 1e-4


def test_layout_reads_tokens_prefix_and_halved_grids():
    layout = TokenLayout(grid=(4, 6), prefix_tokens=2)
    tokens = torch.arange(2 * 26 * 3, dtype=torch.float32).reshape(2, 26, 3)  # 2 prefix + 4 x 6 patches
    out = layout(tokens)
    assert out.shape == (2, 3, 4, 6) and out[1, 2, 3, 5] == tokens[1, 25, 2] and out[0, 0, 0, 0] == tokens[0, 2, 0]
    assert layout.kind((1, 8, 2, 3)) == "map" and layout.kind((1, 2, 3, 8)) == "channels_last"
    assert layout.map_shape((1, 6 + 2, 5)) == (2, 3)  # the grid halved once, plus the prefix
    assert layout.kind((1, 2, 26, 26)) is None  # attention weights are not a map


@pytest.mark.parametrize("name, args, size, layer, prefix, grid", [
    ("deit_tiny_distilled_patch16_224", dict(depth=2), 64, "blocks.1.norm1", 2, (4, 4)),  # class + distillation
    ("vit_small_patch14_reg4_dinov2", dict(depth=2, embed_dim=48, num_heads=2), 56, "blocks.1.norm1", 5, (4, 4)),
    ("resnet18", {}, 64, "layer4", 0, (32, 32)),
])
def test_recommended_layer_and_prefix_found_for_timm_families(name, args, size, layer, prefix, grid):
    import timm

    from explainers.models.token_layout import inspect_model

    module = timm.create_model(name, pretrained=False, num_classes=3, img_size=size, **args) if args else \
        timm.create_model(name, pretrained=False, num_classes=3)
    found = inspect_model(module.eval(), (size, size))
    assert (found.target_layer, found.layout.prefix_tokens, found.layout.grid) == (layer, prefix, grid)
