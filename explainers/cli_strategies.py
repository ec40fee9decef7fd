"""``python -m explainers strategies STORE --out DIR``: SpRAy over a store (per class, spectral
clustering of the maps; see explainers/review/strategies.py); writes strategies.csv and strategies.html."""
from __future__ import annotations

import argparse


def add_strategies(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("strategies", help="the model's strategies per class: spectral clustering of a store's maps",
                       description="Spectral relevance analysis (Lapuschkin et al. 2019): per class, cluster the "
                                   "store's downsized maps; the number of clusters comes from the eigengap. Writes "
                                   "DIR/strategies.csv (one row per image) and DIR/strategies.html.")
    p.add_argument("store", help="a store folder written by `run`")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.add_argument("--method", default="gradcam", help="which stored method's maps (default: gradcam)")
    p.add_argument("--model", default=None, help="which stored model (default: the store's first)")
    p.add_argument("--layer", default=None, help="which stored layer (default: the model's first)")
    p.add_argument("--classes", nargs="+", metavar="CLASS", default=None,
                   help="class indices or names (default: every class)")
    p.add_argument("--by", choices=("predicted", "true"), default="predicted",
                   help="group images by their predicted class (its map, default) or their true class (its map; "
                        "needs a run with --targets true or both)")
    p.add_argument("--grid", type=int, default=16, help="maps are resized to GRID x GRID (default: 16)")
    p.set_defaults(run=run_strategies)


def run_strategies(args: argparse.Namespace) -> int:
    from .cli import UsageError
    from .cli_checks import writable_folder
    from .review.strategies import StrategySettings, find_strategies
    from .review.strategies_report import write_csv, write_html
    from .scale.store import StoreError, read_run

    if not 2 <= args.grid <= 64:
        raise UsageError(f"--grid must be between 2 and 64, not {args.grid}")
    if read_run(args.store) is None:
        raise StoreError(f"{args.store} is not a CAMscope store (no run.json); make one with `python -m explainers run`.")
    out = writable_folder(args.out)
    settings = StrategySettings(method=args.method, model=args.model, layer=args.layer, by=args.by,
                                classes=tuple(args.classes) if args.classes else None, grid=args.grid)
    result = find_strategies(args.store, settings)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(result, out / "strategies.csv")
    write_html(result, out / "strategies.html")
    for found in result.classes:
        sizes = ", ".join(str(c.size) for c in found.clusters)
        n, k = found.images, len(found.clusters)
        print(f"{found.class_name} ({found.class_index}): {n} image{'s' * (n != 1)}, "
              f"{k} cluster{'s' * (k != 1)} of sizes {sizes}")
    print(f"wrote {out / 'strategies.csv'} and {out / 'strategies.html'}")
    return 0
