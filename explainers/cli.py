"""The command line: ``python -m explainers explain|models|methods|layers``.

Each subcommand is a function that adds its parser and sets ``run``; a new
subcommand (dataset, evaluate, report) is one more entry in COMMANDS, and may
live in its own module.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from importlib import metadata
from typing import Callable

import numpy as np

from .cli_checks import load_model_warning, printable, writable_folder
from .cli_dataset import add_dataset
from .cli_evaluate import add_evaluate
from .cli_labels import add_labels
from .cli_query import add_query
from .cli_method_options import add_method_options, method_options, options_summary
from .cli_report import add_report
from .cli_run import add_run
from .cli_strategies import add_strategies
from .errors import ExplainerError
from .fit import FITS

PROG = "camscope"
DEFAULT_MODEL = "efficientnet_lite0"
DEFAULT_OUT = "camscope-out"
DICOM_NAME_HELP = ("name a DICOM input by its path in the outputs (default: by the hash of its bytes, "
                   "since DICOM file names often carry the patient's name)")
VERSIONED = ("torch", "torchvision", "timm", "grad-cam", "numpy", "pillow", "matplotlib", "opencv-python-headless")


class UsageError(ExplainerError):
    """A bad command-line argument (raised instead of argparse's usage-and-exit)."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage plus a line and exits; we want exactly one line, from main()
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _add_explain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="explain an image; write maps (.npy), overlays (.png) and summary.json",
                       description="Explain an image with one or more CAM methods, classes and layers.")
    p.add_argument("image", help="image file (PNG, JPEG, WebP, BMP, TIFF)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"model name (default: {DEFAULT_MODEL}; see `models`) or a Hugging Face or timm model folder")
    p.add_argument("--layer", action="extend", nargs="+", metavar="NAME",
                   help="layer name(s) (default: the model's recommended layer); see `layers`")
    p.add_argument("--method", action="extend", nargs="+", metavar="NAME",
                   help="method key(s) (default: gradcam); see `methods`")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--class", dest="classes", action="extend", nargs="+", type=int, metavar="N",
                       help="class index(es) to explain (default: the top-1 class)")
    which.add_argument("--top-k", type=int, metavar="K", help="explain the K best-scoring classes")
    p.add_argument("--contrast", type=int, nargs=2, metavar=("A", "B"), help="also explain 'A rather than B'")
    p.add_argument("--fit", choices=FITS, default="squash",
                   help="how a non-square image meets the model's input: squash (whole image stretched, default), "
                        "letterbox (whole image padded with the mean color) or crop (the model's own resize and "
                        "centre crop; maps are NaN outside the crop)")
    p.add_argument("--colormap", default="jet", help="matplotlib colormap for the overlays (default: jet)")
    p.add_argument("--opacity", type=float, default=0.5, help="heatmap opacity in [0, 1] (default: 0.5)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: CAMSCOPE_DEVICE, else the best)")
    add_method_options(p)
    p.add_argument("--dicom-file-name", action="store_true", help=DICOM_NAME_HELP)
    p.set_defaults(run=run_explain)


def _add_listings(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("models", help="list the models").set_defaults(run=run_models)
    sub.add_parser("methods", help="list the CAM methods").set_defaults(run=run_methods)
    p = sub.add_parser("layers", help="list a model's layers with their output shapes")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name (default: {DEFAULT_MODEL})")
    p.add_argument("--device", default=None, help="cpu, cuda or mps")
    p.set_defaults(run=run_layers)


# Each entry adds one or more subcommands to the parser.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_explain, _add_listings, add_dataset, add_report,
                                                               add_evaluate, add_labels]
COMMANDS += [add_run, add_query]  # explainers/scale: whole datasets into a Parquet store, SQL over it
COMMANDS += [add_strategies]  # explainers/review: SpRAy, the model's strategies per class


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="CAMscope: Grad-CAM and its variants from the command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    parser.set_defaults(run=None, commands=list(sub.choices))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad arguments or input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.run is None:
            raise UsageError(f"choose a command: {', '.join(args.commands)}")
        return int(args.run(args) or 0)
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    except (ExplainerError, KeyError, OSError) as error:
        # plain sentence, no traceback: these are the user's input, not our bugs
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        print(f"{PROG}: error: {printable(' '.join(str(message).split()))}", file=sys.stderr)
        return 2


# --- explain ---------------------------------------------------------------------------------------

def run_explain(args: argparse.Namespace) -> int:
    from .file_names import input_label_of_path
    from .image_limits import load_notes
    from .io import image_sha256, load_image
    from .render import colorize, overlay, to_png_bytes

    if not 0.0 <= args.opacity <= 1.0:
        raise UsageError(f"--opacity must be between 0 and 1, not {args.opacity}")
    colorize(np.zeros((1, 1)), args.colormap)  # check the colormap before the slow part
    out = writable_folder(args.out)  # and where the results go
    options = method_options(args)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    image = load_image(args.image)  # before importing torch: a bad file fails in a blink
    timings["load_image"] = time.perf_counter() - t0
    from .heads import probability_caption
    from .pipeline import explain

    t0 = time.perf_counter()
    model = load_model_warning(args.model, device=args.device).with_fit(args.fit)
    timings["load_model"] = time.perf_counter() - t0
    methods = args.method or ["gradcam"]
    t0 = time.perf_counter()
    result = explain(model, image, methods=methods, classes=args.classes, top_k=args.top_k,
                     contrast=tuple(args.contrast) if args.contrast else None, layers=args.layer, options=options)
    timings["explain"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    outputs, used = [], set()
    for r in result.results:
        stem = _unique(_stem(r.method, r.class_index, r.contrast_index, r.layer), used)
        array = np.asarray(r.map, dtype=np.float32)
        np.save(out / f"{stem}.npy", array)
        (out / f"{stem}.png").write_bytes(to_png_bytes(overlay(image, array, args.opacity, args.colormap)))
        outputs.append({
            "method": r.method, "method_name": r.method_name, "class_index": r.class_index,
            "class_name": r.class_name, "contrast_index": r.contrast_index, "contrast_name": r.contrast_name,
            "layer": r.layer, "score": r.score, "probability": r.probability, "seconds": r.seconds,
            "map": f"{stem}.npy", "overlay": f"{stem}.png", "shape": list(array.shape), "dtype": "float32",
            "raw_shape": list(np.shape(r.raw)),
        })
    timings["write"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - started

    summary = {
        "image": {"path": input_label_of_path(args.image, args.dicom_file_name), "width": image.width, "height": image.height,
                  "sha256": image_sha256(image)},
        "predictions": [{"index": p.index, "name": p.name, "score": p.score, "probability": p.probability}
                        for p in result.predictions[:5]],
        "outputs": outputs,
        "settings": {
            "model": model.name, "weights_sha256": model.weights_sha256, "random_weights": model.random_weights,
            "layers": list(dict.fromkeys(r.layer for r in result.results)),
            "methods": list(dict.fromkeys(r.method for r in result.results)),
            "classes": list(dict.fromkeys(r.class_index for r in result.results)),
            "requested": {"classes": args.classes, "top_k": args.top_k, "contrast": args.contrast,
                          "layers": args.layer, "methods": methods},
            "colormap": args.colormap, "opacity": args.opacity, "fit": model.preprocessing.fit,
            "method_options": options_summary(options),
            "preprocessing": model.preprocessing.as_dict(), "device": str(model.device),
            "head": model.head, "probabilities": probability_caption(model.head),
            "image_notes": load_notes(image),  # what reading the image changed (NaN pixels, a fallback window...)
        },
        "versions": package_versions(),
        "timings": {**timings, "engine": dict(result.timings)},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    top = result.predictions[0]
    if model.head == "sigmoid":
        above = ", ".join(f"{p.name} p={p.probability:.3f}" for p in result.predictions if p.probability > 0.5)
        print(f"independent labels (sigmoid) above 0.5: {above or 'none'}")
    else:
        print(f"top-1: {top.name} ({top.index}), p={top.probability:.3f}")
    print(f"wrote {len(outputs)} map(s) and overlay(s) and summary.json to {out}")
    return 0


def _stem(method: str, class_index: int, contrast_index: int | None, layer: str) -> str:
    target = f"class{class_index}" + (f"-vs-{contrast_index}" if contrast_index is not None else "")
    return "_".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", part).strip("-") or "x" for part in (method, target, layer))


def _unique(stem: str, used: set[str]) -> str:
    name, n = stem, 2
    while name in used:
        name, n = f"{stem}_{n}", n + 1
    used.add(name)
    return name


def package_versions() -> dict[str, str | None]:
    """Versions of the packages that decide the numbers, plus Python's."""
    versions: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


# --- listings --------------------------------------------------------------------------------------

def run_models(args: argparse.Namespace) -> int:
    """The registered models; then each broken models.toml entry with its own error (exit 2 if any)."""
    from .models import MANIFEST_ERRORS, list_models

    rows = [(s.name, s.source, "yes" if _available(s) else "no", s.target_layer or "(found when loaded)",
             s.display_name)
            for s in list_models()]
    _table(("name", "source", "weights here", "layer", "model"), rows)
    for problem in MANIFEST_ERRORS:
        print(f"{PROG}: error: {printable(' '.join(problem.split()))}", file=sys.stderr)
    return 2 if MANIFEST_ERRORS else 0


def _available(spec) -> bool:
    try:
        return bool(spec.weights_available())
    except Exception:  # a broken availability probe should not break the listing
        return False


def run_methods(args: argparse.Namespace) -> int:
    from .methods.catalog import list_methods

    _table(("key", "method", "cost", "description"),
           [(m.key, m.display_name, m.cost, m.description) for m in list_methods()])
    return 0


def run_layers(args: argparse.Namespace) -> int:
    from .layers import list_layers

    model = load_model_warning(args.model, device=args.device)
    grids = model.extra.get("grids", {})  # token models: the (h, w) map each layer becomes
    rows = [(("* " if info.recommended else "  ") + info.name, info.type,
             "x".join(map(str, info.output_shape)) or "-",
             f"= {info.same_map_as}" if info.same_map_as else "yes" if info.makes_own_map else "no",
             "x".join(map(str, grids.get(info.name, ()))) or "-")
            for info in list_layers(model)]
    _table(("layer (* recommended)", "type", "output shape", "own map (= the layer it repeats)", "map grid"), rows)
    return 0


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(printable(c)) for c in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(printable(c).ljust(w) for c, w in zip(row, widths)).rstrip())
