"""Score-CAM, Ablation-CAM, FullGrad, ShapleyCAM, Finer-CAM and the guided methods, on small models."""
import numpy as np
import pytest
import torch
import torch.nn.modules.module as module_globals
from pytorch_grad_cam import AblationCAM, FinerCAM, FullGrad, GuidedBackpropReLUModel, ScoreCAM, ShapleyCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from explainers.pipeline import explain, on_grid
from explainers.models.spec import Preprocessing, wrap_module
from tests.tiny import tiny_image


class SmallNet(torch.nn.Module):
    """Conv-ReLU-conv-ReLU-pool-linear with random weights: 8 channels, 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.Conv2d(6, 8, 3, padding=1, stride=2), torch.nn.ReLU())
        self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 3))

    def forward(self, x):
        return self.head(self.body(x))


@pytest.fixture(scope="module")
def small():
    pre = Preprocessing(input_size=(32, 32), interpolation="bilinear")
    return wrap_module(SmallNet(), ["a", "b", "c"], "body.3", name="small", preprocessing=pre)


@pytest.fixture(scope="module")
def image():
    return tiny_image().resize((40, 30))


def reference(cls, small, image, cls_index, **call):
    x = small.preprocessing.to_tensor(image)
    layers = [] if cls is FullGrad else [small.module.body[3]]
    with cls(small.module, layers) as cam:
        if cls is FinerCAM:
            return cam(x, target_idx=cls_index)[0]
        return cam(x, [ClassifierOutputTarget(cls_index)], **call)[0]


@pytest.mark.parametrize("method, cls", [("scorecam", ScoreCAM), ("ablationcam", AblationCAM),
                                         ("fullgrad", FullGrad), ("shapleycam", ShapleyCAM),
                                         ("finercam", FinerCAM)])
def test_matches_pytorch_grad_cam(small, image, method, cls):
    ex = explain(small, image, methods=[method], top_k=2)
    assert len(ex.results) == 2
    for r in ex.results:
        ref = reference(cls, small, image, r.class_index)
        assert np.abs(on_grid(r.raw, 32, 32) - ref).max() <= 1e-4, method
        assert r.map.shape == (30, 40)


def test_scorecam_masked_passes_are_batched_with_no_hooks_and_report_progress(small, image):
    seen: list[tuple[int, int]] = []  # (batch size, hooks on the layer) for each run of the target layer

    def spy(module, inputs, output):
        if isinstance(module, torch.nn.ReLU) and output.shape[1] == 8:
            seen.append((output.shape[0], len(module._forward_hooks)))

    handle = module_globals.register_module_forward_hook(spy)
    steps: list[float] = []
    try:
        explain(small, image, methods=["scorecam"], batch_size=3, progress=lambda f, text: steps.append(f))
    finally:
        handle.remove()
    first, masked = seen[0], seen[1:]
    assert first == (1, 1)  # the one forward pass, with the engine's capture hook
    assert [b for b, _ in masked] in ([3, 3, 2], [3, 3, 1], [3, 3], [3, 2], [3, 1], [2])  # <= 8 channels, batches of 3
    assert all(hooks == 0 for _, hooks in masked)
    assert steps == sorted(steps) and steps[-1] == pytest.approx(1.0) and len(steps) >= 3


def test_guided_backprop_matches_the_library_on_relu(small, image):
    x = small.preprocessing.to_tensor(image)
    ex = explain(small, image, methods=["guided_backprop", "guided_gradcam", "gradcam"], classes=[1])
    gb = GuidedBackpropReLUModel(SmallNet(), device="cpu")(x, 1)  # (H, W, 3) on a fresh copy
    expected = np.abs(gb).max(axis=-1)
    np.testing.assert_allclose(ex.result("guided_backprop").raw, expected, rtol=1e-5, atol=1e-7)
    cam = on_grid(ex.result("gradcam").raw, 32, 32)
    np.testing.assert_allclose(ex.result("guided_gradcam").raw, expected * cam, rtol=1e-4, atol=1e-7)


def test_guided_relu6_stops_negative_gradients(lite0, cat_image):
    from explainers.methods.guided import guided_clone

    clone = guided_clone(lite0.module)
    assert not any(type(m) is torch.nn.ReLU6 for m in clone.modules())
    assert any(type(m) is torch.nn.ReLU6 for m in lite0.module.modules())  # the shared model is untouched
    sal = explain(lite0, cat_image, methods=["guided_backprop"]).results[0]
    assert sal.raw.shape == (224, 224) and sal.map.shape == (300, 451) and sal.raw.max() > 0
