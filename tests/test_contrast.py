"""The contrastive map "A rather than B" equals pytorch-grad-cam's Grad-CAM of (logit A - logit B);
the difference of two class maps and the early-to-late layer choice, by hand."""
import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, HiResCAM

from explainers.comparisons import class_difference, colorize_signed, stage_layers
from explainers.fit import raw_on_image
from explainers.pipeline import explain, on_grid
from explainers.layers import LayerInfo, list_layers
from explainers.render import hatch_outside

TABBY, EGYPTIAN_CAT, ESPRESSO, CUP = 281, 285, 967, 968


def library_contrast(lite0, image, cls, a: int, b: int) -> np.ndarray:
    x = lite0.preprocessing.to_tensor(image)
    with cls(model=lite0.module, target_layers=[lite0.module.get_submodule(lite0.target_layer)]) as cam:
        return cam(input_tensor=x, targets=[lambda out: out[..., a] - out[..., b]])[0]


@pytest.mark.parametrize("image_name, a, b", [("cat_image", TABBY, EGYPTIAN_CAT),
                                              ("cat_image", EGYPTIAN_CAT, TABBY),
                                              ("coffee_image", CUP, ESPRESSO)])
def test_contrast_equals_gradcam_of_the_logit_difference(request, lite0, image_name, a, b):
    image = request.getfixturevalue(image_name)
    ex = explain(lite0, image, methods=["gradcam"], classes=[a], contrast=(a, b))
    plain, contrast = ex.results
    assert (plain.contrast_index, contrast.contrast_index) == (None, b)
    assert contrast.label == f"{lite0.categories[a]} rather than {lite0.categories[b]}"
    reference = library_contrast(lite0, image, GradCAM, a, b)
    h, w = lite0.preprocessing.input_size
    ours = on_grid(contrast.raw, w, h)
    assert np.abs(ours - reference).max() <= 1e-4
    assert reference.max() > 0.99
    # ...and it is not the plain class map (so the comparison above could fail)
    assert np.abs(on_grid(plain.raw, w, h) - reference).max() > 0.05


def test_contrast_score_is_the_logit_difference(lite0, cat_image):
    ex = explain(lite0, cat_image, methods=["gradcam"], contrast=(TABBY, EGYPTIAN_CAT))
    contrast = next(r for r in ex.results if r.contrast_index is not None)
    with torch.no_grad():
        logits = lite0.module(lite0.preprocessing.to_tensor(cat_image))[0]
    assert contrast.score == pytest.approx(float(logits[TABBY] - logits[EGYPTIAN_CAT]), abs=1e-4)
    assert contrast.score < 0  # the model prefers Egyptian cat for Chelsea


def test_contrast_with_another_method_matches_the_library(lite0, coffee_image):
    ex = explain(lite0, coffee_image, methods=["hirescam"], contrast=(ESPRESSO, CUP))
    (contrast,) = [r for r in ex.results if r.contrast_index == CUP]
    reference = library_contrast(lite0, coffee_image, HiResCAM, ESPRESSO, CUP)
    assert np.abs(on_grid(contrast.raw, 224, 224) - reference).max() <= 1e-4


def test_class_difference_by_hand(lite0, cat_image):
    ex = explain(lite0, cat_image, methods=["gradcam"], classes=[TABBY, EGYPTIAN_CAT])
    a, b = ex.results
    diff = class_difference(a, b, a.raw.shape)  # at layer size: no resizing, so the formula is exact
    low, high = min(a.raw.min(), b.raw.min()), max(a.raw.max(), b.raw.max())
    expected = (a.raw - b.raw) / (high - low + 1e-7)
    np.testing.assert_allclose(diff, expected, atol=1e-6)
    assert diff.min() >= -1 and diff.max() <= 1 and np.abs(diff).max() > 0.01
    np.testing.assert_allclose(class_difference(b, a, (300, 451)), -class_difference(a, b, (300, 451)), atol=1e-6)
    assert not class_difference(a, a, (30, 45)).any()


def test_class_difference_follows_a_crop_fit_as_the_class_panels_do(lite0, cat_image):
    crop = lite0.with_fit("crop")
    a, b = explain(crop, cat_image, methods=["gradcam"], classes=[TABBY, EGYPTIAN_CAT]).results
    size = (cat_image.height, cat_image.width)
    diff = class_difference(a, b, size, crop.preprocessing)
    place = crop.preprocessing.placement(cat_image.width, cat_image.height)
    x0, y0, x1, y1 = place.source
    assert 0 < x0 < x1 < cat_image.width  # the crop leaves out both sides of the wide photo
    inside = np.zeros(size, bool)
    inside[y0:y1, x0:x1] = True
    np.testing.assert_array_equal(np.isnan(diff), ~inside)
    on_image = [raw_on_image(np.nan_to_num(r.raw), crop.preprocessing.input_size, place, cat_image.width,
                             cat_image.height) for r in (a, b)]
    low, high = min(np.nanmin(m) for m in on_image), max(np.nanmax(m) for m in on_image)
    expected = (on_image[0] - on_image[1]) / (high - low + 1e-7)
    np.testing.assert_allclose(diff[inside], expected[inside], atol=1e-6)
    squashed = class_difference(a, b, size)  # the whole photo stretched under the crop's map: another picture
    assert np.abs(squashed[inside] - diff[inside]).max() > 0.05


def test_difference_overlay_hatches_what_the_crop_left_out(lite0, cat_image):
    from ui.compare_views import difference_overlay

    crop = lite0.with_fit("crop")
    a, b = explain(crop, cat_image, methods=["gradcam"], classes=[TABBY, EGYPTIAN_CAT]).results
    picture, largest = difference_overlay(cat_image, a, b, 0.6, crop.preprocessing)
    x0, _, x1, _ = crop.preprocessing.placement(cat_image.width, cat_image.height).source
    expected = hatch_outside(picture, np.ones(picture.shape[:2], bool), np.asarray(cat_image.convert("RGB")))
    np.testing.assert_array_equal(picture[:, :x0], expected[:, :x0])  # grey hatching, no blue "B is stronger"
    assert largest == pytest.approx(np.nanmax(np.abs(class_difference(a, b, picture.shape[:2], crop.preprocessing))))


def test_signed_colors_put_zero_in_the_middle():
    colors = colorize_signed(np.array([[-1.0, 0.0, 1.0]]))
    blue, white, red = colors[0].astype(int)
    assert blue[2] > blue[0] and red[0] > red[2]  # RdBu_r: negative blue, positive red
    assert white.min() > 200  # the middle is (nearly) white


def test_stage_layers_on_the_embedded_model(lite0):
    assert stage_layers(list_layers(lite0)) == ["blocks.1.1", "blocks.2.1", "blocks.4.2", "bn2"]


def test_stage_layers_without_resolution_changes_spaces_the_blocks():
    infos = [LayerInfo(f"encoder.layers.layer_{i}", "Block", (1, 197, 768), recommended=(i == 11)) for i in range(12)]
    assert stage_layers(infos) == [f"encoder.layers.layer_{i}" for i in (2, 5, 8, 11)]
    resnet = [LayerInfo("conv1", "Conv2d", (1, 64, 112, 112)), LayerInfo("layer1", "Seq", (1, 256, 56, 56)),
              LayerInfo("layer1.0", "Block", (1, 256, 56, 56)), LayerInfo("layer2", "Seq", (1, 512, 28, 28)),
              LayerInfo("layer4", "Seq", (1, 2048, 7, 7), recommended=True),
              LayerInfo("avgpool", "Pool", (1, 2048, 1, 1))]  # after the recommended layer: left out
    assert stage_layers(resnet) == ["layer1", "layer2", "layer4"]  # the stem (conv1) left out
    assert stage_layers(resnet, most=2) == ["layer2", "layer4"]
