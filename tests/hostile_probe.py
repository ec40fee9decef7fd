"""Read hostile files in fresh processes and print what happened as JSON (peak memory, time, message).

Usage: python tests/hostile_probe.py JOBS.json [ENGINE_ROOT]
JOBS.json holds [[reader, path], ...] with reader image, dataset or checkpoint; ENGINE_ROOT
(optional) is the folder whose ``explainers`` package is imported, to measure another
checkout. The engine is imported once; each file is read in a child forked from that
process, so every figure is that child's own peak above its start (ru_maxrss) and time.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path


def _readers() -> dict:
    from explainers.dataset import read_dataset
    from explainers.io import load_image
    from explainers.models.user import load_checkpoint

    import torchvision.models  # noqa: F401  (imported before any baseline: load_checkpoint needs it)

    return {"image": load_image, "dataset": read_dataset,
            "checkpoint": lambda p: load_checkpoint(p, "resnet18", 2)}


def probe(call, reader: str, path: str) -> dict:
    """Run one read here; the figures are this process's peak above its state at the call."""
    from explainers.errors import ExplainerError

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.perf_counter()
    result = {"outcome": "ok", "message": "", "note": ""}
    try:
        value = call(path)
        notes = (getattr(value, "info", {}).get("camscope_notes", []) if reader == "image" else
                 [f"{skip.path}: {skip.reason}" for skip in value.skipped] if reader == "dataset" else [])
        result["note"] = " ".join(notes)
        if reader == "image":
            result["size"] = list(value.size)
    except ExplainerError as error:
        result.update(outcome="refused", message=str(error))
    except BaseException as error:  # what escapes is part of the report
        result.update(outcome="escaped", message=f"{type(error).__name__}: {error}"[:300])
    result["seconds"] = round(time.perf_counter() - started, 2)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["peak_mb"] = round((peak - baseline) / 1024, 1)
    return result


def in_child(call, reader: str, path: str) -> dict:
    """probe() in a forked child, so that no read's peak or leftovers count against the next."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        with os.fdopen(write_end, "w") as out:
            out.write(json.dumps(probe(call, reader, path)))
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        text = answer.read()
    _, status = os.waitpid(pid, 0)
    if not text:
        return {"outcome": f"child died (status {status})", "message": "", "note": "", "seconds": 0, "peak_mb": 0}
    return json.loads(text)


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[2] if len(sys.argv) > 2 else str(Path(__file__).resolve().parents[1]))
    readers = _readers()
    jobs = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps([in_child(readers[reader], reader, path) for reader, path in jobs]))
