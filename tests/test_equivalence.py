"""Every one-pass method equals pytorch-grad-cam's own output on the embedded model (max |diff| <= 1e-4)."""
import numpy as np
import pytest
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from explainers.pipeline import explain, on_grid
from explainers.methods.catalog import METHODS

ONE_PASS = [key for key, spec in METHODS.items() if spec.kind == "shared"]


@pytest.fixture(scope="module")
def shared_run(lite0, cat_image):
    # ALL one-pass methods from one call (one forward, one backward), class 281 = tabby
    return explain(lite0, cat_image, methods=ONE_PASS, classes=[281])


def library_map(lite0, image, method: str, class_index: int, layer: str = None) -> np.ndarray:
    spec = METHODS.get(method)
    layer_module = lite0.module.get_submodule(layer or lite0.target_layer)
    x = lite0.preprocessing.to_tensor(image)
    with spec.library_class(model=lite0.module, target_layers=[layer_module]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(class_index)])[0]


def test_one_pass_list_is_complete():
    assert set(ONE_PASS) == {"gradcam", "hirescam", "gradcam_elementwise", "gradcam++", "xgradcam", "layercam",
                             "eigencam", "eigengradcam", "kpcacam", "fem"}


@pytest.mark.parametrize("method", ONE_PASS)
def test_matches_pytorch_grad_cam(method, lite0, cat_image, shared_run):
    ours = shared_run.result(method)
    reference = library_map(lite0, cat_image, method, 281)
    h, w = lite0.preprocessing.input_size
    assert ours.raw.shape == (7, 7)
    diff = np.abs(on_grid(ours.raw, w, h) - reference).max()
    assert diff <= 1e-4, f"{method}: max |ours - library| = {diff}"
    assert reference.max() > 0.99  # a real, non-empty map was compared


def test_matches_at_an_earlier_layer_and_for_top_k(lite0, coffee_image):
    ex = explain(lite0, coffee_image, methods=["gradcam", "layercam"], top_k=3, layers=["blocks.5"])
    assert len(ex.results) == 6
    for r in ex.results:
        reference = library_map(lite0, coffee_image, r.method, r.class_index, "blocks.5")
        assert np.abs(on_grid(r.raw, 224, 224) - reference).max() <= 1e-4
    assert [r.class_index for r in ex.results if r.method == "gradcam"] == [p.index for p in ex.predictions[:3]]
