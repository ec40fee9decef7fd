"""The app with Hugging Face and timm folders from a models manifest: listed in the picker, explained with
CAMs and attention methods, multi-label probabilities shown as independent labels, and compared beside a CNN."""
from __future__ import annotations

import pytest

pytest.importorskip("streamlit")

from explainers.models import MODELS, register_model  # noqa: E402
from explainers.models.manifest import read_manifest  # noqa: E402
from tests.test_app import assert_clean, new_app, panel_captions  # noqa: E402
from tests.tiny_folders import save_hf, save_timm  # noqa: E402
from ui import loaders, state  # noqa: E402


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    root = tmp_path_factory.mktemp("deployment")
    save_hf(root / "findings", "vit", problem_type="multi_label_classification")
    save_timm(root / "timm_vit")
    (root / "models.toml").write_text(
        '[[model]]\nname = "findings_vit"\narchitecture = "huggingface"\nweights = "findings"\n'
        'display_name = "Findings ViT"\n'
        '[[model]]\nname = "timm_vit"\narchitecture = "timm"\nweights = "timm_vit"\ndisplay_name = "timm ViT"\n')
    specs = read_manifest(root)
    for spec in specs:
        register_model(spec)
    loaders.model_specs.clear()
    yield [s.name for s in specs]
    for spec in specs:
        MODELS.remove(spec.name)
    loaders.model_specs.clear()
    loaders.get_model.clear()


def test_folders_are_listed_and_explained_with_cams_and_attention(deployment):
    at = new_app()
    at.session_state[state.METHODS] = ["gradcam", "attention_rollout", "legrad"]
    at.run()
    picker = at.selectbox(key=state.MODEL)
    assert {"Findings ViT · your model", "timm ViT · your model"} <= set(picker.options)
    picker.set_value("findings_vit").run()
    assert_clean(at)
    assert [c.split(" · ")[0] for c in panel_captions(at)] == ["Grad-CAM", "Attention Rollout", "LeGrad"]
    assert any("Independent labels" in c.value for c in at.caption)  # the class picker says what p means
    chart = at.get("plotly_chart")[0].proto.spec
    assert "independent labels" in chart


def test_compare_models_puts_a_cnn_beside_a_vit(deployment):
    at = new_app().run()
    at.switch_page("pages/compare_models.py").run()
    at.selectbox(key="models_left").set_value("efficientnet_lite0")
    at.selectbox(key="models_right").set_value("timm_vit").run()
    assert_clean(at)
    assert [s.value.split(":")[0] for s in at.subheader] == ["A", "B"]


def test_compare_layers_walks_a_vits_blocks(deployment):
    at = new_app().run()
    at.selectbox(key=state.MODEL).set_value("timm_vit").run()
    at.switch_page("pages/compare_layers.py").run()
    assert_clean(at)
    options = at.select_slider(key="layers_range").options
    assert {"blocks.0.norm1", "★ blocks.1.norm1"} <= set(options)  # ★: the recommended layer
