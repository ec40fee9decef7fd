"""Reviewer verdicts in STORE/reviews.sqlite: two writers at once lose nothing; WAL; history; CSV export."""
from __future__ import annotations

import csv
import io
import multiprocessing
import sqlite3

import pytest

from explainers.review import verdicts

PER_WRITER = 200


def _write_many(store: str, reviewer: str, start, errors) -> None:
    start.wait()  # both writers begin together
    try:
        for n in range(PER_WRITER):
            verdicts.record(store, f"img{n % 7}.png", "m", verdicts.VERDICTS[n % 3], f"{reviewer} {n}", reviewer)
    except Exception as error:  # reported to the test, which fails with it
        errors.put(f"{reviewer}: {error!r}")


def test_two_writers_at_once_lose_no_verdict(tmp_path):
    context = multiprocessing.get_context("spawn")
    start, errors = context.Event(), context.Queue()
    writers = [context.Process(target=_write_many, args=(str(tmp_path), name, start, errors)) for name in ("Ada", "Bo")]
    for writer in writers:
        writer.start()
    start.set()
    try:
        for writer in writers:
            writer.join(timeout=240)
    finally:
        for writer in writers:  # a writer still running after the wait is stopped, never left behind
            if writer.is_alive():
                writer.terminate()
    assert [w.exitcode for w in writers] == [0, 0]
    assert errors.empty(), errors.get()
    kept = verdicts.history(tmp_path)
    assert len(kept) == 2 * PER_WRITER
    assert {v.note for v in kept} == {f"{who} {n}" for who in ("Ada", "Bo") for n in range(PER_WRITER)}
    assert len({v.id for v in kept}) == 2 * PER_WRITER
    with sqlite3.connect(tmp_path / verdicts.DB_FILE) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_history_latest_and_csv(tmp_path):
    first = verdicts.record(tmp_path, "cat.jpg", "lite0", "unsure", "", "Ada")
    second = verdicts.record(tmp_path, "cat.jpg", "lite0", "spurious evidence", 'the sofa, "mostly"', " Bo ")
    verdicts.record(tmp_path, "dog.jpg", "lite0", "evidence right", "head", "Ada")
    assert second.reviewer == "Bo" and second.time.endswith("+00:00")  # trimmed name, UTC time
    assert [v.verdict for v in verdicts.history(tmp_path, "cat.jpg", "lite0")] == ["unsure", "spurious evidence"]
    assert verdicts.latest(tmp_path)[("cat.jpg", "lite0")] == second
    assert [v.image_id for v in verdicts.history(tmp_path, verdict="evidence right")] == ["dog.jpg"]
    table = list(csv.reader(io.StringIO(verdicts.export_csv(tmp_path))))
    assert table[0] == ["id", "image_id", "model", "verdict", "note", "reviewer", "time"]
    assert table[1] == [str(first.id), "cat.jpg", "lite0", "unsure", "", "Ada", first.time]
    assert table[2][3:6] == ["spurious evidence", 'the sofa, "mostly"', "Bo"]
    assert len(table) == 4


def test_refused_verdicts_say_why(tmp_path):
    with pytest.raises(verdicts.VerdictError, match="Unknown verdict"):
        verdicts.record(tmp_path, "cat.jpg", "m", "great", "", "Ada")
    with pytest.raises(verdicts.VerdictError, match="Enter your name"):
        verdicts.record(tmp_path, "cat.jpg", "m", "unsure", "", "  ")
    assert verdicts.history(tmp_path) == []


def test_the_reviewer_report_lists_the_images_verdicts_latest_first(tmp_path, lite0, cat_image):
    from explainers.pipeline import explain, predict
    from explainers.report import build_report

    verdicts.record(tmp_path, "tabby/cat.jpg", lite0.name, "unsure", "", "Ada")
    verdicts.record(tmp_path, "tabby/cat.jpg", lite0.name, "spurious evidence", "<b>the sofa</b>", "Bo")
    given = [{"time": v.time, "reviewer": v.reviewer, "verdict": v.verdict, "note": v.note}
             for v in verdicts.history(tmp_path, "tabby/cat.jpg", lite0.name)]
    results = explain(lite0, cat_image, ["gradcam"]).results
    page = build_report(lite0, cat_image, results, predict(lite0, cat_image), verdicts=given).html
    section = page.split("<h2>Reviewer verdicts</h2>")[1].split("<h2>")[0]
    assert "Latest: <b>spurious evidence</b>" in section
    assert section.index("Bo") < section.index("Ada")  # the latest first
    assert "&lt;b&gt;the sofa&lt;/b&gt;" in section  # a note is text, never markup
    assert "Reviewer verdicts" not in build_report(lite0, cat_image, results, predict(lite0, cat_image)).html
