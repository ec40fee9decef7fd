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
        np.testing.assert_array_equal(np.load(io.BytesIO(archive.read(f"{stem}/map.npy"))), r.map)
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
    assert saved["preprocessing"]["input_size"] == [224, 224]
    assert saved["rendering"] == rendering
    assert saved["image"] == {"name": "cat.jpg", "pixels_sha256": "abc123", "width": 451, "height": 300}
    import torch

    assert torch.__version__.startswith(saved["versions"]["torch"])
    assert {"python", "torchvision", "timm", "grad-cam", "streamlit", "pillow"} <= set(saved["versions"])
    assert "not installed" not in saved["versions"].values()


def test_file_stem_is_safe_for_any_method_name(results):
    import dataclasses

    odd = dataclasses.replace(results[0], method="a/b c", class_index=7)
    assert export.file_stem(odd) == "a_b_c_class7"
