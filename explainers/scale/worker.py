"""The work both engines share: turning a batch of ImageRefs into table rows (the settings: settings.py).

``BatchWorker`` loads the models once (an engine keeps one per process or per Ray actor) and, per
batch, decodes every image with ``load_image`` (a bad one becomes a skipped row with the reason),
runs ``explain_batch`` per model and returns the batch's maps, predictions and skipped rows.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import pyarrow as pa

from ..class_names import normalize_name
from ..errors import ImageError
from ..io import image_sha256, load_image
from ..layers import resolve_layers
from ..methods.catalog import resolve_method
from ..models.spec import LoadedModel
from .engine import explain_batch
from .rows import map_row, prediction_row, table
from .settings import RunSettings
from .sources import ImageRef


def describe(settings: RunSettings, models: Sequence[LoadedModel]) -> dict:
    """The settings as run.json records them (and compares them on a rerun)."""
    return {
        "models": [{"name": m.name, "architecture": m.spec.architecture, "weights_sha256": m.weights_sha256,
                    "random_weights": m.random_weights, "classes": m.num_classes,
                    "layers": resolve_layers(m, settings.layers), "preprocessing": m.preprocessing.as_dict()}
                   for m in models],
        "methods": [resolve_method(k).key for k in settings.methods],
        "targets": settings.targets,
    }


def label_index(label: Optional[str], categories: Sequence[str]) -> Optional[int]:
    """The class a label names (a class name, any case/underscores, or an index), None when none."""
    if label is None:
        return None
    text = str(label).strip()
    try:
        number = float(text)
    except ValueError:
        matches = [i for i, c in enumerate(categories) if normalize_name(c) == normalize_name(text)]
        return matches[0] if len(matches) == 1 else None
    if math.isfinite(number) and number.is_integer() and 0 <= number < len(categories):
        return int(number)
    return None


class BatchWorker:
    """Loads the run's models once; ``worker(refs)`` -> {"maps": Table, "predictions": Table, "skipped": Table}."""

    def __init__(self, settings: RunSettings, device: Optional[str] = None, batch_size: Optional[int] = None,
                 models: Optional[Sequence[LoadedModel]] = None) -> None:
        from ..models import load_model

        self.settings = settings.normalized()
        self.models = list(models) if models is not None else [load_model(n, device=device)
                                                               for n in self.settings.models]
        self.layers = {m.name: resolve_layers(m, self.settings.layers) for m in self.models}
        self.batch_size = batch_size
        self._labels: dict[tuple[str, str], Optional[int]] = {}

    def __call__(self, refs: Sequence[ImageRef]) -> dict[str, pa.Table]:
        good, images, shas, skipped = [], [], [], []
        for ref in refs:
            try:
                image = load_image(ref.read())
            except ImageError as error:
                skipped.append({"image_id": ref.image_id, "label": ref.label, "reason": str(error)})
                continue
            good.append(ref)
            images.append(image)
            shas.append(image_sha256(image))
        maps, predictions = [], []
        for model in self.models:
            truths = [self._label(ref.label, model) for ref in good]
            out = explain_batch(model, images, self.settings.methods, self.settings.targets, truths,
                                self.layers[model.name], self.batch_size,
                                on_batch_size=self._remember_batch_size)
            for ref, sha, truth, explanation in zip(good, shas, truths, out):
                size = explanation.image_size
                maps.extend(map_row(ref.image_id, sha, model.name, size, r, explanation.rank(r.class_index), truth)
                            for r in explanation.results)
                predictions.append(prediction_row(
                    ref.image_id, sha, model.name, explanation, ref.label, truth,
                    None if truth is None else model.categories[truth],
                    None if truth is None else float(explanation.probabilities[truth])))
        return {"maps": table("maps", maps), "predictions": table("predictions", predictions),
                "skipped": table("skipped", skipped)}

    def _label(self, label: Optional[str], model: LoadedModel) -> Optional[int]:
        key = (model.name, label or "")
        if key not in self._labels:
            self._labels[key] = label_index(label, model.categories)
        return self._labels[key]

    def _remember_batch_size(self, size: int) -> None:
        self.batch_size = size  # out of memory once: later batches start at the size that fitted
