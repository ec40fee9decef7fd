"""Reviewer verdicts on a store's images, in ``STORE/reviews.sqlite``.

SQLite in WAL mode with a busy timeout, one short ``BEGIN IMMEDIATE`` transaction per verdict: two
reviewers (two sessions, two processes) recording at once wait for each other's write lock instead
of losing a verdict. Every verdict is kept (the history); the latest one per (image, model) is the
image's verdict.

Example:
    >>> record("stores/pets", "tabby/001.jpg", "efficientnet_lite0", "spurious evidence",
    ...        "looks at the carpet", "Ada")
"""
from __future__ import annotations

import csv
import io
import sqlite3
from dataclasses import astuple, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from ..errors import ExplainerError

VERDICTS = ("evidence right", "spurious evidence", "unsure")
DB_FILE = "reviews.sqlite"
BUSY_MS = 30_000  # how long a writer waits for another's lock before giving up with a sentence
_SCHEMA = """CREATE TABLE IF NOT EXISTS verdicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, image_id TEXT NOT NULL, model TEXT NOT NULL,
    verdict TEXT NOT NULL, note TEXT NOT NULL, reviewer TEXT NOT NULL, time TEXT NOT NULL)"""


class VerdictError(ExplainerError):
    """A verdict cannot be recorded: unknown verdict, no reviewer name, or the database is busy or read-only."""


@dataclass(frozen=True)
class Verdict:
    id: int
    image_id: str
    model: str
    verdict: str  # one of VERDICTS
    note: str
    reviewer: str
    time: str  # UTC, ISO 8601 ("2026-12-01T05:30:00.123456+00:00")


def connect(store: str | Path) -> sqlite3.Connection:
    """The store's verdict database (created on first use), WAL mode, autocommit (explicit transactions)."""
    path = Path(store) / DB_FILE
    try:
        con = sqlite3.connect(path, timeout=BUSY_MS / 1000, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        con.execute("PRAGMA journal_mode = WAL")
        con.execute(_SCHEMA)
    except sqlite3.Error as error:
        raise VerdictError(f"The verdicts of {Path(store).name} cannot be opened ({error}); "
                           "the store folder must be writable.") from None
    return con


def record(store: str | Path, image_id: str, model: str, verdict: str, note: str, reviewer: str) -> Verdict:
    """Add one verdict (earlier ones stay in the history) and return it.

    Raises:
        VerdictError: ``verdict`` not in VERDICTS, an empty reviewer name, or a write that failed.
    """
    if verdict not in VERDICTS:
        raise VerdictError(f"Unknown verdict {verdict!r}: use one of {', '.join(VERDICTS)}.")
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise VerdictError("Enter your name as reviewer before recording a verdict.")
    when = datetime.now(timezone.utc).isoformat()
    con = connect(store)
    try:
        con.execute("BEGIN IMMEDIATE")  # the write lock now (waiting up to BUSY_MS): the insert cannot meet a lock
        cursor = con.execute("INSERT INTO verdicts (image_id, model, verdict, note, reviewer, time) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (image_id, model, verdict, note or "", reviewer, when))
        con.execute("COMMIT")
    except sqlite3.Error as error:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise VerdictError(f"The verdict was not recorded ({error}); try again.") from None
    finally:
        con.close()
    return Verdict(int(cursor.lastrowid), image_id, model, verdict, note or "", reviewer, when)


def history(store: str | Path, image_id: Optional[str] = None, model: Optional[str] = None,
            verdict: Optional[str] = None) -> list[Verdict]:
    """Every verdict (oldest first), optionally of one image, one model, or one verdict value."""
    if not (Path(store) / DB_FILE).is_file():
        return []
    where, params = [], []
    for column, value in (("image_id", image_id), ("model", model), ("verdict", verdict)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    sql = "SELECT id, image_id, model, verdict, note, reviewer, time FROM verdicts"
    sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    con = connect(store)
    try:
        return [Verdict(*row) for row in con.execute(sql, params)]
    finally:
        con.close()


def latest(store: str | Path) -> dict[tuple[str, str], Verdict]:
    """The latest verdict of each (image_id, model) that has one."""
    return {(v.image_id, v.model): v for v in history(store)}  # oldest first: later ones overwrite


def export_csv(store: str | Path) -> str:
    """Every verdict as CSV text (header: id, image_id, model, verdict, note, reviewer, time)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields(Verdict)])
    writer.writerows(astuple(v) for v in history(store))
    return out.getvalue()
