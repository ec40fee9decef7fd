"""Image fit: squash (the default), letterbox and the model's own centre crop, with the map placed back
on the original grid; the fit in every cache key, summary.json, settings.json and the report."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from explainers.errors import ExplainerError
from explainers.fit import aspect_warning, normalized_on_image, raw_on_image
from explainers.models.spec import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from explainers.pipeline import explain, on_grid, predict
from explainers.render import overlay
from tests.streamlit_server import ROOT


@pytest.fixture(scope="module")
def wide(cat_image) -> Image.Image:
    return cat_image.resize((2000, 300))


def test_letterbox_pads_with_the_fill(wide):
    pre = Preprocessing(fit="letterbox")
    # scale min(224/2000, 224/300) = 0.112: 2000 x 300 -> 224 x 34 (33.6 rounded), centred: rows 95..128
    assert pre.placement(2000, 300).content == (0, 95, 224, 129)
    x = pre.to_tensor(wide)[0].numpy()  # (3, 224, 224)
    fill = (np.asarray(pre.fill, np.float32) / 255 - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(
        IMAGENET_STD, np.float32)
    assert pre.fill == (124, 116, 104)  # round(255 * ImageNet mean)
    for rows in (slice(0, 95), slice(129, 224)):
        np.testing.assert_allclose(x[:, rows, :], np.broadcast_to(fill[:, None, None], x[:, rows, :].shape),
                                   atol=1e-6)
    assert np.abs(x[:, 95:129, :] - fill[:, None, None]).max() > 1.0  # the image is there


def test_crop_is_torchvisions_resize_and_centre_crop(wide):
    reference = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224)])(wide)
    assert np.array_equal(np.asarray(Preprocessing(fit="crop").resize(wide)), np.asarray(reference))


def test_crop_map_is_nan_outside_the_crop(lite0, wide):
    # Resize(256): 2000 x 300 -> 1706 x 256; crop from x = 741 (round(1482 / 2)), y = 16:
    # on the original grid x 741/1706*2000 = 868.7 .. 965/1706*2000 = 1131.3, y 18.75 .. 281.25
    place = lite0.preprocessing.with_fit("crop").placement(2000, 300)
    assert place.source == (868, 18, 1132, 282)
    ex = explain(lite0, wide, methods=["gradcam"], fit="crop")
    m = ex.results[0].map
    assert ex.fit == "crop" and m.shape == (300, 2000)
    inside = np.zeros_like(m, dtype=bool)
    inside[18:282, 868:1132] = True
    assert np.isnan(m[~inside]).all() and np.isfinite(m[inside]).all()
    assert m[inside].min() == pytest.approx(0.0, abs=1e-6) and m[inside].max() == pytest.approx(1.0, abs=1e-6)


def test_letterbox_drops_the_padding_of_the_map():
    pre = Preprocessing(fit="letterbox")
    raw = np.zeros((224, 224), np.float32)
    raw[:95] = 1.0  # strong only in the padding: that part is dropped
    raw[95:129, :112] = 0.5  # the left half of the image
    m = normalized_on_image(raw, pre.input_size, pre.placement(2000, 300), 2000, 300)
    assert m.shape == (300, 2000) and not np.isnan(m).any()
    assert np.allclose(m[5:-5, :990], 1.0, atol=1e-5) and np.allclose(m[5:-5, 1010:], 0.0, atol=1e-5)


def test_squash_is_unchanged(lite0, cat_image):
    ex = explain(lite0, cat_image, methods=["gradcam"])
    r = ex.results[0]
    assert ex.fit == "squash"
    np.testing.assert_array_equal(r.map, on_grid(r.raw, 451, 300))
    np.testing.assert_array_equal(r.map, on_grid(r.raw, 451, 300, lite0.preprocessing))


def test_fit_changes_what_the_model_sees(lite0, wide):
    tops = {fit: predict(lite0, wide, k=1, fit=fit)[0].index for fit in ("squash", "letterbox", "crop")}
    assert len(set(tops.values())) >= 2, tops  # a 2000 x 300 photo: squashing changes the prediction
    assert lite0.preprocessing.fit == "squash"  # the shared model is not changed by a call


def test_unknown_fit_and_aspect_warning(lite0):
    with pytest.raises(ExplainerError, match="Unknown fit"):
        lite0.with_fit("stretch")
    assert aspect_warning(451, 300, (224, 224), "squash") is None  # 1.5 : 1
    assert "2000 × 300" in aspect_warning(2000, 300, (224, 224), "squash")  # 6.7 : 1
    assert aspect_warning(300, 700, (224, 224), "crop") is not None  # 1 : 2.33


def test_outside_the_crop_is_hatched_grey_not_a_cold_color():
    image = np.full((24, 24, 3), 200, np.uint8)
    cam = np.zeros((24, 24), np.float32)
    cam[:, 12:] = np.nan
    out = overlay(image, cam, 0.5, "jet")
    inside, outside = out[:, :12], out[:, 12:]
    assert (inside[..., 2] > inside[..., 0]).all()  # jet's 0 is blue
    assert (outside.max(axis=-1) - outside.min(axis=-1) == 0).all()  # grey: R = G = B
    assert {int(v) for v in np.unique(outside[..., 0])} == {96, int(0.35 * 200 + 0.65 * 160)}  # stripes + grey


def test_cache_key_differs_by_fit(lite0, wide, engine_spy):
    pytest.importorskip("streamlit")
    from ui import loaders

    keys = {fit: loaders.cache_key(lite0.with_fit(fit)) for fit in ("squash", "letterbox", "crop")}
    assert len(set(keys.values())) == 3
    for fit in ("squash", "letterbox", "squash", "letterbox"):
        got = loaders.explanations(lite0.with_fit(fit), wide, "fit-test", "bn2", 285, ["gradcam"])
    assert engine_spy == [["gradcam"], ["gradcam"]]  # once per fit, then from the cache
    assert got["gradcam"].map.shape == (300, 2000)
    assert loaders.predictions("x", None, "fit-test", 1, lite0.with_fit("crop"), wide)[0].index == \
        predict(lite0, wide, k=1, fit="crop")[0].index


def test_settings_json_and_summary_json_record_the_fit(lite0, tmp_path, cat_image):
    pytest.importorskip("streamlit")
    from ui import export

    ex = explain(lite0.with_fit("letterbox"), cat_image, methods=["gradcam"])
    settings = export.settings(lite0.with_fit("letterbox"), "cat.jpg", "sha", (451, 300), "bn2", ex.results, {})
    assert settings["preprocessing"]["fit"] == "letterbox"
    cat = tmp_path / "cat.png"
    cat_image.save(cat)
    done = subprocess.run([sys.executable, "-m", "explainers", "explain", str(cat), "--fit", "crop", "--out",
                           str(tmp_path / "out"), "--device", "cpu"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["settings"]["fit"] == "crop" and summary["settings"]["preprocessing"]["fit"] == "crop"
    saved = np.load(tmp_path / "out" / summary["outputs"][0]["map"])
    assert np.isnan(saved).any() and np.isfinite(saved[150, 225])  # NaN outside the crop only
    done = subprocess.run([sys.executable, "-m", "explainers", "report", str(cat), "--fit", "letterbox", "--out",
                           str(tmp_path / "r.html"), "--device", "cpu"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "letterbox" in (tmp_path / "r.html").read_text()


def test_tensor_is_the_same_object_kind(lite0, wide):
    x = lite0.preprocessing.with_fit("crop").to_tensor(wide)
    assert isinstance(x, torch.Tensor) and x.shape == (1, 3, 224, 224)


def test_sidebar_fit_is_shown_and_a_far_aspect_warns(cat_image):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from ui import state

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[state.METHODS] = ["gradcam"]
    at.run()
    assert at.sidebar.radio(key=state.FIT).value == "squash"
    assert any("As the model sees it: 224 × 224, squash" in c for i in at.image for c in i.captions)
    assert not at.warning
    at.sidebar.radio(key=state.FIT).set_value("crop").run()
    assert any("As the model sees it: 224 × 224, centre crop" in c for i in at.image for c in i.captions)
    buffer = io.BytesIO()
    cat_image.resize((2000, 300)).save(buffer, format="PNG")
    at.radio(key=state.SOURCE).set_value("Upload").run()
    at.file_uploader(key=state.UPLOAD).upload("wide.png", buffer.getvalue(), "image/png").run()
    assert not at.exception and not at.error
    assert any("2000 × 300" in w.value and "cropped" in w.value for w in at.warning)


@pytest.mark.parametrize("name, resize", [("convnext_tiny", 236), ("resnet50", 232), ("vit_b_16", 256)])
def test_crop_follows_each_zoo_models_own_resize(name, resize):
    from explainers.models.zoo import default_weights, preprocessing_of

    pre = preprocessing_of(default_weights(name)).with_fit("crop")
    assert default_weights(name).transforms().resize_size == [resize]
    # shorter side to the weights' own resize size (the longer side truncated, as torchvision does)
    assert pre.placement(600, 400).scaled == (int(resize * 600 / 400), resize)


def test_compare_models_panels_place_each_map_through_its_own_models_crop(lite0, wide):
    """Two models that crop differently (Lite0's 256 -> 224 and a 236 -> 224 resize, as ConvNeXt's):
    each panel's hatched part is its own model's, not model A's."""
    import dataclasses

    from explainers.strength import map_strength
    from ui import strength_panels as strong

    a = lite0.with_fit("crop")
    b_pre = dataclasses.replace(a.preprocessing, crop_pct=224 / 236)
    result = explain(a, wide, ["gradcam"]).results[0]
    result = dataclasses.replace(result, map=np.zeros((0, 0), np.float32))  # as the page's cached maps come
    results = [result, result]
    size = (wide.height, wide.width)
    maps = strong.scaled_maps(results, size, False, [a.preprocessing, b_pre])
    for m, pre in zip(maps, (a.preprocessing, b_pre)):
        seen = raw_on_image(result.raw, pre.input_size, pre.placement(wide.width, wide.height), wide.width,
                            wide.height)
        np.testing.assert_array_equal(np.isnan(m), np.isnan(seen))
    assert (np.isnan(maps[0]) != np.isnan(maps[1])).any()  # 256 vs 236: the crops differ
    powers = [map_strength(r.raw) for r in results]
    pictures = strong.pictures(wide, results, powers, 0.5, "jet", False, [a.preprocessing, b_pre])
    hatched = [np.isnan(m) for m in maps]
    for picture, outside in zip(pictures, hatched):  # the hatching's darkest stripes are (96, 96, 96)
        stripes = (picture[:wide.height] == 96).all(axis=-1)
        assert stripes[outside].any() and not stripes[~outside].any()
    assert strong.per_result(a.preprocessing, 2) == [a.preprocessing, a.preprocessing]
    with pytest.raises(ValueError):
        strong.per_result([a.preprocessing], 2)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_to_tensor_is_the_normalization_by_hand_to_the_bit(cat_image, mode):
    pre = Preprocessing(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    image = cat_image.convert(mode)
    x = pre.to_tensor(image)
    pixels = np.asarray(pre.resize(image), np.float32) / 255.0  # (224, 224, 3) RGB whatever the mode
    expected = ((pixels - np.float32([0.5, 0.4, 0.3])) / np.float32([0.2, 0.25, 0.3])).transpose(2, 0, 1)
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32 and x.is_contiguous()
    np.testing.assert_array_equal(x[0].numpy(), expected)
