"""A store's originals are read only from inside the run's SOURCE; a store only from CAMSCOPE_STORES_DIR;
a map whose original is gone is drawn alone (explainers.review.images)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from explainers.io import image_sha256
from explainers.review.images import check_store, draw, source_image
from explainers.scale.store import StoreError


@pytest.fixture()
def store(tmp_path, monkeypatch):
    source = tmp_path / "source"
    (source / "cats").mkdir(parents=True)
    Image.new("RGB", (4, 2), (10, 20, 30)).save(source / "cats" / "a.png")
    Image.new("RGB", (4, 2), (200, 0, 0)).save(tmp_path / "secret.png")
    os.symlink(tmp_path / "secret.png", source / "cats" / "link.png")
    folder = tmp_path / "stores" / "pets"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"source": str(source), "settings": {}}))
    monkeypatch.setenv("CAMSCOPE_STORES_DIR", str(tmp_path / "stores"))
    return folder


def test_reads_the_original_inside_source_only(store, tmp_path):
    got = source_image(store, "cats/a.png", image_sha256(Image.new("RGB", (4, 2), (10, 20, 30))))
    assert got.image is not None and got.image.getpixel((0, 0)) == (10, 20, 30) and not got.changed
    assert source_image(store, "cats/a.png", "0" * 64).changed  # the file's pixels are not those explained
    for outside in ("../secret.png", "cats/link.png", str(tmp_path / "secret.png")):
        refused = source_image(store, outside)
        assert refused.image is None and "outside the run's SOURCE" in refused.problem
    assert "not at the run's SOURCE" in source_image(store, "cats/gone.png").problem


def test_only_stores_under_the_stores_dir(store, tmp_path, monkeypatch):
    assert check_store(store) == store.resolve()
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "run.json").write_text(json.dumps({"source": "x", "settings": {}}))
    with pytest.raises(StoreError, match="not a store of this deployment"):
        check_store(other)
    with pytest.raises(StoreError, match="not a store of this deployment"):
        check_store(store / ".." / ".." / "elsewhere")
    monkeypatch.delenv("CAMSCOPE_STORES_DIR")
    with pytest.raises(StoreError):
        check_store(store)


def test_a_map_without_its_original_is_drawn_alone():
    raw = np.array([[0.0, 2.0], [4.0, 4.0]], np.float32)
    alone = draw(raw, None, (2, 2), 0.5, "gray")  # own range 0..4: grey levels 0, 1/2, 1, 1 at full opacity
    np.testing.assert_allclose(alone[..., 0], [[0, 127.5], [255, 255]], atol=1)
    on_image = draw(raw, Image.new("RGB", (2, 2), (0, 0, 0)), (2, 2), 0.5, "gray")  # half of that on black
    np.testing.assert_allclose(on_image[..., 0], [[0, 64], [128, 128]], atol=1)
