"""Hugging Face and timm model folders: offline loading, class names, preprocessing, remote code refused,
the CLI's --model PATH and manifest entries. Tiny models with random weights, nothing downloaded."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from explainers.cli import main
from explainers.errors import ModelError, UnsafeCheckpointError
from explainers.pipeline import explain, predict
from explainers.models import load_model
from explainers.models.manifest import read_manifest
from explainers.models.timm_folders import model_folder_spec
from tests.tiny_folders import SIZE, save_hf, save_timm


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("folders")
    out = {family: save_hf(root / family, family) for family in ("vit", "swin", "convnext", "deit")}
    out["timm_vit"], out["timm_vit_module"] = save_timm(root / "timm_vit")
    return out


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def photo(seed: int = 0, size=(SIZE, SIZE)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def test_hf_folder_loads_offline_with_its_names_preprocessing_and_logits(folders, offline):
    from transformers import AutoModelForImageClassification

    model = load_model(str(folders["vit"]), device="cpu")
    assert model.categories == ["cat", "dog", "fox"] and model.head == "softmax"
    pre = model.preprocessing
    assert pre.input_size == (SIZE, SIZE) and pre.mean == (0.5, 0.4, 0.3) and pre.std == (0.2, 0.25, 0.3)
    assert pre.interpolation == "bilinear"
    reference = AutoModelForImageClassification.from_pretrained(str(folders["vit"])).eval()
    x = pre.to_tensor(photo())
    with torch.no_grad():
        expected = reference(pixel_values=x).logits
    top = predict(model, photo(), k=3)
    assert [p.index for p in top] == torch.argsort(expected[0], descending=True).tolist()
    assert top[0].score == pytest.approx(float(expected[0].max()), abs=1e-5)
    assert sum(p.probability for p in top) == pytest.approx(1.0, abs=1e-5)  # softmax head


def test_folder_that_needs_remote_code_is_refused(folders, tmp_path):
    folder = tmp_path / "remote"
    folder.mkdir()
    config = json.loads((folders["vit"] / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageClassification": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((folders["vit"] / "model.safetensors").read_bytes())
    with pytest.raises(UnsafeCheckpointError, match="needs remote code.*never does"):
        load_model(str(folder), device="cpu")
    photo().save(tmp_path / "x.png")
    assert main(["explain", str(tmp_path / "x.png"), "--model", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("family, layer, grid, prefix, raw", [
    ("vit", "model.vit.layers.1.layernorm_before", (4, 4), 1, (4, 4)),
    ("deit", "model.deit.layers.1.layernorm_before", (4, 4), 2, (4, 4)),  # class + distillation tokens
    ("swin", "model.swin.layernorm", (8, 8), 0, (4, 4)),  # last stage: the grid halved once
    ("convnext", "model.convnext.encoder.stages.1", (8, 8), 0, (4, 4)),
    ("timm_vit", "blocks.1.norm1", (4, 4), 1, (4, 4)),
])
def test_layout_and_recommended_layer_found_per_family(folders, family, layer, grid, prefix, raw):
    model = load_model(str(folders[family]), device="cpu")
    assert model.target_layer == layer
    assert (model.extra["layout"].grid, model.extra["layout"].prefix_tokens) == (grid, prefix)
    result = explain(model, photo(1, (40, 30)), methods=["gradcam"]).results[0]
    assert result.raw.shape == raw and result.map.shape == (30, 40) and result.raw.max() > 0


def test_timm_folder_gives_the_timm_models_logits(folders):
    model = load_model(str(folders["timm_vit"]), device="cpu")
    assert model.preprocessing.input_size == (SIZE, SIZE) and model.preprocessing.mean == (0.5, 0.5, 0.5)
    x = model.preprocessing.to_tensor(photo(2))
    with torch.no_grad():
        expected = folders["timm_vit_module"](x)
    assert predict(model, photo(2), k=1)[0].score == pytest.approx(float(expected.max()), abs=1e-5)


def test_cli_explains_a_folder_without_a_manifest(folders, tmp_path, offline):
    photo(3).save(tmp_path / "in.png")
    out = tmp_path / "out"
    assert main(["explain", str(tmp_path / "in.png"), "--model", str(folders["swin"]), "--out", str(out)]) == 0
    vit_out = tmp_path / "vit"
    assert main(["explain", str(tmp_path / "in.png"), "--model", str(folders["vit"]), "--method", "attention_rollout",
                 "--rollout-fusion", "max", "--rollout-discard", "0.5", "--out", str(vit_out)]) == 0
    vit_summary = json.loads((vit_out / "summary.json").read_text())
    assert vit_summary["settings"]["method_options"]["attention_rollout"] == {"head_fusion": "max", "discard_ratio": 0.5}
    assert vit_summary["outputs"][0]["layer"] == "(attention, all blocks)"
    assert main(["explain", str(tmp_path / "in.png"), "--model", str(folders["vit"]), "--method", "attention_rollout",
                 "--rollout-discard", "1.5", "--out", str(vit_out)]) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["head"] == "softmax"
    assert summary["outputs"][0]["layer"] == "model.swin.layernorm"
    assert np.load(out / summary["outputs"][0]["map"]).shape == (SIZE, SIZE)


def test_manifest_lists_hf_and_timm_folders_without_label_files(folders, tmp_path, monkeypatch):
    (tmp_path / "models.toml").write_text(
        '[[model]]\nname = "vit_folder"\narchitecture = "huggingface"\n'
        f'weights = "{folders["vit"]}"\n'
        '[[model]]\nname = "timm_folder"\narchitecture = "timm"\n'
        f'weights = "{folders["timm_vit"]}"\nhead = "sigmoid"\n')
    with pytest.raises(ModelError, match="outside the models folder"):  # the folders live elsewhere
        read_manifest(tmp_path)
    monkeypatch.setenv("CAMSCOPE_WEIGHTS_DIRS", str(folders["vit"].parent))  # ... a folder the deployment allows
    hf, tm = read_manifest(tmp_path)
    assert hf.categories() == ["cat", "dog", "fox"] and hf.architecture == "huggingface/vit"
    assert tm.head == "sigmoid" and tm.architecture == "timm/vit_tiny_patch16_224"
    assert tm.preprocessing.input_size == (SIZE, SIZE)


@pytest.mark.parametrize("kind", ["timm", "hf"])
def test_a_folder_whose_weights_hold_nan_is_refused_with_a_sentence(kind, tmp_path, offline):
    from safetensors.torch import load_file, save_file

    folder = save_timm(tmp_path / "m")[0] if kind == "timm" else save_hf(tmp_path / "m", "vit")
    state = load_file(folder / "model.safetensors")
    name = next(k for k, v in state.items() if k.endswith("weight") and v.ndim == 2)
    state[name][0, 0] = float("nan")
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError, match=f"m/model.safetensors has NaN or infinite values in .*{name.split('.')[-2]}"):
        load_model(str(folder), device="cpu")


def test_not_a_model_folder_is_a_sentence(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        model_folder_spec(tmp_path)


def test_any_timm_architecture_gets_its_pretrained_cfg_and_a_layer_found_from_the_model(tmp_path):
    import timm
    from safetensors.torch import save_file

    from explainers.models import MODELS
    from explainers.models.manifest import register_manifest

    torch.manual_seed(0)
    module = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=2)
    save_file(module.state_dict(), str(tmp_path / "w.safetensors"))
    (tmp_path / "labels.txt").write_text("no\nyes\n")
    (tmp_path / "models.toml").write_text(
        '[[model]]\nname = "vit_sd"\narchitecture = "timm/vit_tiny_patch16_224"\nweights = "w.safetensors"\n'
        'labels = "labels.txt"\n')  # no target_layer, no preprocessing table
    spec = register_manifest(tmp_path).specs[0]
    try:
        assert spec.preprocessing.mean == (0.5, 0.5, 0.5) and spec.preprocessing.input_size == (224, 224)
        model = load_model("vit_sd", device="cpu")
        assert model.target_layer == "blocks.11.norm1"  # as pytorch-grad-cam recommends for ViTs
        result = explain(model, photo(4, (50, 40)), methods=["gradcam", "attention_rollout"]).results
        assert [r.raw.shape for r in result] == [(14, 14), (14, 14)]
    finally:
        MODELS.remove("vit_sd")


def test_timm_weights_in_the_hugging_face_cache_are_found_offline(folders, tmp_path, monkeypatch):
    import shutil

    snapshot = tmp_path / "hub" / "models--timm--vit_tiny_patch16_224" / "snapshots" / "0123abc"
    shutil.copytree(folders["timm_vit"], snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abc")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "models.toml").write_text(
        '[[model]]\nname = "cached"\narchitecture = "timm/vit_tiny_patch16_224"\nweights = "hf-cache"\n')
    spec = read_manifest(tmp_path)[0]
    assert spec.weights_file == str(snapshot / "model.safetensors") and spec.preprocessing.input_size == (SIZE, SIZE)
    (tmp_path / "models.toml").write_text(
        '[[model]]\nname = "absent"\narchitecture = "timm/vit_small_patch16_224"\nweights = "hf-cache"\n')
    with pytest.raises(ModelError, match="not in the Hugging Face cache"):
        read_manifest(tmp_path)


def test_cli_layers_lists_each_token_layers_grid_and_the_recommended_one(folders, capsys):
    assert main(["layers", "--model", str(folders["timm_vit"])]) == 0
    rows = {line[2:].split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}  # after "* " or "  "
    assert rows["blocks.1.norm1"].startswith("* ") and rows["blocks.1.norm1"].split()[-1] == "4x4"
    assert rows["blocks.0"].split()[-3:] == ["1x17x24", "yes", "4x4"]  # (B, 1 + 16 tokens, C) -> a 4 x 4 map
    assert rows["head"].split()[-1] == "-"
