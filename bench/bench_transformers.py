"""Benchmark: Grad-CAM, attention rollout and transformer attribution in ONE call on ViT-B/16,
against a plain forward plus backward of the same model.

Not a test. ViT-B/16 (Hugging Face ViTConfig defaults: 224 x 224, patch 16, 12 layers, 768 wide,
eager attention) with random weights, saved with save_pretrained in a temporary folder and loaded
through CAMscope like any user folder. One 224 x 224 image. The two cases run round-robin after one
warm-up; each time is the median of --repeat runs. Target: (b)/(a) <= 1.5.

    python bench/bench_transformers.py [--repeat 5] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

threadpool_limits(1)  # as bench_engine.py: NumPy's idle BLAS threads would steal torch's cores
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from explainers.pipeline import explain  # noqa: E402
from explainers.models import load_model  # noqa: E402

METHODS = ["gradcam", "attention_rollout", "transformer_attribution"]
TARGET = 1.5


def save_vit_b16(folder: Path) -> None:
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    ViTForImageClassification(ViTConfig(num_labels=1000)).eval().save_pretrained(folder)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8))
    with tempfile.TemporaryDirectory() as tmp:
        save_vit_b16(Path(tmp) / "vit_b16")
        model = load_model(str(Path(tmp) / "vit_b16"), device=args.device)
    device = model.device
    x = model.preprocessing.to_tensor(image).to(device)

    def plain() -> None:  # (a) what any training step does: forward, then backward of the top class
        logits = model.module(x)
        logits[0, int(logits[0].argmax())].backward()
        model.module.zero_grad(set_to_none=True)
        sync(device)

    def engine() -> None:  # (b) everything from one explain call
        explain(model, image, methods=METHODS)
        sync(device)

    cases = {"a": plain, "b": engine}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():
        fn()  # warm-up
    for _ in range(args.repeat):
        for key, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    a, b = statistics.median(times["a"]), statistics.median(times["b"])
    print(f"ViT-B/16, random weights, eager attention, {device}, torch {torch.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, threads {torch.get_num_threads()}, repeat {args.repeat}")
    print(f"(a) plain forward + backward                         {a * 1000:8.1f} ms")
    print(f"(b) Grad-CAM + rollout + attribution, one call        {b * 1000:8.1f} ms")
    ratio = b / a
    print(f"(b)/(a) = {ratio:.2f}  target <= {TARGET}  {'PASS' if ratio <= TARGET else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
