"""Deletion/insertion curves, ROAD and confidence change: hand-computed numbers on a tiny model,
and Grad-CAM against a random map on the embedded model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from explainers.errors import EvaluationError
from explainers.pipeline import explain
from explainers.metrics import faithfulness as F
from explainers.models.spec import Preprocessing, wrap_module


class MeanRed(nn.Module):
    """Class 0's probability is the mean of the red channel (inputs in [0, 1], no normalization)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x[:, 0].mean(dim=(1, 2)).clamp(1e-7, 1 - 1e-7)
        return torch.stack([p.log(), (1 - p).log()], dim=1)  # softmax gives [p, 1 - p]


@pytest.fixture(scope="module")
def tiny():
    plain = Preprocessing(input_size=(224, 224), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    return wrap_module(MeanRed(), ["object", "rest"], target_layer="", preprocessing=plain)


def red_image(left: float, right: float) -> Image.Image:
    """224 x 224; the red channel is ``left`` on the left half and ``right`` on the right half."""
    rgb = np.zeros((224, 224, 3), np.uint8)
    rgb[:, :112, 0], rgb[:, 112:, 0] = round(255 * left), round(255 * right)
    return Image.fromarray(rgb)


def halves(left_high: bool) -> np.ndarray:
    saliency = np.zeros((224, 224), np.float32)
    saliency[:, :112] = 1.0
    return saliency if left_high else 1.0 - saliency


def test_deletion_and_insertion_of_a_uniform_image_are_linear(tiny):
    # red = 0.8 everywhere; removing a share f to black leaves p = 0.8 (1 - f): area 0.4 exactly
    found = F.deletion_insertion(tiny, red_image(0.8, 0.8), halves(True), class_index=0, steps=4,
                                 deletion_baseline="zeros", insertion_baseline="zeros")
    np.testing.assert_allclose(found.deletion.fractions, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(found.deletion.probabilities, [0.8, 0.6, 0.4, 0.2, 0.0], atol=1e-5)
    np.testing.assert_allclose(found.insertion.probabilities, [0.0, 0.2, 0.4, 0.6, 0.8], atol=1e-5)
    assert found.deletion.area == pytest.approx(0.4, abs=1e-5)
    assert found.insertion.area == pytest.approx(0.4, abs=1e-5)
    assert found.deletion.baseline == "zeros" and found.deletion.class_index == 0


def test_deletion_follows_the_map_order(tiny):
    image = red_image(0.8, 0.2)  # p = 0.5 on the whole image
    right_map = F.curve(tiny, image, halves(True), "deletion", 0, steps=4, baseline="zeros")
    # left (red 0.8) half removed first: p = 0.5, 0.3, 0.1, 0.05, 0; trapezoid area 0.25 * 0.7
    np.testing.assert_allclose(right_map.probabilities, [0.5, 0.3, 0.1, 0.05, 0.0], atol=1e-5)
    assert right_map.area == pytest.approx(0.175, abs=1e-5)
    wrong_map = F.curve(tiny, image, halves(False), "deletion", 0, steps=4, baseline="zeros")
    np.testing.assert_allclose(wrong_map.probabilities, [0.5, 0.45, 0.4, 0.2, 0.0], atol=1e-5)
    assert wrong_map.area == pytest.approx(0.325, abs=1e-5)


def test_mean_and_blur_baselines(tiny):
    image = red_image(0.8, 0.8)
    mean = F.curve(tiny, image, halves(True), "deletion", 0, steps=2, baseline="mean")
    assert mean.probabilities[-1] == pytest.approx(0.0, abs=1e-5)  # this model's mean colour is black
    blur = F.curve(tiny, image, halves(True), "insertion", 0, steps=2, baseline="blur")
    assert blur.probabilities[0] == pytest.approx(0.8, abs=2e-3)  # blurring a flat image keeps it flat
    with pytest.raises(EvaluationError, match="Unknown baseline"):
        F.curve(tiny, image, halves(True), "deletion", 0, steps=2, baseline="noise")
    with pytest.raises(EvaluationError, match="steps"):
        F.curve(tiny, image, halves(True), "deletion", 0, steps=0)
    with pytest.raises(EvaluationError, match="out of range"):
        F.curve(tiny, image, halves(True), "deletion", 5, steps=2)


def test_confidence_change_by_hand(tiny):
    # image x map: the right half goes to 0, so p falls from 0.8 to 0.4: a 50 % drop, no increase
    change = F.confidence_change(tiny, red_image(0.8, 0.8), halves(True), class_index=0)
    assert change.original == pytest.approx(0.8, abs=1e-5) and change.masked == pytest.approx(0.4, abs=1e-5)
    assert change.drop == pytest.approx(0.5, abs=1e-5) and not change.increase
    up = F.ConfidenceChange(original=0.4, masked=0.6)
    assert up.drop == 0.0 and up.increase
    assert F.average_drop([change, up]) == pytest.approx(25.0, abs=1e-3)
    assert F.increase_in_confidence([change, up]) == pytest.approx(50.0)


def test_ties_are_broken_at_random_not_top_left_first():
    ranks = F.importance_ranks(np.zeros((8, 8), np.float32))
    assert sorted(ranks.ravel()) == list(range(64))
    assert ranks.ravel()[:8].tolist() != list(range(8))
    np.testing.assert_array_equal(ranks, F.importance_ranks(np.zeros((8, 8), np.float32)))  # fixed seed


def test_random_reference_map_is_cam_like():
    smooth = F.random_saliency(300, 451, seed=0)
    assert smooth.shape == (300, 451) and smooth.min() == 0.0 and smooth.max() == pytest.approx(1.0)
    # neighbouring pixels barely differ (a 7 x 7 grid upsampled), unlike per-pixel noise
    assert np.abs(np.diff(smooth, axis=1)).mean() < 0.01
    assert np.abs(np.diff(F.random_saliency(300, 451, cells=None), axis=1)).mean() > 0.2


def test_gradcam_beats_a_random_map_on_the_cat(lite0, cat_image):
    """Black fill for both curves: measured on this photo, Grad-CAM beats random maps with it (RISE's
    grey / blur fill put this close-up, where every pixel is cat, within the random maps' spread)."""
    cam = explain(lite0, cat_image, ["gradcam"]).results[0]
    settings = dict(class_index=cam.class_index, steps=10, deletion_baseline="zeros", insertion_baseline="zeros")
    gradcam = F.deletion_insertion(lite0, cat_image, cam.map, **settings)
    random = F.deletion_insertion(lite0, cat_image, F.random_saliency(cat_image.height, cat_image.width, 0),
                                  **settings)
    assert gradcam.deletion.area < random.deletion.area  # measured 0.127 vs 0.152
    assert gradcam.insertion.area > random.insertion.area  # measured 0.396 vs 0.330
    # the curves start and end where they must: the untouched image and the all-black one
    assert gradcam.deletion.probabilities[0] == pytest.approx(cam.probability, abs=1e-4)
    assert gradcam.insertion.probabilities[-1] == pytest.approx(cam.probability, abs=1e-4)
    assert gradcam.deletion.probabilities[-1] == pytest.approx(random.insertion.probabilities[0], abs=1e-6)


def test_road_removing_the_most_relevant_half_hurts_more(lite0, cat_image):
    cam = explain(lite0, cat_image, ["gradcam"]).results[0]
    found = F.road(lite0, cat_image, cam.map, cam.class_index, removed=(0.5,))
    assert found.original == pytest.approx(cam.probability, abs=1e-4)
    assert found.most_relevant_first[0] < found.least_relevant_first[0]  # measured 0.20 vs 0.41
    assert found.combined == pytest.approx((found.least_relevant_first[0] - found.most_relevant_first[0]) / 2)
    with pytest.raises(EvaluationError, match="between 0 and 1"):
        F.road(lite0, cat_image, cam.map, removed=(1.0,))


def test_the_command_line_lists_the_engine_baselines():
    from explainers import cli_evaluate

    assert cli_evaluate.BASELINES == F.BASELINES and cli_evaluate.DEFAULT_STEPS == F.DEFAULT_STEPS
