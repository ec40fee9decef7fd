"""ui.export: the zip holds the page's maps and a settings.json that names everything."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from explainers.pipeline import explain
from ui import export


@pytest.fixture(scope="module")
def results(lite0, cat_image):
    return explain(lite0, cat_image, methods=["gradcam", "gradcam++"], classes=[281]).results


def test_zip_holds_every_map_and_the_settings(lite0, cat_image, results):
    overlays = {r.method: np.full((cat_image.height, cat_image.width, 3), i, np.uint8) for i, r in enumerate(results)}
    rendering = {"opacity": 0.4, "colormap": "viridis", "shared_scale": True}
    settings = export.settings(lite0, "cat.jpg", "abc123", cat_image.size, lite0.target_layer, results, rendering)
    archive = zipfile.ZipFile(io.BytesIO(export.zip_bytes(cat_image, results, overlays, settings)))
    names = set(archive.namelist())
    assert names == {"original.png", "settings.json",
                     "gradcam_class281/overlay.png", "gradcam_class281/map.npy", "gradcam_class281/raw.npy",
                     "gradcam++_class281/overlay.png", "gradcam++_class281/map.npy", "gradcam++_class281/raw.npy"}
    for r in results:
        stem = export.file_stem(r)
        saved_map = np.load(io.BytesIO(archive.read(f"{stem}/map.npy")))
        assert saved_map.dtype == np.float16 and saved_map.shape == r.map.shape
        np.testing.assert_allclose(saved_map.astype(np.float32), r.map, atol=1e-3)  # float16: ~3 decimals
        np.testing.assert_array_equal(np.load(io.BytesIO(archive.read(f"{stem}/raw.npy"))), r.raw)
        png = np.asarray(Image.open(io.BytesIO(archive.read(f"{stem}/overlay.png"))))
        np.testing.assert_array_equal(png, overlays[r.method])
    original = np.asarray(Image.open(io.BytesIO(archive.read("original.png"))))
    np.testing.assert_array_equal(original, np.asarray(cat_image))

    saved = json.loads(archive.read("settings.json"))
    assert saved["model"]["name"] == "efficientnet_lite0"
    assert saved["model"]["weights_sha256"] == lite0.weights_sha256 and len(saved["model"]["weights_sha256"]) == 64
    assert saved["layer"] == lite0.target_layer
    assert saved["class"]["index"] == 281 and saved["class"]["name"] == lite0.categories[281]
    assert [m["key"] for m in saved["methods"]] == ["gradcam", "gradcam++"]
    assert saved["methods"][0]["map_shape"] == [cat_image.height, cat_image.width]
    assert saved["methods"][1]["raw_max"] == pytest.approx(float(results[1].raw.max()))
    assert saved["preprocessing"]["input_size"] == [224, 224]
    assert saved["rendering"] == rendering
    assert saved["image"] == {"name": "cat.jpg", "pixels_sha256": "abc123", "width": 451, "height": 300,
                              "notes": []}  # what reading it changed: nothing, for a plain JPEG
    assert saved["downloads"]["capped"] is False and saved["downloads"]["written_size"] == [451, 300]
    import torch

    assert torch.__version__.startswith(saved["versions"]["torch"])
    assert {"python", "torchvision", "timm", "grad-cam", "streamlit", "pillow"} <= set(saved["versions"])
    assert "not installed" not in saved["versions"].values()


def test_written_size_caps_the_long_side_by_hand():
    assert export.written_size((6000, 4000)) == (2048, 1365)  # 4000 * 2048 / 6000 = 1365.3
    assert export.written_size((4000, 6000)) == (1365, 2048)
    assert export.written_size((6000, 4000), full_size=True) == (6000, 4000)
    assert export.written_size((451, 300)) == (451, 300)


def test_a_large_photo_gives_a_small_zip_that_says_what_was_capped(lite0, cat_image, tmp_path):
    from explainers.render import overlay

    big = cat_image.resize((6000, 4000), Image.Resampling.BICUBIC)  # a 24-megapixel photo
    found = explain(lite0, big, methods=["gradcam", "gradcam++", "eigencam"]).results
    full = [m.map.nbytes for m in found]
    assert sum(full) == 3 * 6000 * 4000 * 4  # 288 MB of float32 maps if written as they are
    rendering = {"opacity": 0.5, "colormap": "jet", "shared_scale": False}
    original = export.written_original(big)
    assert original.size == (2048, 1365)
    overlays = {r.method: overlay(original, export.grid_map(r, original.size).astype(np.float32))
                for r in found}
    settings = export.settings(lite0, "big.png", "x", big.size, lite0.target_layer, found, rendering)
    steps = []
    data = export.zip_bytes(original, found, overlays, settings, progress=lambda f, text: steps.append(f))
    assert len(data) < 20_000_000 and len(data) <= export.zip_upper_bound(original.size, found)
    assert steps[0] == 0.0 and steps[-1] == 1.0 and steps == sorted(steps) and len(steps) == len(found) + 1
    archive = zipfile.ZipFile(io.BytesIO(data))
    saved = json.loads(archive.read("settings.json"))["downloads"]
    assert saved["capped"] is True and saved["cap_long_side"] == 2048
    assert saved["original_size"] == [6000, 4000] and saved["written_size"] == [2048, 1365]
    grid = np.load(io.BytesIO(archive.read("gradcam_class{}/map.npy".format(found[0].class_index))))
    assert grid.shape == (1365, 2048) and grid.dtype == np.float16
    assert Image.open(io.BytesIO(archive.read("original.png"))).size == (2048, 1365)


def test_file_stem_is_safe_for_any_method_name(results):
    import dataclasses

    odd = dataclasses.replace(results[0], method="a/b c", class_index=7)
    assert export.file_stem(odd) == "a_b_c_class7"
