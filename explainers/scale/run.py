"""A run: list SOURCE, skip what the store holds, explain the rest batch by batch, commit parts.

The local engine and the Ray engine differ only in where ``BatchWorker`` runs; the loop here
(resume, progress bar, buffered atomic writes, stopping on a signal) is the same for both.

Stopping: the first SIGINT or SIGTERM lets the batch being computed finish, commits every
finished batch and records the run as interrupted; a second one stops at once (what is not
committed is removed when the store is next opened). Rerunning the same command completes it.
"""
from __future__ import annotations

import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, Sequence

import pyarrow as pa

from ..errors import ExplainerError
from .sources import ImageRef, list_source
from .settings import RunSettings
from .store import TABLES, Store, check_requested, stored_ids

if TYPE_CHECKING:
    from .worker import BatchWorker

PART_IMAGES = 1024  # images per committed part file: fewer, larger files read faster
PART_SECONDS = 60.0  # ... but a slow run commits at least this often


@dataclass(frozen=True)
class RunReport:
    listed: int  # images in SOURCE (after --limit)
    already_stored: int
    explained: int  # images that got predictions (and maps) in this run
    skipped: int  # images that could not be read, in this run
    seconds: float
    interrupted: bool
    run: dict  # run.json as written


class Stop:
    """Set by the first SIGINT/SIGTERM; the second one raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.signal: Optional[int] = None

    def __bool__(self) -> bool:
        return self.signal is not None

    def __call__(self, signum: int, _frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    stop = Stop()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run(source: str, out: str, settings: RunSettings, engine: str = "local", address: Optional[str] = None,
        batch_size: Optional[int] = None, limit: Optional[int] = None, quiet: bool = False,
        device: Optional[str] = None, part_images: int = PART_IMAGES, actors: Optional[int] = None) -> RunReport:
    """Explain every image of ``source`` into the store ``out`` (see the module docstring)."""
    if engine not in ("local", "ray"):
        raise ExplainerError(f"Unknown engine {engine!r}: use local or ray.")
    with _ray_starting(engine, address):
        return _run(source, out, settings, engine, address, batch_size, limit, quiet, device, part_images, actors)


@contextmanager
def _ray_starting(engine: str, address: Optional[str]) -> Iterator[None]:
    """For the Ray engine, Ray starts in the background while settings, SOURCE and the store are checked."""
    if engine != "ray":
        yield
        return
    from .ray_engine import start_ray, stop_unused_start

    start_ray(address)
    try:
        yield
    finally:
        stop_unused_start(address)  # the run failed before its batches: Ray stops here


def _run(source: str, out: str, settings: RunSettings, engine: str, address: Optional[str],
         batch_size: Optional[int], limit: Optional[int], quiet: bool, device: Optional[str], part_images: int,
         actors: Optional[int]) -> RunReport:
    started = time.perf_counter()
    refs = list_source(source)[:limit]
    if engine == "local":
        return _into_store(source, out, settings.normalized(), engine, refs, None, set(), batch_size, quiet, device,
                           part_images, started)
    key = _run_key(source, out, settings, address, batch_size, limit, device, actors)
    pipeline, early = _STARTED.pop(key, None) or _start_pipeline(refs, out, settings, address, batch_size, device,
                                                                  actors)
    try:
        return _into_store(source, out, settings.normalized(), engine, refs, pipeline, early, batch_size, quiet,
                           device, part_images, started)
    finally:
        pipeline.close()


_STARTED: dict[tuple, tuple] = {}  # run arguments -> (RayRun, image ids stored when it started)


def _run_key(source: str, out: str, *rest: object) -> tuple:
    """What ``start_ray_run`` files a started pipeline under, and ``run`` looks it up by."""
    return (str(source), str(out), *rest)


def start_ray_run(source: str, out: str, settings: RunSettings, address: Optional[str] = None,
                  batch_size: Optional[int] = None, limit: Optional[int] = None, device: Optional[str] = None,
                  actors: Optional[int] = None) -> None:
    """Start a Ray run's pipeline now (``python -m explainers run ... --engine ray`` does, before importing
    the engine); ``run`` with the same arguments takes it over. Imports no torch."""
    from .ray_engine import start_ray

    start_ray(address)
    key = _run_key(source, out, settings, address, batch_size, limit, device, actors)
    _STARTED[key] = _start_pipeline(list_source(source)[:limit], out, settings, address, batch_size, device, actors)


def _start_pipeline(refs: list[ImageRef], out: str, settings: RunSettings, address: Optional[str],
                    batch_size: Optional[int], device: Optional[str], actors: Optional[int]) -> tuple:
    """The actors start now, while this process imports the engine and opens the store."""
    from .ray_engine import RayRun

    early = stored_ids(out)
    return RayRun([r for r in refs if r.image_id not in early], settings, address, batch_size, device, actors), early


def _into_store(source: str, out: str, settings: RunSettings, engine: str, refs: list[ImageRef],
                pipeline: Optional[Iterable[dict[str, pa.Table]]], early: set[str], batch_size: Optional[int],
                quiet: bool, device: Optional[str], part_images: int, started: float) -> RunReport:
    """Check the settings, open the store, and commit the batches (the local engine's, or ``pipeline``'s
    that was started for the images not stored in ``early``)."""
    from ..cli import package_versions
    from .worker import BatchWorker, describe

    check_requested(out, {"models": list(settings.models), "methods": list(settings.methods),
                          "layers": list(settings.layers) if settings.layers else None, "targets": settings.targets})
    if pipeline is None:
        worker = BatchWorker(settings, device, batch_size)
        models = worker.models
    else:
        from ..models import load_model

        worker = None
        models = [load_model(n, device="cpu") for n in settings.models]  # for the settings record only
    store = Store.open(out, describe(settings, models), str(source), engine)
    status, counts = "failed", {"explained": 0, "skipped": 0}
    done = store.done_ids()
    todo = [r for r in refs if r.image_id not in done]
    try:
        with stop_on_signals() as stop, _progress(len(todo), quiet) as bar:
            if worker is not None:
                batches = _local(worker, todo, batch_size or _default_size(models))
            else:  # another run may have committed images between ``early`` and opening the store
                batches = _without(pipeline, done - early)
            _commit(store, batches, stop, bar, counts, part_images, len(settings.models))
            status = "interrupted" if stop else "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        record = store.close(status, {**package_versions(), **_more_versions()})
    return RunReport(len(refs), len(refs) - len(todo), counts["explained"], counts["skipped"],
                     time.perf_counter() - started, status != "complete", record)


def _without(batches: Iterable[dict[str, pa.Table]], ids: set[str]) -> Iterator[dict[str, pa.Table]]:
    """The batches without the rows of ``ids`` (none, unless another run wrote to the store meanwhile)."""
    import pyarrow.compute as pc

    drop = pa.array(sorted(ids)) if ids else None  # built once, not per batch
    for tables in batches:
        if drop is not None:
            tables = {k: t.filter(pc.invert(pc.is_in(t.column("image_id"), drop))) for k, t in tables.items()}
        yield tables


def _default_size(models) -> int:
    from ..batch import default_batch_size

    return default_batch_size(models[0])


def _local(worker: BatchWorker, todo: Sequence[ImageRef], batch_size: int) -> Iterator[dict[str, pa.Table]]:
    for start in range(0, len(todo), batch_size):
        yield worker(todo[start:start + batch_size])


def _commit(store: Store, batches: Iterable[dict[str, pa.Table]], stop: Stop, bar, counts: dict,
            part_images: int, n_models: int) -> None:
    """Buffer finished batches and commit them as one part every ``part_images`` images (or minute)."""
    buffer: list[dict[str, pa.Table]] = []
    buffered, last = 0, time.monotonic()
    iterator = iter(batches)
    try:
        while True:
            try:
                tables = next(iterator)
            except StopIteration:
                break
            except Exception:
                if stop:  # the engine died of the same signal (Ray's processes get Ctrl-C too)
                    break
                raise
            images = tables["predictions"].num_rows // n_models + tables["skipped"].num_rows
            buffer.append(tables)
            buffered += images
            counts["explained"] += tables["predictions"].num_rows // n_models
            counts["skipped"] += tables["skipped"].num_rows
            bar.update(images)
            if buffered >= part_images or time.monotonic() - last >= PART_SECONDS or stop:
                _flush(store, buffer)
                buffer, buffered, last = [], 0, time.monotonic()
            if stop:
                break
    finally:
        if buffer:  # finished batches are committed even when the loop stops early
            _flush(store, buffer)
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


def _flush(store: Store, buffer: list[dict[str, pa.Table]]) -> None:
    store.write({name: pa.concat_tables([b[name] for b in buffer]) for name in TABLES})


@contextmanager
def _progress(total: int, quiet: bool):
    from tqdm import tqdm

    bar = tqdm(total=total, unit="img", disable=quiet, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
    try:
        yield bar
    finally:
        bar.close()


def _more_versions() -> dict[str, Optional[str]]:
    from importlib import metadata

    out = {}
    for name in ("pyarrow", "ray", "duckdb", "tqdm"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
