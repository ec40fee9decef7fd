"""SpRAy (explainers/review/strategies.py): a planted shortcut is found as a strategy of its own; the
eigengap, downsizing and tiny classes by hand; the CLI's CSV, self-contained HTML and errors."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from explainers.cli import main
from explainers.review.strategies import (StrategySettings, cluster_maps, downsize, eigengap_k, find_strategies)
from explainers.scale.query import query
from explainers.scale.rows import decode_raw
from shortcut_set import planted_store


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A store of the shortcut CNN's maps (the model's accuracy is asserted while it is built)."""
    return planted_store(tmp_path_factory.mktemp("shortcut"))


def test_the_marker_images_form_a_cluster_of_their_own(planted):
    store, kinds = planted
    found = find_strategies(store, StrategySettings(method="gradcam"))
    assert (found.model, found.layer, found.method) == ("shortcut", "features.4", "gradcam")
    a = next(c for c in found.classes if c.class_name == "A")
    assert a.images == 60
    members = [i for i in found.images if i.class_index == 0]
    markers = [i.cluster for i in members if kinds[i.image_id] == "marker"]
    home = np.bincount(markers).argmax()
    in_home = [kinds[i.image_id] for i in members if i.cluster == home]
    purity = in_home.count("marker") / len(in_home)  # the marker cluster holds markers only ...
    recall = markers.count(home) / len(markers)  # ... and (nearly) all of them
    print(f"marker cluster: purity {purity:.3f}, recall {recall:.3f}, k = {len(a.clusters)}")
    assert purity >= 0.9 and recall >= 0.9, (purity, recall)
    assert len(a.clusters) == 2 and a.eigenvalues[1] < 0.05 and a.eigengap > 0.1  # two near-separate groups: k = 2
    peak = np.unravel_index(np.argmax(a.clusters[home].mean_map), (16, 16))
    assert peak[0] <= 3 and peak[1] <= 3, peak  # the marker cluster's mean map sits on the corner
    other = np.unravel_index(np.argmax(a.clusters[1 - home].mean_map), (16, 16))
    assert all(5 <= p <= 10 for p in other), other  # the honest one on the centre disc
    assert a.clusters[home].representatives[0] in kinds and kinds[a.clusters[home].representatives[0]] == "marker"


def test_one_store_connection_for_every_class_and_strengths_as_stored(planted, monkeypatch):
    from explainers.review import strategy_maps

    store, _ = planted
    opened, closed, real = [], [], strategy_maps.connect

    class Counted:
        def __init__(self, con) -> None:
            self.con = con

        def execute(self, *args):
            return self.con.execute(*args)

        def close(self) -> None:
            closed.append(self)
            self.con.close()

    def counted(folder):
        opened.append(Counted(real(folder)))
        return opened[-1]

    monkeypatch.setattr(strategy_maps, "connect", counted)
    found = find_strategies(store, StrategySettings(method="gradcam"))
    assert len(found.classes) == 2 and len(opened) == 3  # the store's choices, its classes, then every class's maps
    assert closed == opened
    opened.clear()
    closed.clear()
    monkeypatch.setattr("explainers.review.strategies._class_result", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        find_strategies(store, StrategySettings(method="gradcam"))
    assert len(opened) == 3 and closed == opened  # closed when a class fails too
    monkeypatch.undo()
    stored = dict(query(store, "SELECT image_id, max FROM maps WHERE method = 'gradcam'")[1])
    assert found.strengths and all(found.strengths[i] == pytest.approx(stored[i], rel=1e-6) for i in found.strengths)
    decoded = {r[0]: float(np.nanmax(decode_raw(r[1], r[2], r[3]), initial=0.0)) for r in query(
        store, "SELECT image_id, raw, raw_shape, raw_scale FROM maps WHERE method = 'gradcam'")[1]}
    assert any(decoded[i] != stored[i] for i in found.strengths)  # float16 rounding: the stored max is the exact one


def test_eigengap_picks_two_on_two_map_shapes():
    assert eigengap_k([0.0, 0.0, 0.5, 0.6]) == (2, 0.5)
    assert eigengap_k([0.0, 0.3, 0.4, 0.9], max_clusters=2) == (1, 0.3)  # only gaps 1-2 and 2-3 are looked at
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    blob = np.exp(-((yy - 4) ** 2 + (xx - 4) ** 2) / 8.0)
    bar = (np.abs(xx - 12) <= 1).astype(float)
    maps = np.stack([downsize(s + rng.uniform(0, 0.1, (16, 16))) for s in [blob] * 12 + [bar] * 12])
    labels, eigenvalues, gap, reason = cluster_maps(maps)
    assert len(set(labels)) == 2 and gap == pytest.approx(eigenvalues[2] - eigenvalues[1])
    assert (labels[:12] == labels[0]).all() and (labels[12:] == labels[12]).all() and labels[0] != labels[12]
    assert reason.startswith("2 clusters")


def test_downsize_by_hand_and_tiny_classes():
    raw = np.array([[1, 3, 0, 0], [1, 3, 0, 0], [0, 0, 8, 8], [0, 0, 8, np.nan]], np.float32)
    # 2x2 area means: [[2, 0], [0, 6]] (NaN counts as 0), divided by the maximum 6
    assert downsize(raw, 2) == pytest.approx(np.array([[2 / 6, 0], [0, 1]]), abs=1e-6)
    assert downsize(np.zeros((7, 7)), 4).sum() == 0.0  # an empty map stays empty, no division by zero
    labels, eigenvalues, gap, reason = cluster_maps(np.zeros((3, 16, 16)))
    assert labels.tolist() == [0, 0, 0] and eigenvalues == [] and gap is None
    assert reason == "one cluster: only 3 images; at least 10 are needed to look for strategies"


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_the_csv_and_a_self_contained_html(planted, tmp_path, capsys):
    store, kinds = planted
    code, out, _ = _cli(capsys, "strategies", str(store), "--out", str(tmp_path / "s"), "--classes", "A")
    assert code == 0 and "A (0): 60 images, 2 clusters of sizes 30, 30" in out
    with open(tmp_path / "s" / "strategies.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:5] == ["image_id", "class_index", "cluster", "distance_to_centre", "is_representative"]
    body = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert sorted(r["image_id"] for r in body) == sorted(i for i in kinds if i.startswith("A/"))
    found = find_strategies(store, StrategySettings(classes=("0",)))
    _, stored = query(store, "SELECT image_id, raw, raw_shape, raw_scale FROM maps WHERE method = 'gradcam' "
                             "AND class_index = 0 AND rank = 1")
    grids = {i: downsize(decode_raw(raw, shape, scale)) for i, raw, shape, scale in stored}
    for row in body:  # distance_to_centre is the Euclidean distance to the cluster's mean map
        cluster = found.classes[0].clusters[int(row["cluster"])]
        members = [grids[r["image_id"]] for r in body if r["cluster"] == row["cluster"]]
        assert cluster.mean_map == pytest.approx(np.mean(members, axis=0), abs=1e-6)
        distance = np.linalg.norm(grids[row["image_id"]] - cluster.mean_map)
        assert float(row["distance_to_centre"]) == pytest.approx(distance, rel=1e-4, abs=1e-6)
        assert (row["is_representative"] == "True") == (row["image_id"] in cluster.representatives)
    assert [sum(r["is_representative"] == "True" and r["cluster"] == c for r in body) for c in "01"] == [3, 3]
    _, correct = query(store, "SELECT count(*), avg(correct::INT) FROM predictions WHERE predicted_index = 0")[1][0]
    assert [c.accuracy for c in found.classes[0].clusters] == [pytest.approx(correct)] * 2
    page = (tmp_path / "s" / "strategies.html").read_text()
    references = re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]+)""", page, flags=re.I)
    assert references and all(r.startswith("data:image/png;base64,") for r in references)
    assert "http" not in "".join(references) and "<script" not in page.lower()
    assert page.count("<img") == 1 + 2 * (1 + 3 + 3)  # eigenvalues; per cluster: mean map, 3 + 3 thumbnails


@pytest.mark.parametrize("argv, message", [
    (["NOSTORE", "--out", "OUT"], "is not a CAMscope store"),
    (["STORE", "--out", "OUT", "--method", "scorecam"], "The store holds no 'scorecam' maps; it holds: eigencam, gradcam."),
    (["STORE", "--out", "FILE"], "is an existing file"),
    (["STORE", "--out", "OUT", "--classes", "zebra"], "No stored map is of class 'zebra'"),
    (["STORE", "--out", "OUT", "--layer", "features.1"], "no maps of model any at layer features.1"),
    (["STORE", "--out", "OUT", "--by", "true"], "grouping by the true class needs a run with --targets true or both"),
    (["STORE", "--out", "OUT", "--grid", "1"], "--grid must be between 2 and 64, not 1"),
])
def test_cli_errors_exit_2_with_one_line(planted, tmp_path, capsys, argv, message):
    store, _ = planted
    (tmp_path / "FILE").write_text("x")
    names = {"STORE": str(store), "NOSTORE": str(tmp_path / "nothing"), "OUT": str(tmp_path / "out"),
             "FILE": str(tmp_path / "FILE")}
    code, _, err = _cli(capsys, "strategies", *[names.get(a, a) for a in argv])
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_large_classes_take_the_sparse_eigensolver_with_the_same_result(monkeypatch):
    import explainers.review.strategies as strategies

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:16, :16]
    shapes = [np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0) for cy, cx in [(3, 3), (8, 8), (12, 4)]]
    maps = np.stack([downsize(shapes[i % 3] + rng.uniform(0, 0.3, (16, 16))) for i in range(300)])
    dense = cluster_maps(maps)
    monkeypatch.setattr(strategies, "DENSE", 100)  # 300 images: ARPACK on the sparse graph
    sparse = cluster_maps(maps)
    assert sparse[1] == pytest.approx(dense[1], abs=1e-6) and sparse[3] == dense[3]
    assert (sparse[0] == dense[0]).all() and dense[3].startswith("3 clusters")
    assert all(len(set(dense[0][i::3])) == 1 for i in range(3))  # each shape one cluster


def test_thumbnails_use_the_original_image_and_fall_back_to_the_map(planted, tmp_path):
    import json
    import shutil

    from explainers.review.strategies_report import source_reader, write_html

    store, _ = planted
    image = source_reader(store)("A/marker-030.png")
    assert image is not None and image.size == (32, 32)
    assert np.asarray(image)[3, 3].tolist() == [255, 255, 255]  # the white corner marker of the original
    moved = tmp_path / "moved"
    shutil.copytree(store, moved)
    run = json.loads((moved / "run.json").read_text())
    (moved / "run.json").write_text(json.dumps({**run, "source": str(tmp_path / "gone")}))
    assert source_reader(moved)("A/marker-030.png") is None
    found = find_strategies(moved, StrategySettings(classes=("A",)))
    assert "data:image/png;base64," in write_html(found, tmp_path / "s.html").read_text()
