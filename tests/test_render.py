"""Rendering: exact pixel values against hand computation and matplotlib's colormaps."""
from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from explainers.errors import ExplainerError
from explainers.render import (colorize, normalize_maps, overlay, side_by_side, to_png_bytes,
                               upsample)


def _jet_uint8(value: float) -> np.ndarray:
    return np.array(matplotlib.colormaps["jet"](value, bytes=True)[:3], dtype=np.uint8)


def test_colorize_gray_ends_are_black_and_white():
    out = colorize(np.array([[0.0, 1.0]]), "gray")
    assert out.dtype == np.uint8 and out.shape == (1, 2, 3)
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]


def test_colorize_jet_at_zero_and_one_match_matplotlib():
    out = colorize(np.array([[0.0, 1.0]]), "jet")
    assert out[0, 0].tolist() == _jet_uint8(0.0).tolist() == [0, 0, 127]
    assert out[0, 1].tolist() == _jet_uint8(1.0).tolist() == [127, 0, 0]


def test_colorize_clips_and_treats_nan_as_zero():
    out = colorize(np.array([[np.nan, -3.0, 7.0]]), "gray")
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [0, 0, 0]
    assert out[0, 2].tolist() == [255, 255, 255]


@pytest.mark.parametrize("name", ["turbo", "viridis", "inferno", "magma", "plasma"])
def test_colorize_any_matplotlib_colormap(name):
    cam = np.linspace(0, 1, 12).reshape(3, 4)
    expected = matplotlib.colormaps[name](cam, bytes=True)[..., :3]
    np.testing.assert_array_equal(colorize(cam, name), expected)


def test_unknown_colormap_names_valid_ones():
    with pytest.raises(ExplainerError, match="Unknown colormap 'nope'.*viridis"):
        colorize(np.zeros((2, 2)), "nope")


def test_colorize_refuses_3d():
    with pytest.raises(ExplainerError, match="two-dimensional"):
        colorize(np.zeros((2, 2, 3)))


def _image(h=4, w=6):
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_overlay_opacity_zero_is_the_image():
    image = _image()
    cam = np.random.default_rng(2).random((4, 6))
    np.testing.assert_array_equal(overlay(image, cam, opacity=0.0), image)
    np.testing.assert_array_equal(overlay(Image.fromarray(image), cam, opacity=0.0), image)


def test_overlay_opacity_one_is_the_heatmap():
    image = _image()
    cam = np.random.default_rng(2).random((4, 6))
    np.testing.assert_array_equal(overlay(image, cam, opacity=1.0, colormap="viridis"), colorize(cam, "viridis"))


def test_overlay_all_ones_gray_is_white():
    out = overlay(_image(), np.ones((4, 6)), opacity=1.0, colormap="gray")
    assert (out == 255).all()


def test_overlay_half_by_hand():
    image = np.full((1, 1, 3), [10, 100, 201], dtype=np.uint8)
    out = overlay(image, np.ones((1, 1)), opacity=0.5, colormap="gray")  # heat (255, 255, 255)
    # (1 - 0.5) * [10, 100, 201] + 0.5 * 255 = [132.5, 177.5, 228] -> round half to even
    assert out[0, 0].tolist() == [132, 178, 228]
    out = overlay(image, np.zeros((1, 1)), opacity=0.25, colormap="jet")  # jet(0) = (0, 0, 127)
    # 0.75 * [10, 100, 201] + 0.25 * [0, 0, 127] = [7.5, 75, 182.5]
    assert out[0, 0].tolist() == [8, 75, 182]


def test_overlay_resizes_cam_to_image():
    image = np.zeros((4, 6, 3), dtype=np.uint8)
    cam = np.array([[0.0, 1.0]], dtype=np.float32)  # 1 x 2 -> 4 x 6
    out = overlay(image, cam, opacity=1.0, colormap="gray")
    assert out.shape == (4, 6, 3)
    expected = colorize(upsample(cam, (4, 6)), "gray")
    np.testing.assert_array_equal(out, expected)
    assert out[0, 0, 0] == 0 and out[0, 5, 0] == 255  # left edge dark, right edge white


def test_overlay_grayscale_image_becomes_rgb():
    gray = np.array([[50, 60]], dtype=np.uint8)
    out = overlay(gray, np.zeros((1, 2)), opacity=0.0)
    assert out.shape == (1, 2, 3)
    assert out[0, 1].tolist() == [60, 60, 60]
    out = overlay(Image.fromarray(gray), np.zeros((1, 2)), opacity=0.0)
    assert out[0, 0].tolist() == [50, 50, 50]


@pytest.mark.parametrize("opacity", [-0.1, 1.5])
def test_overlay_refuses_opacity_outside_unit(opacity):
    with pytest.raises(ExplainerError, match="Opacity must be between 0 and 1"):
        overlay(_image(), np.zeros((4, 6)), opacity=opacity)


def test_upsample_is_bilinear_without_normalizing():
    raw = np.array([[0.0, 4.0]], dtype=np.float32)
    out = upsample(raw, (1, 4))
    # cv2 bilinear with half-pixel centers: x = (i + 0.5) / 2 - 0.5 -> -0.25, 0.25, 0.75, 1.25 (clamped)
    np.testing.assert_allclose(out, [[0.0, 1.0, 3.0, 4.0]], atol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(upsample(raw * 10, (1, 2)), raw * 10)  # same size: unchanged, not scaled


def test_normalize_maps_shared_vs_per_map():
    a = np.array([[0, 1], [2, 3]], dtype=np.float32)
    b = np.array([[0, 0.5], [1, 1.5]], dtype=np.float32)
    per_map = normalize_maps([a, b], (2, 2), shared=False)
    assert per_map[0].max() == pytest.approx(1.0, abs=1e-6)
    assert per_map[1].max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(per_map[1], [[0, 1 / 3], [2 / 3, 1]], atol=1e-6)
    shared = normalize_maps([a, b], (2, 2), shared=True)
    np.testing.assert_allclose(shared[0], [[0, 1 / 3], [2 / 3, 1]], atol=1e-6)
    np.testing.assert_allclose(shared[1], [[0, 1 / 6], [1 / 3, 0.5]], atol=1e-6)
    assert shared[1].max() == pytest.approx(0.5, abs=1e-6)


def test_normalize_maps_matches_pytorch_grad_cam_scaling():
    from pytorch_grad_cam.utils.image import scale_cam_image

    raw = np.random.default_rng(3).random((7, 7)).astype(np.float32) * 5
    ours = normalize_maps([raw], (7, 7))[0]
    np.testing.assert_allclose(ours, scale_cam_image(raw[None])[0], atol=1e-6)


def test_normalize_maps_upsamples_and_handles_empty_and_constant():
    out = normalize_maps([np.array([[1.0, 3.0]])], (2, 4))
    assert out[0].shape == (2, 4) and out[0].min() == 0.0 and out[0].max() == pytest.approx(1.0, abs=1e-6)
    assert normalize_maps([], (2, 2)) == []
    flat = normalize_maps([np.full((2, 2), 5.0)], (2, 2))[0]
    assert (flat == 0).all()  # a constant map has no signal, not a NaN


def test_side_by_side_grid_and_placement():
    red = np.zeros((10, 20, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((10, 20, 3), np.uint8)
    blue[..., 2] = 255
    grid = side_by_side([red, blue, red], ["a", "b", "c"], columns=2, caption_height=12)
    assert grid.shape == (2 * (10 + 12), 2 * 20, 3)
    assert grid[12 + 5, 10].tolist() == [255, 0, 0]  # first cell below its caption
    assert grid[12 + 5, 30].tolist() == [0, 0, 255]  # second cell
    assert grid[22 + 12 + 5, 30].tolist() == [255, 255, 255]  # empty fourth cell is background
    assert (grid[:12, :20] < 255).any()  # caption text drawn
    with pytest.raises(ExplainerError, match="one caption per image"):
        side_by_side([red], ["a", "b"])


def test_to_png_bytes_round_trip():
    image = _image()
    data = to_png_bytes(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = Image.open(io.BytesIO(data))
    assert decoded.info.get("dpi") is None and not decoded.text
    np.testing.assert_array_equal(np.asarray(decoded), image)
