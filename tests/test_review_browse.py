"""Review page engine: filters, sorts and pages over a hand-made store whose expected orders and values are
computed by hand (explainers.review.browse)."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from explainers.review import browse, verdicts
from explainers.review.browse import Filter
from explainers.scale import rows as store_rows

# image -> (predicted index, name, top-1 probability, true index, name)
IMAGES = {"a.png": (0, "cat", 0.9, 0, "cat"), "b.png": (1, "dog", 0.6, 0, "cat"), "c.png": (1, "dog", 0.3, 1, "dog")}
# image -> method -> (2 x 2 raw map, entropy written to the store)
MAPS = {
    "a.png": {"gradcam": ([[1, 2], [3, 4]], 0.5), "eigencam": ([[2, 4], [6, 8]], 0.4)},  # r = 1: disagreement 0
    "b.png": {"gradcam": ([[1, 2], [3, 4]], 0.2), "eigencam": ([[4, 3], [2, 1]], 0.8)},  # r = -1: 2
    "c.png": {"gradcam": ([[1, 0], [0, 0]], 0.9), "eigencam": ([[0, 1], [0, 0]], 0.1)},  # r = -1/3: 4/3
}


def make_store(folder) -> None:
    """A store of three 2 x 2 images, two methods, the predicted class's map only."""
    maps, predictions = [], []
    for image_id, (pred, pred_name, prob, true, true_name) in IMAGES.items():
        base = {"image_id": image_id, "image_sha256": "0" * 64, "model": "m", "width": 2, "height": 2}
        predictions.append({**base, "predicted_index": pred, "predicted_name": pred_name, "probability": prob,
                            "top_indices": [pred], "top_names": [pred_name], "top_probabilities": [prob],
                            "label": true_name, "true_index": true, "true_name": true_name,
                            "true_probability": prob if pred == true else 0.1, "correct": pred == true})
        for method, (raw, entropy) in MAPS[image_id].items():
            data, scale = store_rows.encode_raw(np.asarray(raw, np.float32))
            maps.append({**base, "method": method, "layer": "L", "class_index": pred, "class_name": pred_name,
                         "rank": 1, "is_true": pred == true, "score": 1.0, "probability": prob, "raw": data,
                         "raw_shape": [2, 2], "raw_scale": scale, "max": float(np.max(raw)), "mean": 1.0,
                         "entropy": entropy, "peak_x": 0.5, "peak_y": 0.5, "com_x": 0.5, "com_y": 0.5})
    tables = {"maps": maps, "predictions": predictions, "skipped": []}
    for name, table_rows in tables.items():
        (folder / name).mkdir(parents=True)
        pq.write_table(store_rows.table(name, table_rows), folder / name / "part-0.parquet")
    (folder / "run.json").write_text(json.dumps({"store_version": 1, "source": str(folder / "images"),
                                                 "settings": {"models": [{"name": "m"}], "methods": list(MAPS["a.png"]),
                                                              "targets": "predicted"}}))


@pytest.fixture()
def store(tmp_path):
    make_store(tmp_path / "store")
    return tmp_path / "store"


def ids(page: browse.Page) -> list[tuple[str, str]]:
    return [(r.image_id, r.method) for r in page.rows]


def test_filters_select_the_hand_counted_rows(store):
    assert browse.page(store).total == 6
    assert ids(browse.page(store, Filter(correct="incorrect"))) == [("b.png", "eigencam"), ("b.png", "gradcam")]
    assert {r.image_id for r in browse.page(store, Filter(true_class="cat")).rows} == {"a.png", "b.png"}
    assert ids(browse.page(store, Filter(predicted_class="dog", method="gradcam"))) == [("b.png", "gradcam"),
                                                                                         ("c.png", "gradcam")]
    assert {r.image_id for r in browse.page(store, Filter(probability=(0.5, 1.0))).rows} == {"a.png", "b.png"}
    assert browse.page(store, Filter(probability=(0.6, 0.6))).total == 2  # both ends included
    assert browse.page(store, Filter(model="other")).total == 0
    assert browse.page(store, Filter(true_class="cat' OR 1=1 --")).total == 0  # a parameter, not SQL


def test_sorts_by_confidence_and_entropy(store):
    by_confidence = browse.page(store, sort="confidence_asc")
    assert [r.image_id for r in by_confidence.rows] == ["c.png", "c.png", "b.png", "b.png", "a.png", "a.png"]
    assert [r.sort_value for r in by_confidence.rows][::2] == pytest.approx([0.3, 0.6, 0.9])
    high = browse.page(store, Filter(method="gradcam"), "entropy_desc")
    assert [r.image_id for r in high.rows] == ["c.png", "a.png", "b.png"]  # 0.9, 0.5, 0.2
    assert [r.image_id for r in browse.page(store, Filter(method="eigencam"), "entropy_asc").rows] == \
        ["c.png", "a.png", "b.png"]  # 0.1, 0.4, 0.8


def test_disagreement_is_one_minus_the_mean_pearson_correlation(store):
    table = browse.disagreements(store).to_pylist()
    values = {row["image_id"]: row["disagreement"] for row in table}
    # a: maps proportional (r = 1); b: reversed (r = -1); c: [1,0,0,0] vs [0,1,0,0]: cov -0.25 / var 0.75 = -1/3
    assert values == pytest.approx({"a.png": 0.0, "b.png": 2.0, "c.png": 4 / 3}, abs=1e-6)
    shown = browse.page(store, Filter(method="gradcam"), "disagreement")
    assert [r.image_id for r in shown.rows] == ["b.png", "c.png", "a.png"]
    assert [r.sort_value for r in shown.rows] == pytest.approx([2.0, 4 / 3, 0.0], abs=1e-6)
    assert browse.pearson_disagreement([np.ones((2, 2)), np.eye(2)]) is None  # a flat map has no correlation


def test_mass_outside_the_box(store):
    # a (gradcam 1 2 / 3 4): box = right column, inside 2 + 4 of 10 -> outside 0.4 (eigencam: same shares)
    # c: box = top-left pixel; gradcam's mass is all there (outside 0), eigencam's all outside (1)
    boxes = browse.parse_boxes([{"file": "a.png", "box": [1, 0, 2, 2]}, {"file": "c.png", "box": [0, 0, 1, 1]}])
    outside = browse.outside_mass(store, boxes)
    values = {(r["image_id"], r["method"]): r["outside"] for r in outside.to_pylist()}
    assert values == pytest.approx({("a.png", "gradcam"): 0.4, ("a.png", "eigencam"): 0.4,
                                    ("c.png", "gradcam"): 0.0, ("c.png", "eigencam"): 1.0}, abs=1e-6)
    shown = browse.page(store, sort="outside", outside=outside)
    assert ids(shown) == [("c.png", "eigencam"), ("a.png", "eigencam"), ("a.png", "gradcam"), ("c.png", "gradcam"),
                          ("b.png", "eigencam"), ("b.png", "gradcam")]  # no box for b: last
    with pytest.raises(browse.BrowseError, match="boxes file"):
        browse.page(store, sort="outside")


def test_paging_and_the_raw_maps_of_the_page(store):
    first = browse.page(store, sort="confidence_desc", page_number=0, page_size=4)
    last = browse.page(store, sort="confidence_desc", page_number=9, page_size=4)  # clamped to the last page
    assert (first.total, first.pages, len(first.rows)) == (6, 2, 4)
    assert (last.page_number, ids(last)) == (1, [("c.png", "eigencam"), ("c.png", "gradcam")])
    np.testing.assert_array_equal(last.rows[0].raw_map(), [[0, 1], [0, 0]])
    np.testing.assert_array_equal(first.rows[3].raw_map(), [[1, 2], [3, 4]])  # b, gradcam


def test_verdict_filter_uses_the_latest_verdict(store):
    verdicts.record(store, "b.png", "m", "unsure", "", "Ada")
    verdicts.record(store, "b.png", "m", "spurious evidence", "the background", "Bo")
    spurious = browse.page(store, Filter(verdict="spurious evidence"))
    assert {(r.image_id, r.verdict) for r in spurious.rows} == {("b.png", "spurious evidence")}
    assert browse.page(store, Filter(verdict="unsure")).total == 0  # an earlier verdict, not the image's now
    assert {r.image_id for r in browse.page(store, Filter(verdict=browse.NO_VERDICT)).rows} == {"a.png", "c.png"}


def test_unknown_values_are_refused_with_a_sentence(store):
    with pytest.raises(browse.BrowseError, match="Unknown sort"):
        browse.page(store, sort="random()")
    with pytest.raises(browse.BrowseError, match="Unknown verdict"):
        browse.page(store, Filter(verdict="great"))
    with pytest.raises(browse.BrowseError, match="four numbers"):
        browse.parse_boxes([{"file": "a.png", "box": [1, 2]}])
    with pytest.raises(browse.BrowseError, match="needs a \"file\""):
        browse.parse_boxes([{"box": [1, 2, 3, 4]}])
    with pytest.raises(browse.BrowseError, match="not valid JSON"):
        browse.boxes_from_json("[{'file': 'a.png'}")
