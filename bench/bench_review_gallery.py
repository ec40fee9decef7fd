"""Benchmark: the Review page's queries on a store of thousands of maps. Not a test; prints what one run measured.

A synthetic store (random 7 x 7 maps, --images images, two methods, the predicted and a true class each)
is written with the store's own schemas; then timed, each the median of --repeat calls:
(1) ``browse.page`` of 12 rows per sort, with the filters the gallery starts with and with four filters;
(2) ``browse.disagreements`` (every raw map decoded once; the gallery caches it per store);
(3) ``browse.outside_mass`` with one box per image.

    python bench/bench_review_gallery.py [--images 5000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from explainers.review import browse  # noqa: E402
from explainers.scale import rows  # noqa: E402

METHODS = ("gradcam", "eigencam")
CLASSES = ("cat", "dog", "fox", "owl")


def make_store(folder: Path, images: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    maps, predictions = [], []
    for n in range(images):
        true, pred = int(rng.integers(4)), int(rng.integers(4))
        prob = float(rng.uniform(0.2, 1.0))
        base = {"image_id": f"{CLASSES[true]}/{n:06d}.jpg", "image_sha256": "0" * 64, "model": "m",
                "width": 320, "height": 240}
        predictions.append({**base, "predicted_index": pred, "predicted_name": CLASSES[pred], "probability": prob,
                            "top_indices": [pred], "top_names": [CLASSES[pred]], "top_probabilities": [prob],
                            "label": CLASSES[true], "true_index": true, "true_name": CLASSES[true],
                            "true_probability": prob, "correct": pred == true})
        for method in METHODS:
            for cls in dict.fromkeys((pred, true)):
                raw = rng.random((7, 7)).astype(np.float32)
                data, scale = rows.encode_raw(raw)
                maps.append({**base, "method": method, "layer": "L", "class_index": cls, "class_name": CLASSES[cls],
                             "rank": 1 if cls == pred else 2, "is_true": cls == true, "score": 1.0,
                             "probability": prob, "raw": data, "raw_shape": [7, 7], "raw_scale": scale,
                             **rows.map_stats(raw)})
    for name, table in (("maps", maps), ("predictions", predictions), ("skipped", [])):
        (folder / name).mkdir(parents=True)
        pq.write_table(rows.table(name, table), folder / name / "part-0.parquet")
    (folder / "run.json").write_text(json.dumps({"source": str(folder), "settings": {}}))


def median_seconds(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        make_store(store, args.images)
        total = browse.page(store).total
        print(f"store: {args.images} images, {total} maps")
        start = time.perf_counter()
        disagreement = browse.disagreements(store)
        print(f"disagreements: {time.perf_counter() - start:.2f} s (once per store)")
        boxes = {f"{CLASSES[0]}/{n:06d}.jpg": [[40.0, 30.0, 200.0, 180.0]] for n in range(args.images)}
        start = time.perf_counter()
        outside = browse.outside_mass(store, boxes)
        print(f"outside_mass: {time.perf_counter() - start:.2f} s for {outside.num_rows} maps with a box")
        narrow = browse.Filter(true_class="cat", correct="incorrect", probability=(0.3, 0.9), method="gradcam")
        for sort in browse.SORTS:
            for name, chosen in (("no filter", browse.Filter()), ("4 filters", narrow)):
                seconds = median_seconds(lambda: browse.page(store, chosen, sort, 3, 12, disagreement, outside),
                                         args.repeat)
                print(f"page of 12, sort {sort:16s} {name:9s}: {seconds * 1000:.0f} ms")


if __name__ == "__main__":
    main()
