"""The model registry: the embedded model classifies right, the zoo builds, nothing downloads."""
from __future__ import annotations

import os
from collections import OrderedDict
from urllib.error import URLError

import pytest
import torch

from explainers.errors import ModelError
from explainers.models import MODELS, get_spec, list_models, load_model, register_model
from explainers.models.embedded import remap_state_dict, weights_path
from explainers.models.spec import sha256_of_file
from explainers.models.zoo import ZOO, weights_file_path

from conftest import imagenet_index

CATS = ("tabby", "tiger cat", "Egyptian cat")


def top(model, image, k: int = 5) -> list[tuple[int, float]]:
    x = model.preprocessing.to_tensor(image).to(model.device)
    with torch.no_grad():
        probs = model.module(x).softmax(-1)[0]
    values, indices = probs.topk(k)
    return [(int(i), float(p)) for p, i in zip(values, indices)]


def layer_output(module: torch.nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    captured = []
    handle = dict(module.named_modules())[layer].register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        with torch.no_grad():
            module(x)
    finally:
        handle.remove()
    return captured[0]


# --- the embedded default -------------------------------------------------------------

def test_embedded_is_first_and_offline(lite0):
    assert list_models()[0].name == "efficientnet_lite0"
    assert lite0.spec.source == "embedded"
    assert lite0.spec.weights_available()
    assert lite0.categories[:2] == ["tench", "goldfish"] and lite0.num_classes == 1000
    assert lite0.weights_sha256 == sha256_of_file(weights_path())
    assert not lite0.module.training and lite0.device == torch.device("cpu")
    assert all(p.requires_grad for p in lite0.module.parameters())  # left as built


def test_chelsea_is_a_cat(lite0, cat_image):
    ranked = top(lite0, cat_image)
    print("chelsea:", [(lite0.categories[i], round(p, 4)) for i, p in ranked])
    cat_ids = set(imagenet_index(lite0, *CATS))
    assert cat_ids & {i for i, _ in ranked[:3]}
    assert sum(p for i, p in ranked if i in cat_ids) > 0.5  # measured: 0.887


def test_coffee_is_espresso(lite0, coffee_image):
    ranked = top(lite0, coffee_image)
    print("coffee:", [(lite0.categories[i], round(p, 4)) for i, p in ranked])
    assert lite0.categories[ranked[0][0]] == "espresso"
    assert ranked[0][1] > 0.5  # measured: 0.853


def test_embedded_target_layer_is_the_activated_last_conv_map(lite0):
    assert lite0.target_layer == "bn2"
    out = layer_output(lite0.module, "bn2", torch.zeros(1, 3, 224, 224))
    assert tuple(out.shape) == (1, 1280, 7, 7)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 6.0  # ReLU6 applied inside bn2


def test_remap_refuses_weights_that_do_not_line_up():
    target = OrderedDict(a=torch.zeros(2, 3), b=torch.zeros(4))
    good = OrderedDict(x=torch.ones(2, 3), y=torch.ones(4))
    assert list(remap_state_dict(good, target)) == ["a", "b"]
    swapped = OrderedDict(y=torch.ones(4), x=torch.ones(2, 3))
    with pytest.raises(ModelError, match=r"y has shape \(4,\).*a has shape \(2, 3\)"):
        remap_state_dict(swapped, target)
    with pytest.raises(ModelError, match="hold 1 tensors but .* expects 2"):
        remap_state_dict(OrderedDict(x=torch.ones(2, 3)), target)


# --- the registry ---------------------------------------------------------------------

def test_unknown_model_lists_the_known_names():
    with pytest.raises(ModelError, match=r"Unknown model 'nope'.*efficientnet_lite0.*resnet50"):
        load_model("nope")
    with pytest.raises(ModelError, match="Unknown model"):
        get_spec(None)  # type: ignore[arg-type]


def test_duplicate_names_are_refused():
    with pytest.raises(ModelError, match="already registered"):
        register_model(get_spec("resnet18"))
    assert len(MODELS) == len(list_models())


# --- the torchvision zoo --------------------------------------------------------------

# (layer output after the reshape transform) for a 224 x 224 input, channels from each paper
ZOO_MAPS = {"resnet18": (512, 7), "resnet50": (2048, 7), "vgg16": (512, 14), "densenet121": (1024, 7),
            "mobilenet_v3_large": (960, 7), "efficientnet_b0": (1280, 7), "convnext_tiny": (768, 7),
            "vit_b_16": (768, 14), "swin_t": (768, 7)}
BICUBIC = {"efficientnet_b0", "swin_t"}  # the others use bilinear in torchvision's weights


def test_zoo_lists_every_required_model():
    names = [s.name for s in list_models() if s.source == "torchvision"]
    assert names == list(ZOO_MAPS)


@pytest.mark.parametrize("name", list(ZOO_MAPS))
def test_zoo_model_builds_and_its_layer_gives_a_map(name):
    torch.manual_seed(0)
    model = load_model(name, device="cpu", random_weights=True)
    spec = model.spec
    assert model.random_weights and model.weights_sha256 is None and not model.module.training
    assert model.num_classes == 1000 and model.categories[0] == "tench"
    assert spec.preprocessing.input_size == (224, 224)
    assert spec.preprocessing.interpolation == ("bicubic" if name in BICUBIC else "bilinear")
    assert spec.preprocessing.mean == pytest.approx((0.485, 0.456, 0.406))
    out = layer_output(model.module, spec.target_layer, torch.randn(1, 3, 224, 224))
    if spec.reshape_transform is not None:
        out = spec.reshape_transform(out)
    channels, side = ZOO_MAPS[name]
    assert tuple(out.shape) == (1, channels, side, side)


def test_swin_reshape_puts_channels_first():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)  # (B, H, W, C)
    y = get_spec("swin_t").reshape_transform(x)
    assert tuple(y.shape) == (2, 5, 3, 4) and float(y[1, 4, 2, 3]) == float(x[1, 2, 3, 4])


def test_vit_reshape_drops_the_class_token():
    x = torch.randn(1, 197, 8)
    y = get_spec("vit_b_16").reshape_transform(x)
    assert tuple(y.shape) == (1, 8, 14, 14)
    assert torch.equal(y[0, :, 0, 1], x[0, 2]) and torch.equal(y[0, :, 1, 0], x[0, 15])


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """An empty torch cache, and a network that always fails: no test downloads anything."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(url, dst, *args, **kwargs):
        raise URLError("no network in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return tmp_path


def test_missing_zoo_weights_name_the_file_the_url_and_the_folder(empty_torch_home):
    spec = get_spec("resnet18")
    url = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    folder = os.path.join(str(empty_torch_home), "hub", "checkpoints")
    assert not spec.weights_available()
    assert str(weights_file_path(_weights("resnet18"))) == os.path.join(folder, "resnet18-f37072fd.pth")
    with pytest.raises(ModelError) as error:
        load_model("resnet18", device="cpu")
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message and url in message and folder in message
    assert "no network in tests" in message
    assert not os.path.exists(os.path.join(folder, "resnet18-f37072fd.pth"))


def test_damaged_cached_zoo_weights_say_so(empty_torch_home):
    path = weights_file_path(_weights("resnet18"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    assert get_spec("resnet18").weights_available()
    with pytest.raises(ModelError, match="could not be read.*delete it"):
        load_model("resnet18", device="cpu")


def test_cached_zoo_weights_load_without_network(empty_torch_home):
    torch.manual_seed(1)
    source = load_model("resnet18", device="cpu", random_weights=True).module
    path = weights_file_path(_weights("resnet18"))
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    loaded = get_spec("resnet18").build(False).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


def _weights(name: str):
    from torchvision.models import get_model_weights

    return get_model_weights(name).DEFAULT
