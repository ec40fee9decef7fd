"""The model-parameter randomization test: it catches Guided Backprop, passes Grad-CAM, and never
touches the shared model."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from explainers.clones import parameters_snapshot
from explainers.errors import EvaluationError
from explainers.metrics import sanity as S


def test_layer_groups_go_from_the_stem_to_the_classifier(lite0):
    groups = S.layer_groups(lite0.module)
    assert groups[:3] == ["conv_stem", "bn1", "blocks.0.0"]
    assert groups[-4:] == ["blocks.6.0", "conv_head", "bn2", "classifier"]
    assert len(groups) == 21  # stem, bn1, 16 blocks, head conv, bn2, classifier


def test_randomize_changes_only_its_group_of_a_copy(lite0):
    before = parameters_snapshot(lite0.module)
    twin = copy.deepcopy(lite0.module)
    S.randomize(twin, "classifier", seed=0)
    after = twin.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"classifier.weight", "classifier.bias"}
    again = copy.deepcopy(lite0.module)
    S.randomize(again, "classifier", seed=0)
    assert torch.equal(again.classifier.weight, twin.classifier.weight)  # the seed fixes the draw
    assert all(torch.equal(before[k], v) for k, v in lite0.module.state_dict().items())


def test_similarity_by_hand():
    ramp = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (16, 1))
    rho, ssim = S.similarity(ramp, ramp)
    assert rho == pytest.approx(1.0) and ssim == pytest.approx(1.0)
    assert S.similarity(ramp, 1 - ramp)[0] == pytest.approx(-1.0)
    assert S.similarity(ramp, np.zeros_like(ramp))[0] == 0.0  # a blank map has no ranking left
    assert S.similarity(np.zeros_like(ramp), np.zeros_like(ramp))[0] == 1.0  # blank before and after


def test_verdict_uses_the_median():
    fails = S.verdict("x", "X", [0.9, 0.8, 0.1])
    assert not fails.passes and fails.median_spearman == pytest.approx(0.8) and "fails" in fails.sentence
    passes = S.verdict("x", "X", [0.95, 0.2, 0.1])
    assert passes.passes and passes.median_spearman == pytest.approx(0.2) and "passes" in passes.sentence


def test_gradcam_passes_guided_backprop_fails_and_the_shared_model_is_untouched(lite0, cat_image):
    before = parameters_snapshot(lite0.module)
    module, training = lite0.module, lite0.module.training
    result = S.sanity_check(lite0, cat_image, ["gradcam", "guided_backprop"], steps=S.MIN_VERDICT_STEPS, seed=0)

    assert lite0.module is module and lite0.module.training == training
    after = lite0.module.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), "the shared model's weights changed"

    assert [s.group for s in result.steps] == ["classifier", "bn2", "conv_head", "blocks.6.0", "blocks.5.3"]
    assert result.steps[-1].randomized == ("classifier", "bn2", "conv_head", "blocks.6.0", "blocks.5.3")
    gradcam = [s.spearman["gradcam"] for s in result.steps]
    guided = [s.spearman["guided_backprop"] for s in result.steps]
    # measured: Grad-CAM 0.82 0.67 0.15 0.49 0.43; Guided Backprop 1.00 0.98 0.99 0.96 0.95
    assert min(gradcam) < 0.3 and np.median(gradcam) < S.PASS_BELOW
    assert min(guided) > 0.9
    assert result.verdicts["gradcam"].passes and not result.verdicts["guided_backprop"].passes
    for step in result.steps:  # SSIM tells the same story
        assert step.ssim["guided_backprop"] > 0.9
    assert min(s.ssim["gradcam"] for s in result.steps) < 0.3
    # guided backprop's saliency is computed at the input's resolution; its map is on the image grid
    assert result.original["guided_backprop"].shape == (cat_image.height, cat_image.width)
    assert result.steps[0].maps["gradcam"].shape == (cat_image.height, cat_image.width)


def test_independent_randomization_changes_one_group_at_a_time_and_gives_no_verdict(lite0, cat_image):
    before = parameters_snapshot(lite0.module)
    result = S.sanity_check(lite0, cat_image, ["gradcam"], mode="independent", steps=2)
    assert [s.randomized for s in result.steps] == [("classifier",), ("bn2",)]
    assert result.verdicts == {}
    assert all(torch.equal(before[k], v) for k, v in lite0.module.state_dict().items())
    few = S.sanity_check(lite0, cat_image, ["gradcam"], steps=1)
    assert few.verdicts == {}  # one step is a coin flip: no verdict
    # the first cascading and independent steps both randomize only the classifier, with the same seed
    assert few.steps[0].spearman["gradcam"] == pytest.approx(result.steps[0].spearman["gradcam"])


def test_bad_settings_are_plain_errors(lite0, cat_image):
    with pytest.raises(EvaluationError, match="cascading"):
        S.sanity_check(lite0, cat_image, ["gradcam"], mode="sideways")
    with pytest.raises(EvaluationError, match="steps"):
        S.sanity_check(lite0, cat_image, ["gradcam"], steps=0)
