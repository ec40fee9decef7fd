"""Verdicts against the random reference, the settings record, and the ROAD time estimate."""
from __future__ import annotations

import numpy as np
import pytest

from explainers.pipeline import explain
from explainers.io import load_image
from explainers.metrics import faithfulness as F
from explainers.metrics import localisation as L
from explainers.metrics import record, verdicts
from explainers.metrics.verdicts import MetricVerdict

CAT = "assets/samples/cat.jpg"


def test_verdict_words_and_outcomes_by_hand():
    lost = MetricVerdict("gradcam", "insertion area", 0.538, 0.658)
    assert lost.outcome == "loses" and not lost.beats and lost.label == "does not beat random"
    assert lost.sentence == "Insertion area 0.538 does not beat the random map's 0.658 (higher is better)."
    won = MetricVerdict("gradcam", "deletion area", 0.305, 0.325)  # lower is better
    assert won.outcome == "beats" and won.sentence == \
        "Deletion area 0.305 beats the random map's 0.325 (lower is better)."
    tie = MetricVerdict("gradcam", "IoU", 0.505, 0.500)  # 0.005 apart: within the 0.01 margin
    assert tie.outcome == "ties" and tie.label == "no better than random"
    assert tie.sentence == "IoU 0.505 is no better than the random map's 0.500 (higher is better, within 0.01)."
    assert MetricVerdict("m", "drop in confidence", 0.40, 0.20).outcome == "loses"


def test_versus_reference_judges_every_metric_of_every_method_once():
    scores = {"gradcam": {"deletion area": 0.2, "insertion area": 0.7, "ROAD combined": 0.1},
              "random": {"deletion area": 0.3, "insertion area": 0.6},
              "layercam": {"deletion area": 0.35, "insertion area": 0.6}}
    found = [(v.method, v.metric, v.outcome) for v in verdicts.versus_reference(scores, "random")]
    assert found == [("gradcam", "deletion area", "beats"), ("gradcam", "insertion area", "beats"),
                     ("layercam", "deletion area", "loses"), ("layercam", "insertion area", "ties")]


def test_the_cat_insertion_does_not_beat_random(lite0):
    """The issue's case: Grad-CAM's insertion area 0.538 on the cat against the random map's 0.658."""
    image = load_image(CAT)
    result = explain(lite0, image, ["gradcam"])
    cls = result.predictions[0].index
    ours = F.curve(lite0, image, result.results[0].map, "insertion", cls, steps=25)
    rand = F.curve(lite0, image, F.random_saliency(image.height, image.width, 0), "insertion", cls, steps=25)
    assert round(ours.area, 3) == 0.538 and round(rand.area, 3) == 0.658
    (verdict,) = verdicts.versus_reference({"gradcam": {"insertion area": ours.area},
                                            "random": {"insertion area": rand.area}}, "random")
    assert verdict.label == "does not beat random" and verdict.value == ours.area


def test_pointing_verdict_compares_with_the_centre():
    truth = L.ground_truth(100, 100, box=(40, 40, 60, 60))  # the centre is inside
    hit, centre = L.pointing_game(np.pad(np.ones((1, 1)), ((50, 49), (50, 49))), truth), L.centre_baseline(truth)
    assert hit.hit and centre.hit
    assert verdicts.pointing_verdict(hit, centre) == \
        "Pointing game: hit, but the image's centre hits too: no evidence the map beats a guess."
    corner = L.ground_truth(100, 100, box=(0, 0, 10, 10))
    miss = L.pointing_game(np.pad(np.ones((1, 1)), ((90, 9), (90, 9))), corner)
    assert verdicts.pointing_verdict(miss, L.centre_baseline(corner)) == \
        "Pointing game: miss (the image's centre misses too)."


def test_the_record_names_every_setting():
    rows = record.faithfulness_settings(25, "mean", "blur", True, True)
    assert rows["Faithfulness setting · steps"] == "25 (26 forward passes per curve)"
    assert rows["Faithfulness setting · deletion fills removed pixels with"] == \
        "mean: the model's normalization mean colour"
    assert rows["Faithfulness setting · insertion starts from"].startswith("blur: the image blurred")
    assert rows["Faithfulness setting · ROAD"].startswith("pixels imputed: 10%, 30%, 50%, 70%, 90%;")
    box = record.localisation_settings(300, 451, 15.0, L.scaled_tolerance(300, 451), 0.5, box=(112, 75, 338, 225))
    assert box == {"Localisation setting · ground truth":
                   "box x0=112, y0=75, x1=338, y1=225 (pixels of the 451 × 300 image; x0 ≤ x < x1)",
                   "Localisation setting · pointing tolerance": "15 px at 224 px = 20.1 px here",
                   "Localisation setting · IoU threshold": "0.5 of the map's maximum"}
    mask = np.zeros((4, 6), np.uint8)
    truth = record.localisation_settings(300, 451, 15.0, 20.1, 0.5, mask=mask, mask_name="m.png")
    assert truth["Localisation setting · ground truth"].startswith("mask m.png, 6 × 4 px, pixels sha256 ")


def test_road_estimate_comes_from_a_timed_imputation(lite0, cat_image):
    step = record.time_road_step(lite0, cat_image)
    assert step > 0
    assert record.road_seconds(step) == pytest.approx(10 * step)  # 5 shares, most and least relevant first
    assert record.road_seconds(1.0, removed=(0.5,)) == 2.0
