"""The Streamlit app, driven by AppTest on the embedded model (CPU, nothing downloaded)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from explainers.pipeline import explain  # noqa: E402
from ui import loaders, state  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = sorted(f"pages/{p.name}" for p in (Path(__file__).resolve().parents[1] / "pages").glob("*.py"))


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state[state.METHODS] = ["gradcam"]  # keep each run cheap unless a test asks for more
    return at


def panel_captions(at: AppTest) -> list[str]:
    """Captions of the method panels (the grid's first cell is the original image)."""
    captions = [c for image in at.image for c in image.captions]
    return [c for c in captions if " · " in c and c.endswith(" s")]


def panel_urls(at: AppTest) -> list[str]:
    return [url for image in at.image for url, c in zip(image.value, image.captions) if c.endswith(" s")]


def plotly_array(value) -> np.ndarray:
    """A plotly JSON array: a list, or (plotly >= 6) {"dtype", "bdata" (base64), "shape"}."""
    if isinstance(value, dict):
        import base64

        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = tuple(int(n) for n in str(value.get("shape", len(flat))).split(","))
        return flat.reshape(shape).astype(float)
    return np.asarray(value, dtype=float)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs(page):
    at = new_app().run()
    at.switch_page(page).run()
    assert_clean(at)
    assert at.title, "the page drew nothing"


def test_model_page_lists_layers_with_the_recommended_one(lite0):
    at = new_app().run()
    at.switch_page("pages/model.py").run()
    assert_clean(at)
    layers = at.dataframe[0].value
    recommended = layers[layers["recommended"] == "★"]["layer"].tolist()
    assert recommended == [lite0.target_layer]


def test_sample_image_class_and_two_methods_give_two_heatmaps(lite0):
    at = new_app().run()
    at.selectbox(key=state.GALLERY_CHOICE).set_value("Coffee").run()
    cup = lite0.categories.index("coffee mug")
    at.number_input(key=state.CLASS_INDEX).set_value(cup).run()
    at.multiselect(key=state.METHODS).set_value(["gradcam", "layercam"]).run()
    assert_clean(at)
    assert at.selectbox(key=state.CLASS_SELECT).value == cup  # the two class widgets stay in sync
    captions = panel_captions(at)
    assert [c.split(" · ")[0] for c in captions] == ["Grad-CAM", "LayerCAM"]
    assert len(set(panel_urls(at))) == 2  # two different pictures

    # The maps behind the panels are the engine's maps for the chosen class (a cache hit, no new call).
    selection = at.session_state[state.SELECTION]
    calls = loaders.ENGINE_CALLS
    results = loaders.explanations(lite0, selection.image, selection.image_sha256, lite0.target_layer, cup,
                                   ["gradcam", "layercam"])
    assert loaders.ENGINE_CALLS == calls
    assert {r.class_index for r in results.values()} == {cup}
    for r in results.values():
        assert r.map.shape == (selection.image.height, selection.image.width)
        assert np.isclose(r.map.max(), 1.0, atol=1e-4) and r.map.min() >= 0.0


def test_top1_is_the_default_class(lite0):
    at = new_app().run()
    espresso = lite0.categories.index("espresso")
    at.selectbox(key=state.GALLERY_CHOICE).set_value("Coffee").run()
    assert at.number_input(key=state.CLASS_INDEX).value == espresso
    assert panel_captions(at)


def test_rendering_controls_never_call_the_engine():
    at = new_app()
    at.session_state[state.METHODS] = ["gradcam", "gradcam++"]
    at.run()
    assert_clean(at)
    before_calls, before_urls = loaders.ENGINE_CALLS, panel_urls(at)
    at.slider(key=state.OPACITY).set_value(0.9).run()
    after_opacity = panel_urls(at)
    at.selectbox(key=state.COLORMAP).set_value("viridis").run()
    after_colormap = panel_urls(at)
    at.toggle(key=state.SHARED_SCALE).set_value(True).run()
    assert_clean(at)
    assert loaders.ENGINE_CALLS == before_calls
    # ...yet the panels were redrawn each time (the counter is not just idle):
    assert before_urls != after_opacity != after_colormap != panel_urls(at)
    at.number_input(key=state.CLASS_INDEX).set_value(1).run()
    assert loaders.ENGINE_CALLS == before_calls + 1  # a new class is a new computation


def test_each_panel_says_how_strong_its_map_is(lite0):
    at = new_app()
    at.session_state[state.METHODS] = ["gradcam", "eigencam"]
    at.run()
    at.number_input(key=state.CLASS_INDEX).set_value(948).run()  # Granny Smith, on the cat
    assert_clean(at)
    grad, eigen = panel_captions(at)
    image = at.session_state[state.SELECTION].image
    top = loaders.predictions(lite0.name, lite0.weights_sha256, at.session_state[state.SELECTION].image_sha256, 5,
                              lite0, image)[0].index
    apple, best = explain(lite0, image, classes=[948, top]).results
    ratio = float(apple.raw.max() / best.raw.max())
    assert 0.07 < ratio < 0.11  # raw max ~0.046 against ~0.50 for the top class
    assert grad.startswith(f"Grad-CAM · Granny Smith @ {lite0.target_layer} · raw 0–{apple.raw.max():.3g} · "
                           f"{ratio:.0%} of top class · ")
    assert "same map for every class" in eigen
    at.number_input(key=state.CLASS_INDEX).set_value(top).run()
    at.selectbox(key=state.LAYER).set_value("bn1").run()  # the top class's Grad-CAM is all zero this early
    assert_clean(at)
    assert "all zero at bn1" in panel_captions(at)[0]
    toggle = at.toggle(key=state.SHARED_SCALE)
    assert toggle.label == "Shared scale within like units" and "different units" in toggle.help


def test_the_zip_shows_its_size_before_it_is_built():
    at = new_app().run()
    build = at.button(key="compare_build_zip")
    bound = float(build.label.split("at most ")[1].split(" MB")[0])
    assert 0.5 < bound < 5  # the cat: 451 x 300, one method
    assert not [d for d in at.get("download_button") if "Everything" in d.proto.label]  # built on request only
    build.click().run()
    assert_clean(at)
    ready = [d for d in at.get("download_button") if "Everything" in d.proto.label]
    assert len(ready) == 1
    size = float(ready[0].proto.label.split(", ")[1].split(" MB")[0])
    assert 0 < size <= bound


def test_adding_a_method_computes_only_that_method(engine_spy):
    asked = engine_spy
    at = new_app()
    at.session_state[state.GALLERY_CHOICE] = "Rocket launch"
    at.session_state[state.METHODS] = ["xgradcam"]
    at.run()
    at.multiselect(key=state.METHODS).set_value(["xgradcam", "eigencam", "hirescam"]).run()
    assert_clean(at)
    assert asked == [["xgradcam"], ["eigencam", "hirescam"]]  # the two new ones in ONE call
    at.selectbox(key=state.GALLERY_CHOICE).set_value("Photographer").run()
    at.selectbox(key=state.GALLERY_CHOICE).set_value("Rocket launch").run()  # coming back: all cached
    assert asked[-1] == ["xgradcam", "eigencam", "hirescam"] and len(asked) == 3


def test_interactive_heatmap_hover_shows_the_map_value():
    at = new_app().run()
    at.selectbox(key=state.FOCUS).set_value("gradcam").run()
    assert_clean(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # the top-k bars (sidebar) and the heatmap
    figure = next(f for f in (json.loads(c.proto.spec) for c in charts) if f["data"][0]["type"] != "bar")
    kinds = [trace["type"] for trace in figure["data"]]
    assert kinds == ["image", "heatmap"]
    heat = figure["data"][1]
    assert "value=%{z" in heat["hovertemplate"]
    z = plotly_array(heat["z"])
    assert z.min() >= 0.0 and np.isclose(z.max(), 1.0, atol=0.05)


def test_top_k_chart_shows_probabilities(lite0):
    at = new_app().run()
    figure = json.loads(at.sidebar.get("plotly_chart")[0].proto.spec)  # in the sidebar, beside the maps
    bars = figure["data"][0]
    assert bars["type"] == "bar" and bars["orientation"] == "h"
    probs = plotly_array(bars["x"])
    assert len(probs) == 5 and np.all(np.diff(probs) <= 0) and 0 < probs.sum() <= 1.0 + 1e-6
    assert any(name in bars["y"][0] for name in ("tabby", "tiger cat", "Egyptian cat"))


def test_slow_methods_are_opt_in_show_their_cost_and_run_on_demand():
    at = new_app().run()
    assert not any("FullGrad" in c for c in panel_captions(at))
    at.checkbox(key=state.SLOW_ON).check().run()
    at.multiselect(key=state.SLOW_METHODS).set_value(["fullgrad", "scorecam"]).run()
    assert_clean(at)
    costs = [c.value for c in at.caption if "costs" in c.value]
    assert any(c.startswith("**FullGrad** costs") for c in costs)
    assert any(c.startswith("**Score-CAM** costs") and "1280 channels" in c for c in costs)  # bn2: 1280 x 7 x 7
    assert [c.split(" · ")[0] for c in panel_captions(at)] == ["Grad-CAM"]  # nothing slow runs unasked
    at.multiselect(key=state.SLOW_METHODS).set_value(["fullgrad"]).run()
    calls = loaders.ENGINE_CALLS
    at.button(key=state.RUN_SLOW).click().run()
    assert_clean(at)
    assert loaders.ENGINE_CALLS == calls + 1
    assert [c.split(" · ")[0] for c in panel_captions(at)] == ["Grad-CAM", "FullGrad"]
    at.slider(key=state.OPACITY).set_value(0.2).run()  # computed once, then kept without the button
    assert [c.split(" · ")[0] for c in panel_captions(at)] == ["Grad-CAM", "FullGrad"]
    assert loaders.ENGINE_CALLS == calls + 1


def test_a_non_image_upload_is_an_error_not_an_exception():
    at = new_app().run()
    at.radio(key=state.SOURCE).set_value("Upload").run()
    at.file_uploader(key=state.UPLOAD).upload("notes.png", b"this is not an image", "image/png").run()
    assert not at.exception
    assert any("not an image" in e.value for e in at.error)
    assert not panel_captions(at)
    at.radio(key=state.SOURCE).set_value("Gallery").run()  # the app keeps working
    assert_clean(at)
    assert panel_captions(at)


def test_a_good_upload_is_explained(tmp_path):
    from PIL import Image

    path = tmp_path / "cat.webp"
    Image.open(state.ASSETS / "cat.jpg").save(path, format="WEBP")
    at = new_app().run()
    at.radio(key=state.SOURCE).set_value("Upload").run()
    at.file_uploader(key=state.UPLOAD).upload("cat.webp", path.read_bytes(), "image/webp").run()
    assert_clean(at)
    assert panel_captions(at)


def test_a_model_whose_weights_are_missing_is_an_error():
    missing = [name for name, _, _, available in loaders.model_specs() if not available]
    if not missing:
        pytest.skip("every registered model has its weights here")
    at = new_app().run()
    at.selectbox(key=state.MODEL).set_value(missing[0]).run()
    assert not at.exception
    assert at.error and all("Traceback" not in e.value for e in at.error)
    assert at.info  # the page says what to do instead of crashing


def test_engine_errors_are_shown_as_their_sentence_and_the_page_recovers(monkeypatch):
    from explainers.errors import MethodError
    from ui.errors import UNEXPECTED

    def broken(*args, **kwargs):
        raise MethodError("Grad-CAM cannot run on this layer.")

    at = new_app()
    at.session_state[state.GALLERY_CHOICE] = "Hubble deep field"  # not computed by other tests
    monkeypatch.setattr(loaders, "explain", broken)
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Grad-CAM cannot run on this layer."]

    monkeypatch.setattr(loaders, "explain", lambda *a, **k: 1 / 0)  # a bug, not a user error
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [UNEXPECTED]
    assert "ZeroDivisionError" not in str(at.main) and "Traceback" not in str(at.main)

    monkeypatch.undo()
    at.run()
    assert_clean(at)
    assert panel_captions(at)


def test_choices_survive_a_page_switch():
    at = new_app().run()
    at.selectbox(key=state.GALLERY_CHOICE).set_value("Astronaut").run()
    at.multiselect(key=state.METHODS).set_value(["gradcam", "eigencam"]).run()
    at.slider(key=state.OPACITY).set_value(0.7).run()
    at.switch_page("pages/model.py").run()
    assert_clean(at)
    at.switch_page("pages/compare.py").run()
    assert_clean(at)
    assert at.selectbox(key=state.GALLERY_CHOICE).value == "Astronaut"
    assert at.multiselect(key=state.METHODS).value == ["gradcam", "eigencam"]
    assert at.slider(key=state.OPACITY).value == 0.7
    assert [c.split(" · ")[0] for c in panel_captions(at)] == ["Grad-CAM", "EigenCAM"]


def test_a_camera_snapshot_is_explained():
    at = new_app().run()
    at.radio(key=state.SOURCE).set_value("Camera").run()
    assert not panel_captions(at) and at.info  # no picture yet: the page says what to do
    at.camera_input(key=state.CAMERA).upload("snap.jpg", (state.ASSETS / "coffee.jpg").read_bytes()).run()
    assert_clean(at)
    assert at.session_state[state.SELECTION].image.size == (600, 400)
    assert [c.split(" · ")[0] for c in panel_captions(at)] == ["Grad-CAM"]


def test_a_deployment_model_is_listed_and_explained(lite0):
    """A model from the manifest (source "user") appears in the picker and works like any other."""
    import dataclasses

    from explainers.models import MODELS, register_model

    spec = dataclasses.replace(lite0.spec, name="my_lite0", display_name="My Lite0", source="user")
    register_model(spec)
    loaders.model_specs.clear()
    try:
        at = new_app().run()
        picker = at.selectbox(key=state.MODEL)
        assert "My Lite0 · your model" in picker.options  # the labels the user reads
        picker.set_value("my_lite0").run()
        assert_clean(at)
        assert at.session_state[state.SELECTION].model.name == "my_lite0"
        assert [c.split(" · ")[0] for c in panel_captions(at)] == ["Grad-CAM"]
    finally:
        MODELS.remove("my_lite0")
        loaders.model_specs.clear()
        loaders.get_model.clear()
