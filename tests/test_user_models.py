"""User checkpoints and the deployment manifest: plain tensors load, code never runs."""
from __future__ import annotations

import json
import pickle
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import explainers.models as models
from explainers.errors import ModelError, UnsafeCheckpointError
from explainers.models import load_model
from explainers.models.manifest import read_manifest, register_manifest
from explainers.models.spec import sha256_of_file
from explainers.models.user import load_checkpoint, read_labels, read_state_dict
from explainers.registry import Registry

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "models"


@pytest.fixture(scope="module")
def source() -> torch.nn.Module:
    """A random 3-class resnet18, the 'trained model' of these tests."""
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=3).eval()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def same_outputs(model: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor) -> bool:
    with torch.no_grad():
        return torch.equal(model.eval()(x), reference(x))


# --- state_dicts that load ------------------------------------------------------------

def test_safetensors_and_pt_give_the_source_outputs(source, x, tmp_path):
    save_file(source.state_dict(), tmp_path / "w.safetensors")
    torch.save(source.state_dict(), tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        model = load_checkpoint(tmp_path / name, "resnet18", 3, ["a", "b", "c"])
        assert same_outputs(model, source, x), name


def test_wrapped_and_prefixed_state_dicts_load(source, x, tmp_path):
    prefixed = {f"module.{k}": v for k, v in source.state_dict().items() if "num_batches" not in k}
    torch.save({"epoch": 7, "state_dict": prefixed, "best": 0.5}, tmp_path / "w.pth")
    model = load_checkpoint(tmp_path / "w.pth", "torchvision/resnet18", 3)
    assert same_outputs(model, source, x)


def test_timm_architecture_loads(tmp_path):
    import timm

    torch.manual_seed(2)
    net = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=2).eval()
    save_file(net.state_dict(), tmp_path / "lite.safetensors")
    model = load_checkpoint(tmp_path / "lite.safetensors", "timm/efficientnet_lite0", 2)
    assert same_outputs(model, net, torch.randn(1, 3, 64, 64))


# --- state_dicts that do not fit ------------------------------------------------------

def test_shape_mismatch_names_the_key_and_both_shapes(source, tmp_path):
    save_file(source.state_dict(), tmp_path / "w.safetensors")
    with pytest.raises(ModelError, match=r"fc\.weight has shape \(3, 512\) in the file but \(4, 512\)"):
        load_checkpoint(tmp_path / "w.safetensors", "resnet18", 4)


def test_missing_and_unexpected_keys_are_named(source, tmp_path):
    state = dict(source.state_dict())
    del state["layer2.0.conv1.weight"]
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(ModelError, match=r"missing key layer2\.0\.conv1\.weight"):
        load_checkpoint(tmp_path / "missing.pt", "resnet18", 3)
    torch.save({**source.state_dict(), "head.extra": torch.zeros(1)}, tmp_path / "extra.pt")
    with pytest.raises(ModelError, match=r"unexpected key head\.extra"):
        load_checkpoint(tmp_path / "extra.pt", "resnet18", 3)


@pytest.mark.parametrize("content, suffix, message", [
    (None, ".pt", "does not exist"),
    (b"weights", ".onnx", "must be a .safetensors"),
    (b"\x00" * 4, ".safetensors", "not a readable safetensors"),
    (b"", ".pt", "not a readable PyTorch checkpoint"),
])
def test_unreadable_files_say_why(tmp_path, content, suffix, message):
    path = tmp_path / f"w{suffix}"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        read_state_dict(path)


def test_a_checkpoint_without_tensors_is_refused(tmp_path):
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pt")
    with pytest.raises(ModelError, match=r"holds no state_dict of tensors \(found \['epoch', 'lr'\]\)"):
        read_state_dict(tmp_path / "meta.pt")


def test_unknown_architecture_and_bad_class_count(source, tmp_path):
    torch.save(source.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ModelError, match="Unknown architecture 'resnet9000'"):
        load_checkpoint(tmp_path / "w.pt", "resnet9000", 3)
    with pytest.raises(ModelError, match="num_classes must be a positive whole number"):
        load_checkpoint(tmp_path / "w.pt", "resnet18", 0)


# --- checkpoints that would run code --------------------------------------------------

class _WritesAFile:
    """Unpickling this calls open(marker, "w"): the file appearing means code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_a_checkpoint_that_would_create_a_file_is_refused(tmp_path, zip_format):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(2, 2), "payload": _WritesAFile(str(marker))}, path,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UnsafeCheckpointError, match="would run code stored in the file") as error:
        load_checkpoint(path, "resnet18", 2)
    assert "model.state_dict()" in str(error.value)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: plain unpickling does write the file
    assert marker.exists()


def test_a_pickled_whole_model_is_refused(source, tmp_path):
    torch.save(source, tmp_path / "whole.pt")
    with pytest.raises(UnsafeCheckpointError, match=r"pickled Python object \(torchvision\.models\.resnet\.ResNet\)"):
        load_checkpoint(tmp_path / "whole.pt", "resnet18", 3)


def test_torchscript_is_refused_before_anything_is_unpickled(tmp_path, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated; still what users have
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(tmp_path / "scripted.pt"))

    def never(*args, **kwargs):
        raise AssertionError("torch.load must not be reached for a TorchScript archive")

    monkeypatch.setattr(torch, "load", never)
    monkeypatch.setattr(pickle, "load", never)
    with pytest.raises(UnsafeCheckpointError, match="scripted.pt is a TorchScript archive: loading it would run code"):
        load_checkpoint(tmp_path / "scripted.pt", "resnet18", 2)


# --- labels ---------------------------------------------------------------------------

def test_labels_from_text_json_and_lists(tmp_path):
    (tmp_path / "l.txt").write_text("cat\n dog \n\nbird\n")
    (tmp_path / "l.json").write_text(json.dumps(["cat", "dog", "bird"]))
    (tmp_path / "d.json").write_text(json.dumps({"2": "bird", "0": "cat", "1": "dog"}))
    for labels in (tmp_path / "l.txt", str(tmp_path / "l.json"), tmp_path / "d.json", ["cat", "dog", "bird"]):
        assert read_labels(labels, 3) == ["cat", "dog", "bird"]
    with pytest.raises(ModelError, match="l.txt lists 3 class names but the model has 4 classes"):
        read_labels(tmp_path / "l.txt", 4)
    (tmp_path / "bad.json").write_text('{"a": 1')
    with pytest.raises(ModelError, match="must hold a JSON list"):
        read_labels(tmp_path / "bad.json", 3)


# --- the manifest ---------------------------------------------------------------------

@pytest.fixture
def registry(monkeypatch):
    """A fresh, empty registry so that manifest tests register nothing globally."""
    fresh: Registry = Registry("model")
    monkeypatch.setattr(models, "MODELS", fresh)
    return fresh


@pytest.fixture
def deployment(tmp_path):
    """The example manifest, copied with a 2-class resnet18's weights as chest.safetensors."""
    import torchvision

    shutil.copytree(EXAMPLE, tmp_path / "models")
    torch.manual_seed(3)
    net = torchvision.models.resnet18(num_classes=2).eval()
    save_file(net.state_dict(), tmp_path / "models" / "chest.safetensors")
    return tmp_path / "models", net


def test_manifest_model_loads_through_the_registry(registry, deployment, x):
    folder, net = deployment
    reading = register_manifest(folder)
    assert [s.name for s in reading.specs] == ["chest_xray_resnet18"] and "chest_xray_resnet18" in registry
    assert reading.problems == []
    model = load_model("chest_xray_resnet18", device="cpu")
    assert model.spec.source == "user" and model.target_layer == "layer4"
    assert model.categories == ["normal", "pneumonia"]
    assert model.preprocessing.as_dict()["mean"] == [0.5, 0.5, 0.5]
    assert model.preprocessing.interpolation == "bilinear"
    assert model.weights_sha256 == sha256_of_file(str(folder / "chest.safetensors"))
    assert same_outputs(model.module, net, x)
    again = register_manifest(folder)
    assert again.specs == [] and "already registered" in again.problems[0]


def test_models_dir_env_registers_the_deployment(registry, deployment, monkeypatch):
    folder, _ = deployment
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(folder))
    models._register_defaults()
    assert list(registry)[0] == "efficientnet_lite0" and list(registry)[-1] == "chest_xray_resnet18"


def test_a_broken_models_dir_is_reported_not_fatal(registry, tmp_path, monkeypatch):
    errors: list[str] = []
    monkeypatch.setattr(models, "MANIFEST_ERRORS", errors)
    monkeypatch.setenv(models.MODELS_DIR_ENV, str(tmp_path))
    with pytest.warns(UserWarning, match="models.toml cannot be read"):
        models._register_defaults()
    assert len(errors) == 1 and str(tmp_path) in errors[0]
    assert "resnet50" in registry


def _edit(folder: Path, old: str, new: str) -> None:
    path = folder / "models.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("old, new, message", [
    ('weights = "chest.safetensors"', 'weights = "gone.safetensors"',
     "'chest_xray_resnet18': the weights file .*gone"),
    ('architecture = "resnet18"', 'architecture = "resnet9000"',
     "'chest_xray_resnet18': the field 'architecture': Unknown architecture 'resnet9000'"),
    ('interpolation = "bilinear"', 'interpolation = "lanczos"', "'chest_xray_resnet18': 'preprocessing.interpolation'"),
    ("mean = [0.5, 0.5, 0.5]", "mean = [0.5, 0.5]", "'chest_xray_resnet18': 'preprocessing.mean' must be three"),
    ("num_classes = 2", "num_classes = 3", "chest_labels.txt lists 2 class names but the model has 3"),
    ("num_classes = 2", "num_clases = 2", "'chest_xray_resnet18': unknown field 'num_clases'"),
    ('name = "chest_xray_resnet18"', "", "Model #1: the field 'name' is missing"),
    ('name = "chest_xray_resnet18"', "name = 5", "the field 'name' must be a non-empty string"),
    ("[[model]]", "[[model]", "is not valid TOML"),
])
def test_bad_manifest_entries_name_the_model_and_field(registry, deployment, old, new, message):
    folder, _ = deployment
    _edit(folder, old, new)
    with pytest.raises(ModelError, match=message):
        read_manifest(folder)
    try:
        problems = register_manifest(folder).problems
    except ModelError as exc:  # the manifest itself is unusable
        problems = [str(exc)]
    assert len(registry) == 0 and len(problems) == 1


def test_two_models_with_one_name_are_refused(registry, deployment):
    folder, _ = deployment
    text = (folder / "models.toml").read_text()
    (folder / "models.toml").write_text(text + "\n" + text[text.index("[[model]]"):])
    with pytest.raises(ModelError, match="model #2 is named 'chest_xray_resnet18' like an earlier entry"):
        read_manifest(folder)
    reading = register_manifest(folder)  # the first stands
    assert list(registry) == ["chest_xray_resnet18"] and len(reading.problems) == 1


def test_a_target_layer_that_does_not_exist_fails_at_load(registry, deployment):
    folder, _ = deployment
    _edit(folder, 'target_layer = "layer4"', 'target_layer = "layer9"')
    register_manifest(folder)
    with pytest.raises(ModelError, match="target_layer 'layer9' is not a module of resnet18"):
        load_model("chest_xray_resnet18", device="cpu")


def test_num_classes_defaults_to_the_label_count(deployment):
    folder, _ = deployment
    _edit(folder, "num_classes = 2\n", "")
    (spec,) = read_manifest(folder)
    assert spec.categories() == ["normal", "pneumonia"]
