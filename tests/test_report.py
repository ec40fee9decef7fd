"""The reviewer's HTML report: self-contained, complete, and reproducible by its hashes."""
from __future__ import annotations

import base64
import html
import hashlib
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from explainers.cli import main
from explainers.explain import explain
from explainers.io import image_sha256
from explainers.report import INTENDED_USE, build_report, map_sha256

METHODS = ["gradcam", "layercam"]


def make(model, image, classes=(281,), **options):
    result = explain(model, image, methods=METHODS, classes=list(classes))
    return build_report(model, image, result.results, result.predictions, image_name="cat <1>.png", **options), result


@pytest.fixture(scope="module")
def first(lite0, cat_image):
    return make(lite0, cat_image, metrics={"gradcam / deletion AUC": 0.1234567})


def images_in(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(data)))
            for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def test_regenerating_gives_the_same_maps_and_input_hash(first, lite0, cat_image):
    report, result = first
    again, _ = make(lite0, cat_image, metrics={"gradcam / deletion AUC": 0.1234567})
    assert again.input_sha256 == report.input_sha256 and len(report.input_sha256) == 64
    assert again.map_sha256 == report.map_sha256
    assert list(report.map_sha256) == [f"{m}/{lite0.target_layer}/class281" for m in METHODS]
    raw = np.ascontiguousarray(result.results[0].raw, dtype=np.float32)
    assert report.map_sha256[f"gradcam/{lite0.target_layer}/class281"] == hashlib.sha256(
        f"{raw.shape}".encode() + raw.tobytes()).hexdigest()
    # the input hash is the documented one: sha256(pixel hash + settings JSON with sorted keys)
    expected = hashlib.sha256((image_sha256(cat_image) + json.dumps(report.settings, sort_keys=True)).encode())
    assert report.input_sha256 == expected.hexdigest()


def test_other_inputs_give_other_hashes(first, lite0, cat_image):
    report, _ = first
    other_class, _ = make(lite0, cat_image, classes=(285,))
    assert other_class.input_sha256 != report.input_sha256
    assert set(other_class.map_sha256.values()).isdisjoint(report.map_sha256.values())
    pixels = np.asarray(cat_image).copy()
    pixels[0, 0, 0] ^= 1
    other_image, _ = make(lite0, Image.fromarray(pixels))
    assert other_image.input_sha256 != report.input_sha256
    other_look, _ = make(lite0, cat_image, colormap="viridis")
    assert other_look.input_sha256 != report.input_sha256  # the rendering is a setting too
    assert other_look.map_sha256 == report.map_sha256  # but the maps are the same


def test_the_page_is_self_contained_and_complete(first, lite0, cat_image):
    report, result = first
    page = report.html
    assert "<script" not in page.lower() and not re.search(r"(src|href)=\"(?!data:)", page)
    assert "http://" not in page and "https://" not in page
    pictures = images_in(page)
    assert len(pictures) == 1 + len(METHODS)  # the image and one overlay per map
    assert pictures[0].size == (451, 300)  # shown at most 512 wide: the cat is smaller already
    np.testing.assert_array_equal(np.asarray(pictures[0].convert("RGB")), np.asarray(cat_image))
    top = result.predictions[0]
    for text in (report.input_sha256, image_sha256(cat_image), lite0.weights_sha256, lite0.target_layer,
                 "Grad-CAM", "LayerCAM", top.name, f"{top.probability:.4f}", "0.1235", "deletion AUC",
                 '"input_size": [224, 224]', "cpu", "torch", "intended", INTENDED_USE[:40]):
        assert text.lower() in html.unescape(page).lower(), text
    assert "cat &lt;1&gt;.png" in page and "cat <1>" not in page  # names are escaped
    settings = report.settings
    assert settings["model"] == "efficientnet_lite0" and settings["weights_sha256"] == lite0.weights_sha256
    assert settings["layers"] == [lite0.target_layer] and settings["classes"] == [281]
    assert settings["methods"] == METHODS and settings["device"] == "cpu"
    assert settings["preprocessing"] == lite0.preprocessing.as_dict()
    import torch

    assert torch.__version__.startswith(settings["versions"]["torch"])


def test_without_metrics_the_report_says_so(lite0, cat_image):
    report, _ = make(lite0, cat_image)
    assert "No metrics were computed" in report.html


def _hashes(page: str) -> dict[str, str]:
    return dict(re.findall(r"<tr><td>([^<]+/class\d+)</td><td>([0-9a-f]{64})</td></tr>", page))


def test_command_line_report_is_reproducible(tmp_path, cat_image, capsys):
    path = tmp_path / "cat.png"
    cat_image.save(path)
    pages, printed = [], []
    for name in ("a.html", "b.html"):
        out = tmp_path / "reports" / name
        code = main(["report", str(path), "--method", "gradcam", "eigencam", "--class", "281",
                     "--device", "cpu", "--out", str(out)])
        assert code == 0
        pages.append(out.read_text())
        printed.append(capsys.readouterr().out)
    hashes = [re.search(r"input hash ([0-9a-f]{64})", p).group(1) for p in printed]
    assert hashes[0] == hashes[1] and hashes[0] in pages[0]
    assert _hashes(pages[0]) == _hashes(pages[1]) and len(_hashes(pages[0])) == 2
    assert len(images_in(pages[0])) == 3


def test_command_line_report_of_a_bad_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert main(["report", str(bad), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("camscope: error:") and "not an image" in err and "\n" not in err
    assert not (tmp_path / "r.html").exists()


def test_the_compare_page_offers_the_report():
    pytest.importorskip("streamlit")
    from tests.test_app import assert_clean, new_app

    at = new_app().run()
    assert_clean(at)
    buttons = [e for e in at.get("download_button")]
    labels = [getattr(b, "label", None) or getattr(b, "proto", None).label for b in buttons]
    assert "Download report (HTML)" in labels, labels


def test_the_app_export_builds_the_same_report(first, lite0, cat_image):
    from ui import export

    report, result = first
    page = export.report_html(lite0, cat_image, "cat.jpg", result.results, result.predictions,
                              {"colormap": "jet", "opacity": 0.5, "shared_scale": False}).decode("utf-8")
    assert _hashes(page) == report.map_sha256 and report.input_sha256 in page
