"""The run command and its Parquet store: schema, numbers, skipped files, resume, kills, settings, queries."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from explainers.cli import main
from explainers.dataset import DatasetError
from explainers.pipeline import explain, on_grid
from explainers.io import image_sha256, load_image
from explainers.scale.rows import SCHEMAS, decode_raw, encode_raw, map_stats
from explainers.scale.sources import list_source
from explainers.scale.store import committed
from tests.scale_images import make_folder

ROOT = Path(__file__).resolve().parents[1]
TABBY, CUP = 281, 968


def _table(store: Path, name: str):
    import pyarrow as pa

    return pa.concat_tables([pq.read_table(p) for p in committed(store, name)])


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("scale") / "set", 9)


@pytest.fixture(scope="module")
def store(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("store") / "store"
    code, text = _cli("run", str(source), "--out", str(out), "--method", "gradcam", "eigencam", "--targets", "both",
                      "--batch-size", "4", "--part-images", "4", "--quiet")
    assert code == 0 and "9 images explained, 2 skipped, 0 already stored" in text
    return out


def test_map_statistics_by_hand():
    stats = map_stats(np.array([[0.0, 0.0], [0.0, 4.0]]))
    assert stats == {"max": 4.0, "mean": 1.0, "entropy": 0.0, "peak_x": 0.75, "peak_y": 0.75,
                     "com_x": 0.75, "com_y": 0.75}
    flat = map_stats(np.ones((2, 4)))
    assert flat["entropy"] == pytest.approx(1.0) and (flat["com_x"], flat["com_y"]) == (0.5, 0.5)
    half = map_stats(np.array([[1.0, 3.0]]))  # p = (1/4, 3/4): H = 0.5623 nats / log 2
    assert half["entropy"] == pytest.approx(0.811278, abs=1e-6) and half["com_x"] == pytest.approx(0.25 + 0.75 * 0.5)
    assert map_stats(np.zeros((3, 3)))["entropy"] is None
    raw = np.array([[0.0, 1e-3], [70000.0, 3.0]], np.float32)  # beyond float16's range, yet stored
    data, scale = encode_raw(raw)
    assert len(data) == 8 and scale == 2.0 ** 17
    assert np.allclose(decode_raw(data, (2, 2), scale), raw, rtol=1e-3, atol=70000 * 1e-3 / 2 ** 10)


def test_store_schema_rows_and_numbers(store, source, lite0):
    for name, schema in SCHEMAS.items():
        for part in committed(store, name):
            assert pq.read_schema(part).remove_metadata() == schema
    maps, predictions, skipped = (_table(store, n).to_pylist() for n in ("maps", "predictions", "skipped"))
    assert {s["image_id"]: s["reason"].split(" (")[0] for s in skipped} == {
        "cup/broken.jpg": "The image file is truncated or damaged.",
        "tabby/notes.txt": "This file is not an image CAMscope can read"}
    assert len(predictions) == 9 and len({p["image_id"] for p in predictions}) == 9
    by_id = {p["image_id"]: p for p in predictions}
    for p in predictions:
        folder = p["image_id"].split("/")[0]
        assert p["label"] == folder and p["true_index"] == {"tabby": TABBY, "cup": CUP}.get(folder)
        assert p["correct"] == (None if p["true_index"] is None else p["predicted_index"] == p["true_index"])
        assert p["top_indices"][0] == p["predicted_index"] and len(p["top_names"]) == 5
    wanted = {i: {p["predicted_index"]} | ({p["true_index"]} - {None}) for i, p in by_id.items()}
    assert len(maps) == 2 * sum(len(w) for w in wanted.values())  # two methods
    assert Counter((m["image_id"], m["method"], m["class_index"]) for m in maps).most_common(1)[0][1] == 1

    image_id = "tabby/0000.jpg"  # one image checked against explain() on its own
    image = load_image(source / image_id)
    alone = explain(lite0, image, methods=["gradcam", "eigencam"], classes=sorted(wanted[image_id]))
    for r in alone.results:
        row = next(m for m in maps if (m["image_id"], m["method"], m["class_index"]) == (image_id, r.method, r.class_index))
        assert row["image_sha256"] == image_sha256(image) and (row["width"], row["height"]) == image.size
        assert row["raw_shape"] == [7, 7] and row["layer"] == "bn2" and row["model"] == "efficientnet_lite0"
        raw = decode_raw(row["raw"], row["raw_shape"], row["raw_scale"])
        assert np.abs(raw - r.raw).max() <= 1e-3 * r.raw.max()  # float16: 3 significant digits
        assert np.abs(on_grid(raw, *image.size) - r.map).max() <= 2e-3
        assert row["probability"] == pytest.approx(r.probability, abs=1e-6)
        assert row["rank"] == 1 + sum(p.probability > r.probability for p in alone.predictions)
        assert row["is_true"] == (r.class_index == TABBY)
        assert row["max"] == pytest.approx(r.raw.max(), rel=1e-6) and row["entropy"] == pytest.approx(
            map_stats(r.raw)["entropy"], abs=1e-6)

    run = json.loads((store / "run.json").read_text())
    assert run["status"] == "complete" and run["engine"] == "local"
    assert run["counts"] == {"images": 11, "maps": len(maps), "predictions": 9, "skipped": 2}
    assert run["settings"]["methods"] == ["gradcam", "eigencam"] and run["settings"]["targets"] == "both"
    assert run["settings"]["models"][0]["weights_sha256"] == lite0.weights_sha256
    assert run["versions"]["pyarrow"] and run["started"] <= run["ended"]
    assert not list(store.rglob("*.tmp"))


def test_rerun_adds_only_what_is_missing_and_refuses_other_settings(store, source, tmp_path):
    code, text = _cli("run", str(source), "--out", str(store), "--method", "gradcam", "eigencam",
                      "--targets", "both", "--quiet")
    assert code == 0 and "0 images explained, 0 skipped, 11 already stored" in text
    assert len(_table(store, "predictions")) == 9
    code, text = _cli("run", str(source), "--out", str(store), "--method", "gradcam", "--targets", "both")
    assert code == 2
    err = subprocess.run([sys.executable, "-m", "explainers", "run", str(source), "--out", str(store),
                          "--targets", "top-k:2", "--method", "gradcam", "eigencam", "--quiet"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert err.returncode == 2 and err.stderr.count("\n") == 1
    assert "holds other settings (targets: stored \"both\", asked \"top-k:2\")" in err.stderr


def test_query_table_csv_and_errors(store, tmp_path):
    sql = ("SELECT m.image_id, m.entropy FROM maps m JOIN predictions p USING (image_id, model) "
           "WHERE p.label = 'tabby' AND m.method = 'gradcam' AND m.class_index = p.predicted_index "
           "ORDER BY m.entropy DESC")
    code, text = _cli("query", str(store), sql)
    lines = text.splitlines()
    assert code == 0 and lines[0].split() == ["image_id", "entropy"] and len(lines) == 1 + 3
    out = tmp_path / "q.csv"
    code, _ = _cli("query", str(store), sql, "--csv", str(out))
    rows = list(csv.DictReader(out.open()))
    expected = sorted((m for m in _table(store, "maps").to_pylist()
                       if m["image_id"].startswith("tabby/") and m["method"] == "gradcam" and m["rank"] == 1),
                      key=lambda m: -m["entropy"])
    assert [r["image_id"] for r in rows] == [m["image_id"] for m in expected]
    assert [float(r["entropy"]) for r in rows] == pytest.approx([m["entropy"] for m in expected], rel=1e-6)
    code, _ = _cli("query", str(store), "SELECT count(*) AS n FROM skipped", "--csv", "-")
    assert code == 0
    err = subprocess.run([sys.executable, "-m", "explainers", "query", str(store), "SELECT nosuch FROM maps"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert err.returncode == 2 and "The query failed" in err.stderr and err.stderr.count("\n") == 1
    assert main(["query", str(tmp_path), "SELECT 1"]) == 2  # not a store


def test_sources_zip_and_listings(source, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text(f"path,label\n{source}/cup/0001.jpg,cup\nset/tabby/0000.jpg,281\nmissing.png,\n")
    (tmp_path / "set").symlink_to(source)
    refs = list_source(listing)
    assert [(r.image_id, r.label) for r in refs] == [(f"{source}/cup/0001.jpg", "cup"), ("missing.png", None),
                                                     ("set/tabby/0000.jpg", "281")]
    assert load_image(refs[2].read()).size == (96, 72)
    import pyarrow as pa
    pq.write_table(pa.table({"image": ["cup/0001.jpg"]}), tmp_path / "list.parquet")
    (tmp_path / "cup").symlink_to(source / "cup")
    assert [(r.image_id, r.label) for r in list_source(tmp_path / "list.parquet")] == [("cup/0001.jpg", None)]
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                z.write(path, f"set/{path.relative_to(source)}")
    refs = list_source(archive)
    assert [r.image_id for r in refs] == sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    assert refs[0].label == "astronaut" and refs[0].read() == (source / refs[0].image_id).read_bytes()
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("../evil.jpg", b"x")
    with pytest.raises(DatasetError, match="points outside"):
        list_source(bad)
    with pytest.raises(DatasetError, match="no column of image paths"):
        (tmp_path / "x.csv").write_text("name\na.jpg\n")
        list_source(tmp_path / "x.csv")


def _start(source: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "explainers", "run", str(source), "--out", str(out),
                             "--batch-size", "2", "--part-images", "2", "--quiet"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_parts(out: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 240
    while len(list((out / "predictions").glob("part-*.parquet"))) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never committed a part"
        time.sleep(0.1)


def test_killed_runs_lose_nothing_and_a_rerun_completes_without_duplicates(tmp_path):
    source, out = make_folder(tmp_path / "set", 40), tmp_path / "store"
    first = _start(source, out)
    _wait_for_parts(out, 2, first)
    first.send_signal(signal.SIGTERM)  # graceful: commits finished batches, records "interrupted"
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130 and "interrupted: rerun the same command" in err
    assert json.loads((out / "run.json").read_text())["runs"][-1]["status"] == "interrupted"
    stored = len(_table(out, "predictions")) + len(_table(out, "skipped"))
    assert 2 <= stored < 42 and not list(out.rglob("*.tmp"))
    for name in ("maps", "skipped"):  # every part on disk is committed
        assert {p.name for p in (out / name).glob("part-*")} == {p.name for p in committed(out, "predictions")}

    second = _start(source, out)
    _wait_for_parts(out, len(committed(out, "predictions")) + 1, second)
    second.kill()  # no chance to clean up: whatever it left half-written must not count
    second.communicate(timeout=60)

    code, text = _cli("run", str(source), "--out", str(out), "--batch-size", "8", "--quiet")
    assert code == 0 and "the store" in text
    predictions, maps, skipped = (_table(out, n) for n in ("predictions", "maps", "skipped"))
    assert sorted(predictions.column("image_id").to_pylist()) == sorted(
        p.relative_to(source).as_posix() for p in source.rglob("*.jpg") if p.name != "broken.jpg")
    assert len(maps) == 40 and len(set(maps.column("image_id").to_pylist())) == 40  # one map each, no repeat
    assert sorted(skipped.column("image_id").to_pylist()) == ["cup/broken.jpg", "tabby/notes.txt"]
    run = json.loads((out / "run.json").read_text())
    assert [r["status"] for r in run["runs"]][0] == "interrupted" and run["status"] == "complete"
    assert run["counts"]["images"] == 42 and not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("argv, message", [
    (["--targets", "best"], "Unknown targets 'best'"),
    (["--method", "scorecam"], "Score-CAM need more than one pass"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--engine", "spark"], "invalid choice: 'spark'"),
])
def test_bad_run_arguments_exit_2_with_one_line(source, tmp_path, capsys, argv, message):
    assert main(["run", str(source), "--out", str(tmp_path / "s"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "s").exists()


def test_a_folder_that_is_not_a_store_is_refused(source, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["run", str(source), "--out", str(tmp_path), "--quiet"]) == 2
    assert "a folder with other files but no run.json" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
