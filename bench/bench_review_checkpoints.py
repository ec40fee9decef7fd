"""Time the Review page's checkpoint timeline and localisation strata on a synthetic store.

    python bench/bench_review_checkpoints.py --images 5000 --checkpoints 3

Writes a store of random 7 x 7 maps (ResNet's layer4 grid) for N images x M checkpoints in a temp
folder, then times ``review_timeline`` (read, decode, upsample to 32 x 32, SSIM and rank correlation
of every default pair) and ``localisation_by_stratum`` (one 224 x 224 box per image). CPU only.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explainers.review.strata import localisation_by_stratum  # noqa: E402
from explainers.review.timeline import review_timeline  # noqa: E402
from explainers.scale.rows import encode_raw, map_stats, table  # noqa: E402
from explainers.scale.store import Store  # noqa: E402


def write(folder: Path, images: int, checkpoints: int) -> list[dict]:
    rng = np.random.default_rng(0)
    models = [f"ckpt_{i}" for i in range(checkpoints)]
    maps, predictions, boxes = [], [], []
    for n in range(images):
        image_id = f"img/{n:06d}.jpg"
        base = rng.random((7, 7)).astype(np.float32)
        for j, model in enumerate(models):
            raw = np.maximum(base + 0.3 * j * rng.random((7, 7)).astype(np.float32), 0)
            data, scale = encode_raw(raw)
            maps.append({"image_id": image_id, "model": model, "width": 224, "height": 224, "method": "gradcam",
                         "layer": "layer4", "class_index": 0, "class_name": "a", "rank": 1, "is_true": True,
                         "probability": float(rng.random()), "raw": data, "raw_shape": [7, 7], "raw_scale": scale,
                         **map_stats(raw)})
            predictions.append({"image_id": image_id, "model": model, "predicted_index": 0})
        x, y = rng.integers(0, 150, 2)
        boxes.append({"file": image_id, "box": [int(x), int(y), int(x) + 60, int(y) + 60], "class": 0})
    settings = {"models": [{"name": m, "layers": ["layer4"], "preprocessing": {"fit": "squash"}} for m in models],
                "methods": ["gradcam"], "targets": "true"}
    store = Store.open(folder, settings, "synthetic", "local")
    store.write({"maps": table("maps", maps), "predictions": table("predictions", predictions),
                 "skipped": table("skipped", [])})
    store.close("complete", {})
    return boxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--checkpoints", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        boxes = write(Path(tmp) / "store", args.images, args.checkpoints)
        started = time.perf_counter()
        review = review_timeline(Path(tmp) / "store")
        timeline_s = time.perf_counter() - started
        started = time.perf_counter()
        strata = localisation_by_stratum(Path(tmp) / "store", json.dumps(boxes))
        strata_s = time.perf_counter() - started
    pairs = len(review.drifts)
    print(f"timeline: {args.images} images x {args.checkpoints} checkpoints, {pairs} pairs: {timeline_s:.2f} s "
          f"({1000 * timeline_s / args.images:.2f} ms per image)")
    print(f"strata: {len(strata.images)} images, {len(strata.cells)} cells: {strata_s:.2f} s "
          f"({1000 * strata_s / args.images:.2f} ms per image)")


if __name__ == "__main__":
    main()
