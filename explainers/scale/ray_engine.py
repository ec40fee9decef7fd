"""The run on Ray Data: ``map_batches`` over a pool of actors, each loading the models once.

Each actor runs the same ``BatchWorker`` as the local engine and returns its batch's three tables
as Arrow IPC bytes (one output row per batch); the driver commits them to the store as they
arrive, so the store needs no shared filesystem, only the images do.

Resources: one actor per GPU (``num_gpus=1``) when the cluster has GPUs; otherwise CPU actors,
one per 4 CPUs, that ask Ray for one CPU fewer than the threads they run: an actor pool holding
every CPU leaves none for Ray Data's other tasks and the pipeline stalls (seen with
``ray.init(num_cpus=2)`` and two 1-CPU actors).

Start-up: Ray's own start (``ray.init``: its head processes) takes seconds; ``start_ray`` begins it
in a background thread as soon as a run knows it will need Ray, so it overlaps the driver's imports,
source listing and store checks. This module imports neither torch nor the engine (the actors do).
"""
from __future__ import annotations

import logging
import math
import os
import queue
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import pyarrow as pa

from .sources import ImageRef

if TYPE_CHECKING:
    from .settings import RunSettings

CPU_THREADS_PER_ACTOR = 4
TABLE_NAMES = ("maps", "predictions", "skipped")


class RayExplainer:
    """The class-based UDF: models loaded once per actor, one call per batch of image refs."""

    def __init__(self, settings: dict, device: Optional[str], batch_size: Optional[int],
                 threads: Optional[int]) -> None:
        import torch

        from .settings import RunSettings
        from .worker import BatchWorker

        if threads:
            torch.set_num_threads(threads)
        layers = tuple(settings["layers"]) if settings["layers"] else None
        self.worker = BatchWorker(RunSettings(tuple(settings["models"]), tuple(settings["methods"]), layers,
                                              settings["targets"]), device, batch_size)

    def __call__(self, batch: pa.Table) -> dict[str, list]:
        refs = [ImageRef(r["image_id"], r["location"], r["member"] or None, r["label"] or None, r["problem"] or None)
                for r in batch.to_pylist()]
        tables = self.worker(refs)
        return {name: [_to_bytes(tables[name])] for name in TABLE_NAMES}


def ray_batches(todo: Sequence[ImageRef], settings: RunSettings, address: Optional[str] = None,
                batch_size: Optional[int] = None, device: Optional[str] = None,
                actors: Optional[int] = None) -> Iterator[dict[str, pa.Table]]:
    """Explain ``todo`` on Ray (started here, or joined at ``address``); yields each batch's tables."""
    import ray

    if not todo:
        return  # a Ray that start_ray began is stopped by stop_unused_start
    start_ray(address)  # unless start_ray already began it, or Ray runs in this process anyway
    starter = _STARTERS.get(address)
    try:
        if starter is not None:
            starter.wait()  # raises what ray.init raised
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        if gpus and device != "cpu":
            pool, threads, per_actor = actors or gpus, None, {"num_gpus": 1, "num_cpus": 1}
            device, size = device or "cuda", batch_size or 64
        else:
            pool = actors or max(1, cpus // CPU_THREADS_PER_ACTOR)
            threads = _threads_from_env() or max(1, cpus // pool)
            per_actor = {"num_cpus": threads - 1 if threads > 1 else 0.5}  # leaves CPUs for Ray Data's tasks
            device, size = "cpu", batch_size or 8
        items = [{"image_id": r.image_id, "location": r.location, "member": r.member or "",
                  "label": r.label or "", "problem": r.problem or ""} for r in todo]
        _quiet_ray_data()
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the run has its own bar
        blocks = max(1, min(math.ceil(len(items) / size), 4 * pool * 8))
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            RayExplainer, batch_size=size, batch_format="pyarrow",
            fn_constructor_kwargs={"settings": _plain(settings), "device": device, "batch_size": size,
                                   "threads": threads},
            compute=ray.data.ActorPoolStrategy(size=pool), **per_actor)
        for row in dataset.iter_rows():
            yield {name: _from_bytes(row[name]) for name in TABLE_NAMES}
    finally:
        if starter is not None:
            _STARTERS.pop(address, None)
            starter.stop()


class RayRun:
    """``ray_batches`` started now in a background thread: Ray starts, its actors load the models and
    their batches queue up while the driver does its own work (imports, checking the store).
    Iterate over it for the batches; ``close()`` stops the pipeline (and the Ray it started)."""

    _END = object()

    def __init__(self, todo: Sequence[ImageRef], settings: "RunSettings", address: Optional[str] = None,
                 batch_size: Optional[int] = None, device: Optional[str] = None,
                 actors: Optional[int] = None) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=64)  # batches; Ray Data holds back when it is full
        self._stop = threading.Event()
        batches = ray_batches(todo, settings, address, batch_size, device, actors)
        self._thread = threading.Thread(target=self._pump, args=(batches,), name="ray-run", daemon=True)
        self._thread.start()

    def _pump(self, batches: Iterator[dict[str, pa.Table]]) -> None:
        try:
            for tables in batches:
                if not self._put(tables):
                    break
            self._put(self._END)
        except BaseException as error:  # re-raised in the driver's thread by __iter__
            self._put(error)
        finally:
            batches.close()  # ends the pipeline; shuts down a Ray that ray_batches started

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[dict[str, pa.Table]]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self, timeout: Optional[float] = 60.0) -> None:
        """Stop after the batch in flight and wait (``timeout`` seconds at most) for Ray to shut down."""
        self._stop.set()
        self._thread.join(timeout)


class _Starter:
    """``ray.init`` in a thread that stays alive until Ray is shut down: Ray's head processes are
    started with PR_SET_PDEATHSIG, which ends them when the THREAD that started them ends."""

    def __init__(self, address: Optional[str]) -> None:
        self.ready, self.release = threading.Event(), threading.Event()
        self.error: Optional[BaseException] = None
        threading.Thread(target=self._run, args=(address,), name="ray-init", daemon=True).start()

    def _run(self, address: Optional[str]) -> None:
        try:
            import ray

            _init(ray, address)
        except BaseException as error:  # handed to the caller of wait()
            self.error = error
        finally:
            self.ready.set()
        self.release.wait()

    def wait(self) -> None:
        self.ready.wait()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Shut Ray down (once it has started) and let the thread end."""
        self.ready.wait()
        try:
            if self.error is None:
                import ray

                ray.shutdown()
        finally:
            self.release.set()


_STARTERS: dict[Optional[str], _Starter] = {}


def start_ray(address: Optional[str] = None) -> None:
    """Begin ``ray.init`` (local, or joining ``address``) in the background; ``ray_batches`` waits for it.
    Does nothing when Ray is already running in this process or is being started."""
    import ray

    if address not in _STARTERS and not ray.is_initialized():
        _STARTERS[address] = _Starter(address)


def stop_unused_start(address: Optional[str] = None) -> None:
    """Shut down a Ray that ``start_ray`` began but no run used (the run failed before its batches)."""
    starter = _STARTERS.pop(address, None)
    if starter is not None:
        starter.stop()


def _init(ray, address: Optional[str]) -> None:
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    env = {k: v for k, v in os.environ.items() if k.startswith("CAMSCOPE_")}
    package = Path(__file__).resolve().parents[1]  # explainers/
    if address:  # a cluster: ship this package to its nodes (they need the same Python packages)
        ray.init(address=address, runtime_env={"py_modules": [str(package)], "env_vars": env},
                 logging_level=logging.ERROR)
    else:
        paths = [str(package.parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        runtime_env = {"env_vars": {**env, "PYTHONPATH": os.pathsep.join(paths)}}
        try:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.ERROR,
                     runtime_env=runtime_env)
        except ValueError as error:  # Ray found a cluster running here (ray start, RAY_ADDRESS): join it
            if "existing cluster" not in str(error):
                raise
            ray.init(logging_level=logging.ERROR, runtime_env=runtime_env)
    if threading.current_thread() is threading.main_thread():
        for s, handler in previous.items():  # Ray installs its own; the run's stop-after-batch handler wins
            signal.signal(s, handler)


def _quiet_ray_data() -> None:
    """The run prints its own progress: no Ray Data log lines below warnings, nor its "bars disabled" note.
    Ray Data (re)configures its logger from RAY_DATA_LOG_LEVEL at each execution, so a level set on that
    logger would not last."""
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


def _threads_from_env() -> Optional[int]:
    """OMP_NUM_THREADS as the driver sees it: a user's thread count holds for the actors too."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def _plain(settings: RunSettings) -> dict:
    return {"models": list(settings.models), "methods": list(settings.methods),
            "layers": list(settings.layers) if settings.layers else None, "targets": settings.targets}


def _to_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_bytes(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
