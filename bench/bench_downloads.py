"""What the Compare page's downloads weigh for a large photo, capped (the default) and at full size.

    python bench/bench_downloads.py                    # 6000 x 4000, the six default methods
    python bench/bench_downloads.py --size 4000 3000 --noise 0

The photo is the gallery's cat.jpg resized to --size, with Gaussian noise of --noise (0..255 levels)
so its PNGs compress like a real photo's. Prints the zip's size and build time, and the single
downloads' sizes, for the capped and the full-size setting. Sizes are exact; times depend on the machine.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explainers import load_model  # noqa: E402
from explainers.pipeline import explain  # noqa: E402
from explainers.render import overlay, scale_to_range, to_png_bytes  # noqa: E402
from ui import export  # noqa: E402

METHODS = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam"]


def photo(size: tuple[int, int], noise: float) -> Image.Image:
    cat = Image.open(Path(__file__).resolve().parent.parent / "assets" / "samples" / "cat.jpg").convert("RGB")
    big = np.asarray(cat.resize(size, Image.Resampling.BICUBIC), np.float32)
    big += np.random.default_rng(0).normal(0.0, noise, big.shape).astype(np.float32) if noise else 0.0
    return Image.fromarray(np.clip(np.rint(big), 0, 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=[6000, 4000], metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--noise", type=float, default=4.0)
    args = parser.parse_args()
    image = photo(tuple(args.size), args.noise)
    model = load_model("efficientnet_lite0", device="cpu")
    results = explain(model, image, methods=METHODS).results
    print(f"image {image.width} x {image.height}, noise {args.noise}, methods: {', '.join(METHODS)}")
    for full in (False, True):
        start = time.perf_counter()
        original = export.written_original(image, full)
        size = original.size
        overlays = {r.method: overlay(original, r.map if full else scale_to_range(r.raw, size[::-1], 0.0, r.raw.max()))
                    for r in results}
        settings = export.settings(model, "big.png", "x", image.size, model.target_layer, results,
                                   {"opacity": 0.5, "colormap": "jet", "shared_scale": False}, full)
        data = export.zip_bytes(original, results, overlays, settings)
        seconds = time.perf_counter() - start
        png = len(to_png_bytes(overlays[results[0].method]))
        npy = len(export.npy_bytes(export.grid_map(results[0], size)))
        print(f"{'full size' if full else 'capped   '}: written {size[0]} x {size[1]}; zip {len(data) / 1e6:.1f} MB "
              f"(bound shown {export.zip_upper_bound(size, results) / 1e6:.1f} MB) in {seconds:.1f} s; "
              f"one overlay PNG {png / 1e6:.1f} MB, one map .npy {npy / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
