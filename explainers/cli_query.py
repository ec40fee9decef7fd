"""``python -m explainers query STORE "SQL"``: DuckDB over a store's Parquet (views maps, predictions,
skipped); prints a table or writes CSV."""
from __future__ import annotations

import argparse
import csv
import sys


def add_query(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("query", help="SQL over a store (views: maps, predictions, skipped)",
                       description="Run DuckDB SQL over a store written by `run`. Views: maps, predictions, "
                                   "skipped. Example: SELECT image_id, entropy FROM maps ORDER BY entropy DESC")
    p.add_argument("store", help="the store folder")
    p.add_argument("sql", help="the SQL query")
    p.add_argument("--csv", default=None, metavar="FILE", help="write the result as CSV to FILE (- for stdout)")
    p.add_argument("--max-rows", type=int, default=50, help="rows printed in the table (default: 50)")
    p.set_defaults(run=run_query)


def run_query(args: argparse.Namespace) -> int:
    from .scale.query import query

    columns, rows = query(args.store, args.sql)
    if args.csv is not None:
        handle = sys.stdout if args.csv == "-" else open(args.csv, "w", newline="")
        try:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([_cell(v) for v in row] for row in rows)
        finally:
            if handle is not sys.stdout:
                handle.close()
        if args.csv != "-":
            print(f"wrote {len(rows)} rows to {args.csv}")
        return 0
    shown = [[_cell(v) for v in row] for row in rows[:args.max_rows]]
    widths = [max([len(c)] + [len(r[i]) for r in shown]) for i, c in enumerate(columns)]
    for line in (columns, *shown):
        print("  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip())
    if len(rows) > args.max_rows:
        print(f"... {len(rows) - args.max_rows} more rows (--max-rows, or --csv FILE for all)")
    return 0


def _cell(value: object) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)
