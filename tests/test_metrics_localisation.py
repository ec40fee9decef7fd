"""Pointing game, energy and IoU, checked against numbers worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from explainers.errors import EvaluationError
from explainers.metrics import localisation as L


def peak_at(x: int, y: int, size: int = 224) -> np.ndarray:
    """A smooth synthetic map whose single maximum is at (x, y)."""
    ys, xs = np.mgrid[0:size, 0:size]
    return np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 20.0 ** 2)).astype(np.float32)


BOX = (100, 100, 150, 150)  # covers x, y in 100..149


def truth() -> np.ndarray:
    return L.ground_truth(224, 224, box=BOX)


def test_box_mask_covers_the_half_open_box():
    mask = L.box_mask((1, 1, 3, 4), 5, 5)
    expected = np.zeros((5, 5), bool)
    expected[1:4, 1:3] = True
    np.testing.assert_array_equal(mask, expected)
    assert L.box_mask((-10, -10, 2, 2), 5, 5).sum() == 4  # clipped to the image
    with pytest.raises(EvaluationError, match="x1 > x0"):
        L.box_mask((3, 1, 1, 4), 5, 5)
    with pytest.raises(EvaluationError, match="outside"):
        L.box_mask((10, 10, 20, 20), 5, 5)
    with pytest.raises(EvaluationError, match="four numbers"):
        L.box_mask((1, 2, 3), 5, 5)


def test_peak_inside_the_box_is_a_hit_and_far_away_a_miss():
    inside = L.pointing_game(peak_at(120, 130), truth())
    assert inside.hit and inside.point == (120, 130) and inside.distance == 0.0
    outside = L.pointing_game(peak_at(30, 200), truth())
    assert not outside.hit and outside.point == (30, 200)
    assert outside.distance == pytest.approx(np.hypot(100 - 30, 200 - 149))


def test_tolerance_is_fifteen_pixels_at_224_and_counts_at_the_edge():
    assert L.scaled_tolerance(224, 224) == 15.0
    assert L.scaled_tolerance(300, 451) == pytest.approx(15 * 300 / 224)  # the shorter side
    # right of the box: the nearest box pixel is x = 149
    assert L.pointing_game(peak_at(164, 120), truth()).hit  # 15 px away
    assert not L.pointing_game(peak_at(165, 120), truth()).hit  # 16 px away
    # diagonally off the corner (149, 149): 9 and 12 px give exactly 15; 10 and 12 give 15.6
    corner = L.pointing_game(peak_at(158, 161), truth())
    assert corner.hit and corner.distance == pytest.approx(15.0)
    assert not L.pointing_game(peak_at(159, 161), truth()).hit
    assert L.pointing_game(peak_at(165, 120), truth(), tolerance=16).hit


def test_centre_point_baseline_hits_a_central_box_and_misses_a_corner():
    central = L.centre_baseline(L.ground_truth(224, 224, box=(100, 100, 150, 150)))
    assert central.hit and central.point == (112, 112)
    corner = L.centre_baseline(L.ground_truth(224, 224, box=(0, 0, 40, 40)))
    assert not corner.hit and corner.distance == pytest.approx(np.hypot(112 - 39, 112 - 39))


def test_ties_point_at_the_first_maximum_in_row_order():
    flat = np.zeros((10, 10), np.float32)
    flat[3, 7] = flat[5, 2] = 1.0
    assert L.peak(flat) == (7, 3)


def test_energy_by_hand():
    saliency = np.arange(16, dtype=np.float32).reshape(4, 4)  # total 120
    box = L.ground_truth(4, 4, box=(0, 0, 2, 2))  # values 0, 1, 4, 5
    assert L.energy(saliency, box) == pytest.approx(10 / 120)
    signed = saliency - 8  # negatives count as 0: 0..7 in the box are all <= 0
    assert L.energy(signed, box) == 0.0
    assert L.energy(np.zeros((4, 4)), box) == 0.0


def test_iou_by_hand():
    saliency = np.full((4, 4), 0.2, np.float32)
    saliency[0] = 1.0  # the top row is above half the maximum: 4 pixels
    box = L.ground_truth(4, 4, box=(0, 0, 2, 2))  # 4 pixels, 2 of them in the top row
    assert L.iou(saliency, box, threshold=0.5) == pytest.approx(2 / 6)
    assert L.iou(saliency, box, threshold=0.1) == pytest.approx(4 / 16)  # everything is above 0.1
    with pytest.raises(EvaluationError, match="threshold"):
        L.iou(saliency, box, threshold=0.0)


def test_localise_collects_every_number():
    found = L.localise(peak_at(120, 130), truth())
    assert found.pointing.hit and found.ground_truth_pixels == 2500 and found.threshold == 0.5
    assert 0.0 < found.energy < 1.0 and 0.0 < found.iou < 1.0


def test_masks_of_any_encoding_and_size():
    small = np.zeros((56, 56), np.uint8)
    small[25:38, 25:38] = 255  # a 0/255 PNG at a quarter of the size
    big = L.ground_truth(224, 224, mask=small)
    assert big[100:150, 100:150].all() and not big[:90].any()
    labels = (small > 0).astype(np.uint8)  # a 0/1 label mask: same region
    np.testing.assert_array_equal(L.ground_truth(224, 224, mask=labels), big)
    union = L.ground_truth(10, 10, boxes=[(0, 0, 2, 2), (8, 8, 10, 10)])
    assert union.sum() == 8
    with pytest.raises(EvaluationError, match="empty"):
        L.ground_truth(10, 10, mask=np.zeros((10, 10), np.uint8))
    with pytest.raises(EvaluationError, match="box"):
        L.ground_truth(10, 10)
    with pytest.raises(EvaluationError, match="same image"):
        L.pointing_game(np.zeros((5, 5)), union)
