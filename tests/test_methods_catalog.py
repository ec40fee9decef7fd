"""The method families (the app's picker), the CLI's method options, the app's toggles and the baselines
as references on the Evaluate page and in the report."""
import json

import numpy as np
import pytest

from explainers.cli import main
from explainers.pipeline import explain
from explainers.methods import extra_methods
from explainers.methods.catalog import FAMILIES, METHODS, family_of, grouped_methods, picker_options
from explainers.methods.options import MethodOptions, NoiseTunnel

NEW = {"cam", "refinecam", "occlusion", "sscam", "iscam", "smoothgradcam++", "integrated_gradients", "randomcam",
       "sobelcam"}


def test_every_method_has_a_family_and_the_picker_shows_it_with_the_cost_first():
    assert NEW <= set(METHODS)
    assert all(family_of(spec) in FAMILIES for _, spec in METHODS.items())
    groups = grouped_methods()
    assert [f for f, _ in groups] == [f for f in FAMILIES if f in {f for f, _ in groups}]  # in FAMILIES order
    assert {s.key for s in dict(groups)["perturbation"]} == {"scorecam", "ablationcam", "occlusion", "sscam", "iscam"}
    assert {s.key for s in dict(groups)["baselines"]} == {"randomcam", "sobelcam"}
    labels = picker_options(slow=False, layers=1)
    assert labels["gradcam"].startswith("One-pass CAMs · Grad-CAM — one pass")
    assert "refinecam" not in labels and "refinecam" in picker_options(layers=2)  # needs two layers
    keys = list(labels)  # grouped: every family's keys are contiguous
    families = [family_of(METHODS.get(k)) for k in keys]
    assert families == sorted(families, key=FAMILIES.index)


def test_every_extra_method_has_a_runner():
    extra = {key for key, spec in METHODS.items() if spec.kind == "extra"}
    assert extra == NEW == set(extra_methods._RUNNERS)


@pytest.fixture(scope="module")
def cat_file(tmp_path_factory, cat_image):
    path = tmp_path_factory.mktemp("img") / "cat.png"
    cat_image.save(path)
    return path


def test_cli_eigen_smooth_writes_the_engines_eigen_smoothed_map(cat_file, tmp_path, lite0, cat_image):
    assert main(["explain", str(cat_file), "--method", "gradcam", "--class", "281", "--eigen-smooth",
                 "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["method_options"]["eigen_smooth"] is True
    assert summary["outputs"][0]["method_name"] == "Grad-CAM (eigen-smooth)"
    expected = explain(lite0, cat_image, ["gradcam"], classes=[281], options=MethodOptions(eigen_smooth=True))
    plain = explain(lite0, cat_image, ["gradcam"], classes=[281])
    written = np.load(tmp_path / summary["outputs"][0]["map"])
    assert np.allclose(written, expected.results[0].map, atol=1e-5)
    assert not np.allclose(written, plain.results[0].map, atol=1e-2)  # the option changed the map


def test_cli_refuses_aug_smooth_with_a_noise_tunnel_in_one_line(cat_file, tmp_path, capsys):
    assert main(["explain", str(cat_file), "--aug-smooth", "--noise-tunnel", "vargrad", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "either aug-smooth or a noise tunnel" in err


def test_the_report_captions_baselines_as_references(lite0, cat_image):
    from explainers.report import build_report
    ex = explain(lite0, cat_image, ["gradcam", "randomcam", "sobelcam"])
    html = build_report(lite0, cat_image, ex.results, ex.predictions).html
    assert "RandomCAM (baseline: a reference to beat)" in html and "SobelCAM (baseline: a reference to beat)" in html
    assert "Grad-CAM (baseline" not in html


def test_the_app_toggles_aug_smooth_and_a_noise_tunnel_and_evaluate_adds_the_baselines(lite0):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from tests.test_app import APP, assert_clean, panel_captions
    from ui import state

    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state[state.METHODS] = ["gradcam"]
    at.run()
    assert panel_captions(at)[0].startswith("Grad-CAM · ")
    at.selectbox(key=state.NOISE_TUNNEL).set_value("smoothgrad").run()
    at.number_input(key=state.NT_SAMPLES).set_value(2).run()
    assert_clean(at)
    assert panel_captions(at)[0].startswith("Grad-CAM (smoothgrad x2) · ")
    at.selectbox(key=state.NOISE_TUNNEL).set_value("off").run()
    at.toggle(key=state.AUG_SMOOTH).set_value(True).run()
    assert_clean(at)
    assert panel_captions(at)[0].startswith("Grad-CAM (aug-smooth) · ")
    assert at.selectbox(key=state.NOISE_TUNNEL).disabled  # not both
    at.switch_page("pages/evaluate.py").run()
    assert at.button[0].label == "Run faithfulness (156 forward passes)"  # Grad-CAM, Grad-CAM++, random map
    at.toggle(key="evaluate_references").set_value(True).run()
    assert_clean(at)
    assert at.button[0].label == "Run faithfulness (260 forward passes)"  # + RandomCAM and SobelCAM: 5 x 52


def test_cli_noise_tunnel_reaches_integrated_gradients(cat_file, tmp_path, lite0, cat_image):
    assert main(["explain", str(cat_file), "--method", "integrated_gradients", "--class", "281", "--noise-tunnel",
                 "smoothgrad_sq", "--nt-samples", "1", "--nt-std", "0.2", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["outputs"][0]["method_name"] == "Integrated Gradients (smoothgrad_sq x1)"
    options = MethodOptions(noise_tunnel=NoiseTunnel("smoothgrad_sq", 1, 0.2))
    expected = explain(lite0, cat_image, ["integrated_gradients"], classes=[281], options=options)
    plain = explain(lite0, cat_image, ["integrated_gradients"], classes=[281])
    written = np.load(tmp_path / summary["outputs"][0]["map"])
    assert np.allclose(written, expected.results[0].map, atol=1e-5)
    assert not np.allclose(written, plain.results[0].map, atol=1e-2)  # the tunnel changed the map
