"""Labelled sets: safe reading (folder and zip), class mapping, batched prediction, the confusion matrix
(checked against per-image predict() and against outcomes known by hand), maps of many images, the CLI."""
from __future__ import annotations

import csv
import io
import json
import os
import stat
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explainers.batch import explain_batch
from explainers.cli import main
from explainers.confusion import (MapRequest, confusion_csv, confusion_matrix, per_class_accuracy,
                                  predict_dataset, predictions_csv)
from explainers.class_names import map_folders, normalize_name
from explainers.dataset import DatasetError, DatasetLimits, read_dataset
from explainers.errors import LayerError, MethodError
from explainers.pipeline import explain, predict
from explainers.io import DAMAGED, EMPTY, NOT_AN_IMAGE, load_image
from tests.labelled_set import (CUP, EGYPTIAN_CAT, ESPRESSO, EXPECTED_CELLS, TABBY, labelled_images, write_folder,
                                zip_bytes)

LABELS = {"Egyptian_cat": EGYPTIAN_CAT, "cup": CUP, "espresso": ESPRESSO, "tabby": TABBY}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_folder(tmp_path_factory.mktemp("set"))


@pytest.fixture(scope="module")
def run(lite0, folder):
    dataset = read_dataset(folder)
    return dataset, predict_dataset(lite0, dataset, map_folders(dataset.folders, lite0.categories), batch_size=5)


def test_folder_is_read_in_imagefolder_layout(folder):
    dataset = read_dataset(folder)
    assert dataset.folders == ["Egyptian_cat", "cup", "espresso", "tabby"]  # sorted, as ImageFolder sorts
    assert len(dataset.files) == 12 and not dataset.skipped
    assert dataset.files[0].path == "Egyptian_cat/gray.png" and dataset.files[0].folder == "Egyptian_cat"
    assert load_image(dataset.files[0].data).size == (451, 300)


def test_folders_map_to_classes_by_name(lite0):
    assert map_folders(["Egyptian_cat", "cup", "ESPRESSO", "tabby"], lite0.categories) == {
        "Egyptian_cat": EGYPTIAN_CAT, "cup": CUP, "ESPRESSO": ESPRESSO, "tabby": TABBY}
    assert normalize_name("  Egyptian__CAT ") == normalize_name("egyptian-cat") == "egyptian cat"
    mapped = map_folders(["kitty", "mug", "cup"], lite0.categories, {"kitty": 281, "mug": "coffee mug"})
    assert mapped == {"kitty": TABBY, "mug": 504, "cup": CUP}
    assert map_folders(["a"], lite0.categories, {"a": "7"}) == {"a": 7}  # digits from a text field


@pytest.mark.parametrize("folders, mapping, message", [
    (["kitty", "puppy", "cup"], None, "kitty, puppy"),
    (["Cardigan"], None, "classes 264, 474 share this name"),
    (["a"], {"a": 1000}, "classes 0 to 999"),
    (["a"], {"a": "unicorn"}, "not a class of this model"),
    (["a"], {"a": "cardigan"}, "map it to one class index"),
    (["a"], {"a": 1, "b": 2}, "folders the dataset does not have: 'b'"),
])
def test_unmapped_folders_are_a_clear_error(lite0, folders, mapping, message):
    with pytest.raises(DatasetError, match=message):
        map_folders(folders, lite0.categories, mapping)


def test_confusion_matrix_matches_per_image_predict_and_hand_known_outcomes(lite0, run, folder):
    dataset, result = run
    assert len(result.rows) == 12 and not result.skipped
    per_image = {f.path: predict(lite0, load_image(f.data), k=1)[0] for f in dataset.files}
    for row in result.rows:  # batched prediction = one image at a time
        assert row.predicted_index == per_image[row.path].index
        assert row.probability == pytest.approx(per_image[row.path].probability, abs=1e-4)
    matrix = confusion_matrix(result)
    counted: dict[tuple[int, int], int] = {}
    for f in dataset.files:
        key = (LABELS[f.folder], per_image[f.path].index)
        counted[key] = counted.get(key, 0) + 1
    assert {(t, p): c for t, p, c in matrix.cells()} == counted == EXPECTED_CELLS
    assert matrix.rows == [EGYPTIAN_CAT, CUP, ESPRESSO, TABBY] and matrix.columns == matrix.rows
    np.testing.assert_array_equal(matrix.counts, [[3, 0, 0, 0], [0, 0, 3, 0], [0, 0, 3, 0], [3, 0, 0, 0]])
    assert matrix.cells()[0][:2] in {(CUP, ESPRESSO), (TABBY, EGYPTIAN_CAT)}  # mistakes first
    assert result.accuracy == 0.5
    assert {r.path for r in result.in_cell(TABBY, EGYPTIAN_CAT)} == {"tabby/orig.png", "tabby/flip.png",
                                                                      "tabby/small.png"}
    assert all(r.true_rank >= 2 and r.true_probability < r.probability for r in result.in_cell(CUP, ESPRESSO))


def test_predictions_outside_the_set_get_their_own_columns(lite0, run):
    dataset, _ = run
    result = predict_dataset(lite0, dataset, {**LABELS, "cup": 504})  # call the cups "coffee mug"
    matrix = confusion_matrix(result)
    assert matrix.rows == [EGYPTIAN_CAT, 504, ESPRESSO, TABBY]
    assert matrix.count(504, ESPRESSO) == 3 and matrix.count(504, 504) == 0
    assert matrix.counts.sum() == 12


def test_per_class_accuracy(run):
    by_class = {a.index: a for a in per_class_accuracy(run[1])}
    assert (by_class[EGYPTIAN_CAT].accuracy, by_class[ESPRESSO].accuracy) == (1.0, 1.0)
    assert (by_class[TABBY].correct, by_class[TABBY].images, by_class[TABBY].accuracy) == (0, 3, 0.0)
    assert by_class[TABBY].most_confused_with == "Egyptian cat"
    assert by_class[CUP].most_confused_with == "espresso" and by_class[ESPRESSO].most_confused_with == ""


def test_csv_exports(run):
    _, result = run
    rows = list(csv.DictReader(io.StringIO(predictions_csv(result))))
    assert len(rows) == 12
    first = rows[0]
    assert (first["path"], first["true_index"], first["predicted_name"], first["correct"]) == (
        "Egyptian_cat/gray.png", "285", "Egyptian cat", "1")
    assert sum(int(r["correct"]) for r in rows) == 6
    table = list(csv.reader(io.StringIO(confusion_csv(confusion_matrix(result)))))
    assert table[0][1:] == ["Egyptian cat (285)", "cup (968)", "espresso (967)", "tabby (281)"]
    assert table[4] == ["tabby (281)", "3", "0", "0", "0"]


def test_batch_size_and_progress(lite0, run):
    dataset, result = run
    seen: list[float] = []
    again = predict_dataset(lite0, dataset, LABELS, batch_size=1, progress=lambda f, m: seen.append(f))
    assert [r.predicted_index for r in again.rows] == [r.predicted_index for r in result.rows]
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 12
    with pytest.raises(DatasetError, match="positive whole number"):
        predict_dataset(lite0, dataset, LABELS, batch_size=0)
    with pytest.raises(DatasetError, match="have no class: tabby"):
        predict_dataset(lite0, dataset, {k: v for k, v in LABELS.items() if k != "tabby"})


@pytest.fixture
def no_disk_writes(tmp_path, monkeypatch):
    """Reading a zip must write nothing: cwd and the temp folder point at empty folders we check after."""
    cwd, temp = tmp_path / "cwd", tmp_path / "temp"
    cwd.mkdir(), temp.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    yield
    assert not any(cwd.iterdir()) and not any(temp.iterdir())


def test_zip_in_memory_equals_the_folder(lite0, run, no_disk_writes):
    dataset = read_dataset(zip_bytes(prefix="pets/"))  # a zip of the folder "pets/": the root is found
    assert [f.path for f in dataset.files] == [f.path for f in run[0].files]
    assert [f.data for f in dataset.files] == [f.data for f in run[0].files]


def test_bad_files_in_a_zip_are_listed_skips(lite0, no_disk_writes):
    png = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(png, format="PNG")
    extra = {"cup/notes.jpg": b"this is not a picture", "cup/cut.png": png.getvalue()[:60],
             "cup/empty.png": b"", "readme.txt": b"top level", "__MACOSX/cup/._orig.png": b"junk",
             "cup/.DS_Store": b"junk"}
    dataset = read_dataset(zip_bytes(extra))
    result = predict_dataset(lite0, dataset, LABELS)
    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons == {"readme.txt": "The file is not inside a class folder (class_name/image).",
                       "cup/notes.jpg": NOT_AN_IMAGE, "cup/cut.png": DAMAGED, "cup/empty.png": EMPTY}
    assert len(result.rows) == 12  # the good images are all there
    assert {(t, p): c for t, p, c in confusion_matrix(result).cells()} == EXPECTED_CELLS
    assert "cup/notes.jpg" in predictions_csv(result) and "not an image" in predictions_csv(result)
    assert "is not an image" in NOT_AN_IMAGE and "truncated" in DAMAGED  # the reasons say what is wrong


def _zip_with(name: str, data: bytes = b"x", mode: int | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cup/good.png", b"x")
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        archive.writestr(info, data)
    return buffer.getvalue()


@pytest.mark.parametrize("name, mode", [("../evil.jpg", None), ("cup/../../evil.jpg", None),
                                        ("/etc/evil.jpg", None), ("C:/evil.jpg", None),
                                        ("..\\evil.jpg", None), ("cup/link.jpg", stat.S_IFLNK | 0o777)])
def test_a_zip_that_escapes_its_folder_is_refused(name, mode, no_disk_writes, tmp_path):
    with pytest.raises(DatasetError, match="refused: its entry .* points outside"):
        read_dataset(_zip_with(name, b"/etc/passwd" if mode else b"x", mode))
    assert not (tmp_path / "evil.jpg").exists() and not os.path.exists("/etc/evil.jpg")


def test_a_zip_bomb_is_refused_before_decompressing(monkeypatch):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cup/bomb.png", b"\0" * 5_000_000)  # 5 MB of zeros: about 5 kB compressed
    assert len(buffer.getvalue()) < 10_000
    thirteen = zip_bytes({"cup/13.png": b"x"})
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: pytest.fail("a member was decompressed"))
    with pytest.raises(DatasetError, match=r"unpacks to 4\.8 MB; at most 1\.0 MB"):
        read_dataset(buffer.getvalue(), DatasetLimits(max_total_bytes=2**20))
    with pytest.raises(DatasetError, match="holds 13 files; at most 12"):
        read_dataset(thirteen, DatasetLimits(max_files=12))


def test_a_member_larger_than_its_header_says_is_cut_and_skipped():
    """zipfile stops decompressing at the declared size, so the size limit holds even when a header lies."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cup/liar.png", b"\0" * 1_000_000)
    data = bytearray(buffer.getvalue())
    struct.pack_into("<I", data, 22, 100)  # uncompressed size in the local header...
    struct.pack_into("<I", data, data.find(b"PK\x01\x02") + 24, 100)  # ...and in the central directory
    with zipfile.ZipFile(io.BytesIO(data), "r") as archive:
        assert archive.infolist()[0].file_size == 100
    with pytest.raises(DatasetError, match="no readable files: 1 skipped, e.g. cup/liar.png: .*damaged in the zip"):
        read_dataset(bytes(data), DatasetLimits(max_total_bytes=1000))


def test_limits_from_the_environment(monkeypatch):
    assert DatasetLimits.from_env() == DatasetLimits()
    monkeypatch.setenv("CAMSCOPE_DATASET_MAX_FILES", "10")
    monkeypatch.setenv("CAMSCOPE_DATASET_MAX_MB", "0.5")
    assert DatasetLimits.from_env() == DatasetLimits(10, 2**19)
    monkeypatch.setenv("CAMSCOPE_DATASET_MAX_MB", "lots")
    with pytest.raises(DatasetError, match="must be numbers"):
        DatasetLimits.from_env()


def test_folder_limits_and_symlinks(tmp_path, folder):
    with pytest.raises(DatasetError, match="holds 12 files; at most 11"):
        read_dataset(folder, DatasetLimits(max_files=11))
    with pytest.raises(DatasetError, match="at most 0.1 MB"):
        read_dataset(folder, DatasetLimits(max_total_bytes=100_000))
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "secret.png").write_bytes((folder / "cup" / "orig.png").read_bytes())
    mine = write_folder(tmp_path / "mine")
    (mine / "cup" / "link.png").symlink_to(outside / "secret.png")
    (mine / "linked_dir").symlink_to(outside, target_is_directory=True)
    dataset = read_dataset(mine)
    assert {s.path: s.reason for s in dataset.skipped} == {"cup/link.png": "A symbolic link is not followed.",
                                                           "linked_dir": "A symbolic link is not followed."}
    assert len(dataset.files) == 12 and "linked_dir" not in dataset.folders


@pytest.mark.parametrize("source, message", [(b"not a zip", "not a zip file"), ("/no/such/place", "no folder or zip"),
                                             (12, "Cannot read a dataset from a int")])
def test_unreadable_sources(source, message):
    with pytest.raises(DatasetError, match=message):
        read_dataset(source)
    with pytest.raises(DatasetError, match="not a zip file"):
        read_dataset(_zip_with("cup/a.png")[:-30])  # cut short: no central directory


def test_empty_sets_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="holds no files"):
        read_dataset(tmp_path)
    (tmp_path / "loose.png").write_bytes(b"x")
    with pytest.raises(DatasetError, match="no class folders"):
        read_dataset(tmp_path)


@pytest.mark.parametrize("method", ["gradcam", "eigencam", "guided_backprop"])
def test_batched_maps_equal_explain_per_image(lite0, method):
    images = [im for group in labelled_images().values() for im in list(group.values())[:1]]  # 4 sizes
    classes = [[TABBY, EGYPTIAN_CAT], [CUP, ESPRESSO, CUP], [ESPRESSO], [EGYPTIAN_CAT, TABBY]]
    batched = explain_batch(lite0, images, classes, method=method, batch_size=3)
    for image, wanted, got in zip(images, classes, batched):
        alone = explain(lite0, image, methods=[method], classes=list(dict.fromkeys(wanted))).results
        assert [r.class_index for r in got] == [r.class_index for r in alone] == list(dict.fromkeys(wanted))
        for a, b in zip(got, alone):
            assert a.map.shape == (image.height, image.width)
            assert np.abs(a.map - b.map).max() <= 1e-4
            assert a.probability == pytest.approx(b.probability, abs=1e-5)
    if method == "gradcam":  # the two classes of one image really differ
        assert np.abs(batched[0][0].map - batched[0][1].map).max() > 0.05


@pytest.mark.parametrize("method", ["gradcam", "guided_backprop"])
def test_maps_made_while_predicting_equal_explain(lite0, run, method):
    dataset, plain = run
    got: dict = {}
    maps = MapRequest(lambda row, image, cams: got.setdefault(row.path, (row, image, cams)), method)
    result = predict_dataset(lite0, dataset, LABELS, batch_size=5, maps=maps)
    assert [r.predicted_index for r in result.rows] == [r.predicted_index for r in plain.rows]
    assert sorted(got) == sorted(r.path for r in plain.rows if not r.correct) and len(got) == 6
    for row, image, cams in got.values():
        assert [c.class_index for c in cams] == [row.true_index, row.predicted_index]
        alone = explain(lite0, image, methods=[method], classes=[row.true_index, row.predicted_index]).results
        for a, b in zip(cams, alone):
            assert a.map.shape == (image.height, image.width) and np.abs(a.map - b.map).max() <= 1e-4


def test_maps_for_chosen_classes_and_bad_requests(lite0, run):
    dataset, _ = run
    got: list = []
    predict_dataset(lite0, dataset, LABELS, maps=MapRequest(lambda r, im, cams: got.append(cams), "eigencam",
                                                            "blocks.5", pick=lambda r: [r.true_index]))
    assert len(got) == 12 and all(len(c) == 1 and c[0].layer == "blocks.5" for c in got)
    with pytest.raises(MethodError, match="nosuch"):
        predict_dataset(lite0, dataset, LABELS, maps=MapRequest(print, "nosuch"))
    with pytest.raises(LayerError, match="no layer named 'nolayer'"):
        predict_dataset(lite0, dataset, LABELS, maps=MapRequest(print, "gradcam", "nolayer"))


def test_cli_dataset_writes_everything(lite0, tmp_path, run):
    source = tmp_path / "set.zip"
    source.write_bytes(zip_bytes({"cup/notes.jpg": b"not a picture"}))
    out = tmp_path / "out"
    code = main(["dataset", str(source), "--out", str(out), "--device", "cpu", "--batch-size", "4",
                 "--mapping", json.dumps({"Egyptian_cat": "Egyptian cat"})])
    assert code == 0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["predicted_index"] for r in rows if r["path"] != "cup/notes.jpg"] == [
        str(r.predicted_index) for r in run[1].rows]
    assert next(r for r in rows if r["path"] == "cup/notes.jpg")["skipped_reason"].startswith("This file is not")
    assert (out / "confusion.csv").read_text() == confusion_csv(confusion_matrix(run[1]))
    png = Image.open(out / "confusion.png")
    assert png.format == "PNG" and png.width > 200
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 12 and summary["accuracy"] == 0.5 and len(summary["misclassified"]) == 6
    tabby = next(m for m in summary["misclassified"] if m["path"] == "tabby/orig.png")
    true_map, pred_map = np.load(out / tabby["true_map"]), np.load(out / tabby["pred_map"])
    assert tabby["true_map"].endswith("true-281.npy") and tabby["pred_map"].endswith("pred-285.npy")
    assert true_map.shape == pred_map.shape == (300, 451)
    cat = labelled_images()["tabby"]["orig"]
    expected = explain(lite0, cat, classes=[TABBY, EGYPTIAN_CAT]).results
    assert np.abs(true_map - expected[0].map).max() <= 1e-4 and np.abs(pred_map - expected[1].map).max() <= 1e-4
    assert Image.open(out / tabby["true_overlay"]).size == (451, 300)
    assert len(list((out / "maps").glob("*.npy"))) == 12


@pytest.mark.parametrize("extra, message", [
    ([], "match no class of the model by name: kitty"),
    (["--mapping", "{not json"], "--mapping is not valid JSON"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--method", "nosuch"], "nosuch"),
])
def test_cli_dataset_bad_input_is_one_line(tmp_path, capsys, extra, message):
    (tmp_path / "set" / "kitty").mkdir(parents=True)
    (tmp_path / "set" / "kitty" / "a.png").write_bytes(b"x")
    code = main(["dataset", str(tmp_path / "set"), "--out", str(tmp_path / "out"), "--device", "cpu", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "Traceback" not in err and len(err.splitlines()) == 1


# --- the CLI never corrupts its output ------------------------------------------------------

@pytest.fixture
def cups_of_cat(tmp_path, cat_image):
    """A folder 'cup' holding the cat photo three times: as 1.jpg, 1.png and under a 250-character name."""
    folder = tmp_path / "set" / "cup"
    folder.mkdir(parents=True)
    cat_image.save(folder / "1.jpg", quality=95)
    cat_image.save(folder / "1.png")
    cat_image.save(folder / ("b" * 246 + ".png"))
    return tmp_path / "set"


def test_cli_dataset_map_names_are_unique_and_short(cups_of_cat, tmp_path, lite0):
    out = tmp_path / "out"
    assert main(["dataset", str(cups_of_cat), "--out", str(out), "--device", "cpu"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    wrong = summary["misclassified"]
    assert sorted(m["path"] for m in wrong) == sorted(["cup/1.jpg", "cup/1.png", "cup/" + "b" * 246 + ".png"])
    files = [m[key] for m in wrong for key in ("true_map", "pred_map", "true_overlay", "pred_overlay")]
    assert len(set(files)) == 12 and all((out / f).is_file() for f in files)
    assert max(len(Path(f).name) for f in files) <= 120
    assert len(list((out / "maps").iterdir())) == 12
    by_path = {m["path"]: np.load(out / m["true_map"]) for m in wrong}
    png = load_image(cups_of_cat / "cup" / "1.png")
    expected = explain(lite0, png, classes=[CUP]).results[0].map
    assert np.abs(by_path["cup/1.png"] - expected).max() <= 1e-4  # its own map, not the JPEG's


def test_cli_dataset_that_stops_midway_leaves_a_record(cups_of_cat, tmp_path, capsys, monkeypatch):
    import explainers.confusion as confusion
    from explainers.errors import OutOfMemory

    real, calls = confusion._predict_batch, []

    def fails_second_time(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OutOfMemory("The computer ran out of memory for this batch of images.")
        return real(*args, **kwargs)

    monkeypatch.setattr(confusion, "_predict_batch", fails_second_time)
    out = tmp_path / "out"
    code = main(["dataset", str(cups_of_cat), "--out", str(out), "--device", "cpu", "--batch-size", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "stopped after 1 of 3 files" in err and "ran out of memory" in err
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == 1 and summary["complete"] is False and summary["recorded"] == 1
    assert sorted([rows[0]["path"], *summary["missing"]]) == sorted(
        ["cup/1.jpg", "cup/1.png", "cup/" + "b" * 246 + ".png"])
    assert "ran out of memory" in summary["error"]
    assert [m["path"] for m in summary["misclassified"]] == [rows[0]["path"]]  # its maps were written
