"""A deployment's manifest cannot reach outside its folder, its numbers are checked, each entry stands
alone; weights with NaN are refused and weights cast on load are reported."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import explainers.models as models
from explainers.errors import ModelError, OutOfMemory
from explainers.models import load_model
from explainers.models.contained import ALLOWED_DIRS_ENV
from explainers.models.manifest import read_manifest, read_manifest_entries, register_manifest
from explainers.models.spec import Preprocessing
from explainers.models.user import load_checkpoint, read_labels, user_model_spec
from explainers.models.weights_check import WeightsWarning
from explainers.registry import Registry

ROOT = Path(__file__).resolve().parent.parent


def entry(name: str, weights: str = "w.safetensors", labels: str = "labels.txt", extra: str = "") -> str:
    return (f'[[model]]\nname = "{name}"\narchitecture = "resnet18"\nweights = "{weights}"\n'
            f'labels = "{labels}"\n{extra}\n')


@pytest.fixture
def folder(tmp_path) -> Path:
    """A models folder with a placeholder weights file (not loaded here) and two labels."""
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / "w.safetensors").write_bytes(b"not loaded by these tests")
    (models_dir / "labels.txt").write_text("normal\npneumonia\n")
    return models_dir


@pytest.fixture
def registry(monkeypatch):
    fresh: Registry = Registry("model")
    monkeypatch.setattr(models, "MODELS", fresh)
    return fresh


def only_problem(folder: Path, text: str) -> str:
    (folder / "models.toml").write_text(text)
    reading = read_manifest_entries(folder)
    assert reading.specs == [] and len(reading.problems) == 1, reading.problems
    return reading.problems[0]


# --- paths stay inside the models folder ----------------------------------------------------

@pytest.mark.parametrize("labels", ["/proc/self/environ", "../../../../../../etc/passwd", "../outside.txt"])
def test_labels_outside_the_folder_are_refused(folder, labels):
    (folder.parent / "outside.txt").write_text("a\nb\n")
    problem = only_problem(folder, entry("m", labels=labels))
    assert f"'m': the labels file {labels!r} is outside the models folder" in problem
    assert ALLOWED_DIRS_ENV in problem


def test_weights_by_absolute_path_or_symlink_out_are_refused(folder, tmp_path):
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir()
    (elsewhere / "big.safetensors").write_bytes(b"x")
    (folder / "link.safetensors").symlink_to(elsewhere / "big.safetensors")
    absolute = str(elsewhere / "big.safetensors")
    assert "outside the models folder" in only_problem(folder, entry("m", weights=absolute))
    assert "outside the models folder" in only_problem(folder, entry("m", weights="link.safetensors"))


def test_the_allow_list_lets_a_shared_folder_in(folder, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "big.safetensors").write_bytes(b"x")
    (folder / "link.safetensors").symlink_to(shared / "big.safetensors")
    (folder / "models.toml").write_text(entry("a", weights=str(shared / "big.safetensors"))
                                        + entry("b", weights="link.safetensors"))
    monkeypatch.setenv(ALLOWED_DIRS_ENV, os.pathsep.join(["/nonexistent", str(shared)]))
    specs = read_manifest(folder)
    assert [s.weights_file for s in specs] == [str((shared / "big.safetensors").resolve())] * 2


def test_a_symlink_inside_the_folder_is_fine(folder):
    (folder / "sub").mkdir()
    (folder / "sub" / "real.txt").write_text("x\ny\n")
    (folder / "alias.txt").symlink_to(folder / "sub" / "real.txt")
    (folder / "models.toml").write_text(entry("m", labels="alias.txt"))
    assert read_manifest(folder)[0].categories() == ["x", "y"]


# --- numbers are validated ------------------------------------------------------------------

@pytest.mark.parametrize("table, message", [
    ("mean = [0.5, nan, 0.5]", "'preprocessing.mean' must be finite numbers"),
    ("std = [inf, 0.2, 0.2]", "'preprocessing.std' must be finite numbers"),
    ("input_size = [100000, 100000]", "'preprocessing.input_size' must be [height, width] in pixels, each from 16 to 4096"),
    ("input_size = [8, 224]", "each from 16 to 4096"),
    ("input_size = [true, 224]", "each from 16 to 4096"),
])
def test_bad_preprocessing_numbers_are_refused(folder, table, message):
    problem = only_problem(folder, entry("m", extra=f"[model.preprocessing]\n{table}\n"))
    assert message in problem and "Model 'm'" in problem


def test_num_classes_must_match_the_labels(folder):
    problem = only_problem(folder, entry("m", extra="num_classes = 3"))
    assert "labels.txt lists 2 class names but the model has 3 classes" in problem


def test_json_labels_with_gaps_or_clashing_keys_are_refused(tmp_path):
    (tmp_path / "gap.json").write_text(json.dumps({"0": "cat", "2": "dog"}))  # renumbered silently before
    with pytest.raises(ModelError, match="gap.json has no name for class 1: indices must run from 0 to 1"):
        read_labels(tmp_path / "gap.json")
    (tmp_path / "twice.json").write_text('{"1": "cat", "01": "dog", "0": "bird"}')
    with pytest.raises(ModelError, match="gives class 1 twice"):
        read_labels(tmp_path / "twice.json")
    (tmp_path / "word.json").write_text(json.dumps({"zero": "cat"}))
    with pytest.raises(ModelError, match="the key 'zero' is not a class index"):
        read_labels(tmp_path / "word.json")
    (tmp_path / "ok.json").write_text(json.dumps({"1": "dog", "0": "cat"}))
    assert read_labels(tmp_path / "ok.json") == ["cat", "dog"]


def test_duplicate_labels_are_refused(tmp_path):
    (tmp_path / "dup.txt").write_text("cat\ndog\ncat\n")
    with pytest.raises(ModelError, match="names class 0 and class 2 both 'cat'"):
        read_labels(tmp_path / "dup.txt")
    with pytest.raises(ModelError, match="names class 1 and class 2 both 'b'"):
        read_labels(["a", "b", "b"])


def test_out_of_memory_while_preparing_the_input_is_a_sentence(monkeypatch):
    prep = Preprocessing(input_size=(100000, 100000))

    def no_memory(self, image):  # what Pillow raises for a 100000 x 100000 resize, without allocating it
        raise MemoryError

    monkeypatch.setattr(Preprocessing, "resize", no_memory)
    with pytest.raises(OutOfMemory, match="ran out of memory preparing the model's 100000 x 100000 input"):
        prep.to_tensor(Image.new("RGB", (8, 8)))


# --- each entry stands alone ----------------------------------------------------------------

def test_one_broken_entry_does_not_hide_the_others(folder, registry, monkeypatch):
    (folder / "models.toml").write_text(entry("first") + entry("broken", weights="gone.safetensors")
                                        + entry("third"))
    reading = register_manifest(folder)
    assert list(registry) == ["first", "third"]
    assert len(reading.problems) == 1 and "Model 'broken': the weights file" in reading.problems[0]
    assert "gone.safetensors does not exist" in reading.problems[0]
    monkeypatch.setattr(models, "MANIFEST_ERRORS", reading.problems)
    with pytest.raises(ModelError, match="Model 'broken' is not available: .*gone.safetensors does not exist"):
        load_model("broken")


def run_models(models_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, models.MODELS_DIR_ENV: str(models_dir), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "explainers", "models"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_lists_valid_entries_and_each_broken_one(folder):
    (folder / "models.toml").write_text(entry("first") + entry("broken", labels="/proc/self/environ")
                                        + entry("third", extra="[model.preprocessing]\nmean = [nan, 0, 0]"))
    done = run_models(folder)
    assert done.returncode == 2, done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines()[1:]]
    assert "first" in listed and "efficientnet_lite0" in listed and "broken" not in listed and "third" not in listed
    errors = done.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in done.stderr
    assert "Model 'broken': the labels file '/proc/self/environ' is outside" in errors[0]
    assert "Model 'third': 'preprocessing.mean' must be finite" in errors[1]


def test_a_manifest_that_is_not_utf8_does_not_break_the_import(folder):
    (folder / "models.toml").write_bytes(entry("caf\xe9").encode("latin-1"))  # é as one Latin-1 byte
    done = run_models(folder)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1 and "is not UTF-8 text" in done.stderr
    assert "efficientnet_lite0" in done.stdout  # the other models are still listed


# --- weights that are not what they seem ----------------------------------------------------

@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.squeezenet1_1(num_classes=2).state_dict()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_or_infinite_weights_are_refused(tiny_state, tmp_path, bad):
    state = dict(tiny_state)
    state["classifier.1.weight"] = state["classifier.1.weight"].clone()
    state["classifier.1.weight"][0, 0] = bad
    save_file(state, tmp_path / "w.safetensors")
    with pytest.raises(ModelError, match="w.safetensors has NaN or infinite values in classifier.1.weight"):
        load_checkpoint(tmp_path / "w.safetensors", "squeezenet1_1", 2)


def test_fp16_and_int8_weights_are_reported_when_cast(tiny_state, tmp_path, registry):
    half = {k: v.half() if v.is_floating_point() else v for k, v in tiny_state.items()}
    save_file(half, tmp_path / "half.safetensors")
    with pytest.warns(WeightsWarning, match=r"half.safetensors stores 52 tensor\(s\) as float16 .* cast to float32"):
        load_checkpoint(tmp_path / "half.safetensors", "squeezenet1_1", 2)
    quantized = dict(tiny_state, **{"classifier.1.weight": tiny_state["classifier.1.weight"].to(torch.int8)})
    save_file(quantized, tmp_path / "int8.safetensors")
    spec = user_model_spec("int8_model", tmp_path / "int8.safetensors", "squeezenet1_1", 2, ["a", "b"],
                           target_layer="features")
    models.register_model(spec)
    model = load_model("int8_model", device="cpu")
    assert len(model.weights_notes) == 1
    assert "int8.safetensors stores 1 tensor(s) as int8 (e.g. classifier.1.weight)" in model.weights_notes[0]
    assert "without any quantization scale" in model.weights_notes[0]
    save_file(tiny_state, tmp_path / "plain.safetensors")
    models.register_model(user_model_spec("plain", tmp_path / "plain.safetensors", "squeezenet1_1", 2, ["a", "b"],
                                          target_layer="features"))
    assert load_model("plain", device="cpu").weights_notes == []


def test_sidebar_lists_broken_entries_and_weights_notes(tiny_state, folder, registry, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    import ui.widgets
    from explainers.models.embedded import spec as embedded_spec
    from tests.test_app import APP
    from ui import loaders, state

    quantized = dict(tiny_state, **{"classifier.1.weight": tiny_state["classifier.1.weight"].to(torch.int8)})
    save_file(quantized, folder / "w.safetensors")
    (folder / "models.toml").write_text(
        entry("int8_model", extra='architecture = "squeezenet1_1"\ntarget_layer = "features"').replace(
            'architecture = "resnet18"\n', "") + entry("broken", weights="../../elsewhere.pt"))
    models.register_model(embedded_spec())
    problems = register_manifest(folder).problems
    monkeypatch.setattr(ui.widgets, "MANIFEST_ERRORS", problems)
    loaders.model_specs.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=120)
        at.session_state[state.METHODS] = ["gradcam"]
        at.session_state[state.MODEL] = "int8_model"
        at.run()
        warnings_shown = [w.value for w in at.sidebar.warning]
        assert not at.exception
        assert any("Model 'broken': the weights file '../../elsewhere.pt' is outside" in w for w in warnings_shown)
        assert any("stores 1 tensor(s) as int8 (e.g. classifier.1.weight)" in w for w in warnings_shown)
        assert at.selectbox(key=state.MODEL).options[-1].startswith("int8_model")
    finally:
        loaders.model_specs.clear()
        loaders.get_model.clear()
