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
from explainers.pipeline import explain
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


def test_shared_scale_draws_the_class_maps_on_one_range(lite0, cat_image):
    from explainers.render import overlay, scale_to_range
    from explainers.report import DISPLAY_SIDE

    result = explain(lite0, cat_image, methods=["gradcam"], classes=[285, 281], contrast=(285, 281))
    shown = cat_image.copy()
    shown.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.BILINEAR)
    size = (shown.height, shown.width)
    pictures = {}
    for shared in (False, True):
        report = build_report(lite0, cat_image, result.results, result.predictions, shared_scale=shared)
        pictures[shared] = [np.asarray(p.convert("RGB")) for p in images_in(report.html)[1:]]
        assert report.settings["rendering"]["shared_scale"] is shared
    classes, contrast = result.results[:2], result.results[2]
    assert contrast.contrast_index == 281
    low, high = min(float(r.raw.min()) for r in classes), max(float(r.raw.max()) for r in classes)
    together = [scale_to_range(r.raw, size, low, high) for r in classes]  # one method: one range in raw units
    assert max(float(m.max()) for m in together) > 0.99 > min(float(m.max()) for m in together)  # one is weaker
    def differs(picture, cam) -> int:
        return int(np.abs(picture.astype(int) - overlay(shown, cam, 0.5, "jet").astype(int)).max())

    for i, m in enumerate(together):
        assert differs(pictures[True][i], m) <= 1 and differs(pictures[False][i], classes[i].map) <= 1
    np.testing.assert_array_equal(pictures[True][2], pictures[False][2])  # the contrast map keeps its own range


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


@pytest.fixture
def offered(monkeypatch):
    """Every download button drawn while the app runs: {label: its data (bytes or the callable)}."""
    pytest.importorskip("streamlit")
    from streamlit.delta_generator import DeltaGenerator

    seen: dict[str, object] = {}
    original = DeltaGenerator.download_button

    def recording(self, label, data, *args, **kwargs):
        seen[label] = data
        return original(self, label, data, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", recording)
    return seen


def _built(data) -> str:
    return (data() if callable(data) else data).decode("utf-8")


@pytest.mark.parametrize("page", ["pages/compare.py", "pages/compare_classes.py",
                                  "pages/compare_layers.py", "pages/dataset.py", "pages/evaluate.py",
                                  "pages/model.py"])
def test_every_page_offers_the_report(page, offered):
    from tests.test_app import assert_clean, new_app
    from ui.report import LABEL

    at = new_app()
    at.run()
    offered.clear()
    at.switch_page(page).run()
    assert_clean(at)
    assert LABEL in offered, sorted(offered)
    assert "CAMscope report" in _built(offered[LABEL])


def test_a_page_without_maps_reports_the_compare_pages_maps(offered, lite0):
    from explainers.io import load_image
    from tests.test_app import new_app
    from ui import state
    from ui.report import LABEL

    at = new_app().run()
    at.number_input(key=state.CLASS_INDEX).set_value(281).run()  # tabby, not the top class
    offered.clear()
    at.switch_page("pages/model.py").run()
    page = _built(offered[LABEL])
    sample = load_image(state.ASSETS / state.GALLERY["Cat (Chelsea)"])  # the app's default image
    expected = explain(lite0, sample, methods=["gradcam"], classes=[281]).results[0]
    assert _hashes(page) == {f"gradcam/{lite0.target_layer}/class281": map_sha256(expected)}


def test_the_compare_pages_report_is_the_engines_report(first, lite0, cat_image):
    from ui.report import report_bytes

    report, result = first
    page = report_bytes(lite0, cat_image, "cat.jpg", result.results, 0.5, "jet").decode("utf-8")
    assert _hashes(page) == report.map_sha256 and report.input_sha256 in page


def test_the_evaluate_pages_report_carries_the_metrics_it_shows(offered):
    from tests.test_app_evaluate import assert_clean, new_page
    from ui import evaluate as ev
    from ui.report import LABEL

    at = new_page()
    before = html.unescape(_built(offered[LABEL]))
    assert "Grad-CAM · pointing game" in before  # the localisation tab's default box is always scored
    assert "deletion area" not in before  # faithfulness waits for its button
    at.button(key=ev.RUN_FAITHFULNESS).click().run()
    assert_clean(at)
    shown = {m.label: m.value for m in at.metric[:2]}  # Grad-CAM's two areas, as the page prints them
    page = html.unescape(_built(offered[LABEL]))
    rows = dict(re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td></tr>", page))
    deletion = next(v for k, v in rows.items() if k.startswith("Grad-CAM · deletion area (5 steps"))
    insertion = next(v for k, v in rows.items() if k.startswith("Grad-CAM · insertion area (5 steps"))
    assert f"{float(deletion):.3f}" == shown["Deletion area (lower is better)"]
    assert f"{float(insertion):.3f}" == shown["Insertion area (higher is better)"]
    assert any(k.startswith("Random map (reference) · deletion area") for k in rows)
