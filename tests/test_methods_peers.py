"""The methods peers define (TorchCAM 0.5, Captum, pytorch-grad-cam) equal the peer's own output,
with the same settings and, for the random ones, the very same noise; refusals where a method does not apply."""
import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, RandomCAM, RefineCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from explainers.errors import MethodError
from explainers.pipeline import explain, on_grid
from explainers.methods import perturbation, pixel_attribution, smoothing
from explainers.methods.catalog import METHODS
from explainers.methods.options import MethodOptions, NoiseTunnel
from explainers.models.spec import Preprocessing, wrap_module
from tests.test_slow_methods import SmallNet
from tests.tiny import tiny_model

torchcam = pytest.importorskip("torchcam.methods")
captum = pytest.importorskip("captum.attr")
TABBY = 281


def minmax(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return (a - a.min()) / (a.max() - a.min() + 1e-12)


def relu(a) -> np.ndarray:
    return np.maximum(np.asarray(a, dtype=np.float32), 0)


class Recorder:
    """Stands in for a library's noise distribution: draws N(0, std) and keeps every draw, in order."""

    def __init__(self, std: float) -> None:
        self.std, self.draws = std, []
        self.generator = torch.Generator().manual_seed(1)

    def sample(self, shape) -> torch.Tensor:
        self.draws.append(torch.randn(tuple(shape), generator=self.generator) * self.std)
        return self.draws[-1]

    def replay(self):
        draws = iter(self.draws)
        return lambda shape: next(draws)


@pytest.fixture(scope="module")
def small():
    return wrap_module(SmallNet(), ["a", "b", "c"], "body.3", name="small",
                       preprocessing=Preprocessing(input_size=(32, 32), interpolation="bilinear"))


@pytest.fixture(scope="module")
def small_x(small, cat_image):
    return small.preprocessing.to_tensor(cat_image)


def torchcam_map(extractor, module, x, class_index):
    with extractor as cam:
        with torch.no_grad():
            module(x)
        return cam(class_idx=class_index, normalized=False)[0][0].numpy()


def test_cam_equals_torchcam_and_gradcam_on_a_gap_linear_model(lite0, cat_image):
    ex = explain(lite0, cat_image, ["cam", "gradcam"], classes=[TABBY])
    x = lite0.preprocessing.to_tensor(cat_image)
    reference = torchcam_map(torchcam.CAM(lite0.module, "bn2", "classifier"), lite0.module, x, TABBY)
    ours = ex.result("cam").raw
    assert ours.shape == (7, 7) and reference.max() > 0
    assert np.abs(ours - relu(reference)).max() <= 1e-4 * np.abs(reference).max()
    # on GAP + linear, Grad-CAM's weights are the class weights / (h * w): the same map, scaled
    assert np.abs(minmax(ex.result("gradcam").raw) - minmax(ours)).max() <= 1e-4


def test_cam_by_hand_on_the_tiny_cnn():
    from tests.tiny import W, tiny_image
    ex = explain(tiny_model(), tiny_image(), ["cam"], classes=[1])
    # feature 0 = 255 x R/255 = 4 in the top-left 2x2 block, feature 1 = G = 2 bottom-right; class 1 weights (0.5, 2)
    expected = np.zeros((4, 4), np.float32)
    expected[:2, :2] = W[1][0] * 4  # 2
    expected[2:, 2:] = W[1][1] * 2  # 4
    assert np.allclose(ex.result("cam").raw, expected)


def test_cam_is_refused_where_the_layer_is_not_followed_by_gap_and_one_linear(lite0, cat_image, small, small_x):
    with pytest.raises(MethodError, match="global average pooling and one linear layer"):
        explain(lite0, cat_image, ["cam"], layers=["blocks.5"])
    deep_head = SmallNet()
    deep_head.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 8),
                                         torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.Linear(8, 3))
    with pytest.raises(MethodError, match="use Grad-CAM"):
        explain(wrap_module(deep_head, ["a", "b", "c"], "body.3", preprocessing=small.preprocessing), cat_image,
                ["cam"])


def test_smooth_gradcampp_equals_torchcam_with_the_same_noise(lite0, cat_image):
    x = lite0.preprocessing.to_tensor(cat_image)
    extractor = torchcam.SmoothGradCAMpp(lite0.module, "bn2")  # TorchCAM's defaults: 4 samples, std 0.3
    noise = extractor._distrib = Recorder(0.3)
    reference = torchcam_map(extractor, lite0.module, x, TABBY)
    assert len(noise.draws) == 4
    ours = explain(lite0, cat_image, ["smoothgradcam++"], classes=[TABBY],
                   options=MethodOptions(noise=noise.replay())).result("smoothgradcam++").raw
    assert reference.max() > 0
    assert np.abs(minmax(ours) - minmax(reference)).max() <= 1e-4


@pytest.mark.parametrize("method", ["sscam", "iscam"])
def test_sscam_and_iscam_equal_torchcam_with_the_same_noise(method, small, small_x, cat_image):
    if method == "sscam":
        extractor = torchcam.SSCAM(small.module, "body.3", num_samples=3, std=2.0, input_shape=(3, 32, 32))
        noise = extractor._distrib = Recorder(2.0)
        options = MethodOptions(sscam_samples=3, noise=noise.replay())
    else:
        extractor = torchcam.ISCAM(small.module, "body.3", num_samples=4, input_shape=(3, 32, 32))
        options = MethodOptions(iscam_samples=4)
    reference = torchcam_map(extractor, small.module, small_x, 1)
    ours = explain(small, cat_image, [method], classes=[1], options=options, batch_size=5).result(method).raw
    assert reference.max() > 0
    assert np.abs(ours - reference).max() <= 1e-4 * reference.max()


def test_iscam_runs_the_all_black_input_once_for_every_constant_channel(small, cat_image):
    calls = []
    with torch.no_grad():
        logits = small.module(small.preprocessing.to_tensor(cat_image))  # before the hook: not counted
    acts = np.random.default_rng(0).random((1, 8, 16, 16)).astype(np.float32)
    acts[0, 2:5] = 0.5  # three constant channels: their masks are all zero at every step
    x = small.preprocessing.to_tensor(cat_image)
    handle = small.module.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        maps = perturbation.integrated_score_cam(small.module, x, logits, acts, [ClassifierOutputTarget(0)], 4, 64)
    finally:
        handle.remove()
    assert calls == [1, 20]  # one black pass, then 4 steps x the 5 varying channels in one batch
    assert maps[0].shape == (16, 16)


def test_refinecam_equals_pytorch_grad_cam(lite0, cat_image):
    layers = ["blocks.5", "bn2"]
    ex = explain(lite0, cat_image, ["refinecam"], classes=[TABBY], layers=layers)
    result = ex.result("refinecam")
    x = lite0.preprocessing.to_tensor(cat_image)
    refine = RefineCAM(lite0.module, [lite0.module.get_submodule(n) for n in layers])
    try:
        reference = refine(x, [ClassifierOutputTarget(TABBY)])[0]
    finally:
        for cam in refine.base_cam_per_layer:
            cam.activations_and_grads.release()
    assert result.layer == "blocks.5+bn2" and result.raw.shape == (224, 224)
    assert np.abs(result.raw - reference).max() <= 1e-4


def test_refinecam_needs_two_layers(lite0, cat_image):
    with pytest.raises(MethodError, match="two or more layers"):
        explain(lite0, cat_image, ["refinecam"])


def test_randomcam_equals_pytorch_grad_cam_with_the_same_seed(lite0, cat_image):
    ours = explain(lite0, cat_image, ["randomcam"], options=MethodOptions(seed=3)).result("randomcam")
    x = lite0.preprocessing.to_tensor(cat_image)
    with RandomCAM(lite0.module, [lite0.module.bn2]) as cam:
        np.random.seed(3)
        reference = cam(x, [ClassifierOutputTarget(TABBY)])[0]
    assert np.abs(on_grid(ours.raw, 224, 224) - reference).max() <= 1e-4
    again = explain(lite0, cat_image, ["randomcam"], options=MethodOptions(seed=3)).result("randomcam")
    assert np.array_equal(again.raw, ours.raw)  # reproducible: a cached map stays the same map


def test_sobelcam_by_hand():
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[:, 2:] = 100  # a vertical edge between columns 1 and 2
    from PIL import Image
    raw = explain(tiny_model(), Image.fromarray(pixels), ["sobelcam"]).result("sobelcam").raw
    # |Sobel x| = 4 * 100 saturates at 255 beside the edge; mixed 0.5/0.5 with |Sobel y| = 0: 127.5 -> 128
    assert np.array_equal(raw, np.tile(np.float32([0, 128, 128, 0]), (4, 1)))


def test_occlusion_equals_captum_with_the_same_window_and_stride(small, small_x, cat_image):
    with torch.no_grad():
        logits = small.module(small_x)
    targets = [ClassifierOutputTarget(0), ClassifierOutputTarget(2)]
    ours = perturbation.occlusion(small.module, small_x, logits, targets, window=8, stride=6, fill=0.5, batch_size=7)
    for c, mine in zip((0, 2), ours):
        reference = captum.Occlusion(small.module).attribute(small_x, sliding_window_shapes=(3, 8, 8),
                                                             strides=(3, 6, 6), baselines=0.5, target=c)
        assert np.abs(mine - reference[0, 0].numpy()).max() <= 1e-5
        assert np.abs(reference[0, 0] - reference[0, 2]).max() == 0  # one value per pixel
    via_explain = explain(small, cat_image, ["occlusion"], classes=[2], batch_size=7,
                          options=MethodOptions(occlusion_window=8, occlusion_stride=6, occlusion_fill=0.5))
    assert np.allclose(via_explain.result("occlusion").raw, relu(ours[1]), atol=1e-5)


def test_integrated_gradients_equals_captum(small, small_x, cat_image):
    reference = captum.IntegratedGradients(small.module).attribute(small_x, target=1, n_steps=50)
    ours = pixel_attribution.integrated_gradients(small.module, small_x, [ClassifierOutputTarget(1)], 50,
                                                  batch_size=16)[0]
    assert np.abs(ours - reference).max() <= 1e-4 * reference.abs().max()
    assert all(p.requires_grad for p in small.module.parameters())  # restored
    shown = explain(small, cat_image, ["integrated_gradients"], classes=[1]).result("integrated_gradients").raw
    assert np.allclose(shown, reference[0].abs().amax(dim=0).numpy(), atol=1e-4 * float(reference.abs().max()))


@pytest.mark.parametrize("aug, eigen", [(True, False), (False, True), (True, True)])
def test_aug_and_eigen_smooth_equal_pytorch_grad_cam(aug, eigen, lite0, cat_image):
    ours = explain(lite0, cat_image, ["gradcam"], classes=[TABBY],
                   options=MethodOptions(aug_smooth=aug, eigen_smooth=eigen)).result("gradcam")
    x = lite0.preprocessing.to_tensor(cat_image)
    with GradCAM(lite0.module, [lite0.module.bn2]) as cam:
        reference = cam(x, [ClassifierOutputTarget(TABBY)], aug_smooth=aug, eigen_smooth=eigen)[0]
    mine = ours.raw if aug else on_grid(ours.raw, 224, 224)
    assert "smooth" in ours.method_name
    assert np.abs(mine - reference).max() <= 1e-4


@pytest.mark.parametrize("kind", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel_equals_captum_with_the_same_noise(kind, small, small_x, monkeypatch):
    noise = torch.randn((4, 3, 32, 32), generator=torch.Generator().manual_seed(2)) * 0.4
    monkeypatch.setattr(torch, "normal", lambda mean, std: noise.clone())  # Captum draws with torch.normal
    layer = small.module.body[3]
    reference = captum.NoiseTunnel(captum.LayerGradCam(small.module, layer)).attribute(
        small_x, nt_type=kind, nt_samples=4, stdevs=0.4, target=1)[0, 0].detach().numpy()
    monkeypatch.undo()
    ours = smoothing.noise_tunnel_maps([METHODS.get("gradcam")], small.module, small_x, ["body.3"],
                                       [ClassifierOutputTarget(1)], NoiseTunnel(kind, 4, 0.4),
                                       lambda shape: noise)[("gradcam", 0, "body.3")]
    assert np.abs(ours - reference).max() <= 1e-5 * max(np.abs(reference).max(), 1e-3)


def test_noise_tunnel_around_guided_backprop_equals_captum(small, small_x, monkeypatch):
    noise = torch.randn((3, 3, 32, 32), generator=torch.Generator().manual_seed(4)) * 0.2
    monkeypatch.setattr(torch, "normal", lambda mean, std: noise.clone())
    reference = captum.NoiseTunnel(captum.GuidedBackprop(small.module)).attribute(
        small_x, nt_type="smoothgrad_sq", nt_samples=3, stdevs=0.2, target=2)[0]
    monkeypatch.undo()
    ours = smoothing.noisy_guided_backprop(small.module, small_x, [ClassifierOutputTarget(2)],
                                           NoiseTunnel("smoothgrad_sq", 3, 0.2), lambda shape: noise)[0]
    assert np.abs(ours - reference.permute(1, 2, 0).numpy()).max() <= 1e-5 * float(reference.abs().max())


@pytest.mark.parametrize("kind", ["smoothgrad", "smoothgrad_sq", "vargrad"])
def test_noise_tunnel_around_integrated_gradients_equals_captum(kind, small, small_x, cat_image, monkeypatch):
    noise = torch.randn((3, 3, 32, 32), generator=torch.Generator().manual_seed(5)) * 0.3
    monkeypatch.setattr(torch, "normal", lambda mean, std: noise.clone())
    reference = captum.NoiseTunnel(captum.IntegratedGradients(small.module)).attribute(
        small_x, nt_type=kind, nt_samples=3, stdevs=0.3, target=1, n_steps=20)
    monkeypatch.undo()
    tunnel = NoiseTunnel(kind, 3, 0.3)
    ours = pixel_attribution.noisy_integrated_gradients(small.module, small_x, [ClassifierOutputTarget(1)], 20,
                                                        tunnel, lambda shape: noise, batch_size=7)[0]
    assert float((ours - reference).abs().max()) <= 1e-4 * float(reference.abs().max())
    plain = captum.IntegratedGradients(small.module).attribute(small_x, target=1, n_steps=20)
    assert float((plain - reference).abs().max()) > 1e-2 * float(reference.abs().max())  # the tunnel changed it
    # explain() and the CLI's options reach it: the noise tunnel of the options, the same noise, the name says so
    shown = explain(small, cat_image, ["integrated_gradients"], classes=[1], batch_size=7,
                    options=MethodOptions(noise_tunnel=tunnel, ig_steps=20, noise=lambda shape: noise))
    result = shown.result("integrated_gradients")
    assert result.method_name == f"Integrated Gradients ({kind} x3)"
    expected = reference[0].abs().amax(dim=0).numpy()
    assert np.allclose(result.raw, expected, atol=1e-4 * float(expected.max()))


def test_options_refuse_nonsense():
    with pytest.raises(MethodError, match="either aug-smooth or a noise tunnel"):
        MethodOptions(aug_smooth=True, noise_tunnel=NoiseTunnel())
    with pytest.raises(MethodError, match="Unknown noise tunnel"):
        NoiseTunnel("smoothgrad_cubed")
    with pytest.raises(MethodError, match="stride cannot be larger"):
        MethodOptions(occlusion_window=4, occlusion_stride=8)


def test_the_frozen_copy_gives_the_eager_maps_and_odd_models_keep_the_eager_path(small, small_x, cat_image):
    from explainers.methods.inference_copy import inference_copy
    settings = dict(occlusion_window=8, occlusion_stride=8, iscam_samples=2)
    fast = explain(small, cat_image, ["occlusion", "iscam"], classes=[1], options=MethodOptions(**settings))
    eager = explain(small, cat_image, ["occlusion", "iscam"], classes=[1],
                    options=MethodOptions(frozen_inference=False, **settings))
    for a, b in zip(fast.results, eager.results):
        assert np.abs(a.raw - b.raw).max() <= 1e-4 * max(np.abs(b.raw).max(), 1e-6)
    assert isinstance(inference_copy(small.module, small_x), torch.jit.ScriptModule)

    class Pair(torch.nn.Module):  # returns a tuple: no frozen copy, the model itself is used
        def forward(self, x):
            return x.mean(dim=(2, 3)), x
    pair = Pair()
    assert inference_copy(pair, small_x) is pair


def test_smooth_gradcampp_through_the_layer_split_equals_the_eager_path(lite0, cat_image):
    runs = [explain(lite0, cat_image, ["smoothgradcam++"], classes=[TABBY], layers=["blocks.5", "bn2"],
                    options=MethodOptions(frozen_inference=frozen)) for frozen in (True, False)]
    for fast, eager in zip(*(r.results for r in runs)):
        assert np.abs(fast.raw - eager.raw).max() <= 1e-4 * np.abs(eager.raw).max()


def test_smooth_gradcampp_of_two_layers_equals_torchcams_multi_layer_call(lite0, cat_image):
    x = lite0.preprocessing.to_tensor(cat_image)
    extractor = torchcam.SmoothGradCAMpp(lite0.module, ["blocks.5", "bn2"])
    noise = extractor._distrib = Recorder(0.3)
    with extractor as cam:
        with torch.no_grad():
            lite0.module(x)
        references = [c[0].numpy() for c in cam(class_idx=TABBY, normalized=False)]
    ours = explain(lite0, cat_image, ["smoothgradcam++"], classes=[TABBY], layers=["blocks.5", "bn2"],
                   options=MethodOptions(noise=noise.replay()))
    for layer, reference in zip(["blocks.5", "bn2"], references):
        assert np.abs(minmax(ours.result("smoothgradcam++", layer=layer).raw) - minmax(reference)).max() <= 1e-4


class FlatViewNet(torch.nn.Module):
    """A head that flattens its features with ``.view(b, -1)``, as older CNNs do: a channels-last
    tensor cannot be viewed that way."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.head = torch.nn.Linear(8 * 8 * 8, 3)

    def forward(self, x):
        z = torch.relu(self.embed(x))
        return self.head(z.view(z.shape[0], -1))


def test_integrated_gradients_falls_back_to_contiguous_steps_where_channels_last_cannot_run(cat_image):
    model = wrap_module(FlatViewNet(), ["a", "b", "c"], "embed", name="flatview",
                        preprocessing=Preprocessing(input_size=(32, 32), interpolation="bilinear"))
    x = model.preprocessing.to_tensor(cat_image)
    with pytest.raises(RuntimeError, match="view"):
        model.module(x.contiguous(memory_format=torch.channels_last))
    reference = captum.IntegratedGradients(model.module).attribute(x, target=1, n_steps=50)
    shown = explain(model, cat_image, ["integrated_gradients"], classes=[1]).result("integrated_gradients").raw
    assert np.allclose(shown, reference[0].abs().amax(dim=0).numpy(), atol=1e-4 * float(reference.abs().max()))


def test_integrated_gradients_through_the_frozen_copy_equals_captum_on_the_embedded_model(lite0, cat_image):
    # explain() runs IG's steps through a frozen, BatchNorm-folded copy that input gradients flow through:
    # folding moves activations by float rounding, which can move a few ReLU6 kinks, so a few pixels differ
    x = lite0.preprocessing.to_tensor(cat_image)
    expected = captum.IntegratedGradients(lite0.module).attribute(x, target=TABBY, n_steps=8)[0].abs().amax(dim=0)
    expected = expected.numpy()
    exact = explain(lite0, cat_image, ["integrated_gradients"], classes=[TABBY],
                    options=MethodOptions(ig_steps=8, frozen_inference=False)).result("integrated_gradients").raw
    assert np.abs(exact - expected).max() <= 1e-4 * float(expected.max())  # the eager path: Captum's numbers
    folded = explain(lite0, cat_image, ["integrated_gradients"], classes=[TABBY],
                     options=MethodOptions(ig_steps=8)).result("integrated_gradients").raw
    difference = np.abs(folded - expected)
    assert difference.max() <= 0.03 * float(expected.max()) and difference.mean() <= 0.003 * float(expected.mean())
    assert np.corrcoef(folded.ravel(), expected.ravel())[0, 1] > 0.9999
