"""What reading an image changed (NaN pixels made black, a window that fell back to the data's range)
is said wherever its maps go: the CLI's summary.json, the reviewer report and the zip's settings.json."""
from __future__ import annotations

import json

import numpy as np

from explainers.cli import main
from explainers.io import load_image
from explainers.pipeline import explain
from explainers.report import build_report
from tests.corpus_hostile import tiff


def _nan_tiff(path):
    pixels = np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).reshape(64, 64)
    pixels[5, 7] = np.nan  # one NaN pixel: before, the max was NaN and the whole picture came out black
    path.write_bytes(tiff(pixels))
    return path


def test_summary_json_carries_the_image_notes(tmp_path, capsys):
    image = _nan_tiff(tmp_path / "nan.tif")
    assert main(["explain", str(image), "--method", "gradcam", "--out", str(tmp_path / "out")]) == 0
    notes = json.loads((tmp_path / "out" / "summary.json").read_text())["settings"]["image_notes"]
    assert any("not a number" in n for n in notes), notes


def test_plain_images_have_no_notes(tmp_path, capsys):
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    assert main(["explain", str(tmp_path / "a.png"), "--method", "gradcam", "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["settings"]["image_notes"] == []


def test_report_lists_the_image_notes(tmp_path, lite0):
    image = load_image(_nan_tiff(tmp_path / "nan.tif"))
    result = explain(lite0, image, methods=["gradcam"])
    report = build_report(lite0, image, result.results, result.predictions, image_name="nan.tif")
    assert any("not a number" in n for n in report.settings["image_notes"])
    assert "not a number" in report.html


def test_zip_settings_carry_the_image_notes(tmp_path, lite0):
    from ui import export

    image = load_image(_nan_tiff(tmp_path / "nan.tif"))
    from explainers.image_limits import load_notes

    result = explain(lite0, image, methods=["gradcam"])
    settings = export.settings(lite0, "nan.tif", "sha", image.size, lite0.target_layer, result.results, {},
                               notes=load_notes(image))
    assert any("not a number" in n for n in settings["image"]["notes"])
