"""Attention rollout, transformer attribution and LeGrad: against references computed independently
(rollout and attribution from Hugging Face's output_attentions, LeGrad from TorchCAM 0.5 on a torchvision
ViT with random weights); refused on CNNs; captured in the same forward as the CAMs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from explainers.errors import ExplainerError, MethodError
from explainers.pipeline import explain
from explainers.models import load_model
from explainers.models.spec import Preprocessing, wrap_module
from tests.tiny_folders import SIZE, save_hf

ALL = ["attention_rollout", "transformer_attribution", "legrad"]


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    return load_model(str(save_hf(tmp_path_factory.mktemp("vit") / "vit", "vit")), device="cpu")


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(7).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8))


def hf_attentions(vit, image, with_grad: bool = False):
    hf = vit.module.model  # the transformers model itself
    x = vit.preprocessing.to_tensor(image)
    with torch.set_grad_enabled(with_grad):
        out = hf(pixel_values=x, output_attentions=True)
    return out.logits, out.attentions  # attentions: one (1, heads, 17, 17) per layer


def test_rollout_equals_the_paper_computed_from_output_attentions(vit, image):
    _, attentions = hf_attentions(vit, image)
    result = np.eye(17)
    for a in attentions:
        a = a[0].mean(0).numpy().astype(np.float64) + np.eye(17)  # heads averaged, identity added
        a = a / a.sum(axis=-1, keepdims=True)  # rows renormalized
        result = a @ result  # the product over the layers
    expected = result[0, 1:].reshape(4, 4)  # the class token's row over the patches
    ours = explain(vit, image, methods=["attention_rollout"]).results[0]
    assert ours.layer == "(attention, all blocks)"
    assert np.abs(ours.raw - expected).max() <= 1e-6 and expected.std() > 0


def test_transformer_attribution_equals_gradient_weighted_relevance(vit, image):
    logits, attentions = hf_attentions(vit, image, with_grad=True)
    grads = torch.autograd.grad(logits[0, 2], attentions)
    relevance = np.eye(17)
    for a, g in zip(attentions, grads):
        weighted = np.maximum((g * a)[0].detach().numpy().astype(np.float64), 0).mean(0)  # E_h[(dA * A)+]
        relevance = relevance + weighted @ relevance
    expected = relevance[0, 1:].reshape(4, 4)
    ours = explain(vit, image, methods=["transformer_attribution"], classes=[2]).results[0]
    assert np.abs(ours.raw - np.maximum(expected, 0)).max() <= 1e-6 and expected.max() > 0


def test_legrad_equals_torchcam_on_a_torchvision_vit(image):
    from torchcam.methods import LeGrad
    from torchvision.models import VisionTransformer

    torch.manual_seed(3)
    tv = VisionTransformer(image_size=SIZE, patch_size=8, num_layers=3, num_heads=2, hidden_dim=24, mlp_dim=48,
                           num_classes=5).eval()
    torch.nn.init.normal_(tv.heads.head.weight)  # torchvision starts the head at zero: every gradient would be 0
    model = wrap_module(tv, [str(i) for i in range(5)], "encoder.layers.encoder_layer_2.ln_1",
                        preprocessing=Preprocessing(input_size=(SIZE, SIZE)))
    ours = explain(model, image, methods=["legrad"], classes=[4]).results[0].raw
    x = model.preprocessing.to_tensor(image)
    with LeGrad(tv, list(tv.encoder.layers)) as extractor:
        reference = extractor(4, tv(x))[0][0].numpy()
    assert reference.max() == pytest.approx(1.0, abs=1e-6)
    normalized = (ours - ours.min()) / (ours.max() - ours.min() + 1e-8)
    assert np.abs(normalized - reference).max() <= 1e-5


def test_attention_methods_come_from_the_same_forward_as_the_cams(vit, image, monkeypatch):
    calls = []
    forward = type(vit.module.model).forward
    monkeypatch.setattr(type(vit.module.model), "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k))
    ex = explain(vit, image, methods=["gradcam", *ALL], classes=[0, 1])
    assert len(calls) == 1  # one forward for Grad-CAM, rollout, attribution and LeGrad, both classes
    assert {r.method for r in ex.results} == {"gradcam", *ALL} and len(ex.results) == 8


def test_refused_on_a_cnn_with_a_sentence(lite0, image):
    with pytest.raises(MethodError, match="vision transformers with a class token.*pick a CAM method"):
        explain(lite0, image, methods=["attention_rollout"])


def test_no_hook_survives_and_fused_attention_stays_on_the_shared_model(tmp_path, image):
    from explainers.clones import _POOLS, has_hooks
    from tests.tiny_folders import save_timm

    model = load_model(str(save_timm(tmp_path / "timm")[0]), device="cpu")
    fused = [m.fused_attn for m in model.module.modules() if hasattr(m, "fused_attn")]
    explain(model, image, methods=["gradcam", *ALL])
    with pytest.raises(ExplainerError, match="out of range"):
        explain(model, image, methods=["legrad"], classes=[7])  # an error after the hooks were attached
    assert not has_hooks(model.module) and not any(has_hooks(c) for c in _POOLS[model.module].free_clones())
    assert [m.fused_attn for m in model.module.modules() if hasattr(m, "fused_attn")] == fused


def test_windowed_attention_is_refused_with_a_sentence(tmp_path, image):
    swin = load_model(str(save_hf(tmp_path / "swin", "swin")), device="cpu")
    with pytest.raises(MethodError, match="class token"):
        explain(swin, image, methods=["attention_rollout"])


def test_rollout_options_max_fusion_and_discard_ratio(vit, image):
    _, attentions = hf_attentions(vit, image)
    result = np.eye(17)
    for a in attentions:
        fused = a[0].max(0).values.numpy().astype(np.float64)
        flat = fused.reshape(-1)
        lowest = np.argsort(flat, kind="stable")[: int(flat.size * 0.5)]
        flat[lowest[lowest != 0]] = 0  # the lowest half dropped, never the class token's self-attention
        a = fused + np.eye(17)
        result = (a / a.sum(axis=-1, keepdims=True)) @ result
    options = {"attention_rollout": {"head_fusion": "max", "discard_ratio": 0.5}}
    ours = explain(vit, image, methods=["attention_rollout"], options=options).results[0].raw
    assert np.abs(ours - result[0, 1:].reshape(4, 4)).max() <= 1e-6
    with pytest.raises(MethodError, match="no option 'heads'"):
        explain(vit, image, methods=["attention_rollout"], options={"attention_rollout": {"heads": "mean"}})
