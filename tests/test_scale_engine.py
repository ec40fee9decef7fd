"""explain_batch: B images in one shared pass equal ``explain`` image by image; out-of-memory halves the batch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from explainers.errors import MethodError, OutOfMemory, TargetError
from explainers.pipeline import explain
from explainers.methods.catalog import list_methods
from explainers.scale import engine
from explainers.scale.engine import TargetRule, explain_batch

ONE_PASS = [m.key for m in list_methods() if m.kind == "shared"]
TABBY, EGYPTIAN_CAT, CUP = 281, 285, 968


@pytest.fixture(scope="module")
def images(cat_image, coffee_image, astronaut_image):
    return [cat_image, coffee_image, astronaut_image, cat_image.resize((150, 233))]  # four sizes


def _same(a, b) -> None:
    assert (a.method, a.layer, a.class_index) == (b.method, b.layer, b.class_index)
    assert a.map.shape == b.map.shape
    assert np.abs(a.map - b.map).max() <= 1e-5
    assert np.abs(a.raw - b.raw).max() <= 1e-5 * max(float(np.abs(b.raw).max()), 1.0)
    assert a.score == pytest.approx(b.score, abs=1e-4) and a.probability == pytest.approx(b.probability, abs=1e-6)


@pytest.mark.parametrize("method", ONE_PASS)
def test_batched_equals_per_image_explain(lite0, images, method):
    labels = [TABBY, CUP, None, EGYPTIAN_CAT]
    batched = explain_batch(lite0, images, [method], targets="both", labels=labels, batch_size=3)
    assert len(batched) == 4
    for image, label, got in zip(images, labels, batched):
        predicted = got.predictions[0].index
        wanted = list(dict.fromkeys([predicted] + ([label] if label is not None else [])))
        alone = explain(lite0, image, methods=[method], classes=wanted)
        assert [r.class_index for r in got.results] == wanted
        assert [p.index for p in got.predictions] == [p.index for p in alone.predictions]
        for a, b in zip(got.results, alone.results, strict=True):
            _same(a, b)
    if method == "gradcam":  # the cat's two classes (tabby is true, predicted differs or not) are real maps
        assert batched[0].results[0].map.max() == pytest.approx(1.0)


def test_several_methods_layers_and_top_k_share_one_pass(lite0, images):
    methods, layers = ["gradcam", "hirescam", "eigencam"], ["bn2", "blocks.5"]
    batched = explain_batch(lite0, images[:3], methods, targets="top-k:2", layers=layers, batch_size=8)
    for image, got in zip(images, batched):
        alone = explain(lite0, image, methods=methods, top_k=2, layers=layers)
        assert len(got.results) == 3 * 2 * 2
        for a, b in zip(got.results, alone.results, strict=True):
            _same(a, b)


def test_class_agnostic_maps_are_computed_once_per_image_and_layer_whatever_the_classes(lite0, images, monkeypatch):
    from explainers import batch as batch_module, pipeline
    from explainers.methods import shared_pass

    calls = []

    def counted(cls, *args, **kwargs):
        calls.append(cls.__name__)
        return shared_pass.shared_cam(cls, *args, **kwargs)

    monkeypatch.setattr(pipeline, "shared_cam", counted)
    monkeypatch.setattr(batch_module, "shared_cam", counted)
    layers = ["bn2", "blocks.5"]
    alone = explain(lite0, images[0], ["eigencam", "gradcam"], top_k=3, layers=layers)
    assert calls.count("EigenCAM") == 2 and calls.count("GradCAM") == 6  # one per layer; one per class and layer
    eigen = [r for r in alone.results if r.method == "eigencam" and r.layer == "bn2"]
    assert len({r.class_index for r in eigen}) == 3
    assert all(np.array_equal(r.raw, eigen[0].raw) for r in eigen[1:])
    shared = shared_pass.ClassAgnosticMaps()
    eigen_spec = next(m for m in list_methods() if m.key == "eigencam")
    first = shared.get(eigen_spec, "bn2", lambda: np.ones((2, 2), np.float32))
    first[0, 0] = 5.0  # a result changing its array leaves the next class's map as computed
    second = shared.get(eigen_spec, "bn2", lambda: pytest.fail("computed twice"))
    assert second is not first and (second == 1.0).all()
    calls.clear()
    batched = explain_batch(lite0, images[:2], ["eigencam"], targets="top-k:3", layers=layers, batch_size=2)
    assert calls.count("EigenCAM") == 2 * 2 and sum(len(b.results) for b in batched) == 2 * 3 * 2
    for a, b in zip(batched[0].results, [r for r in alone.results if r.method == "eigencam"], strict=True):
        _same(a, b)


def test_a_model_that_flattens_with_view_gets_contiguous_batches_not_an_error(lite0, images):
    from explainers.batch import batch_tensor
    from explainers.methods.inference_copy import accepts_channels_last
    from explainers.models.spec import Preprocessing, wrap_module
    from tests.test_methods_peers import FlatViewNet

    model = wrap_module(FlatViewNet(), ["a", "b", "c"], "embed", name="flatview",
                        preprocessing=Preprocessing(input_size=(32, 32), interpolation="bilinear"))
    x = batch_tensor(model, images[:2])
    assert x.is_contiguous() and not accepts_channels_last(model.module, x)
    assert accepts_channels_last(lite0.module, batch_tensor(lite0, images[:1]))
    assert batch_tensor(lite0, images[:2]).is_contiguous(memory_format=torch.channels_last)
    batched = explain_batch(model, images, ["gradcam"], "predicted", batch_size=3)
    for image, got in zip(images, batched):
        (alone,) = explain(model, image, ["gradcam"], classes=[got.results[0].class_index]).results
        _same(got.results[0], alone)


def test_out_of_memory_halves_the_batch_and_retries(lite0, images, monkeypatch):
    real, sizes, told = engine.capture_batch, [], []

    def small_memory(model, x, layers, with_grads):
        sizes.append(x.shape[0])
        if x.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return real(model, x, layers, with_grads)

    monkeypatch.setattr(engine, "capture_batch", small_memory)
    got = explain_batch(lite0, images, ["gradcam"], batch_size=4, on_batch_size=told.append)
    assert sizes == [4, 2, 1, 1, 1, 1] and told == [2, 1]
    alone = [explain(lite0, im, methods=["gradcam"]).results[0] for im in images]
    for g, a in zip(got, alone):
        _same(g.results[0], a)

    monkeypatch.setattr(engine, "capture_batch", lambda *a: (_ for _ in ()).throw(torch.OutOfMemoryError("x")))
    with pytest.raises(OutOfMemory, match="ran out of memory"):
        explain_batch(lite0, images[:1], ["gradcam"], batch_size=1)


def test_target_rules_and_refusals(lite0, images):
    logits = torch.tensor([0.1, 3.0, 2.0, -1.0])
    assert TargetRule.parse("predicted").classes(logits, 3) == [1]
    assert TargetRule.parse("true").classes(logits, 3) == [3] and TargetRule.parse("true").classes(logits, None) == []
    assert TargetRule.parse("both").classes(logits, 1) == [1] and TargetRule.parse("both").classes(logits, 0) == [1, 0]
    assert TargetRule.parse("top-k:3").classes(logits, None) == [1, 2, 0] and str(TargetRule.parse("TOP-K:3")) == "top-k:3"
    for bad in ("top-k:0", "best", "top-k:x"):
        with pytest.raises(TargetError, match="Unknown targets"):
            TargetRule.parse(bad)
    with pytest.raises(MethodError, match="Score-CAM need more than one pass"):
        explain_batch(lite0, images[:1], ["scorecam"])
    with pytest.raises(TargetError, match="one label"):
        explain_batch(lite0, images[:2], ["gradcam"], labels=[1])
    explicit = explain_batch(lite0, images[:2], ["gradcam"], targets=[[TABBY, TABBY], [CUP]])
    assert [[r.class_index for r in e.results] for e in explicit] == [[TABBY], [CUP]]
    assert explain_batch(lite0, [Image.new("RGB", (9, 9))], ["gradcam"], targets="true")[0].results == []


def test_batch_probabilities_and_labels_follow_the_models_head(tmp_path):
    from explainers.models import load_model
    from explainers.pipeline import predict
    from tests.tiny_folders import save_hf

    model = load_model(str(save_hf(tmp_path / "findings", "vit", problem_type="multi_label_classification")))
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)) for _ in range(2)]
    for image, batched in zip(images, explain_batch(model, images, ["gradcam"], targets="predicted")):
        assert batched.head == "sigmoid" and batched.fit == "squash"
        for p in predict(model, image):  # independent labels: sigmoid(logit) each, never a softmax
            assert batched.probabilities[p.index] == pytest.approx(1 / (1 + np.exp(-p.score)), abs=1e-5)
