"""The command line, in-process through main() and once as ``python -m explainers``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explainers.cli import main
from explainers.render import overlay

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cat_png(tmp_path_factory, cat_image) -> Path:
    path = tmp_path_factory.mktemp("img") / "cat.png"
    cat_image.save(path)
    return path


@pytest.fixture(scope="module")
def default_run(tmp_path_factory, cat_png):
    out = tmp_path_factory.mktemp("out")
    code = main(["explain", str(cat_png), "--out", str(out), "--device", "cpu"])
    return code, out, json.loads((out / "summary.json").read_text())


def test_default_run_writes_one_gradcam_of_the_top_class(default_run, cat_image, lite0):
    code, out, summary = default_run
    assert code == 0
    (entry,) = summary["outputs"]
    top = summary["predictions"][0]
    assert entry["method"] == "gradcam" and entry["class_index"] == top["index"]
    assert entry["class_name"] == lite0.categories[top["index"]]
    assert entry["layer"] == lite0.target_layer
    assert entry["shape"] == [cat_image.height, cat_image.width] == [300, 451]
    array = np.load(out / entry["map"])
    assert array.dtype == np.float32 and array.shape == (300, 451)
    assert array.min() >= 0.0 and array.max() == pytest.approx(1.0, abs=1e-4)
    png = Image.open(out / entry["overlay"])
    assert png.size == cat_image.size and png.mode == "RGB"
    # the PNG is exactly the default rendering of the saved map
    np.testing.assert_array_equal(np.asarray(png), overlay(cat_image, array, 0.5, "jet"))


def test_default_map_is_the_engines_map(default_run, cat_image, lite0):
    from explainers.pipeline import explain

    _, out, summary = default_run
    expected = explain(lite0, cat_image).results[0]
    np.testing.assert_allclose(np.load(out / summary["outputs"][0]["map"]), expected.map, atol=1e-5)


def test_summary_predictions_settings_versions(default_run, lite0):
    _, _, summary = default_run
    predictions = summary["predictions"]
    assert len(predictions) == 5
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-6
    assert {p["name"] for p in predictions[:3]} & {"tabby", "tiger cat", "Egyptian cat"}
    settings = summary["settings"]
    assert settings["model"] == "efficientnet_lite0" and settings["device"] == "cpu"
    assert settings["layers"] == [lite0.target_layer] and settings["methods"] == ["gradcam"]
    assert settings["preprocessing"] == json.loads(json.dumps(lite0.preprocessing.as_dict()))
    assert settings["weights_sha256"] == lite0.weights_sha256 and len(settings["weights_sha256"]) == 64
    versions = summary["versions"]
    for name in ("torch", "torchvision", "timm", "grad-cam", "numpy", "pillow", "python"):
        assert versions[name], name
    assert summary["timings"]["total"] >= summary["timings"]["explain"] > 0
    assert summary["image"]["width"] == 451 and len(summary["image"]["sha256"]) == 64


def test_several_methods_top_k_and_contrast(tmp_path, cat_png):
    code = main(["explain", str(cat_png), "--method", "gradcam", "gradcam++", "--top-k", "2",
                 "--contrast", "281", "285", "--out", str(tmp_path), "--colormap", "viridis", "--opacity", "1"])
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    top2 = [p["index"] for p in summary["predictions"][:2]]
    outputs = summary["outputs"]
    assert {o["method"] for o in outputs} == {"gradcam", "gradcam++"}
    assert len(outputs) == 2 * 3  # two methods x (two classes + one contrast)
    plain = [o for o in outputs if o["contrast_index"] is None]
    assert sorted({o["class_index"] for o in plain}) == sorted(top2)
    contrast = [o for o in outputs if o["contrast_index"] is not None]
    assert {(o["class_index"], o["contrast_index"]) for o in contrast} == {(281, 285)}
    files = {o["map"] for o in outputs} | {o["overlay"] for o in outputs}
    assert len(files) == 12 and all((tmp_path / f).is_file() for f in files)
    # opacity 1: the overlay is the viridis heatmap itself
    o = outputs[0]
    from explainers.render import colorize

    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / o["overlay"])),
                                  colorize(np.load(tmp_path / o["map"]), "viridis"))


def test_explicit_classes_and_two_layers(tmp_path, cat_png, lite0):
    from explainers.layers import list_layers

    spatial = [i.name for i in list_layers(lite0) if i.spatial and i.name.startswith("blocks.")]
    other = spatial[-5]
    code = main(["explain", str(cat_png), "--class", "281", "--class", "7", "--layer", lite0.target_layer, other,
                 "--out", str(tmp_path)])
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    keys = {(o["class_index"], o["layer"]) for o in summary["outputs"]}
    assert keys == {(c, layer) for c in (281, 7) for layer in (lite0.target_layer, other)}
    assert summary["settings"]["layers"] == [lite0.target_layer, other]
    assert all(o["shape"] == [300, 451] for o in summary["outputs"])


def _bad_cases(tmp_path: Path, cat_png: Path) -> dict[str, list[str]]:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    img = str(cat_png)
    return {
        "unknown model": ["explain", img, "--model", "no_such_model"],
        "unknown layer": ["explain", img, "--layer", "no.such.layer"],
        "unknown method": ["explain", img, "--method", "magiccam"],
        "class too big": ["explain", img, "--class", "1000"],
        "class negative": ["explain", img, "--class", "-1"],
        "class not a number": ["explain", img, "--class", "cat"],
        "missing file": ["explain", str(tmp_path / "missing.jpg")],
        "not an image": ["explain", str(text)],
        "opacity": ["explain", img, "--opacity", "2"],
        "colormap": ["explain", img, "--colormap", "rainbowz"],
        "class and top-k": ["explain", img, "--class", "1", "--top-k", "2"],
        "top-k zero": ["explain", img, "--top-k", "0"],
        "unknown option": ["explain", img, "--bogus"],
        "no command": [],
        "unknown command": ["frobnicate"],
        "layers of unknown model": ["layers", "--model", "nope"],
    }


CASES = ["unknown model", "unknown layer", "unknown method", "class too big", "class negative",
         "class not a number", "missing file", "not an image", "opacity", "colormap", "class and top-k",
         "top-k zero", "unknown option", "no command", "unknown command", "layers of unknown model"]


@pytest.mark.parametrize("case", CASES)
def test_bad_arguments_exit_2_with_one_line(case, tmp_path, cat_png, capsys):
    argv = _bad_cases(tmp_path, cat_png)[case]
    if argv[:1] == ["explain"]:
        argv = argv + ["--out", str(tmp_path / "out")]
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("camscope: error: ") and "Traceback" not in captured.err
    assert not (tmp_path / "out").exists()


def test_error_messages_say_what_is_wrong(tmp_path, cat_png, capsys):
    cases = _bad_cases(tmp_path, cat_png)
    expectations = {"class too big": "out of range", "missing file": "no file", "not an image": "not an image",
                    "unknown method": "magiccam", "unknown layer": "no.such.layer", "colormap": "rainbowz",
                    "unknown model": "no_such_model"}
    for case, fragment in expectations.items():
        assert main(cases[case]) == 2
        assert fragment.lower() in capsys.readouterr().err.lower(), case


def test_listings(capsys, lite0):
    from explainers.methods.catalog import METHODS

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert all(key in out for key in METHODS) and "Grad-CAM++" in out
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "efficientnet_lite0" in out and "resnet50" in out
    assert main(["layers"]) == 0
    out = capsys.readouterr().out
    assert f"* {lite0.target_layer} " in out
    assert "1x1280x7x7" in out or "x7x7" in out


def test_help_exits_zero(capsys):
    assert main(["explain", "--help"]) == 0
    assert "--top-k" in capsys.readouterr().out


def _env() -> dict[str, str]:
    env = dict(os.environ, CAMSCOPE_DEVICE="cpu")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_python_dash_m_explain(tmp_path, cat_png):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "explainers", "explain", str(cat_png), "--out", str(out)],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["outputs"]) == 1 and (out / summary["outputs"][0]["overlay"]).is_file()


def test_python_dash_m_bad_argument(tmp_path):
    done = subprocess.run([sys.executable, "-m", "explainers", "explain", str(tmp_path / "missing.png")],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"camscope: error: There is no file at '{tmp_path / 'missing.png'}'."]


# --- output paths are checked before anything is computed ------------------------------------

def _out_cases(tmp_path: Path, img: str) -> dict[str, list[str]]:
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me")
    (tmp_path / "set" / "cat").mkdir(parents=True)
    return {
        "explain under /proc": (["explain", img, "--out", "/proc/camscope-out"], "no file can be created in /proc"),
        "explain to a file": (["explain", img, "--out", str(existing)], "is an existing file; give a folder"),
        "explain below a file": (["explain", img, "--out", str(existing / "sub")], "existing.txt is a file"),
        "report over /proc": (["report", img, "--out", "/proc/self/environ"], "no file can be created in /proc/self"),
        "report to a folder": (["report", img, "--out", str(tmp_path)], "is a folder; give a file name"),
        "dataset under /proc": (["dataset", str(tmp_path / "set"), "--out", "/proc/x"], "no file can be created"),
        "dataset to a file": (["dataset", str(tmp_path / "set"), "--out", str(existing)], "is an existing file"),
        "evaluate to a file": (["evaluate", str(tmp_path), "--boxes", "b.json", "--out", str(existing)],
                               "is an existing file"),
    }


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("case", ["explain under /proc", "explain to a file", "explain below a file",
                                  "report over /proc", "report to a folder", "dataset under /proc",
                                  "dataset to a file", "evaluate to a file"])
def test_bad_out_is_one_line_before_any_work(case, tmp_path, cat_png, capsys, monkeypatch):
    import explainers.models

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(explainers.models, "load_model", never)
    argv, fragment = _out_cases(tmp_path, str(cat_png))[case]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Errno" not in err, err
    assert err.startswith(f"camscope: error: --out ") and fragment in err, err
    assert (tmp_path / "existing.txt").read_text() == "keep me"


def test_report_replaces_its_file_whole(tmp_path, cat_png, capsys):
    out = tmp_path / "deep" / "report.html"
    assert main(["report", str(cat_png), "--out", str(out), "--device", "cpu"]) == 0
    first = out.read_bytes()
    assert first.startswith(b"<!DOCTYPE html>") or first.lstrip().lower().startswith(b"<!doctype html")
    assert main(["report", str(cat_png), "--out", str(out), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # no partial file left
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)  # the umask applies, not a temp file's 0600


def test_terminal_escapes_are_printed_escaped(tmp_path, capsys):
    folder = tmp_path / "set" / "\x1b]0;pwned\x07\x1b[31mred"
    folder.mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(folder / "a.png")
    code = main(["dataset", str(tmp_path / "set"), "--out", str(tmp_path / "out"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "\x1b" not in err and "\x07" not in err, repr(err)
    assert "\\x1b]0;pwned\\x07\\x1b[31mred" in err
