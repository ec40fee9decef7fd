"""Localisation by stratum on a hand-made store whose pointing-game hits are known, bootstrap CIs,
and the Review page's timeline and localisation views (AppTest) on that store."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from explainers.errors import EvaluationError
from explainers.metrics.localisation import energy, ground_truth
from explainers.pipeline import on_grid
from explainers.review.strata import localisation_by_stratum, mean_ci, parse_boxes, strata
from explainers.scale.rows import encode_raw, map_stats, table
from explainers.scale.store import Store

SIDE = 100  # every image is 100 x 100; maps are 10 x 10, one hot cell each
MODELS = ("ckpt_a", "ckpt_b", "ckpt_c")
# A hot cell at (row 4, col 4) spreads, upsampled bilinearly x10, over pixels 35..54 in x and y; its
# peak is pixel (44, 44). A box holding [35, 55) catches all of it (hit, energy 1); one 20+ px away
# misses (hit False, energy 0; the tolerance is 15 * 100 / 224 = 6.7 px).
HIT_SMALL, HIT_MEDIUM, HIT_LARGE = [35, 35, 55, 55], [30, 30, 60, 60], [15, 15, 75, 75]  # 4%, 9%, 36%
MISS_SMALL, MISS_MEDIUM = [75, 75, 95, 95], [65, 65, 95, 95]  # 4%, 9%
MISS_PAIR = [[75, 75, 85, 89], [85, 75, 95, 89]]  # two instances, union 2.8%
NESTED = [[15, 15, 75, 75], [25, 25, 65, 65], [35, 35, 55, 55]]  # three instances, union 36%
# image: (boxes, hit, probability)
IMAGES = {
    "s1.png": ([HIT_SMALL], True, 0.3), "s2.png": ([HIT_SMALL], True, 0.3),
    "s3.png": (MISS_PAIR, False, 0.3), "s4.png": (MISS_PAIR, False, 0.6),
    "m1.png": ([HIT_MEDIUM], True, 0.6), "m2.png": ([HIT_MEDIUM], True, 0.6),
    "m3.png": ([HIT_MEDIUM], True, 0.6), "m4.png": ([MISS_MEDIUM], False, 0.95),
    "l1.png": (NESTED, True, 0.95), "l2.png": (NESTED, True, 0.95),
    "l3.png": ([HIT_LARGE], True, 0.95), "l4.png": ([HIT_LARGE], True, 0.95),
}


def _raw(row: int, col: int) -> np.ndarray:
    raw = np.zeros((10, 10), np.float32)
    raw[row, col] = 2.0
    return raw


def _map_row(image_id: str, model: str, raw: np.ndarray, class_index: int, probability: float) -> dict:
    data, scale = encode_raw(raw)
    return {"image_id": image_id, "image_sha256": "0" * 64, "model": model, "width": SIDE, "height": SIDE,
            "method": "gradcam", "layer": "features", "class_index": class_index,
            "class_name": ("cat", "dog")[class_index],
            "rank": 1, "is_true": True, "score": 1.0, "probability": probability, "raw": data,
            "raw_shape": list(raw.shape), "raw_scale": scale, **map_stats(raw)}


def write_store(folder: Path, models: tuple[str, ...] = MODELS, images: dict = IMAGES) -> Path:
    """Each model's map of class 0 for every image; ckpt_c moves the hot cell of s*.png to (1, 8).
    Writing again into the same folder adds a part (as a second run would)."""
    maps, predictions = [], []
    for model in models:
        for image_id, (_, _, probability) in images.items():
            moved = model == "ckpt_c" and image_id.startswith("s")
            maps.append(_map_row(image_id, model, _raw(1, 8) if moved else _raw(4, 4), 0, probability))
            predictions.append({"image_id": image_id, "image_sha256": "0" * 64, "model": model, "width": SIDE,
                                "height": SIDE, "predicted_index": 0, "predicted_name": "cat",
                                "probability": probability, "true_index": 0, "true_name": "cat", "correct": True})
    settings = {"models": [{"name": m, "architecture": "hand", "weights_sha256": None, "random_weights": False,
                            "classes": 2, "layers": ["features"], "preprocessing": {"fit": "squash"}}
                           for m in models], "methods": ["gradcam"], "targets": "both"}
    store = Store.open(folder, settings, "hand", "local")
    store.write({"maps": table("maps", maps), "predictions": table("predictions", predictions),
                 "skipped": table("skipped", [])})
    store.close("complete", {})
    return folder


def boxes_json() -> list[dict]:
    records = [{"file": name, "box": box, "class": 0} for name, (boxes, _, _) in IMAGES.items() for box in boxes]
    return records + [{"file": "absent.png", "box": [0, 0, 10, 10]},
                      {"file": "s1.png", "box": [0, 0, 9, 9], "class": 1},
                      {"file": "m1.png", "box": [200, 200, 300, 300], "class": "Cat"}]  # class by name; outside


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return write_store(tmp_path_factory.mktemp("stores") / "hand")


def test_per_image_hits_energy_and_strata_by_hand(store):
    report = localisation_by_stratum(store, json.dumps(boxes_json()), model="ckpt_a")
    assert report.unmatched == ["absent.png: no gradcam map of the predicted class in the store.",
                                "s1.png: no gradcam map of class 1 in the store.",
                                "m1.png: The box (200, 200, 300, 300) lies outside the 100 x 100 image."]
    got = {r.image_id: r for r in report.images}
    assert set(got) == set(IMAGES)
    for name, (boxes, hit, probability) in IMAGES.items():
        r = got[name]
        assert r.hit is hit, name
        assert r.energy == pytest.approx(1.0 if hit else 0.0, abs=1e-6), name
        assert r.instances == len(boxes) and r.probability == pytest.approx(probability)
        saliency = on_grid(_raw(4, 4), SIDE, SIDE)  # the metrics module's own number on the same grid
        assert r.energy == pytest.approx(energy(saliency, ground_truth(SIDE, SIDE, boxes=boxes)), abs=1e-9)
    assert got["s3.png"].area_fraction == pytest.approx(0.028)
    assert got["l1.png"].area_fraction == pytest.approx(0.36)
    cells = {(c.factor, c.stratum): c for c in report.cells}
    expected = {  # (n, hits) counted by hand from IMAGES
        ("all", "all"): (12, 9),
        ("size", "small (< 5%)"): (4, 2), ("size", "medium (5%-25%)"): (4, 3), ("size", "large (>= 25%)"): (4, 4),
        ("instances", "1"): (8, 7), ("instances", "2"): (2, 0), ("instances", "3+"): (2, 2),
        ("confidence", "< 0.5"): (3, 2), ("confidence", "0.5-0.9"): (4, 3), ("confidence", ">= 0.9"): (5, 4),
    }
    assert list(cells) == list(expected)  # ordered, "all" first, empty strata left out
    for key, (n, hits) in expected.items():
        assert cells[key].n == n, key
        assert cells[key].pointing == pytest.approx(hits / n), key
        assert cells[key].energy == pytest.approx(hits / n, abs=1e-6), key  # energy is 1 on a hit, 0 on a miss


def test_bootstrap_interval_is_seeded_contains_the_mean_and_narrows_with_n(store):
    from scipy.stats import bootstrap

    cells = {(c.factor, c.stratum): c for c in localisation_by_stratum(store, boxes_json(), seed=7).cells}
    again = {(c.factor, c.stratum): c for c in localisation_by_stratum(store, boxes_json(), seed=7).cells}
    assert cells == again  # seeded: the same numbers twice
    for c in cells.values():
        assert c.pointing_low <= c.pointing <= c.pointing_high
        assert c.energy_low - 1e-9 <= c.energy <= c.energy_high + 1e-9
    width = {k: c.pointing_high - c.pointing_low for k, c in cells.items()}
    assert width[("size", "large (>= 25%)")] == 0.0  # every image hits: no spread
    assert width[("all", "all")] < width[("size", "medium (5%-25%)")]  # 12 images narrower than 4 ...
    assert width[("size", "medium (5%-25%)")] <= width[("confidence", "< 0.5")]  # ... narrower than 3
    hits = np.array([1.0] * 9 + [0.0] * 3)
    reference = bootstrap((hits,), np.mean, n_resamples=2000, method="percentile", vectorized=True,
                          rng=np.random.default_rng(7)).confidence_interval
    mean, low, high = mean_ci(hits, seed=7)
    assert (mean, low, high) == (0.75, reference.low, reference.high)
    assert np.isnan(mean_ci(np.array([1.0]))[1])  # one image: no interval


def test_strata_cut_offs_are_parameters(store):
    images = localisation_by_stratum(store, boxes_json()).images
    cells = {(c.factor, c.stratum): c.n for c in strata(images, size_cuts=(0.03, 0.1))}
    assert cells[("size", "small (< 3%)")] == 2 and cells[("size", "medium (3%-10%)")] == 6


@pytest.mark.parametrize("data, message", [
    (b"{not json", "not valid JSON"), (b"[]", "non-empty JSON list"), (b'[{"box": [0, 0, 1, 1]}]', "needs a \"file\""),
    (b'[{"file": "a", "box": [0, 0, 1]}]', "four numbers"), (b'[{"file": "a", "box": [0, 0, "x", 1]}]', "four numbers"),
])
def test_bad_boxes_files_are_refused_with_a_sentence(data, message):
    with pytest.raises(EvaluationError, match=message):
        parse_boxes(data)


def test_several_boxes_of_one_file_and_class_are_one_group():
    groups = parse_boxes(json.dumps([{"file": "a", "box": [0, 0, 2, 2], "class": 1},
                                     {"file": "a", "box": [4, 4, 6, 6], "class": 1},
                                     {"file": "a", "box": [0, 0, 2, 2], "class": 0}]))
    assert [(g.file, g.class_ref, len(g.boxes)) for g in groups] == [("a", 1, 2), ("a", 0, 1)]


# --- the Review page's two views (AppTest) ------------------------------------------------------

def _review_page(monkeypatch, root: Path, view: str):
    from tests.review_store import open_review

    return open_review(monkeypatch, root, view)


def test_review_views_on_a_small_store(monkeypatch, store, tmp_path):
    from tests.test_app import plotly_array

    at = _review_page(monkeypatch, store.parent, "Checkpoints")
    assert at.multiselect(key="review_timeline_models:hand").value == list(MODELS)
    assert at.selectbox(key="review_timeline_image:hand").value.startswith("s")  # s*.png moved in ckpt_c
    captions = [c for image in at.image for c in image.captions]
    assert len(captions) == 3 and all("strength: raw max 2" in c for c in captions)  # each panel states its strength
    histogram = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in histogram["data"]] == ["ckpt_a -> ckpt_b", "ckpt_b -> ckpt_c", "ckpt_a -> ckpt_c"]
    assert (plotly_array(histogram["data"][0]["x"]) == 1.0).all()  # a and b hold the same maps
    moved = at.dataframe[-1].value
    assert list(moved["image"]) == ["s1.png"]  # ceil(5% of 12) = 1, lowest SSIM, ties by id

    (store / "boxes.json").write_text(json.dumps(boxes_json()))  # a boxes file in the store folder is listed
    at.radio(key="review_view").set_value("Localisation").run()
    at.selectbox(key="review_boxes_pick:hand").set_value("boxes.json").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["n"])[:4] == [12, 4, 4, 4] and list(table["pointing game"])[:2] == [0.75, 0.5]
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert len(bars) == 4 and "error_y" in bars[0]
    assert any("3 box groups have no map in the store or no usable box" in w.value for w in at.warning)


def test_one_model_store_says_the_timeline_needs_checkpoints(monkeypatch, tmp_path):
    write_store(tmp_path / "one", models=("only",))
    at = _review_page(monkeypatch, tmp_path, "Checkpoints")
    assert any("needs several checkpoints" in i.value for i in at.info)


def test_a_bad_boxes_upload_is_one_plain_error(monkeypatch, store):
    at = _review_page(monkeypatch, store.parent, "Localisation")
    at.selectbox(key="review_boxes_pick:hand").set_value("an uploaded file").run()
    assert any("Upload the boxes" in i.value for i in at.info)
    at.file_uploader(key="review_boxes_upload:hand").upload("boxes.json", b"{oops", "application/json").run()
    assert [e.value for e in at.error] and "not valid JSON" in at.error[0].value
    assert not at.exception


def test_every_view_follows_a_run_that_adds_parts(monkeypatch, tmp_path):
    from explainers.review.stores import parts_key

    folder = write_store(tmp_path / "growing")
    first = parts_key(folder)
    at = _review_page(monkeypatch, tmp_path, "Gallery")
    assert any(c.value.startswith("36 maps match") for c in at.caption)
    at.radio(key="review_view").set_value("Strategies").run()
    assert at.subheader[0].value.startswith("cat: 12 images")  # SpRAy of class cat, the first model
    at.radio(key="review_view").set_value("Checkpoints").run()
    assert any(c.value.startswith("12 images, layer features") for c in at.caption)
    write_store(folder, images={"x1.png": ([HIT_SMALL], True, 0.3)})  # a second run adds one image
    assert len(parts_key(folder)) == len(first) + 1
    at.run()
    assert any(c.value.startswith("13 images, layer features") for c in at.caption)
    at.radio(key="review_view").set_value("Strategies").run()
    assert at.subheader[0].value.startswith("cat: 13 images")
    at.radio(key="review_view").set_value("Gallery").run()
    assert any(c.value.startswith("39 maps match") for c in at.caption)
    assert not at.exception and not at.error
