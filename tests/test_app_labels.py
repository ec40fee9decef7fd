"""The dataset page with a multi-label (sigmoid) model: a zip of images and a labels CSV give per-label
precision and recall at the user's threshold (equal to explainers.multilabel computed directly), a gallery of
false positives / negatives with the label's map, and no confusion matrix."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("streamlit")

from explainers.models import MODELS, load_model, register_model  # noqa: E402
from explainers.models.manifest import read_manifest  # noqa: E402
from explainers.multilabel import per_label_metrics, read_truth, score_images  # noqa: E402
from tests.test_app import assert_clean, new_app  # noqa: E402
from tests.tiny_folders import LABELS, SIZE, save_hf  # noqa: E402
from ui import dataset as ds  # noqa: E402
from ui import loaders, state  # noqa: E402
from ui import multilabel as ml  # noqa: E402

TRUTH = {"a.png": {0, 1}, "b.png": set(), "c.png": {2}, "d.png": {0}, "e.png": {1, 2}, "f.png": {0, 1, 2},
         "g.png": {1}, "h.png": {2}}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("labels")
    save_hf(root / "findings", "vit", problem_type="multi_label_classification")
    (root / "models.toml").write_text('[[model]]\nname = "findings_vit"\narchitecture = "huggingface"\n'
                                      'weights = "findings"\ndisplay_name = "Findings ViT"\n')
    specs = read_manifest(root)
    for spec in specs:
        register_model(spec)
    loaders.model_specs.clear()
    images = root / "images"
    images.mkdir()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for seed, name in enumerate(TRUTH):
            Image.fromarray(np.random.default_rng(seed).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(
                images / name)
            z.write(images / name, f"set/{name}")  # a zipped folder: the CSV names the images inside it
    truth = ("image,labels\n" + "".join(f"{n},{';'.join(LABELS[i] for i in sorted(t))}\n"
                                        for n, t in TRUTH.items())).encode()
    (root / "truth.csv").write_bytes(truth)
    yield root, archive.getvalue(), truth
    for spec in specs:
        MODELS.remove(spec.name)
    loaders.model_specs.clear()
    loaders.get_model.clear()


def test_multilabel_dataset_page_gives_per_label_metrics_and_error_maps(labelled):
    root, archive, truth = labelled
    model = load_model("findings_vit", device="cpu")
    scored = score_images(model, root / "images", read_truth(root / "truth.csv", model.categories))
    probabilities = np.concatenate([s.probabilities for s in scored])
    threshold = round(float(np.median(probabilities)), 2)  # on the slider's grid, splitting the labels
    direct = per_label_metrics(scored, model.categories, threshold)

    at = new_app().run()
    at.selectbox(key=state.MODEL).set_value("findings_vit").run()
    at.switch_page("pages/dataset.py").run()
    assert_clean(at)
    at.file_uploader(key=ds.UPLOAD).upload("findings.zip", archive, "application/zip").run()
    at.file_uploader(key=ml.TRUTH).upload("labels.csv", truth, "text/csv").run()
    at.slider(key=ml.THRESHOLD).set_value(threshold).run()
    assert_clean(at)

    assert not at.get("plotly_chart")  # no confusion matrix for independent labels
    downloads = [b.proto.label for b in at.get("download_button")]
    assert "Predictions (CSV)" in downloads and "Confusion matrix (CSV)" not in downloads
    table = at.dataframe[0].value
    assert list(table["label"]) == ["cat", "dog", "fox"]
    for row, m in zip(table.to_dict("records"), direct):
        assert row["support"] == m.true_positives + m.false_negatives
        assert row["false positives"] == m.false_positives and row["false negatives"] == m.false_negatives
        for got, want in ((row["precision"], m.precision), (row["recall"], m.recall)):
            assert (want is None and (got is None or got != got)) or got == pytest.approx(want)
    assert sum(m.false_positives + m.false_negatives for m in direct) > 0

    label = at.selectbox(key=ml.LABEL).value  # the label with the most errors
    kind = at.radio(key=ml.KIND).value
    shown = [c for image in at.image for c in image.captions if c.startswith(f"{kind}: ")]
    wanted = direct[label].false_positives if kind == "false positive" else direct[label].false_negatives
    assert len(shown) == min(wanted, ml.GALLERY_SIZE)
    assert all(c.startswith(f"{kind}: {LABELS[label]} · p=") for c in shown)
