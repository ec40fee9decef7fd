"""Grad-CAM and friends on a model small enough to work out by hand.

Features: A0 = 4 on the top-left 2x2 block, A1 = 2 on the bottom-right block, 0 elsewhere.
Logits = W @ mean(A), so dlogit_c / dA_k(i, j) = W[c][k] / 16 everywhere.
  Grad-CAM class 0: alpha = (1/16, -1/16) -> top-left 4/16 = 0.25, bottom-right relu(-2/16) = 0
  Grad-CAM class 1: alpha = (0.5/16, 2/16) -> top-left 0.125, bottom-right 0.25
  "0 rather than 1": alpha = (0.5/16, -3/16) -> top-left 0.125, bottom-right relu(-6/16) = 0
"""
import numpy as np
import pytest

from explainers.pipeline import explain, predict
from tests.tiny import BACKWARD_CALLS, tiny_image, tiny_model


def block(top_left: float, bottom_right: float) -> np.ndarray:
    out = np.zeros((4, 4), np.float32)
    out[:2, :2] = top_left
    out[2:, 2:] = bottom_right
    return out


@pytest.mark.parametrize("cls, expected", [(0, block(0.25, 0.0)), (1, block(0.125, 0.25))])
def test_gradcam_by_hand(cls, expected):
    result = explain(tiny_model(), tiny_image(), methods=["gradcam"], classes=[cls]).results[0]
    np.testing.assert_allclose(result.raw, expected, atol=1e-6)
    np.testing.assert_allclose(result.map, expected / expected.max(), atol=1e-5)


def test_logits_by_hand():
    # mean(A0) = 4 * 4 / 16 = 1, mean(A1) = 2 * 4 / 16 = 0.5
    preds = {p.index: p for p in predict(tiny_model(), tiny_image())}
    assert preds[0].score == pytest.approx(1 * 1 - 1 * 0.5)
    assert preds[1].score == pytest.approx(0.5 * 1 + 2 * 0.5)
    assert preds[1].probability == pytest.approx(1 / (1 + np.exp(0.5 - 1.5)), abs=1e-6)


def test_contrast_by_hand():
    result = explain(tiny_model(), tiny_image(), methods=["gradcam"], classes=[], contrast=(0, 1)).results[0]
    assert (result.class_index, result.contrast_index) == (0, 1)
    assert result.label == "left rather than right"
    assert result.score == pytest.approx(0.5 - 1.5)
    np.testing.assert_allclose(result.raw, block(0.125, 0.0), atol=1e-6)


def test_layercam_and_hirescam_by_hand():
    ex = explain(tiny_model(), tiny_image(), methods=["layercam", "hirescam"], classes=[0])
    # LayerCAM keeps positive gradients only: 1/16 * A0 -> 0.25 top-left, A1 dropped.
    np.testing.assert_allclose(ex.result("layercam").raw, block(0.25, 0.0), atol=1e-6)
    # HiResCAM sums grad * A element-wise: 0.25 top-left, relu(-2/16) bottom-right.
    np.testing.assert_allclose(ex.result("hirescam").raw, block(0.25, 0.0), atol=1e-6)


def test_map_follows_the_original_image_grid():
    image = tiny_image().resize((8, 12))  # width 8, height 12
    result = explain(tiny_model(), image, methods=["gradcam"], classes=[1]).results[0]
    assert result.raw.shape == (4, 4)
    assert result.map.shape == (12, 8)
    assert result.map.max() == pytest.approx(1.0) and result.map.min() == pytest.approx(0.0)


def test_backward_stops_at_the_target_layer():
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = tiny_model()
    BACKWARD_CALLS.clear()
    explain(model, tiny_image(), methods=["gradcam", "gradcam++", "layercam"], top_k=2)
    assert BACKWARD_CALLS == []  # nothing before the layer was differentiated
    assert all(p.grad is None for p in model.module.parameters())  # and no .grad was filled
    x = model.preprocessing.to_tensor(tiny_image())
    with GradCAM(model.module, [model.module.features]) as cam:  # the library's full backward...
        cam(x, [ClassifierOutputTarget(0)])
    assert BACKWARD_CALLS == ["stem"]  # ...does reach the stem: the probe can fail
