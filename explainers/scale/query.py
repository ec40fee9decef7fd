"""SQL over a store with DuckDB (embedded: no server). Views: ``maps``, ``predictions``, ``skipped``,
over the committed part files only, so a query during a run sees whole parts.

Example:
    >>> rows = query("store", "SELECT class_name, max(entropy) FROM maps GROUP BY 1")
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ExplainerError
from .rows import SCHEMAS
from .store import StoreError, committed, read_run


class QueryError(ExplainerError):
    """The SQL is not valid for the store (DuckDB's message, in one line)."""


def connect(folder: str | Path):
    """A DuckDB connection with the store's three views."""
    import duckdb

    root = Path(folder)
    if read_run(root) is None:
        raise StoreError(f"{root} is not a CAMscope store (no run.json); make one with `python -m explainers run`.")
    con = duckdb.connect()
    for name, schema in SCHEMAS.items():
        files = [str(p) for p in committed(root, name)]
        if files:
            listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)  # views take no parameters
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listed}], union_by_name = true)")
        else:  # no part yet: an empty view with the table's columns
            con.register(f"_{name}_empty", schema.empty_table())
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_empty")
    return con


def query(folder: str | Path, sql: str) -> tuple[list[str], list[tuple]]:
    """Run ``sql``; returns (column names, rows)."""
    import duckdb

    con = connect(folder)
    try:
        relation = con.sql(sql)
        if relation is None:
            return [], []
        return list(relation.columns), relation.fetchall()
    except duckdb.Error as error:
        raise QueryError(f"The query failed: {' '.join(str(error).split())}") from None
    finally:
        con.close()
