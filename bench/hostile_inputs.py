"""Peak memory, time and message for every hostile input of tests/corpus_hostile.py, per engine checkout.

Usage:
    python bench/hostile_inputs.py                    # this checkout
    python bench/hostile_inputs.py /path/to/other     # another checkout's engine (e.g. before a change)

Each file is read in a forked child of one process that imported the engine first
(tests/hostile_probe.py), so each figure is that read's own peak RSS above its start.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.corpus_hostile import build  # noqa: E402


def main(engine: str) -> None:
    cases = build()
    with tempfile.TemporaryDirectory() as folder:
        jobs = []
        for case in cases:
            path = Path(folder) / case.name
            path.write_bytes(case.make())
            jobs.append([case.reader, str(path)])
        (Path(folder) / "jobs.json").write_text(json.dumps(jobs))
        done = subprocess.run([sys.executable, str(ROOT / "tests" / "hostile_probe.py"), str(Path(folder) / "jobs.json"),
                               engine], capture_output=True, text=True, check=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    results = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{'case':24} {'outcome':8} {'peak MB':>8} {'s':>6}  message or note")
    for case, result in zip(cases, results):
        text = (result["message"] or result["note"])[:90]
        print(f"{case.name:24} {result['outcome']:8} {result['peak_mb']:8.1f} {result['seconds']:6.2f}  {text}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT))
