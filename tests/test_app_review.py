"""The Review page's gallery, driven by AppTest on a real small store of the embedded model: filter, page,
record a verdict, see its badge, open an image on Compare."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from explainers.review import browse, verdicts  # noqa: E402
from explainers.review.images import map_caption  # noqa: E402
from explainers.scale.query import query  # noqa: E402
from tests.review_store import STORE_NAME, assert_clean, make_review_store, open_review  # noqa: E402
from ui import report, state  # noqa: E402



@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return make_review_store(tmp_path_factory.mktemp("review"))


@pytest.fixture()
def review(stores, monkeypatch):
    return open_review(monkeypatch, stores)


def tile_captions(at: AppTest) -> list[str]:
    return [c for image in at.image for c in image.captions]


def count_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if " maps match · page " in c.value)


def test_filter_and_page_show_the_stores_maps(review, stores):
    at, store = review, stores / STORE_NAME
    _, [(total,)] = query(store, "SELECT count(*) FROM maps")
    assert count_caption(at).startswith(f"{total} maps match · page 1 of {-(-total // 12)}")
    assert len(tile_captions(at)) == min(total, 12)

    at.radio(key="review_correct").set_value("incorrect").run()
    at.selectbox(key="review_method").set_value("gradcam").run()
    assert_clean(at)
    _, wrong = query(store, "SELECT m.class_name, m.max FROM maps m JOIN predictions p USING (image_id, model) "
                            "WHERE NOT p.correct AND m.method = 'gradcam' "
                            "ORDER BY p.probability DESC, m.image_id, m.class_index")  # the gallery's tie-break
    captions = tile_captions(at)
    assert count_caption(at).startswith(f"{len(wrong)} maps match")
    assert len(captions) == len(wrong) > 0
    for caption, (class_name, top) in zip(captions, wrong):  # method · class · p · its scale and strength
        assert caption.startswith(f"Grad-CAM · {class_name} · p ")
        assert map_caption(top) in caption and f"strength: raw max {top:.3g}" in caption

    at.radio(key="review_correct").set_value("any").run()
    at.selectbox(key="review_method").set_value("any").run()
    at.number_input(key="review_page").set_value(2).run()
    assert count_caption(at).startswith(f"{total} maps match · page 2 of 2")
    assert len(tile_captions(at)) == total - 12

    at.number_input(key="review_page").set_value(1)
    at.selectbox(key="review_method").set_value("gradcam")
    at.selectbox(key="review_sort").set_value("disagreement").run()
    assert_clean(at)
    expected = sorted((v for v in browse.disagreements(store).column("disagreement").to_pylist() if v is not None),
                      reverse=True)
    shown = [float(c.split(" · disagreement ")[1]) for c in tile_captions(at)]
    assert shown == pytest.approx(expected, abs=0.006)  # one per (image, class): Grad-CAM vs EigenCAM


def test_a_verdict_needs_a_name_then_shows_as_a_badge(review, stores):
    at, store = review, stores / STORE_NAME
    at.selectbox(key="review_true").set_value("espresso").run()
    assert at.button(key="review_record").disabled  # no reviewer name yet
    assert any("Enter your name" in c.value for c in at.caption)
    at.sidebar.text_input(key=state.REVIEWER).set_value("Ada").run()
    at.radio(key="review_verdict_value").set_value("spurious evidence").run()
    at.text_input(key="review_note").set_value("the saucer").run()
    at.button(key="review_record").click().run()
    assert_clean(at)
    assert [s.value for s in at.success] == ["Recorded “spurious evidence” for espresso/coffee.jpg by Ada."]
    badges = [m.value for m in at.markdown if "-badge[" in m.value]
    assert badges and set(badges) == {":red-badge[spurious evidence]"}
    saved = verdicts.history(store, "espresso/coffee.jpg")
    assert [(v.verdict, v.note, v.reviewer) for v in saved][-1] == ("spurious evidence", "the saucer", "Ada")

    at.selectbox(key="review_true").set_value("any").run()
    at.selectbox(key="review_verdict_filter").set_value("spurious evidence").run()
    assert {c.value.split(" · ")[0] for c in at.caption if " · predicted " in c.value} == {"espresso/coffee.jpg"}


def test_open_on_compare_selects_the_image_model_and_class(review, stores, monkeypatch):
    at = review
    at.session_state[state.FIT] = "letterbox"  # the run squashed: opening the image brings its fit back
    verdicts.record(stores / STORE_NAME, "tabby/cat.jpg", "efficientnet_lite0", "evidence right", "the ears", "Cy")
    built: dict[str, bytes] = {}  # the Compare page's reviewer report, built at once instead of on a click
    monkeypatch.setattr(report, "button", lambda where, build, key, *a, **k: built.__setitem__(key, build()))
    at.selectbox(key="review_true").set_value("tabby").run()
    at.selectbox(key="review_method").set_value("gradcam").run()
    at.radio(key="review_target").set_value("true").run()  # the tabby map (the model predicts another cat)
    [tile] = tile_captions(at)
    assert tile.startswith("Grad-CAM · tabby · ")
    [button] = [b for b in at.button if b.key.startswith("review_open_")]
    button.click().run()
    assert_clean(at)
    assert at.title[0].value == "Compare CAM methods"
    assert at.session_state[state.SOURCE] == state.STORE_SOURCE
    assert at.session_state[state.FIT] == "squash"
    assert any("tabby/cat.jpg" in c.value and "From the store" in c.value for c in at.sidebar.caption)
    captions = tile_captions(at)
    assert any(c.startswith("As uploaded: tabby/cat.jpg") for c in captions)
    assert any(c.startswith("Grad-CAM · tabby @ bn2 · ") for c in captions)  # the stored map's class and layer
    html = built["compare_dl_report"].decode()
    assert "<h2>Reviewer verdicts</h2>" in html and "the ears" in html and "evidence right" in html

    at.sidebar.radio(key=state.SOURCE).set_value("Gallery")  # back to the sample gallery
    at.switch_page("pages/compare.py").run()  # AppTest reruns the page it last switched to itself
    assert_clean(at)
    assert any(c.startswith("As uploaded: cat.jpg") for c in tile_captions(at))
    assert "Reviewer verdicts" not in built["compare_dl_report"].decode()  # a sample image has no verdicts


def test_a_map_whose_original_is_gone_is_drawn_alone_with_a_sentence(stores, tmp_path, monkeypatch):
    moved = tmp_path / "stores"
    shutil.copytree(stores / STORE_NAME, moved / "moved", ignore=shutil.ignore_patterns("reviews.sqlite*"))
    run = json.loads((moved / "moved" / "run.json").read_text())
    (moved / "moved" / "run.json").write_text(json.dumps({**run, "source": str(tmp_path / "gone")}))
    at = open_review(monkeypatch, moved)
    assert len(tile_captions(at)) == 12  # every map is still drawn
    alone = [c.value for c in at.caption if c.value.startswith("The map alone: ")]
    assert len(alone) == 12 and "is not at the run's SOURCE" in alone[0]


def _files(*folders) -> dict[str, int]:
    return {str(p): p.stat().st_size for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def test_browsing_every_view_writes_nothing(stores, tmp_path, monkeypatch):
    """Only a recorded verdict writes (STORE/reviews.sqlite): opening a store and its four views does not."""
    fresh = tmp_path / "stores"
    shutil.copytree(stores / STORE_NAME, fresh / "fresh", ignore=shutil.ignore_patterns("reviews.sqlite*"))
    source = stores.parent / "source"
    before = _files(fresh, source)
    at = open_review(monkeypatch, fresh)
    at.selectbox(key="review_sort").set_value("disagreement").run()
    for view in ("Strategies", "Checkpoints", "Localisation"):
        at.radio(key="review_view").set_value(view).run()
        assert_clean(at)
    assert _files(fresh, source) == before
    assert not (fresh / "fresh" / verdicts.DB_FILE).exists()


@pytest.mark.parametrize("run_json, said", [("{not json", "is not a readable run.json"), (None, "holds no maps yet")])
def test_a_broken_or_empty_store_is_a_sentence_in_every_view(stores, tmp_path, monkeypatch, run_json, said):
    folder = tmp_path / "stores" / "other"
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(run_json or (stores / STORE_NAME / "run.json").read_text())  # None: no parts
    monkeypatch.setenv("CAMSCOPE_STORES_DIR", str(folder.parent))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=180).run()
    at.switch_page("pages/review.py").run()
    for view in ("Gallery", "Strategies", "Checkpoints", "Localisation"):
        at.radio(key="review_view").set_value(view).run()
        assert not at.exception, [e.value for e in at.exception]
        sentences = [e.value for e in at.error] + [i.value for i in at.info]
        assert sentences, view
        if run_json or view in ("Gallery", "Strategies"):  # an empty store: the other two ask for more first
            assert any(said in s for s in sentences), (view, sentences)
    assert sorted(p.name for p in folder.iterdir()) == ["run.json"]
