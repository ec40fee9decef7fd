"""The run on Ray Data: ``map_batches`` over a pool of actors, each loading the models once.

Each actor runs the same ``BatchWorker`` as the local engine and returns its batch's three tables
as Arrow IPC bytes (one output row per batch); the driver commits them to the store as they
arrive, so the store needs no shared filesystem, only the images do.

Resources: one actor per GPU (``num_gpus=1``) when the cluster has GPUs; otherwise CPU actors,
one per 4 CPUs, that ask Ray for one CPU fewer than the threads they run: an actor pool holding
every CPU leaves none for Ray Data's other tasks and the pipeline stalls (seen with
``ray.init(num_cpus=2)`` and two 1-CPU actors).
"""
from __future__ import annotations

import math
import os
import signal
from pathlib import Path
from typing import Iterator, Optional, Sequence

import pyarrow as pa

from .sources import ImageRef
from .worker import BatchWorker, RunSettings

CPU_THREADS_PER_ACTOR = 4
TABLE_NAMES = ("maps", "predictions", "skipped")


class RayExplainer:
    """The class-based UDF: models loaded once per actor, one call per batch of image refs."""

    def __init__(self, settings: dict, device: Optional[str], batch_size: Optional[int],
                 threads: Optional[int]) -> None:
        import torch

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
    if not todo:
        return
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        _init(ray, address)
    try:
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
        if started_here:
            ray.shutdown()


def _init(ray, address: Optional[str]) -> None:
    import logging

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    env = {k: v for k, v in os.environ.items() if k.startswith("CAMSCOPE_")}
    package = Path(__file__).resolve().parents[1]  # explainers/
    if address:  # a cluster: ship this package to its nodes (they need the same Python packages)
        ray.init(address=address, runtime_env={"py_modules": [str(package)], "env_vars": env},
                 logging_level=logging.WARNING)
    else:
        paths = [str(package.parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": {**env, "PYTHONPATH": os.pathsep.join(paths)}})
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # the run prints its own progress
    for s, handler in previous.items():  # Ray installs its own; the run's stop-after-batch handler wins
        signal.signal(s, handler)


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
