"""Per-label metrics for multi-label models: precision and recall per label at a threshold, and the
false positives and false negatives to look at (instead of a confusion matrix, which assumes one class).

True labels come from a CSV with the columns ``image`` (a path relative to the image folder) and
``labels`` (label names or indices separated by ``;`` or ``|``; empty for none).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

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
        rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"The labels CSV {path} cannot be read ({exc}).") from None
    if not rows or not {"image", "labels"} <= set(rows[0]):
        raise LabelsError(f"The labels CSV {path} needs the columns image and labels (one row per image).")
    by_name = {name: i for i, name in enumerate(categories)}
    truth: dict[str, frozenset[int]] = {}
    for line, row in enumerate(rows, start=2):
        found = set()
        for item in (s.strip() for s in re.split(r"[;|]", row["labels"] or "") if s.strip()):
            index = by_name.get(item, int(item) if item.isdigit() else None)
            if index is None or not 0 <= index < len(categories):
                raise LabelsError(f"{path.name} line {line}: unknown label {item!r}; the model's labels are "
                                  f"{', '.join(categories[:10])}{'...' if len(categories) > 10 else ''}.")
            found.add(index)
        truth[row["image"].strip()] = frozenset(found)
    return truth


def score_images(model: LoadedModel, folder: Union[str, Path], truth: dict[str, frozenset[int]],
                 batch_size: int = 8) -> list[ScoredImage]:
    """Every image of ``truth`` through the model, in batches; probabilities as the head defines them."""
    from .clones import borrowed_clone
    from .io import load_image

    folder = Path(folder)
    names = list(truth)
    out: list[ScoredImage] = []
    with borrowed_clone(model.module) as clone, torch.inference_mode():
        for start in range(0, len(names), batch_size):
            chunk = names[start:start + batch_size]
            batch = torch.cat([model.preprocessing.to_tensor(load_image(folder / n)) for n in chunk])
            probs = probabilities(clone(batch.to(model.device)), model.head).cpu().numpy()  # (B, K)
            out.extend(ScoredImage(n, truth[n], p) for n, p in zip(chunk, probs))
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
