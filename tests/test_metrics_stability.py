"""Stability: the views bring maps back to the right pixels, and the spread is computed right."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from explainers.errors import EvaluationError
from explainers.metrics import stability as S


def red(image: Image.Image) -> np.ndarray:
    """A 'map' that is the image's red channel: where each pixel went is known exactly."""
    return np.asarray(image.convert("RGB"), np.float32)[..., 0] / 255.0


def test_a_constant_map_is_perfectly_stable():
    constant = np.full((30, 40), 0.7, np.float32)
    std_map, mean_std, rhos = S.spread(constant, [constant.copy() for _ in range(3)])
    assert std_map.shape == (30, 40) and np.all(std_map == 0) and mean_std == 0.0
    assert rhos == [1.0, 1.0, 1.0]  # equal constant maps: nothing moved


def test_spread_by_hand():
    zeros, ones = np.zeros((4, 4), np.float32), np.ones((4, 4), np.float32)
    std_map, mean_std, rhos = S.spread(zeros, [ones])
    np.testing.assert_allclose(std_map, 0.5)  # population std of {0, 1}
    assert mean_std == pytest.approx(0.5) and rhos == [0.0]
    partial = ones.copy()
    partial[:, 2:] = np.nan  # a zoomed-in view did not see the right half
    std_map, mean_std, _ = S.spread(zeros, [partial])
    np.testing.assert_allclose(std_map[:, :2], 0.5)
    np.testing.assert_allclose(std_map[:, 2:], 0.0)  # only the original saw these pixels
    assert mean_std == pytest.approx(0.25)
    ramp = np.tile(np.arange(4, dtype=np.float32), (4, 1))
    assert S.spread(ramp, [ramp[:, ::-1]])[2] == [pytest.approx(-1.0)]


def test_views_bring_each_pixel_back_to_where_it_was(astronaut_image):
    image = astronaut_image.resize((200, 160))
    views = {v.name: v for v in S.make_views(image, mirror=True, scales=(0.8, 1.25), noise_sigma=0.02,
                                              noise_samples=1)}
    assert list(views) == ["mirror", "zoom 0.8", "zoom 1.25", "noise 1"]
    original = red(image)
    np.testing.assert_array_equal(views["mirror"].back(red(views["mirror"].image)), original)
    assert views["zoom 0.8"].image.size == image.size  # zoom out: same canvas, the image shrunk inside
    zoom_out = views["zoom 0.8"].back(red(views["zoom 0.8"].image))
    assert zoom_out.shape == original.shape and np.abs(zoom_out - original).mean() < 0.03
    assert views["zoom 1.25"].image.size == (160, 128)  # zoom in: the central crop
    zoom_in = views["zoom 1.25"].back(red(views["zoom 1.25"].image))
    seen = np.isfinite(zoom_in)
    assert seen.sum() == 160 * 128 and not seen[:16].any() and seen[16:144, 20:180].all()
    np.testing.assert_array_equal(zoom_in[seen], original[16:144, 20:180].ravel())
    noisy = views["noise 1"].back(red(views["noise 1"].image))
    assert 0.01 < np.abs(noisy - original).mean() < 0.03  # sigma 0.02 of 255, clipped at 0 and 255


def test_bad_views_are_plain_errors(astronaut_image):
    with pytest.raises(EvaluationError, match="zoom"):
        S.make_views(astronaut_image, scales=(1.0,))
    with pytest.raises(EvaluationError, match="at least one"):
        S.make_views(astronaut_image, mirror=False, scales=(), noise_samples=0)


def test_stability_of_gradcam_under_a_mirror(lite0, cat_image):
    found = S.stability_check(lite0, cat_image, ["gradcam"], mirror=True, scales=(), noise_samples=0)["gradcam"]
    assert found.views == ("mirror",) and found.method_name == "Grad-CAM"
    assert found.std_map.shape == (cat_image.height, cat_image.width)
    # two maps: the std of {a, b} is |a - b| / 2 at every pixel
    np.testing.assert_allclose(found.std_map, np.abs(found.original - found.maps[0]) / 2, atol=1e-6)
    assert 0.0 < found.mean_std < 0.5
    assert found.mean_spearman == pytest.approx(found.spearman[0]) and -1.0 <= found.spearman[0] <= 1.0
