"""``python -m explainers evaluate``: the TorchRay-style table over a folder with boxes."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from explainers.cli import main
from explainers.pipeline import explain
from explainers.metrics import faithfulness as F
from explainers.metrics import localisation as L


@pytest.fixture(scope="module")
def folder(tmp_path_factory, cat_image, coffee_image):
    root = tmp_path_factory.mktemp("evaluate")
    cat_image.save(root / "cat.png")
    coffee_image.save(root / "coffee.png")
    boxes = [
        {"file": "cat.png", "box": [0, 0, cat_image.width, cat_image.height], "class": 285},  # all of it
        {"file": "coffee.png", "box": [0, 0, 20, 20], "class": "espresso"},  # a corner: centre misses
    ]
    (root / "boxes.json").write_text(json.dumps(boxes))
    return root


def test_table_has_pointing_accuracy_next_to_the_centre_baseline_and_the_areas(folder, capsys, lite0, cat_image,
                                                                                   coffee_image):
    out = folder / "out"
    code = main(["evaluate", str(folder), "--boxes", str(folder / "boxes.json"), "--method", "gradcam",
                 "--steps", "2", "--out", str(out), "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "centre point (baseline)" in printed and "Grad-CAM" in printed and "pointing game" in printed

    summary = json.loads((out / "evaluation.json").read_text())
    rows = {r["method"]: r for r in summary["table"]}
    # by hand: the cat's box is the whole image (hit for any point); the coffee's is a 20 px corner
    coffee_cam = explain(lite0, coffee_image, ["gradcam"], classes=[967]).results[0]
    corner = L.ground_truth(coffee_image.height, coffee_image.width, box=(0, 0, 20, 20))
    assert L.pointing_game(coffee_cam.map, corner).distance > 100  # the peak is on the cup, far away
    assert rows["centre point (baseline)"]["pointing_accuracy"] == 0.5
    assert rows["Grad-CAM"]["pointing_accuracy"] == 0.5 and rows["Grad-CAM"]["images"] == 2
    cat_cam = explain(lite0, cat_image, ["gradcam"], classes=[285]).results[0]
    expected_energy = (1.0 + L.energy(coffee_cam.map, corner)) / 2
    assert rows["Grad-CAM"]["energy"] == pytest.approx(expected_energy, abs=1e-6)
    cat = F.deletion_insertion(lite0, cat_image, cat_cam.map, 285, steps=2)
    coffee = F.deletion_insertion(lite0, coffee_image, coffee_cam.map, 967, steps=2)
    assert rows["Grad-CAM"]["deletion_area"] == pytest.approx((cat.deletion.area + coffee.deletion.area) / 2,
                                                              abs=1e-5)
    assert rows["Grad-CAM"]["insertion_area"] == pytest.approx((cat.insertion.area + coffee.insertion.area) / 2,
                                                               abs=1e-5)
    assert [i["class_index"] for i in summary["images"]] == [285, 967]  # "espresso" found by name
    assert summary["settings"]["steps"] == 2 and summary["versions"]["torch"]

    with open(out / "evaluation.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["method"] for r in table] == ["centre point (baseline)", "Grad-CAM"]
    assert float(table[1]["pointing_accuracy"]) == 0.5 and table[0]["deletion_area"] == ""


def test_steps_zero_skips_the_curves(folder, capsys):
    out = folder / "fast"
    assert main(["evaluate", str(folder), "--boxes", str(folder / "boxes.json"), "--method", "eigencam",
                 "--steps", "0", "--out", str(out), "--device", "cpu"]) == 0
    row = json.loads((out / "evaluation.json").read_text())["table"][1]
    assert row["method"] == "EigenCAM" and row["deletion_area"] is None and row["pointing_accuracy"] is not None


@pytest.mark.parametrize("records, message", [
    ([{"file": "missing.png", "box": [0, 0, 5, 5]}], "no image"),
    ([{"file": "cat.png", "box": [0, 0, 5]}], "four numbers"),
    ([{"file": "cat.png", "box": [0, 0, 5, 5], "class": "unicorn"}], "Unknown class"),
    ([], "non-empty"),
])
def test_bad_boxes_files_are_one_line_errors(folder, tmp_path, capsys, records, message):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps(records))
    code = main(["evaluate", str(folder), "--boxes", str(boxes), "--steps", "0", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_records_of_one_file_and_class_are_one_ground_truth(folder):
    from explainers.cli_evaluate import read_boxes

    (folder / "two.json").write_text(json.dumps([{"file": "cat.png", "box": [0, 0, 5, 5], "class": 1},
                                                 {"file": "cat.png", "box": [9, 9, 20, 20], "class": 1},
                                                 {"file": "cat.png", "box": [0, 0, 5, 5], "class": 2}]))
    groups = read_boxes(folder / "two.json", folder)
    assert [(g["class"], len(g["boxes"])) for g in groups] == [(1, 2), (2, 1)]
    assert np.array_equal(groups[0]["boxes"][1], [9, 9, 20, 20])
