"""``python -m explainers run SOURCE --out STORE``: maps and predictions of a whole dataset into a
Parquet store, on this machine or a Ray cluster; resumable (see explainers/scale/)."""
from __future__ import annotations

import argparse
import contextlib
import io
import sys

DEFAULT_MODEL = "efficientnet_lite0"  # as in cli.py, which imports this module


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="explain a whole dataset into a Parquet store (local or Ray); resumable",
                       description="Explain every image of SOURCE (a folder, an ImageFolder zip, or a CSV/Parquet "
                                   "listing with a path and an optional label column) with one-pass methods and "
                                   "write maps, predictions and skipped files to a Parquet store. Rerun the same "
                                   "command to complete an interrupted run.")
    p.add_argument("source", help="a folder, an ImageFolder .zip, or a .csv/.parquet listing image paths")
    p.add_argument("--out", required=True, metavar="STORE", help="the store folder (created if missing)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: a Ray Data pipeline")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (e.g. auto or ray://head:10001); default: start Ray here")
    p.add_argument("--model", action="append", metavar="NAME",
                   help=f"model name; repeat for several (default: {DEFAULT_MODEL})")
    p.add_argument("--method", action="extend", nargs="+", metavar="NAME",
                   help="one-pass method key(s) (default: gradcam)")
    p.add_argument("--layer", action="extend", nargs="+", metavar="NAME",
                   help="layer name(s) (default: each model's recommended layer)")
    p.add_argument("--targets", default="predicted", metavar="RULE",
                   help="classes to explain per image: predicted (default), true, both or top-k:K")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per forward pass (default: 8 on a CPU, 64 on a GPU; halved on out-of-memory)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images of SOURCE")
    p.add_argument("--actors", type=int, default=None,
                   help="Ray only: model replicas (default: one per GPU, else one per 4 CPUs)")
    p.add_argument("--part-images", type=int, default=1024, metavar="N",
                   help="images per committed Parquet part (default: 1024)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: CAMSCOPE_DEVICE, else the best)")
    p.add_argument("--quiet", action="store_true", help="no progress bar; one summary line")
    p.set_defaults(run=run_run)


def start_early(argv: list[str]) -> None:
    """For ``run ... --engine ray``: start Ray and its actors before the command line imports the engine
    (seconds of torch and pytorch-grad-cam imports); the run takes the started pipeline over. Anything
    odd (a usage error, an unreadable SOURCE) is left for the run itself to report."""
    if not argv or argv[0] != "run":
        return
    parser = argparse.ArgumentParser(add_help=False)
    add_run(parser.add_subparsers())
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            args, _ = parser.parse_known_args(argv)
    except SystemExit:  # argparse's way to say "usage error": the real parse reports it
        return
    sizes = (args.batch_size, args.limit, args.actors)
    if args.engine != "ray" or any(v is not None and v < 1 for v in sizes):
        return
    from .errors import ExplainerError
    from .scale.run import start_ray_run

    try:
        start_ray_run(args.source, args.out, _settings(args), args.address, args.batch_size, args.limit,
                      args.device, args.actors)
    except ExplainerError:  # e.g. SOURCE cannot be listed: the run says so when it lists it again
        return


def _settings(args: argparse.Namespace):
    from .scale.settings import RunSettings

    return RunSettings(tuple(args.model or [DEFAULT_MODEL]), tuple(args.method or ["gradcam"]),
                       tuple(args.layer) if args.layer else None, args.targets)


def run_run(args: argparse.Namespace) -> int:
    from .cli import UsageError

    for name in ("batch_size", "limit", "actors", "part_images"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    from .scale.run import run  # a Ray run starts Ray in the background before it imports the engine

    report = run(args.source, args.out, _settings(args), engine=args.engine, address=args.address,
                 batch_size=args.batch_size, limit=args.limit, quiet=args.quiet, device=args.device,
                 part_images=args.part_images, actors=args.actors)
    counts = report.run["counts"]
    rate = report.explained / report.seconds if report.seconds > 0 else 0.0
    print(f"{report.explained} images explained, {report.skipped} skipped, {report.already_stored} already stored "
          f"({rate:.1f} images/s); the store {args.out} holds {counts['images']} images, {counts['maps']} maps")
    if report.interrupted:
        print(f"interrupted: rerun the same command to finish ({report.listed - counts['images']} images left)",
              file=sys.stderr)
        return 130
    return 0
