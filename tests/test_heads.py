"""Multi-label (sigmoid) and single-logit binary heads: probabilities are sigmoid per label, never softmax."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from explainers.cli import main
from explainers.pipeline import explain, predict
from explainers.heads import probabilities
from explainers.models import load_model
from explainers.report import build_report
from tests.tiny_folders import SIZE, save_hf
from ui.figures import top_k_chart


@pytest.fixture(scope="module")
def multi_label(tmp_path_factory):
    folder = save_hf(tmp_path_factory.mktemp("ml") / "vit", "vit", problem_type="multi_label_classification")
    return load_model(str(folder), device="cpu")


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    import transformers as T

    torch.manual_seed(1)
    config = T.ViTConfig(image_size=SIZE, patch_size=8, hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=48, num_labels=1)
    folder = tmp_path_factory.mktemp("binary") / "vit"
    T.ViTForImageClassification(config).eval().save_pretrained(folder)
    return load_model(str(folder), device="cpu")


def image(seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8))


def test_probabilities_by_hand():
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    assert probabilities(logits, "sigmoid")[0].tolist() == pytest.approx([0.5, 0.880797, 0.268941], abs=1e-6)
    assert probabilities(logits, "softmax")[0].tolist() == pytest.approx([0.114195, 0.843795, 0.042010], abs=1e-6)  # e^z / 8.756936


def test_multi_label_probabilities_are_sigmoid_per_label(multi_label):
    assert multi_label.head == "sigmoid"
    top = predict(multi_label, image(), k=3)
    with torch.no_grad():
        logits = multi_label.module(multi_label.preprocessing.to_tensor(image()))[0]
    for p in top:
        assert p.head == "sigmoid"
        assert p.probability == pytest.approx(float(torch.sigmoid(logits[p.index])), abs=1e-6)
    assert sum(p.probability for p in top) != pytest.approx(1.0, abs=1e-3)  # not one distribution
    ex = explain(multi_label, image(), methods=["gradcam"], classes=[2])
    assert ex.head == "sigmoid"
    assert ex.results[0].probability == pytest.approx(float(torch.sigmoid(logits[2])), abs=1e-6)


def test_evaluation_probabilities_follow_the_head(multi_label):
    from explainers.metrics.common import class_probabilities

    batch = torch.stack([multi_label.preprocessing.to_tensor(image(s))[0] for s in (0, 1)])
    with torch.no_grad():
        logits = multi_label.module(batch)
    expected = torch.sigmoid(logits[:, 2]).numpy()
    assert class_probabilities(multi_label, batch, 2) == pytest.approx(expected, abs=1e-6)


def test_binary_head_explains_positive_as_the_logit_and_negative_as_its_negation(binary):
    assert binary.categories == ["negative", "positive"] and binary.head == "sigmoid"
    with torch.no_grad():
        z = float(binary.module.model(pixel_values=binary.preprocessing.to_tensor(image())).logits[0, 0])
    ex = explain(binary, image(), methods=["gradcam"], classes=[0, 1])
    negative, positive = ex.results
    assert positive.score == pytest.approx(z, abs=1e-5) and negative.score == pytest.approx(-z, abs=1e-5)
    assert positive.probability == pytest.approx(1 / (1 + np.exp(-z)), abs=1e-6)
    assert negative.probability + positive.probability == pytest.approx(1.0, abs=1e-6)


def test_summary_report_and_chart_say_independent_labels(multi_label, tmp_path):
    image().save(tmp_path / "in.png")
    folder = multi_label.spec.weights_file.rsplit("/", 1)[0]
    assert main(["explain", str(tmp_path / "in.png"), "--model", folder, "--out", str(tmp_path / "o")]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["settings"]["head"] == "sigmoid"
    assert "independent labels" in summary["settings"]["probabilities"]
    ex = explain(multi_label, image(), methods=["gradcam"])
    report = build_report(multi_label, image(), ex.results, ex.predictions)
    assert "independent labels" in report.html
    assert "independent labels" in top_k_chart(ex.predictions).layout.xaxis.title.text
