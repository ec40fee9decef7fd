"""``python -m explainers evaluate FOLDER --boxes BOXES.json``: a benchmark table like TorchRay's.

For every image with a box: the pointing game per method next to the centre-point baseline,
the energy inside the box, and the deletion and insertion areas. Writes ``evaluation.json``
(summary, settings and every image's numbers) and ``evaluation.csv`` (the table).

Boxes file: ``[{"file": "cat.jpg", "box": [x0, y0, x1, y1], "class": 285}, ...]``; several
records for the same file and class are one ground truth (their union, as TorchRay counts a hit
on any instance). "class" may be an index, a class name, or left out (the model's top-1 class).
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EvaluationError

CENTRE = "centre point (baseline)"
# Kept here so `--help` does not import torch; tests check they match metrics.faithfulness.
BASELINES = ("blur", "zeros", "mean")
DEFAULT_STEPS = 50


@dataclass
class _Tally:
    """Running sums for one row of the table."""

    hits: list[bool] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)
    iou: list[float] = field(default_factory=list)
    deletion: list[float] = field(default_factory=list)
    insertion: list[float] = field(default_factory=list)

    def row(self, name: str) -> dict[str, Any]:
        def mean(values: list) -> float | None:
            return float(np.mean(values)) if values else None
        return {"method": name, "images": len(self.hits), "pointing_accuracy": mean(self.hits),
                "energy": mean(self.energy), "iou": mean(self.iou), "deletion_area": mean(self.deletion),
                "insertion_area": mean(self.insertion)}


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """Register the ``evaluate`` subcommand."""
    from .cli import DEFAULT_MODEL

    p = sub.add_parser("evaluate", help="benchmark methods on a folder of images with boxes (pointing game, "
                                        "deletion, insertion)",
                       description="Pointing game, energy, IoU, deletion and insertion areas per method, "
                                   "over a folder of images with ground-truth boxes.")
    p.add_argument("folder", help="folder holding the images")
    p.add_argument("--boxes", required=True, help='JSON list of {"file", "box": [x0, y0, x1, y1], "class"}')
    p.add_argument("--method", action="extend", nargs="+", metavar="NAME", help="method key(s) (default: gradcam)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default: {DEFAULT_MODEL})")
    p.add_argument("--layer", default=None, help="layer name (default: the model's recommended layer)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"deletion/insertion steps; 0 skips them (default: {DEFAULT_STEPS})")
    p.add_argument("--deletion-baseline", choices=BASELINES, default="mean", help="default: mean (as RISE)")
    p.add_argument("--insertion-baseline", choices=BASELINES, default="blur", help="default: blur (as RISE)")
    p.add_argument("--tolerance", type=float, default=15.0,
                   help="pointing-game tolerance in pixels at 224 px, scaled to each image (default: 15)")
    p.add_argument("--threshold", type=float, default=0.5, help="IoU threshold, share of the map's maximum")
    p.add_argument("--out", default="camscope-eval", help="output folder (default: camscope-eval)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps")
    p.set_defaults(run=run_evaluate)


def read_boxes(path: str | Path, folder: str | Path) -> list[dict]:
    """The records of a boxes file grouped per (file, class), each with its list of boxes.

    Raises:
        EvaluationError: unreadable JSON, a record without file or box, or a missing image file.
    """
    from .review.strata import parse_boxes  # one parser of the boxes format, shared with the Review page

    try:
        text = Path(path).read_text()
    except OSError as error:
        raise EvaluationError(f"Cannot read the boxes file {str(path)!r}: {error}.") from None
    groups = []
    for group in parse_boxes(text):
        image = Path(folder) / group.file
        if not image.is_file():
            raise EvaluationError(f"The boxes file names {group.file!r}, but there is no image {str(image)!r}.")
        groups.append({"file": group.file, "path": image, "class": group.class_ref, "boxes": list(group.boxes)})
    return groups


def _class_index(model, wanted: Any) -> int | None:
    if wanted is None or isinstance(wanted, int) and not isinstance(wanted, bool):
        return wanted
    if isinstance(wanted, str):
        names = [c.lower() for c in model.categories]
        if wanted.strip().lower() in names:
            return names.index(wanted.strip().lower())
        if wanted.strip().isdigit():
            return int(wanted)
    raise EvaluationError(f"Unknown class {wanted!r}: give a class index or one of the model's class names.")


def evaluate_folder(args: argparse.Namespace) -> dict:
    """Run the benchmark; returns the summary written to evaluation.json."""
    from .pipeline import explain
    from .io import load_image
    from .metrics.faithfulness import deletion_insertion
    from .metrics.localisation import centre_baseline, ground_truth, localise, scaled_tolerance
    from .cli_checks import load_model_warning

    if args.steps < 0:
        raise EvaluationError(f"--steps must be 0 (skip) or more, not {args.steps}.")
    groups = read_boxes(args.boxes, args.folder)
    model = load_model_warning(args.model, device=args.device)
    methods = args.method or ["gradcam"]
    tallies: dict[str, _Tally] = {CENTRE: _Tally()}
    per_image = []
    for group in groups:
        image = load_image(group["path"])
        result = explain(model, image, methods=methods, classes=None if group["class"] is None
                         else [_class_index(model, group["class"])], layers=[args.layer] if args.layer else None)
        truth = ground_truth(image.height, image.width, boxes=group["boxes"])
        tolerance = scaled_tolerance(image.height, image.width, args.tolerance)
        centre = centre_baseline(truth, tolerance)
        tallies[CENTRE].hits.append(centre.hit)
        row = {"file": group["file"], "class_index": result.results[0].class_index,
               "class_name": result.results[0].class_name, "boxes": group["boxes"], "centre_hit": centre.hit}
        for r in result.results:
            tally = tallies.setdefault(r.method_name, _Tally())
            loc = localise(r.map, truth, tolerance, args.threshold)
            tally.hits.append(loc.pointing.hit)
            tally.energy.append(loc.energy)
            tally.iou.append(loc.iou)
            numbers = {"hit": loc.pointing.hit, "point": list(loc.pointing.point), "energy": loc.energy,
                       "iou": loc.iou}
            if args.steps:
                faith = deletion_insertion(model, image, r.map, r.class_index, args.steps,
                                           args.deletion_baseline, args.insertion_baseline)
                tally.deletion.append(faith.deletion.area)
                tally.insertion.append(faith.insertion.area)
                numbers |= {"deletion_area": faith.deletion.area, "insertion_area": faith.insertion.area}
            row[r.method] = numbers
        per_image.append(row)
        print(f"{group['file']}: class {row['class_index']} ({row['class_name']})", flush=True)
    return {"table": [t.row(name) for name, t in tallies.items()], "images": per_image,
            "settings": {"model": model.name, "weights_sha256": model.weights_sha256, "methods": methods,
                         "layer": args.layer or model.target_layer, "steps": args.steps,
                         "deletion_baseline": args.deletion_baseline,
                         "insertion_baseline": args.insertion_baseline, "tolerance_at_224": args.tolerance,
                         "iou_threshold": args.threshold, "boxes": str(args.boxes), "folder": str(args.folder)}}


def run_evaluate(args: argparse.Namespace) -> int:
    from .cli import _table, package_versions
    from .cli_checks import writable_folder

    out = writable_folder(args.out)  # before the slow part
    started = time.perf_counter()
    summary = evaluate_folder(args)
    summary["versions"] = package_versions()
    summary["seconds"] = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(summary, indent=2) + "\n")
    columns = ["method", "images", "pointing_accuracy", "energy", "iou", "deletion_area", "insertion_area"]
    with open(out / "evaluation.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(summary["table"])

    def cell(value: float | None, percent: bool = False) -> str:
        return "-" if value is None else f"{100 * value:.1f}%" if percent else f"{value:.3f}"

    _table(("method", "pointing game", "energy", "IoU", "deletion (lower is better)",
            "insertion (higher is better)", "images"),
           [(r["method"], cell(r["pointing_accuracy"], True), cell(r["energy"]), cell(r["iou"]),
             cell(r["deletion_area"]), cell(r["insertion_area"]), str(r["images"])) for r in summary["table"]])
    print(f"wrote evaluation.json and evaluation.csv to {out}")
    return 0
