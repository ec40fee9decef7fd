"""The engine's public functions: plain-language errors on bad input, layers, device, no Streamlit."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from explainers import ExplainerError, ImageError, LayerError, MethodError, TargetError
from explainers.device import pick_device
from explainers.pipeline import explain, predict
from explainers.layers import list_layers, resolve_layers
from explainers.methods.catalog import list_methods, resolve_method
from explainers.targets import build_targets
from tests.tiny import tiny_image, tiny_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kwargs, error, words", [
    ({"methods": ["nope"]}, MethodError, "Unknown method 'nope'"),
    ({"methods": []}, MethodError, "pick at least one"),
    ({"classes": [2]}, TargetError, "out of range: this model has classes 0 to 1"),
    ({"classes": [-1]}, TargetError, "out of range"),
    ({"classes": ["cat"]}, TargetError, "whole number"),
    ({"classes": [0], "top_k": 1}, TargetError, "either classes or top_k"),
    ({"top_k": 0}, TargetError, "top_k must be a whole number from 1 to 2"),
    ({"contrast": (1, 1)}, TargetError, "two different classes"),
    ({"contrast": (0,)}, TargetError, "exactly two classes"),
    ({"layers": ["nope"]}, LayerError, "no layer named 'nope'"),
    ({"layers": ["head"]}, LayerError, "pick a convolutional layer"),
    ({"batch_size": 0}, MethodError, "batch_size must be a positive whole number"),
])
def test_explain_rejects_bad_arguments_plainly(kwargs, error, words):
    with pytest.raises(error) as info:
        explain(tiny_model(), tiny_image(), **kwargs)
    assert words in str(info.value)
    assert isinstance(info.value, ExplainerError)


@pytest.mark.parametrize("image", [None, "cat.jpg", np.zeros((0, 0, 3), np.uint8), np.zeros((2, 2, 2, 2))])
def test_explain_and_predict_reject_non_images(image):
    for call in (lambda: explain(tiny_model(), image), lambda: predict(tiny_model(), image)):
        with pytest.raises(ImageError):
            call()


def test_explain_rejects_a_bare_module():
    with pytest.raises(MethodError, match="load_model"):
        explain(torch.nn.Linear(2, 2), tiny_image())


def test_resolve_method_accepts_display_names_and_lists_all():
    assert resolve_method("Grad-CAM++").key == "gradcam++"
    assert resolve_method("xgradcam").display_name == "XGrad-CAM"
    assert len(list_methods()) == 29  # 17 CAMs + 3 transformer methods + CAM, RefineCAM, occlusion, SS-CAM, IS-CAM,
    # Smooth Grad-CAM++, IG and 2 baselines
    assert all(m.description and m.paper and m.cost for m in list_methods())


def test_build_targets_top_k_orders_by_score():
    logits = torch.tensor([[0.1, 3.0, -1.0, 2.0]])
    assert [t.index for t in build_targets(logits, top_k=3)] == [1, 3, 0]
    assert [t.index for t in build_targets(logits)] == [1]
    contrast = build_targets(logits, classes=[], contrast=(3, 1))[0]
    assert float(contrast(logits)[0]) == pytest.approx(-1.0)


def test_list_layers_shapes_and_recommended(lite0):
    layers = {info.name: info for info in list_layers(lite0)}
    assert layers["bn2"].recommended and layers["bn2"].output_shape == (1, 1280, 7, 7)
    assert layers["conv_stem"].output_shape == (1, 32, 112, 112)
    assert layers["blocks.5"].output_shape == (1, 192, 7, 7)
    assert layers["classifier"].output_shape == (1, 1000) and not layers["classifier"].spatial
    assert sum(info.recommended for info in layers.values()) == 1
    assert resolve_layers(lite0, None) == ["bn2"]
    assert resolve_layers(lite0, ["blocks.4", "bn2", "blocks.4"]) == ["blocks.4", "bn2"]


def test_several_layers_in_one_call(lite0, cat_image):
    ex = explain(lite0, cat_image, methods=["gradcam"], layers=["blocks.3", "blocks.5", "bn2"])
    assert [r.raw.shape for r in ex.results] == [(14, 14), (7, 7), (7, 7)]
    assert all(r.map.shape == (300, 451) for r in ex.results)


def test_device_choice_and_override(monkeypatch):
    monkeypatch.setenv("CAMSCOPE_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    monkeypatch.delenv("CAMSCOPE_DEVICE")
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else pick_device().type)
    with pytest.raises(ExplainerError, match="Unknown device"):
        pick_device("warp-drive")
    if not torch.cuda.is_available():
        with pytest.raises(ExplainerError, match="no CUDA GPU"):
            pick_device("cuda")


def test_engine_never_imports_streamlit():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "explainers").rglob("*.py")
                 if "import streamlit" in p.read_text() or "from streamlit" in p.read_text()]
    assert offenders == []
    code = ("import sys, explainers, explainers.explain, explainers.cli, explainers.models; "
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["vit_b_16", "swin_t", "resnet18"])
def test_transformers_and_cnns_explain_end_to_end(name, cat_image):
    from explainers.models import load_model

    model = load_model(name, random_weights=True, device="cpu")
    ex = explain(model, cat_image, methods=["gradcam", "eigencam"], classes=[3])
    grid = {"vit_b_16": (14, 14), "swin_t": (7, 7), "resnet18": (7, 7)}[name]
    assert all(r.raw.shape == grid and r.map.shape == (300, 451) for r in ex.results)
    assert all(np.isfinite(r.map).all() for r in ex.results)
