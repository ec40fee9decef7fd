"""Per-label metrics for multi-label models: precision and recall per label at a threshold, and the
false positives and false negatives to look at (instead of a confusion matrix, which assumes one class).

True labels come from a CSV with the columns ``image`` (a path relative to the image folder) and
``labels`` (label names or indices separated by ``;`` or ``|``; empty for none).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image

from .errors import ExplainerError
from .heads import probabilities
from .models.spec import LoadedModel


class LabelsError(ExplainerError):
    """A truth CSV that cannot be read or names an unknown label."""


@dataclass(frozen=True)
class ScoredImage:
    path: str  # as written in the CSV
    truth: frozenset[int]  # true label indices
    probabilities: np.ndarray  # (K,) per label (sigmoid for a sigmoid head)

    def predicted(self, threshold: float) -> frozenset[int]:
        return frozenset(int(i) for i in np.flatnonzero(self.probabilities >= threshold))


@dataclass(frozen=True)
class LabelMetrics:
    index: int
    name: str
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int

    @property
    def precision(self) -> Optional[float]:  # None: the label was never predicted
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else None

    @property
    def recall(self) -> Optional[float]:  # None: the label never occurs
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else None


def read_truth(path: Union[str, Path], categories: Sequence[str]) -> dict[str, frozenset[int]]:
    """{image path: true label indices} from a CSV with columns image, labels."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"The labels CSV {path} cannot be read ({exc}).") from None
    return parse_truth(text, categories, str(path))


def parse_truth(text: Union[str, bytes], categories: Sequence[str], name: str = "labels.csv"
                ) -> dict[str, frozenset[int]]:
    """``read_truth`` for a CSV already in memory (an upload); ``name`` is used in the messages."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise LabelsError(f"The labels CSV {name} is not UTF-8 text.") from None
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or not {"image", "labels"} <= set(rows[0]):
        raise LabelsError(f"The labels CSV {name} needs the columns image and labels (one row per image).")
    by_name = {label: i for i, label in enumerate(categories)}
    truth: dict[str, frozenset[int]] = {}
    for line, row in enumerate(rows, start=2):
        found = set()
        for item in (s.strip() for s in re.split(r"[;|]", row["labels"] or "") if s.strip()):
            index = by_name.get(item, int(item) if item.isdigit() else None)
            if index is None or not 0 <= index < len(categories):
                raise LabelsError(f"{Path(name).name} line {line}: unknown label {item!r}; the model's labels are "
                                  f"{', '.join(categories[:10])}{'...' if len(categories) > 10 else ''}.")
            found.add(index)
        truth[(row["image"] or "").strip()] = frozenset(found)
    return truth


def match_files(truth: Mapping[str, frozenset[int]], paths: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """({CSV image: file path}, CSV images with no file). A CSV path matches a file's path exactly, else
    by its file name when exactly one file has that name (a CSV written beside a zipped folder)."""
    paths = list(paths)
    exact = set(paths)
    by_base: dict[str, list[str]] = {}
    for p in paths:
        by_base.setdefault(PurePosixPath(p).name, []).append(p)
    matched, missing = {}, []
    for image in truth:
        path = image.replace("\\", "/").removeprefix("./")
        candidates = [path] if path in exact else by_base.get(PurePosixPath(path).name, [])
        if len(candidates) == 1:
            matched[image] = candidates[0]
        else:
            missing.append(image)
    return matched, missing


def score_images(model: LoadedModel, folder: Union[str, Path], truth: dict[str, frozenset[int]],
                 batch_size: int = 8) -> list[ScoredImage]:
    """Every image of ``truth`` through the model, in batches; probabilities as the head defines them."""
    from .io import load_image

    folder = Path(folder)
    return score_loaded(model, ((n, load_image(folder / n)) for n in truth), truth, batch_size)


def score_loaded(model: LoadedModel, images: Iterable[tuple[str, Image.Image]], truth: Mapping[str, frozenset[int]],
                 batch_size: int = 8, progress: Optional[Callable[[int], None]] = None) -> list[ScoredImage]:
    """``score_images`` for (CSV image, decoded image) pairs, e.g. from a zip read in memory; taken lazily,
    one batch at a time. ``progress`` is called with the number of images scored so far."""
    from .clones import borrowed_clone

    out: list[ScoredImage] = []
    pending: list[tuple[str, Image.Image]] = []

    def flush(clone: torch.nn.Module) -> None:
        batch = torch.cat([model.preprocessing.to_tensor(image) for _, image in pending])
        probs = probabilities(clone(batch.to(model.device)), model.head).cpu().numpy()  # (B, K)
        out.extend(ScoredImage(n, truth[n], p) for (n, _), p in zip(pending, probs))
        pending.clear()
        if progress is not None:
            progress(len(out))

    with borrowed_clone(model.module) as clone, torch.inference_mode():
        for item in images:
            pending.append(item)
            if len(pending) == batch_size:
                flush(clone)
        if pending:
            flush(clone)
    return out


def per_label_metrics(scored: Sequence[ScoredImage], categories: Sequence[str], threshold: float
                      ) -> list[LabelMetrics]:
    """Counts per label at ``threshold`` (a label is predicted when its probability is >= threshold)."""
    counts = np.zeros((len(categories), 4), dtype=int)  # tp, fp, fn, tn
    for image in scored:
        predicted = image.predicted(threshold)
        for k in range(len(categories)):
            is_true, is_predicted = k in image.truth, k in predicted
            counts[k, 0 if is_true and is_predicted else 1 if is_predicted else 2 if is_true else 3] += 1
    return [LabelMetrics(k, categories[k], *map(int, counts[k])) for k in range(len(categories))]


def label_errors(scored: Sequence[ScoredImage], threshold: float) -> list[tuple[str, int, str]]:
    """(image, label, "false positive" | "false negative") for every wrong label decision."""
    out = []
    for image in scored:
        predicted = image.predicted(threshold)
        out += [(image.path, k, "false positive") for k in sorted(predicted - image.truth)]
        out += [(image.path, k, "false negative") for k in sorted(image.truth - predicted)]
    return out


def predictions_csv(scored: Sequence[ScoredImage], categories: Sequence[str], threshold: float) -> str:
    """One line per image: true and predicted labels (``;``-separated) and every label's probability."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", "true_labels", "predicted_labels", *[f"p_{c}" for c in categories]])
    for s in scored:
        writer.writerow([s.path, ";".join(categories[i] for i in sorted(s.truth)),
                         ";".join(categories[i] for i in sorted(s.predicted(threshold))),
                         *[f"{p:.6f}" for p in s.probabilities]])
    return buffer.getvalue()
