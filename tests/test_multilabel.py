"""Per-label metrics of a multi-label model (precision and recall per label at a threshold, maps of the
false positives and false negatives), checked against counts made by hand from the model's own logits."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from explainers.cli import main
from explainers.models import load_model
from explainers.multilabel import LabelsError, per_label_metrics, read_truth, score_images
from tests.tiny_folders import SIZE, save_hf

TRUTH = {"a.png": {0, 1}, "b.png": set(), "c.png": {2}, "d.png": {0}, "e.png": {1, 2}}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ml")
    folder = save_hf(root / "vit", "vit", problem_type="multi_label_classification")
    images = root / "images"
    images.mkdir()
    for seed, name in enumerate(TRUTH):
        Image.fromarray(np.random.default_rng(seed).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(
            images / name)
    names = ["cat", "dog", "fox"]
    (root / "truth.csv").write_text("image,labels\n" + "".join(
        f"{n},{';'.join(names[i] for i in sorted(t))}\n" for n, t in TRUTH.items()))
    return load_model(str(folder), device="cpu"), images, root / "truth.csv"


def by_hand(model, images, threshold):
    tp, fp, fn = np.zeros(3, int), np.zeros(3, int), np.zeros(3, int)
    for name, truth in TRUTH.items():
        x = model.preprocessing.to_tensor(Image.open(images / name))
        with torch.no_grad():
            p = torch.sigmoid(model.module.model(pixel_values=x).logits[0]).numpy()
        for k in range(3):
            predicted = p[k] >= threshold
            tp[k] += predicted and k in truth
            fp[k] += predicted and k not in truth
            fn[k] += (not predicted) and k in truth
    return tp, fp, fn


def test_per_label_counts_equal_a_hand_count_from_sigmoid_probabilities(setup):
    model, images, truth_csv = setup
    scored = score_images(model, images, read_truth(truth_csv, model.categories))
    threshold = float(np.median(np.concatenate([s.probabilities for s in scored])))  # splits the labels
    tp, fp, fn = by_hand(model, images, threshold)
    metrics = per_label_metrics(scored, model.categories, threshold)
    assert [(m.true_positives, m.false_positives, m.false_negatives) for m in metrics] == list(zip(tp, fp, fn))
    for m in metrics:
        assert m.recall == (tp[m.index] / (tp[m.index] + fn[m.index]))
        assert m.precision == (tp[m.index] / (tp[m.index] + fp[m.index]) if tp[m.index] + fp[m.index] else None)


def test_cli_writes_per_label_metrics_and_the_error_maps(setup, tmp_path):
    model, images, truth_csv = setup
    out = tmp_path / "out"
    assert main(["labels", str(images), "--truth", str(truth_csv), "--model", model.spec.weights_file.rsplit("/", 1)[0],
                 "--threshold", "0.5", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    tp, fp, fn = by_hand(model, images, 0.5)
    assert summary["head"] == "sigmoid" and len(summary["error_maps"]) == int(fp.sum() + fn.sum()) > 0
    assert [row["label"] for row in csv.DictReader((out / "per_label.csv").open())] == ["cat", "dog", "fox"]
    for entry in summary["error_maps"]:
        assert np.load(out / entry["map"]).shape == (SIZE, SIZE)


def test_an_unknown_label_is_a_sentence(setup, tmp_path):
    model, _, _ = setup
    (tmp_path / "t.csv").write_text("image,labels\na.png,cat;wolf\n")
    with pytest.raises(LabelsError, match="line 2: unknown label 'wolf'"):
        read_truth(tmp_path / "t.csv", model.categories)


def test_a_set_in_memory_scores_like_the_folder(setup):
    """A flat zip read in memory (no class folders) and an uploaded CSV give the folder's numbers."""
    import io
    import zipfile

    from explainers.dataset import read_dataset
    from explainers.io import load_image
    from explainers.multilabel import match_files, parse_truth, predictions_csv, score_loaded

    model, images, truth_csv = setup
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in TRUTH:
            archive.write(images / name, f"xray/{name}")
    dataset = read_dataset(buffer.getvalue(), flat=True)
    assert [f.path for f in dataset.files] == sorted(TRUTH) and {f.folder for f in dataset.files} == {""}
    truth = parse_truth(truth_csv.read_bytes(), model.categories)
    assert truth == read_truth(truth_csv, model.categories)
    truth = {"sub/" + k if k == "a.png" else k: v for k, v in truth.items()} | {"gone.png": frozenset()}
    matched, missing = match_files(truth, [f.path for f in dataset.files])
    assert matched["sub/a.png"] == "a.png" and missing == ["gone.png"]  # by file name when the path differs
    data = {f.path: f.data for f in dataset.files}
    seen = []
    scored = score_loaded(model, ((k, load_image(data[p])) for k, p in matched.items()), truth, 2, seen.append)
    assert seen == [2, 4, 5]
    folder = score_images(model, images, read_truth(truth_csv, model.categories))
    for got, want in zip(scored, folder):
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-6)
    lines = predictions_csv(scored, model.categories, 0.5).splitlines()
    assert lines[0] == "image,true_labels,predicted_labels,p_cat,p_dog,p_fox" and lines[1].startswith("sub/a.png,cat;dog,")
