"""ui.loaders: one cache entry per method, filled by one engine call for all missing methods."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("streamlit")
from explainers.errors import LayerError  # noqa: E402
from explainers.pipeline import explain  # noqa: E402
from explainers.io import image_sha256  # noqa: E402
from ui import loaders  # noqa: E402


@pytest.fixture
def spy(engine_spy):
    return engine_spy


def test_cached_maps_equal_the_engine_maps_and_cost_no_second_call(lite0, astronaut_image, spy):
    sha = image_sha256(astronaut_image)
    cls = 817  # sports car: not the top class, so the class really is passed through
    first = loaders.explanations(lite0, astronaut_image, sha, lite0.target_layer, cls, ["gradcam", "gradcam++"])
    again = loaders.explanations(lite0, astronaut_image, sha, lite0.target_layer, cls, ["gradcam++", "gradcam"])
    assert spy == [["gradcam", "gradcam++"]]
    assert list(again) == ["gradcam++", "gradcam"]  # the caller's order
    direct = explain(lite0, astronaut_image, methods=["gradcam", "gradcam++"], classes=[cls])
    for r in direct.results:
        for got in (first[r.method], again[r.method]):
            assert got.class_index == cls and got.layer == lite0.target_layer
            np.testing.assert_array_equal(got.raw, r.raw)
            np.testing.assert_array_equal(got.map, r.map)  # rebuilt from raw, bit for bit
            assert got.map.shape == (astronaut_image.height, astronaut_image.width)


def test_new_methods_come_in_one_call_and_other_keys_recompute(lite0, coffee_image, spy):
    sha = image_sha256(coffee_image)
    layer = lite0.target_layer
    loaders.explanations(lite0, coffee_image, sha, layer, 967, ["gradcam"])
    loaders.explanations(lite0, coffee_image, sha, layer, 967, ["gradcam", "xgradcam", "layercam"])
    loaders.explanations(lite0, coffee_image, sha, layer, 504, ["gradcam"])  # another class
    loaders.explanations(lite0, coffee_image, sha, "blocks.5", 967, ["gradcam"])  # another layer
    assert spy == [["gradcam"], ["xgradcam", "layercam"], ["gradcam"], ["gradcam"]]


def test_engine_errors_reach_the_caller_and_are_not_cached(lite0, cat_image, spy):
    sha = image_sha256(cat_image)
    for _ in range(2):
        with pytest.raises(LayerError, match="no layer named"):
            loaders.explanations(lite0, cat_image, sha, "no.such.layer", 281, ["gradcam"])
    assert len(spy) == 2  # a failure is tried again, never served from the cache


def test_decode_image_reports_bad_files():
    from explainers.errors import ImageError

    with pytest.raises(ImageError, match="not an image"):
        loaders.decode_image(loaders.file_sha256(b"plain text"), b"plain text")
