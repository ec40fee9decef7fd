"""Layer pickers and the Layers & model page, driven by AppTest on the embedded model (CPU)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.test_app import APP, assert_clean  # noqa: E402
from ui import loaders, model_info, state, widgets  # noqa: E402

MODEL_PAGE = "pages/model.py"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "models"


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[state.METHODS] = ["gradcam"]
    at.run()
    at.switch_page(page).run()
    return at


def test_layer_picker_hides_modules_without_a_map_of_their_own():
    at = open_page("pages/compare.py")
    picker = at.selectbox(key=state.LAYER)
    assert len(picker.options) == 108 and picker.value == "bn2"
    assert not any(o.startswith(("bn1.act ", "blocks.1 ", "bn2.drop ")) for o in picker.options)
    at.toggle(key=state.LAYER_EVERY).set_value(True).run()
    assert_clean(at)
    options = at.selectbox(key=state.LAYER).options
    assert len(options) == 262 and "blocks.1 (= blocks.1.1) · Sequential · 24 × 56 × 56" in options


def _all_text(at: AppTest) -> str:
    parts = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    for frame in at.dataframe:
        parts.append(frame.value.to_csv())
    return "\n".join(parts)


@pytest.fixture
def manifest_model(tmp_path):
    """The example manifest with a random 2-class resnet18's weights, registered for one test."""
    import torch
    import torchvision
    from safetensors.torch import save_file

    from explainers.models import MODELS
    from explainers.models.manifest import register_manifest

    shutil.copytree(EXAMPLE, tmp_path / "models")
    torch.manual_seed(3)
    save_file(torchvision.models.resnet18(num_classes=2).state_dict(), tmp_path / "models" / "chest.safetensors")
    specs = register_manifest(tmp_path / "models").specs
    loaders.model_specs.clear()
    yield specs[0], tmp_path / "models" / "chest.safetensors"
    for spec in specs:
        MODELS.remove(spec.name)
    loaders.model_specs.clear()
    loaders.get_model.clear()


def test_model_page_shows_no_server_path(manifest_model):
    spec, weights = manifest_model
    at = open_page(MODEL_PAGE)
    at.selectbox(key=state.MODEL).set_value(spec.name).run()
    assert_clean(at)
    text = _all_text(at)
    assert "chest.safetensors" in text and loaders.get_model(spec.name).weights_sha256 in text
    assert str(weights) not in text and str(weights.parent) not in text
    assert str(Path.home()) not in text and "/tmp/" not in text


def test_layer_table_is_searchable_and_lists_repeats_on_demand():
    at = open_page(MODEL_PAGE)
    table = at.dataframe[0].value
    assert len(table) == 110 and table.loc[table["recommended"] == "★", "layer"].tolist() == ["bn2"]
    at.text_input(key="model_layer_search").set_value("blocks.6").run()
    table = at.dataframe[0].value
    assert any(c.value.startswith("6 of 110 modules with a map of their own match") for c in at.caption)
    assert table["layer"].tolist()[:3] == ["blocks.6.0.conv_pw", "blocks.6.0.bn1", "blocks.6.0.conv_dw"]
    assert len(table) == 6 and all(name.startswith("blocks.6") for name in table["layer"])
    at.toggle(key="model_every_module").set_value(True).run()
    table = at.dataframe[0].value
    assert len(table) == 17  # blocks.6, blocks.6.0 and their Identity / ReLU6 children too
    assert table.set_index("layer").loc["blocks.6", "own map"] == "same as blocks.6.0.bn3"
    assert table.set_index("layer").loc["blocks.6.0.bn3", "own map"] == "yes"
    assert any(c.value.startswith("17 of 272 modules match") for c in at.caption)


def test_method_table_has_short_citations_and_links():
    at = open_page(MODEL_PAGE)
    methods = at.dataframe[1].value.set_index("method")
    assert methods.loc["Grad-CAM", "paper"] == "Selvaraju et al., ICCV 2017"
    assert methods.loc["Grad-CAM", "link"] == "https://arxiv.org/abs/1610.02391"
    assert model_info.paper_link("Jiang et al., IEEE TIP 2021, doi:10.1109/TIP.2021.3089943") == \
        "https://doi.org/10.1109/TIP.2021.3089943"
    assert model_info.paper_link("Fuad et al., IPTA 2020, hal-02963298") == "https://hal.science/hal-02963298"
    assert model_info.paper_link("Desai & Ramaswamy, WACV 2020") == ""


def test_sidebar_model_names_are_short_with_the_full_name_underneath():
    at = open_page(MODEL_PAGE)
    labels = at.selectbox(key=state.MODEL).options
    assert "ResNet-18 · not here yet" in labels or "ResNet-18" in labels
    assert all(len(label) <= 32 for label in labels), labels
    assert widgets.short_model_name("EfficientNet-Lite0 (ImageNet, embedded)") == "EfficientNet-Lite0"
    assert any("EfficientNet-Lite0 (ImageNet, embedded)" in c.value for c in at.sidebar.caption)
