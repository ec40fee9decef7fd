"""Read one hostile file in a fresh process and print what happened as JSON (peak memory, time, message).

Usage: python tests/hostile_probe.py READER PATH [ENGINE_ROOT]
READER is image, dataset or checkpoint; ENGINE_ROOT (optional) is the folder whose
``explainers`` package is imported (to measure another checkout of the code).
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def main(reader: str, path: str) -> dict:
    from explainers.dataset import read_dataset
    from explainers.errors import ExplainerError
    from explainers.io import load_image
    from explainers.models.user import load_checkpoint

    import torchvision.models  # noqa: F401  (imported before the baseline: load_checkpoint needs it)

    call = {"image": load_image, "dataset": read_dataset,
            "checkpoint": lambda p: load_checkpoint(p, "resnet18", 2)}[reader]
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
            result["extrema"] = [list(e) for e in value.getextrema()]
    except ExplainerError as error:
        result.update(outcome="refused", message=str(error))
    except BaseException as error:  # what escapes is part of the report
        result.update(outcome="escaped", message=f"{type(error).__name__}: {error}"[:300])
    result["seconds"] = round(time.perf_counter() - started, 2)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["peak_mb"] = round((peak - baseline) / 1024, 1)
    return result


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[3] if len(sys.argv) > 3 else str(Path(__file__).resolve().parents[1]))
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
