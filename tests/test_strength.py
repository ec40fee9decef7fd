"""Map strength and honest scales: raw ranges, strength against the top class, unit families,
colorbars in raw units and "all zero" panels (hand-computed numbers and the embedded model's maps)."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from PIL import Image

from explainers.pipeline import explain
from explainers.render import blank_panel, colorize, normalize_maps, scale_to_range, with_colorbar
from explainers.strength import family_ranges, map_strength, strength_note, unit_family

DEFAULT_METHODS = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam"]
GRANNY_SMITH = 948


@pytest.fixture(scope="module")
def cat_results(lite0, cat_image):
    """The Compare page's default methods for the top class and for Granny Smith, on the cat."""
    top = explain(lite0, cat_image).predictions[0].index
    return top, explain(lite0, cat_image, methods=DEFAULT_METHODS, classes=[top, GRANNY_SMITH]).results


def test_map_strength_by_hand():
    raw = np.array([[0.0, 0.1], [0.2, 0.4]], np.float32)
    top = np.array([[0.0, 0.5], [1.6, 0.2]], np.float32)
    s = map_strength(raw, top)
    assert (s.low, s.high) == (0.0, pytest.approx(0.4))
    assert s.relative == pytest.approx(0.25)  # 0.4 / 1.6
    assert not s.all_zero
    assert map_strength(raw).relative is None
    assert map_strength(raw, np.zeros((2, 2))).relative is None  # no strength against an empty reference
    assert map_strength(np.zeros((3, 3))).all_zero and map_strength(np.full((3, 3), 2.0)).all_zero
    assert map_strength(np.array([[np.nan, 1.0]])).low == 0.0  # NaN counts as 0


def test_granny_smith_is_nine_percent_of_the_top_class(cat_results):
    top, results = cat_results
    by = {(r.method, r.class_index): r for r in results}
    top_map, apple = by[("gradcam", top)], by[("gradcam", GRANNY_SMITH)]
    s = map_strength(apple.raw, top_map.raw)
    assert s.high == pytest.approx(0.046, abs=0.003) and float(top_map.raw.max()) == pytest.approx(0.50, abs=0.03)
    assert s.relative == pytest.approx(float(apple.raw.max() / top_map.raw.max()))
    assert 0.08 <= s.relative <= 0.10
    assert "9% of top class" in strength_note(apple, s, top_map.class_name)
    assert strength_note(top_map, map_strength(top_map.raw, top_map.raw), top_map.class_name).endswith("top class")
    eigen = by[("eigencam", GRANNY_SMITH)]  # class-agnostic: the note says so rather than "100%"
    assert "same map for every class" in strength_note(eigen, map_strength(eigen.raw, eigen.raw), top_map.class_name)


def test_no_panel_goes_flat_because_of_another_methods_units(cat_results):
    top, results = cat_results
    maps = [r for r in results if r.class_index == top]
    highs = {r.method: float(r.raw.max()) for r in maps}
    assert highs["eigencam"] > 20 * highs["gradcam"]  # the units differ by more than an order of magnitude
    one_range = normalize_maps([r.raw for r in maps], (30, 45), shared=True)  # the old "one shared scale"
    assert min(float(m.max()) for m in one_range) < 0.05  # ...painted Grad-CAM flat
    ranges = family_ranges(maps)
    scaled = [scale_to_range(r.raw, (30, 45), lo, hi) for r, (lo, hi) in zip(maps, ranges)]
    assert min(float(m.max()) for m in scaled) > 0.6
    by = dict(zip([r.method for r in maps], ranges))
    assert by["gradcam"] == by["hirescam"] == by["layercam"]  # one family, one range
    assert by["gradcam"][1] == pytest.approx(max(highs[m] for m in ("gradcam", "hirescam", "xgradcam", "layercam")))
    assert by["eigencam"] == (0.0, pytest.approx(highs["eigencam"]))  # alone in its family
    assert by["gradcam++"][1] == pytest.approx(highs["gradcam++"])
    assert unit_family("some_new_method") == "some_new_method"


def test_all_zero_map_at_an_early_layer_says_so(lite0, cat_image):
    result = explain(lite0, cat_image, methods=["gradcam"], layers=["bn1"]).results[0]
    s = map_strength(result.raw)
    assert s.all_zero and s.high == 0.0
    assert strength_note(result, s) == "all zero at bn1: no evidence to show"
    panel = blank_panel(cat_image, "Grad-CAM: map is all zero\nat layer bn1")
    assert panel.shape == (cat_image.height, cat_image.width, 3)
    gray = (panel[..., 0] == panel[..., 1]) & (panel[..., 1] == panel[..., 2])
    assert 0.9 < gray.mean() < 1.0  # a gray picture with red words, not a colormap's flat tint


def test_scale_to_range_by_hand():
    raw = np.array([[0.0, 1.0], [2.0, 4.0]], np.float32)
    np.testing.assert_allclose(scale_to_range(raw, (2, 2), 0.0, 8.0), [[0, 0.125], [0.25, 0.5]], atol=1e-6)
    np.testing.assert_allclose(scale_to_range(raw, (2, 2), 1.0, 2.0), [[0, 0], [1, 1]], atol=1e-6)  # clipped


def test_colorbar_is_the_colormap_with_the_raw_ends_written_under_it():
    picture = np.full((20, 96, 3), 7, np.uint8)
    out = with_colorbar(picture, "viridis", 0.0, 0.504)
    bar_h, label_h = max(6, 96 // 40), max(12, 96 // 14)
    assert out.shape == (20 + bar_h + label_h, 96, 3)
    np.testing.assert_array_equal(out[:20], picture)
    expected = colorize(np.linspace(0.0, 1.0, 96, dtype=np.float32)[None], "viridis")[0]
    np.testing.assert_array_equal(out[20], expected)
    assert tuple(out[20, 0]) == tuple(matplotlib.colormaps["viridis"](0.0, bytes=True)[:3])
    labels = out[20 + bar_h:]
    assert (labels < 128).any() and (labels == 255).mean() > 0.7  # black numbers on white


def test_blank_panel_of_a_pil_image():
    out = blank_panel(Image.new("RGB", (64, 32), (255, 0, 0)), "all zero")
    assert out.shape == (32, 64, 3)
