"""``python -m explainers dataset FOLDER_OR_ZIP --out DIR``: predict a labelled set, write its confusion.

Writes ``predictions.csv``, ``per_class.csv``, ``confusion.csv``, ``confusion.png``, ``summary.json``
and, for each misclassified image, the map of its true class and of its predicted class
(``maps/<image>__true-<i>.npy|.png``, ``maps/<image>__pred-<j>.npy|.png``).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_OUT = "camscope-dataset"
DEFAULT_MODEL = "efficientnet_lite0"  # as in cli.py, which imports this module (so no import back at the top)


def add_dataset(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="predict a labelled set (ImageFolder folder or zip); write its confusion",
                       description="Predict every image of a labelled set in ImageFolder layout "
                                   "(class_name/image.jpg), write the predictions, the confusion matrix "
                                   "and the maps of the misclassified images.")
    p.add_argument("source", help="a folder or a .zip in ImageFolder layout")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default: {DEFAULT_MODEL})")
    p.add_argument("--method", default="gradcam", help="method for the maps of misclassified images (default: gradcam)")
    p.add_argument("--layer", default=None, help="layer for the maps (default: the model's recommended layer)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per forward pass (default: 8 on a CPU, 64 on a GPU)")
    p.add_argument("--mapping", default=None, metavar="JSON",
                   help='folder -> class, as JSON text or a .json file: {"kitty": 281, "cup": "espresso"}')
    p.add_argument("--max-files", type=int, default=5000, help="refuse sets with more files (default: 5000)")
    p.add_argument("--max-mb", type=float, default=500.0, help="refuse sets larger uncompressed (default: 500)")
    p.add_argument("--colormap", default="jet", help="matplotlib colormap for the overlays (default: jet)")
    p.add_argument("--opacity", type=float, default=0.5, help="heatmap opacity in [0, 1] (default: 0.5)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: CAMSCOPE_DEVICE, else the best)")
    p.set_defaults(run=run_dataset)


def _mapping(text: str | None) -> dict | None:
    from .cli import UsageError

    if text is None:
        return None
    path = Path(text)
    try:
        value = json.loads(path.read_text() if text.strip().endswith(".json") and path.is_file() else text)
    except json.JSONDecodeError as error:
        raise UsageError(f"--mapping is not valid JSON ({error.msg}); give e.g. '{{\"kitty\": 281}}'") from None
    if not isinstance(value, dict):
        raise UsageError('--mapping must be a JSON object {"folder": class index or name}')
    return value


MAX_STEM = 80  # characters of an exported name taken from the image's path (file systems allow 255 bytes)


def export_stem(path: str, used: set[str]) -> str:
    """A file-name-safe stem for an image of the set: its path (extension included, so cat/1.jpg and
    cat/1.png differ) with other characters as "_", cut to MAX_STEM characters; a short hash of the
    path is added when it was cut or when another image already has that stem."""
    stem = re.sub(r"[^A-Za-z0-9.+-]+", "_", path).strip("_.") or "image"
    if len(stem) > MAX_STEM or stem in used:
        digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:10]
        stem = f"{stem[:MAX_STEM].rstrip('_.')}-{digest}"
    used.add(stem)
    return stem


class _Record:
    """predictions.csv written as the run goes, so a run that stops midway still says what it did."""

    def __init__(self, path: Path) -> None:
        from .confusion import PREDICTION_FIELDS

        self.handle = open(path, "w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle, lineterminator="\n")
        self.writer.writerow(PREDICTION_FIELDS + ["skipped_reason"])
        self.done: set[str] = set()

    def add(self, rows, skips) -> None:
        from .confusion import prediction_row, skip_row

        self.writer.writerows([prediction_row(r) for r in rows] + [skip_row(s) for s in skips])
        self.handle.flush()
        self.done.update([r.path for r in rows] + [s.path for s in skips])


def run_dataset(args: argparse.Namespace) -> int:
    from .cli_checks import load_model_warning, printable, writable_folder

    out = writable_folder(args.out)  # a bad --out fails before the slow part (imports included)
    from .cli import UsageError, package_versions
    from .class_names import map_folders
    from .dataset import DatasetLimits, read_dataset
    from .methods.catalog import resolve_method
    from .render import colorize

    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {args.batch_size}")
    if not 0.0 <= args.opacity <= 1.0:
        raise UsageError(f"--opacity must be between 0 and 1, not {args.opacity}")
    if args.max_files < 1 or args.max_mb <= 0:
        raise UsageError("--max-files and --max-mb must be positive")
    colorize(np.zeros((1, 1)), args.colormap)  # bad names fail before the slow part too
    method = resolve_method(args.method).key
    mapping = _mapping(args.mapping)
    started = time.perf_counter()
    dataset = read_dataset(args.source, DatasetLimits(args.max_files, int(args.max_mb * 2**20)))

    from .confusion import (MapRequest, confusion_csv, confusion_matrix, default_batch_size, per_class_accuracy,
                            predict_dataset, predictions_csv)
    from .render import overlay, to_png_bytes

    model = load_model_warning(args.model, device=args.device)
    labels = map_folders(dataset.folders, model.categories, mapping)
    (out / "maps").mkdir(parents=True, exist_ok=True)
    written, used = [], set()
    base = {"source": str(args.source), "model": model.name, "weights_sha256": model.weights_sha256,
            "method": method, "layer": args.layer or model.target_layer, "labels": labels,
            "batch_size": args.batch_size or default_batch_size(model), "versions": package_versions()}

    def write_maps(row, image, cams) -> None:  # called per misclassified image, as soon as its maps exist
        entry = {"path": row.path, "true_index": row.true_index, "predicted_index": row.predicted_index}
        name = export_stem(row.path, used)
        for which, cam in zip(("true", "pred"), cams):
            stem = f"maps/{name}__{which}-{cam.class_index}"
            np.save(out / f"{stem}.npy", cam.map.astype(np.float32))
            (out / f"{stem}.png").write_bytes(to_png_bytes(overlay(image, cam.map, args.opacity, args.colormap)))
            entry[f"{which}_map"], entry[f"{which}_overlay"] = f"{stem}.npy", f"{stem}.png"
        written.append(entry)

    record = _Record(out / "predictions.csv")
    try:
        result = predict_dataset(model, dataset, labels, args.batch_size, progress=_progress,
                                 maps=MapRequest(write_maps, method, args.layer), on_batch=record.add)
    except BaseException as error:  # the record is completed, then the error goes on (exit 2 or traceback)
        record.handle.close()
        missing = [f.path for f in dataset.files if f.path not in record.done]
        summary = {**base, "complete": False, "error": str(error) or type(error).__name__,
                   "files": len(dataset.files), "recorded": len(record.done), "missing": missing,
                   "misclassified": written, "seconds": {"total": time.perf_counter() - started}}
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"stopped after {len(record.done)} of {len(dataset.files)} files: predictions.csv holds those, "
              f"summary.json lists the {len(missing)} missing; nothing else was written to {printable(out)}",
              file=sys.stderr)
        raise
    record.handle.close()
    matrix = confusion_matrix(result)
    (out / "predictions.csv").write_text(predictions_csv(result))  # the same lines, images first
    (out / "confusion.csv").write_text(confusion_csv(matrix))
    (out / "confusion.png").write_bytes(confusion_png(matrix))
    (out / "per_class.csv").write_text(_per_class_csv(per_class_accuracy(result)))
    wrong = [r for r in result.rows if not r.correct]

    summary = {
        **base, "complete": True,
        "images": len(result.rows), "correct": sum(r.correct for r in result.rows), "accuracy": result.accuracy,
        "skipped": [{"path": s.path, "reason": s.reason} for s in result.skipped],
        "misclassified": written,
        "seconds": {"predict_and_maps": result.seconds, "total": time.perf_counter() - started},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{len(result.rows)} images, accuracy {result.accuracy:.1%}, {len(wrong)} misclassified, "
          f"{len(result.skipped)} skipped; wrote predictions.csv, confusion.csv/.png and "
          f"{2 * len(written)} maps to {printable(out)}")
    return 0


def _progress(fraction: float, message: str) -> None:
    from .cli_checks import printable

    print(f"\r[{fraction:6.1%}] {printable(message)}", end="\n" if fraction >= 1 else "", file=sys.stderr, flush=True)


def _per_class_csv(rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["class_index", "class_name", "images", "correct", "accuracy", "most_confused_with"])
    for r in rows:
        writer.writerow([r.index, r.name, r.images, r.correct, f"{r.accuracy:.6f}", r.most_confused_with])
    return buffer.getvalue()


def confusion_png(matrix) -> bytes:
    """The confusion matrix as a PNG: counts in each cell, true classes down, predicted across."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state

    n_rows, n_cols = matrix.counts.shape
    fig = Figure(figsize=(max(4.0, 1.0 + 0.6 * n_cols), max(3.0, 1.0 + 0.5 * n_rows)), dpi=100,
                 layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(matrix.counts, cmap="Blues", vmin=0)
    top = matrix.counts.max() if matrix.counts.size else 0
    for i in range(n_rows):
        for j in range(n_cols):
            value = int(matrix.counts[i, j])
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
    ax.set_xticks(range(n_cols), [f"{n} ({c})" for c, n in zip(matrix.columns, matrix.column_names)],
                  rotation=45, ha="right")
    ax.set_yticks(range(n_rows), [f"{n} ({c})" for c, n in zip(matrix.rows, matrix.row_names)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(image, ax=ax, label="images")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
