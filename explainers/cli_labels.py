"""``python -m explainers labels FOLDER --truth labels.csv``: per-label metrics of a multi-label model.

Writes ``per_label.csv`` (precision and recall per label at ``--threshold``), ``predictions.csv``
(true and predicted labels and every probability per image), the map of each false positive and
false negative (``maps/<image>__fp-<label>.npy|.png``, ``__fn-``) and ``summary.json``.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

DEFAULT_OUT = "camscope-labels"


def add_labels(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("labels", help="per-label precision/recall of a multi-label model; maps of its errors",
                       description="Score a folder of images against true labels (CSV: image, labels) with a "
                                   "multi-label model: precision and recall per label at a threshold, and the "
                                   "maps of the false positives and false negatives.")
    p.add_argument("folder", help="folder holding the images named in the CSV")
    p.add_argument("--truth", required=True, help="CSV with columns image, labels (names or indices, ';'-separated)")
    p.add_argument("--model", required=True, help="model name or a Hugging Face / timm folder")
    p.add_argument("--threshold", type=float, default=0.5, help="a label is predicted at or above (default 0.5)")
    p.add_argument("--method", default="gradcam", help="method for the error maps (default: gradcam)")
    p.add_argument("--max-maps", type=int, default=100, help="write at most this many error maps (default 100)")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--device", default=None, help="cpu, cuda or mps")
    p.set_defaults(run=run_labels)


def run_labels(args: argparse.Namespace) -> int:
    from .cli import UsageError
    from .cli_checks import load_model_warning, writable_folder
    from .cli_dataset import export_stem
    from .io import load_image
    from .pipeline import explain
    from .multilabel import label_errors, per_label_metrics, predictions_csv, read_truth, score_images
    from .render import overlay, to_png_bytes

    if not 0.0 < args.threshold < 1.0:
        raise UsageError(f"--threshold must be between 0 and 1, not {args.threshold}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {args.batch_size}")
    out = writable_folder(args.out)  # before the slow part
    model = load_model_warning(args.model, device=args.device)
    truth = read_truth(args.truth, model.categories)
    scored = score_images(model, args.folder, truth, args.batch_size)
    metrics = per_label_metrics(scored, model.categories, args.threshold)
    (out / "maps").mkdir(parents=True, exist_ok=True)
    with open(out / "per_label.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "label", "true_positives", "false_positives", "false_negatives", "true_negatives",
                         "precision", "recall"])
        for m in metrics:
            writer.writerow([m.index, m.name, m.true_positives, m.false_positives, m.false_negatives,
                             m.true_negatives, "" if m.precision is None else f"{m.precision:.6f}",
                             "" if m.recall is None else f"{m.recall:.6f}"])
    (out / "predictions.csv").write_text(predictions_csv(scored, model.categories, args.threshold))
    maps, used = [], set()
    for path, label, kind in label_errors(scored, args.threshold)[:max(args.max_maps, 0)]:
        image = load_image(Path(args.folder) / path)
        result = explain(model, image, methods=[args.method], classes=[label]).results[0]
        stem = f"{export_stem(path, used)}__{'fp' if kind == 'false positive' else 'fn'}-{label}"
        np.save(out / "maps" / f"{stem}.npy", result.map.astype(np.float32))
        (out / "maps" / f"{stem}.png").write_bytes(to_png_bytes(overlay(image, result.map)))
        maps.append({"image": path, "label": model.categories[label], "kind": kind, "map": f"maps/{stem}.npy"})
    summary = {"model": model.name, "head": model.head, "threshold": args.threshold, "images": len(scored),
               "per_label": [{"label": m.name, "precision": m.precision, "recall": m.recall,
                              "true_positives": m.true_positives, "false_positives": m.false_positives,
                              "false_negatives": m.false_negatives} for m in metrics],
               "error_maps": maps}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{len(scored)} images, {len(maps)} error map(s); per-label metrics in {out / 'per_label.csv'}")
    return 0
