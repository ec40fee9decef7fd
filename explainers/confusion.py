"""Predict a labelled set in batches, then its confusion matrix, per-class accuracy and CSV exports.

Example:
    >>> data = read_dataset("pets.zip")  # explainers.dataset; map_folders: explainers.class_names
    >>> result = predict_dataset(model, data, map_folders(data.folders, model.categories))
    >>> matrix = confusion_matrix(result)
    >>> matrix.count(281, 285)  # tabby photos the model called Egyptian cat
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from .batch import batch_tensor, cams_from_capture, default_batch_size, explain_batch
from .clones import borrowed_clone
from .device import plain_out_of_memory
from .dataset import Dataset, DatasetError, Skip
from .errors import ImageError
from .heads import probabilities
from .io import load_image
from .layers import resolve_layers
from .methods.catalog import resolve_method
from .methods.shared_pass import forward_capture
from .models.spec import LoadedModel
from .results import CamResult
from .targets import check_index

Progress = Optional[Callable[[float, str], None]]


@dataclass(frozen=True)
class ImagePrediction:
    """The model's verdict on one labelled image."""

    path: str  # inside the set, e.g. "tabby/0001.jpg"
    folder: str
    true_index: int
    true_name: str
    predicted_index: int
    predicted_name: str
    probability: float  # of the predicted class
    true_probability: float  # of the true class
    true_rank: int  # 1 when the true class scored highest

    @property
    def correct(self) -> bool:
        return self.predicted_index == self.true_index


@dataclass
class DatasetPredictions:
    """Every image's prediction, the files left out, and how long it took."""

    model: str
    rows: list[ImagePrediction]
    skipped: list[Skip] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        return sum(r.correct for r in self.rows) / len(self.rows) if self.rows else float("nan")

    def in_cell(self, true_index: int, predicted_index: int) -> list[ImagePrediction]:
        """The images of class ``true_index`` that the model called ``predicted_index``."""
        return [r for r in self.rows if r.true_index == true_index and r.predicted_index == predicted_index]


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of (true class, predicted class). Rows are the set's classes; the columns start with
    the same classes (so the diagonal is the correct predictions), then every other class predicted."""

    rows: list[int]
    columns: list[int]
    row_names: list[str]
    column_names: list[str]
    counts: np.ndarray  # (len(rows), len(columns)) int64

    def count(self, true_index: int, predicted_index: int) -> int:
        if true_index not in self.rows or predicted_index not in self.columns:
            return 0
        return int(self.counts[self.rows.index(true_index), self.columns.index(predicted_index)])

    def cells(self) -> list[tuple[int, int, int]]:
        """(true, predicted, count) of every non-empty cell: mistakes first, most frequent first."""
        found = [(t, p, int(self.counts[i, j])) for i, t in enumerate(self.rows)
                 for j, p in enumerate(self.columns) if self.counts[i, j] > 0]
        return sorted(found, key=lambda c: (c[0] == c[1], -c[2], c[0], c[1]))


def mistakes(row: ImagePrediction) -> list[int]:
    """The classes to explain for an image: its true and predicted class when it is misclassified."""
    return [] if row.correct else [row.true_index, row.predicted_index]


@dataclass(frozen=True)
class MapRequest:
    """Maps to make while predicting, from the same forward pass: ``method`` at ``layer`` (None: the
    recommended one) for the classes ``pick`` names per image. Each image's maps go to ``sink``
    as soon as they exist; nothing is kept, so a large set stays small in memory."""

    sink: Callable[[ImagePrediction, Image.Image, list[CamResult]], None]
    method: str = "gradcam"
    layer: str | None = None
    pick: Callable[[ImagePrediction], Sequence[int]] = mistakes


@dataclass(frozen=True)
class ClassAccuracy:
    index: int
    name: str
    images: int
    correct: int
    accuracy: float
    most_confused_with: str  # the most frequent wrong prediction, "" when none


def predict_dataset(model: LoadedModel, dataset: Dataset, labels: Mapping[str, int], batch_size: int | None = None,
                    progress: Progress = None, maps: MapRequest | None = None,
                    on_batch: Callable[[list[ImagePrediction], list[Skip]], None] | None = None
                    ) -> DatasetPredictions:
    """Predict every image of a labelled set, ``batch_size`` images per forward pass.

    Args:
        model: from ``load_model``.
        dataset: from ``read_dataset``.
        labels: {folder: class index}, from ``map_folders``.
        batch_size: images per forward pass (default: ``default_batch_size``).
        progress: called after each batch with (fraction done, "n of N images").
        maps: also make maps (e.g. true and predicted class of each mistake) from the same passes.
        on_batch: called with each batch's predictions and the files skipped since the last call
            (the set's own skips first), so a caller can record them as they come.
    Returns:
        DatasetPredictions; files that do not decode are in ``skipped`` with the reason.
    """
    batch_size = default_batch_size(model) if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise DatasetError(f"The batch size must be a positive whole number, not {batch_size!r}.")
    missing = sorted({f.folder for f in dataset.files} - set(labels))
    if missing:
        raise DatasetError(f"These folders have no class: {', '.join(missing)}.")
    if maps is not None:  # fail on a bad method or layer before the slow part
        spec = resolve_method(maps.method)
        maps = replace(maps, method=spec.key, layer=resolve_layers(model, [maps.layer] if maps.layer else None)[0])
    started = time.perf_counter()
    rows: list[ImagePrediction] = []
    skipped = list(dataset.skipped)
    total = len(dataset.files)
    batch: list[tuple] = []
    reported = 0  # skips already handed to on_batch
    for n, file in enumerate(dataset.files, start=1):
        try:
            batch.append((file, load_image(file.data)))
        except ImageError as error:
            skipped.append(Skip(file.path, str(error)))
        if len(batch) == batch_size or (n == total and batch):
            done = _predict_batch(model, batch, labels, maps, batch_size)
            rows.extend(done)
            batch = []
            if on_batch is not None:
                on_batch(done, skipped[reported:])
                reported = len(skipped)
        if progress is not None and (n == total or not batch):
            progress(n / total, f"{n} of {total} images")
    if on_batch is not None and reported < len(skipped):
        on_batch([], skipped[reported:])
    return DatasetPredictions(model.name, rows, skipped, time.perf_counter() - started)


def _predict_batch(model: LoadedModel, batch: list[tuple], labels: Mapping[str, int], maps: MapRequest | None,
                   batch_size: int) -> list[ImagePrediction]:
    images = [image for _, image in batch]
    with plain_out_of_memory(model.device, "this batch of images"):
        x = batch_tensor(model, images)  # (B, 3, H, W); the first batch probes the model's layout
    spec = resolve_method(maps.method) if maps is not None else None
    if spec is None or spec.kind != "shared":
        with plain_out_of_memory(model.device, "this batch of images"), torch.inference_mode():
            rows = _rows(model, batch, labels, model.module(x))  # the shared model is only read: no hooks, no graph
        if spec is not None:  # slow methods: their own passes, image by image
            todo = [(r, im, _picked(maps, r, model)) for r, im in zip(rows, images)]
            todo = [t for t in todo if t[2]]
            cams = explain_batch(model, [t[1] for t in todo], [t[2] for t in todo], spec.key, maps.layer, batch_size)
            for (row, image, _), results in zip(todo, cams):
                maps.sink(row, image, results)
        return rows
    # predictions and maps from ONE forward pass
    with plain_out_of_memory(model.device, "this batch of images"), borrowed_clone(model.module) as clone:
        capture = forward_capture(clone, x, [maps.layer], spec.uses_gradients)
        rows = _rows(model, batch, labels, capture.logits.detach())
        wanted = [_picked(maps, r, model) for r in rows]
        cams = cams_from_capture(model, capture, maps.layer, spec, wanted, images)
    for row, image, results in zip(rows, images, cams):
        if results:
            maps.sink(row, image, results)
    return rows


def _picked(maps: MapRequest, row: ImagePrediction, model: LoadedModel) -> list[int]:
    return list(dict.fromkeys(check_index(c, model.num_classes) for c in maps.pick(row)))


def _rows(model: LoadedModel, batch: list[tuple], labels: Mapping[str, int], logits: torch.Tensor
          ) -> list[ImagePrediction]:
    probs = probabilities(logits, model.head).cpu()
    cats = model.categories
    out = []
    for (file, _), p in zip(batch, probs):
        true, pred = labels[file.folder], int(torch.argmax(p))
        out.append(ImagePrediction(file.path, file.folder, true, cats[true], pred, cats[pred], float(p[pred]),
                                   float(p[true]), int((p > p[true]).sum()) + 1))
    return out


def confusion_matrix(predictions: DatasetPredictions) -> ConfusionMatrix:
    """Counts per (true class, predicted class), classes named as the model names them."""
    rows = list(dict.fromkeys(r.true_index for r in predictions.rows))  # the set's order (folders sorted)
    others: dict[int, int] = {}
    for r in predictions.rows:
        if r.predicted_index not in rows:
            others[r.predicted_index] = others.get(r.predicted_index, 0) + 1
    columns = rows + sorted(others, key=lambda c: (-others[c], c))
    counts = np.zeros((len(rows), len(columns)), dtype=np.int64)
    if predictions.rows:
        ri = [rows.index(r.true_index) for r in predictions.rows]
        ci = [columns.index(r.predicted_index) for r in predictions.rows]
        np.add.at(counts, (ri, ci), 1)  # numpy's unbuffered add counts repeated cells
    names = {r.true_index: r.true_name for r in predictions.rows} | {
        r.predicted_index: r.predicted_name for r in predictions.rows}
    return ConfusionMatrix(rows, columns, [names[c] for c in rows], [names[c] for c in columns], counts)


def per_class_accuracy(predictions: DatasetPredictions) -> list[ClassAccuracy]:
    """For each class of the set: images, correct ones, accuracy, and the most frequent wrong answer."""
    matrix = confusion_matrix(predictions)
    out = []
    for i, (index, name) in enumerate(zip(matrix.rows, matrix.row_names)):
        row = matrix.counts[i]
        images, correct = int(row.sum()), int(row[i])
        wrong = row.copy()
        wrong[i] = 0
        confused = matrix.column_names[int(np.argmax(wrong))] if wrong.any() else ""
        out.append(ClassAccuracy(index, name, images, correct, correct / images, confused))
    return out


PREDICTION_FIELDS = ["path", "folder", "true_index", "true_name", "predicted_index", "predicted_name",
                     "probability", "true_probability", "true_rank", "correct"]


def predictions_csv(predictions: DatasetPredictions) -> str:
    """One line per image (the fields above), then one per skipped file with its reason."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PREDICTION_FIELDS + ["skipped_reason"])
    writer.writerows(prediction_row(r) for r in predictions.rows)
    writer.writerows(skip_row(s) for s in predictions.skipped)
    return buffer.getvalue()


def prediction_row(r: ImagePrediction) -> list:
    """One image's line of predictions.csv."""
    return [r.path, r.folder, r.true_index, r.true_name, r.predicted_index, r.predicted_name,
            f"{r.probability:.6f}", f"{r.true_probability:.6f}", r.true_rank, int(r.correct), ""]


def skip_row(s: Skip) -> list:
    """A skipped file's line of predictions.csv, with its reason."""
    return [s.path] + [""] * (len(PREDICTION_FIELDS) - 1) + [s.reason]


def confusion_csv(matrix: ConfusionMatrix) -> str:
    """The matrix with a header row of predicted classes and a first column of true classes ("name (index)")."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true \\ predicted"] + [f"{n} ({c})" for c, n in zip(matrix.columns, matrix.column_names)])
    for i, (c, n) in enumerate(zip(matrix.rows, matrix.row_names)):
        writer.writerow([f"{n} ({c})"] + [int(v) for v in matrix.counts[i]])
    return buffer.getvalue()
