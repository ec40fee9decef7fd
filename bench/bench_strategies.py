"""How long SpRAy's clustering takes per class size (explainers/review/strategies.py): synthetic
16 x 16 maps of three shapes plus noise, one class of N images; prints seconds and whether each
shape came out as one cluster. Usage: python bench/bench_strategies.py [N ...] (default 1000 5000 20000)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from explainers.review.strategies import cluster_maps, downsize  # noqa: E402


def synthetic(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:16, :16]
    shapes = [np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0) for cy, cx in [(3, 3), (8, 8), (12, 4)]]
    return np.stack([downsize(shapes[i % 3] + rng.uniform(0, 0.3, (16, 16))) for i in range(n)])


def main(sizes: list[int]) -> None:
    cluster_maps(synthetic(50))  # imports and first calls out of the timing
    for n in sizes:
        maps = synthetic(n)
        started = time.perf_counter()
        labels, _, _, reason = cluster_maps(maps)
        seconds = time.perf_counter() - started
        found = all(len(set(labels[i::3])) == 1 for i in range(3))
        print(f"{n:>7} images: {seconds:7.2f} s  {reason}; each shape one cluster: {found}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 5000, 20000])
