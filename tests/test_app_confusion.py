"""The class-confusion pages, driven by AppTest on the embedded model (CPU, nothing downloaded):
compare classes, compare layers, compare models, dataset confusion."""
from __future__ import annotations

import dataclasses
import io
import json
import zipfile

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from explainers.pipeline import explain  # noqa: E402
from tests.labelled_set import CUP, EGYPTIAN_CAT, ESPRESSO, TABBY, write_folder, zip_bytes  # noqa: E402
from tests.test_app import APP, assert_clean, plotly_array  # noqa: E402
from ui import compare_views, loaders, state  # noqa: E402
from ui import dataset as ds  # noqa: E402

CLASSES, LAYERS, MODELS, DATASET = ("pages/compare_classes.py", "pages/compare_layers.py",
                                    "pages/compare_models.py", "pages/dataset.py")


def open_page(page: str, gallery: str = "Cat (Chelsea)") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.session_state[state.METHODS] = ["gradcam"]  # the compare page's default stays cheap
    at.session_state[state.GALLERY_CHOICE] = gallery
    at.run()
    at.switch_page(page).run()
    return at


def captions(at: AppTest) -> list[str]:
    return [c for image in at.image for c in image.captions]


@pytest.mark.parametrize("page", [CLASSES, LAYERS, MODELS, DATASET])
def test_every_page_runs(page):
    at = open_page(page)
    assert_clean(at)
    assert at.title[0].value in {"Compare classes", "Compare layers", "Compare models", "Dataset confusion"}


def test_compare_classes_top_k_shared_scale_and_contrast(lite0):
    at = open_page(CLASSES)
    assert_clean(at)
    selection = at.session_state[state.SELECTION]
    image = selection.image  # the gallery's cat.jpg
    shown = captions(at)
    assert shown[0].startswith("Original")
    top3 = [p.index for p in explain(lite0, image).predictions[:3]]
    assert [c.split(" @ ")[0] for c in shown[1:4]] == [f"{lite0.categories[i]} ({i})" for i in top3]
    assert shown[1].endswith("· top class") and all("% of top class" in c for c in shown[2:4])
    assert at.toggle(key="classes_shared_scale").value is True  # one scale by default
    a, b = top3[0], top3[1]
    direct = explain(lite0, image, classes=[a, b], contrast=(a, b)).results
    assert shown[4] == (f"{lite0.categories[a]} rather than {lite0.categories[b]} · "
                        f"logit difference {direct[2].score:+.2f}")
    assert shown[5].startswith(f"{lite0.categories[a]} − {lite0.categories[b]} · largest difference 0.")
    # The contrast shown is the engine's (a cache hit now: no new computation), and it is the Grad-CAM of A - B.
    calls = loaders.ENGINE_CALLS
    cached = compare_views.cams(lite0, image, selection.image_sha256, "gradcam", classes=[a, b], contrast=(a, b))
    assert loaders.ENGINE_CALLS == calls
    for got, want in zip(cached, direct):
        assert (got.class_index, got.contrast_index) == (want.class_index, want.contrast_index)
        np.testing.assert_allclose(got.raw, want.raw, atol=1e-5)
    assert cached[2].contrast_index == b and cached[2].score == pytest.approx(cached[0].score - cached[1].score)


def test_compare_classes_says_how_weak_a_class_map_is(lite0):
    at = open_page(CLASSES)
    at.radio(key="classes_mode").set_value("Pick by name").run()
    at.multiselect(key="classes_picked").set_value([948]).run()  # Granny Smith, on the cat
    assert_clean(at)
    image = at.session_state[state.SELECTION].image
    top = explain(lite0, image).predictions[0].index
    apple, best = explain(lite0, image, classes=[948, top]).results
    ratio = float(apple.raw.max() / best.raw.max())
    assert 0.07 < ratio < 0.11  # raw max ~0.046 against ~0.50
    assert captions(at)[1] == (f"Granny Smith (948) @ {lite0.target_layer} · p={apple.probability:.1%} · "
                               f"raw 0–{apple.raw.max():.3g} · {ratio:.0%} of top class")


def test_compare_classes_picked_by_name_and_same_class_contrast(lite0):
    at = open_page(CLASSES, gallery="Coffee")
    at.radio(key="classes_mode").set_value("Pick by name").run()
    at.multiselect(key="classes_picked").set_value([CUP, 504]).run()  # cup, coffee mug
    assert_clean(at)
    assert [c.split(" @ ")[0] for c in captions(at)[1:3]] == ["cup (968)", "coffee mug (504)"]
    at.selectbox(key="classes_a").set_value(CUP).run()
    at.selectbox(key="classes_b").set_value(CUP).run()
    assert_clean(at)
    assert any("two different classes" in i.value for i in at.info)
    at.selectbox(key="classes_b").set_value(ESPRESSO).run()
    assert "cup rather than espresso" in " ".join(captions(at))


def test_compare_layers_early_to_late_with_resolutions(lite0):
    at = open_page(LAYERS)
    assert_clean(at)
    shown = captions(at)[1:]
    assert all(" · raw " in c or " · all zero at " in c for c in shown)  # each panel says how strong its map is
    assert [" · ".join(c.split(" · ")[:2]) for c in shown] == ["blocks.1.1 · 56 × 56", "blocks.2.1 · 28 × 28", "blocks.4.2 · 14 × 14",
                                "bn2 ★ · 7 × 7"]  # one per resolution after the stem; no blank panel
    assert not at.multiselect  # no long list where Enter adds every match
    depth = at.select_slider(key="layers_range")
    assert depth.value == ("blocks.1.1", "bn2") and len(depth.options) == 108  # modules with a map of their own
    depth.set_value(("conv_stem", "blocks.3.0.bn3")).run()
    at.slider(key="layers_count").set_value(3).run()
    assert_clean(at)
    assert [" · ".join(c.split(" · ")[:2]) for c in captions(at)[1:]] == ["conv_stem · 112 × 112", "blocks.2.1 · 28 × 28", "blocks.3.0.bn3 · 14 × 14"]
    at.toggle(key="layers_every").set_value(True).run()  # every module: Identity, ReLU6, containers too
    assert_clean(at)
    assert len(at.select_slider(key="layers_range").options) == 262


@pytest.fixture
def second_checkpoint(lite0):
    """An untrained copy of the architecture: a 'checkpoint before fine-tuning'."""
    from explainers.models import MODELS, register_model

    spec = dataclasses.replace(lite0.spec, name="lite0_untrained", display_name="Lite0 before training",
                               build=lambda _random: lite0.spec.build(True), source="user")
    register_model(spec)
    loaders.model_specs.clear()
    yield spec.name
    MODELS.remove(spec.name)
    loaders.model_specs.clear()
    loaders.get_model.clear()


def test_compare_models_side_by_side(second_checkpoint, lite0):
    at = open_page(MODELS, gallery="Coffee")
    at.selectbox(key="models_right").set_value(second_checkpoint).run()
    assert_clean(at)
    assert [h.value for h in at.subheader] == ["A: " + lite0.spec.display_name, "B: Lite0 before training"]
    charts = [json.loads(c.proto.spec)["data"][0] for c in at.get("plotly_chart")]
    assert len(charts) == 2 and charts[0]["y"][0] == f"espresso ({ESPRESSO})"
    assert charts[0]["y"] != charts[1]["y"]  # the untrained model predicts something else
    maps = captions(at)
    assert len(maps) == 2 and all(c.startswith(f"Grad-CAM of espresso ({ESPRESSO})") for c in maps)
    assert " · raw " in maps[0] and (" · raw " in maps[1] or "all zero" in maps[1])  # raw units (random B may be 0)
    p_trained, p_untrained = (float(c.split("p=")[1].split("%")[0]) for c in maps)
    assert p_trained > 50 and p_untrained < 5  # the same class, explained in both, with each model's belief
    at.selectbox(key="models_right").set_value(lite0.name).run()
    assert any("two different models" in i.value for i in at.info)


# --- dataset confusion -----------------------------------------------------------------------------

def upload(at: AppTest, data: bytes, name: str = "pets.zip") -> AppTest:
    at.file_uploader(key=ds.UPLOAD).upload(name, data, "application/zip").run()
    return at


def predicted(at: AppTest) -> AppTest:
    at.button(key=ds.RUN).click().run()
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_dataset_confusion_from_an_uploaded_zip(lite0):
    at = open_page(DATASET)
    upload(at, zip_bytes({"cup/notes.jpg": b"not a picture"}))
    assert_clean(at)
    assert not at.metric  # nothing runs before the button
    calls = loaders.ENGINE_CALLS
    predicted(at)
    assert_clean(at)
    assert loaders.ENGINE_CALLS == calls + 2  # the predictions, then the maps of the first cell's gallery
    assert metrics(at) == {"Files": "13", "Images": "12", "Skipped files": "1", "Accuracy": "50.0%"}
    skipped = at.dataframe[1].value
    assert skipped["file"].tolist() == ["cup/notes.jpg"] and "not an image" in skipped["reason"][0]
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert figure["type"] == "heatmap"
    np.testing.assert_array_equal(plotly_array(figure["z"]), [[3, 0, 0, 0], [0, 0, 3, 0], [0, 0, 3, 0], [3, 0, 0, 0]])
    assert figure["y"] == ["Egyptian cat (285)", "cup (968)", "espresso (967)", "tabby (281)"]
    table = at.dataframe[2].value
    assert table["accuracy"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert table["most confused with"].tolist() == ["", "espresso", "", "Egyptian cat"]
    assert at.get("download_button")

    cell = at.selectbox(key=ds.CELL)
    assert cell.value[2] == 3 and cell.value[0] != cell.value[1]  # the biggest mistake opens first
    cell.set_value((TABBY, EGYPTIAN_CAT, 3)).run()
    assert_clean(at)
    shown = captions(at)
    assert len(shown) == 9  # 3 images x (photo, true-class map, predicted-class map)
    assert shown[1].startswith("true: tabby") and shown[2].startswith("predicted: Egyptian cat")
    calls = loaders.ENGINE_CALLS
    cell.set_value((ESPRESSO, ESPRESSO, 3)).run()  # a correct cell: one map per image
    assert [c.split(" · ")[0] for c in captions(at)[:2]] == ["espresso/flip.png", "true = predicted: espresso"]
    assert loaders.ENGINE_CALLS == calls + 1  # the gallery's maps; the predictions come from the cache
    at.switch_page("pages/model.py").run()
    at.switch_page(DATASET).run()  # the set and its predictions are still there
    assert metrics(at)["Accuracy"] == "50.0%"


def test_dataset_counts_agree_everywhere_with_a_bad_file_and_a_stray_one(lite0):
    """14 files: 12 images, a broken "image" in cup/ and a file outside the class folders."""
    at = open_page(DATASET)
    upload(at, zip_bytes({"cup/broken.jpg": b"\xff\xd8 not really a jpeg", "readme.txt": b"hello"}))
    assert not at.exception
    table = at.data_editor[0].value.set_index("folder")
    assert table["files"].to_dict() == {"Egyptian_cat": 3, "cup": 4, "espresso": 3, "tabby": 3}
    before = next(c.value for c in at.caption if c.value.startswith("pets.zip: "))
    assert before.startswith("pets.zip: 14 files, 13 of them in 4 class folders (1 outside the class folders or "
                             "unreadable, left out).")
    assert at.button(key=ds.RUN).label.startswith("Predict the 13 files of the class folders with ")
    predicted(at)
    assert_clean(at)
    assert metrics(at) == {"Files": "14", "Images": "12", "Skipped files": "2", "Accuracy": "50.0%"}
    shown = [c.value for c in at.caption]
    assert "pets.zip: 14 files in all: 12 images predicted, 2 skipped (1 left out while reading, 1 not an image)." \
        in shown
    assert "Folders with skipped files: cup: 4 files = 3 images + 1 skipped." in shown
    skipped = at.dataframe[1].value
    assert sorted(skipped["file"]) == ["cup/broken.jpg", "readme.txt"]
    per_class = at.dataframe[2].value
    assert per_class["images"].sum() == 12 and table["files"].sum() + 1 == 14  # the same numbers, added up


def test_dataset_refuses_an_escaping_zip_with_a_sentence():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cup/a.png", b"x")
        archive.writestr("../evil.jpg", b"x")
    at = upload(open_page(DATASET), buffer.getvalue(), "evil.zip")
    assert not at.exception
    assert [e.value for e in at.error] == [
        "The zip was refused: its entry '../evil.jpg' points outside the archive's folder (absolute path, '..' "
        "or a link)."]


def test_dataset_mapping_editor_for_unmatched_folders(lite0):
    at = open_page(DATASET)
    data = zip_bytes().replace(b"tabby/", b"kitty/")  # same length: the zip stays valid
    upload(at, data)
    assert not at.exception
    assert [e.value for e in at.error] == [
        "No class yet for the folder kitty: pick one in the “Folder → class mapping” table above (type a class "
        "name to search), or rename the folder to a class name."]
    key = ds.mapping_key(lite0, ds.source_key(data=data))
    folders = at.data_editor[0].value["folder"].tolist()
    prefilled = dict(zip(folders, at.data_editor[0].value["class"].tolist()))
    kitty = prefilled.pop("kitty")
    assert kitty is None or kitty != kitty  # empty (None or NaN): left for the user to pick
    assert prefilled == {"Egyptian_cat": f"{EGYPTIAN_CAT}: Egyptian cat", "cup": f"{CUP}: cup",
                         "espresso": f"{ESPRESSO}: espresso"}
    at.session_state[key] = {"edited_rows": {folders.index("kitty"): {"class": f"{TABBY}: tabby"}},
                             "added_rows": [], "deleted_rows": []}
    at.run()
    assert_clean(at)
    predicted(at)
    assert metrics(at)["Accuracy"] == "50.0%"
    assert "tabby (281)" in json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["y"]


def test_dataset_from_a_server_folder(tmp_path, monkeypatch):
    write_folder(tmp_path / "datasets" / "pets")
    (tmp_path / "datasets" / "notes.txt").write_text("not a dataset")
    monkeypatch.setenv(ds.DATASETS_DIR_ENV, str(tmp_path / "datasets"))
    at = open_page(DATASET)
    at.radio(key=ds.SOURCE).set_value("On the server").run()
    assert at.selectbox(key=ds.SERVER_CHOICE).options == ["pets"]  # folders and zips only, no free path
    predicted(at)
    assert_clean(at)
    assert metrics(at) == {"Files": "12", "Images": "12", "Skipped files": "0", "Accuracy": "50.0%"}
