"""Benchmark: CAMscope's engine against a plain forward pass and against pytorch-grad-cam.

Not a test. One 224x224 image, CPU, ResNet-50 (random weights) and the embedded
EfficientNet-Lite0. All cases of a model run round-robin (a, b, c, ... then again),
so a slow patch of the machine hits every case alike; each time is the median of
--repeat runs after one warm-up. Score-CAM runs once per side (it is slow).

    python bench/bench_engine.py [--repeat 5] [--models resnet50 efficientnet_lite0]
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # pytorch-grad-cam's Score-CAM prints a tqdm bar per target
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

# NumPy's BLAS threads spin after each call and slow the next torch call on 2 cores; one thread
# for NumPy on both sides (the library's SVD and the engine's) keeps the cases independent.
threadpool_limits(1)
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from pytorch_grad_cam import (EigenGradCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM,  # noqa: E402
                              ScoreCAM, XGradCAM)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from explainers.pipeline import explain  # noqa: E402
from explainers.models import load_model  # noqa: E402

SIX = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigengradcam")
SIX_LIBRARY = (GradCAM, GradCAMPlusPlus, XGradCAM, HiResCAM, LayerCAM, EigenGradCAM)  # same order
EMBEDDED = "efficientnet_lite0"  # Score-CAM always runs on it; other models only within the budget
SCORECAM_BUDGET_S = 120.0  # above this estimate the library's Score-CAM is skipped (except on EMBEDDED)
MODELS = {"resnet50": dict(random_weights=True), EMBEDDED: dict(random_weights=False)}
LIBRARY_SCORECAM_BATCH = 16  # pytorch-grad-cam's default
# (name, numerator, denominator, target): ratio must be <= target
RATIOS = [("(b)/(a)  one Grad-CAM / plain forward", "b", "a", 1.3),
          ("(c)/(d)  six variants: engine / pytorch-grad-cam", "c", "d", 0.10),
          ("(e)/(b)  top-5 Grad-CAMs / one Grad-CAM", "e", "b", 1.5),
          ("(f)      Score-CAM: engine / pytorch-grad-cam", "f_engine", "f_library", 0.5)]
LABELS = {"a": "(a) plain forward, no grad", "b": "(b) Grad-CAM, engine",
          "c": "(c) six variants, engine, one call", "d": "(d) six variants, pytorch-grad-cam",
          "e": "(e) Grad-CAM top-5 classes, engine", "f_engine": "(f) Score-CAM, engine",
          "f_library": "(f) Score-CAM, pytorch-grad-cam"}


def bench_image() -> Image.Image:
    """scikit-image's cat photo resized to 224x224 (random pixels if scikit-image is missing)."""
    try:
        from skimage import data

        return Image.fromarray(data.chelsea()).resize((224, 224), Image.Resampling.BICUBIC)
    except ImportError:
        return Image.fromarray(np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8))


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def library_cam(cls, module, layer, x, cls_index):
    # exactly as pytorch-grad-cam's README: construct, call, exit the context
    with cls(model=module, target_layers=[layer]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(cls_index)])


def bench_model(name: str, image: Image.Image, repeat: int, scorecam: str) -> dict[str, float]:
    model = load_model(name, device="cpu", **MODELS[name])
    x = model.preprocessing.to_tensor(image)  # (1, 3, 224, 224), the engine's own input
    library_module = copy.deepcopy(model.module)  # the library hooks its model; keep the engine's clean
    layer = library_module.get_submodule(model.target_layer)
    with torch.no_grad():
        top1 = int(model.module(x).argmax())
    print(f"\n{name}: layer {model.target_layer}, top-1 class {top1} ({model.categories[top1]}), "
          f"{'random' if model.random_weights else 'trained'} weights", flush=True)

    def forward():
        with torch.no_grad():
            model.module(x)

    cases = {
        "a": forward,
        "b": lambda: explain(model, image, methods=["gradcam"], classes=[top1]),
        "c": lambda: explain(model, image, methods=SIX, classes=[top1]),
        "d": lambda: [library_cam(cls, library_module, layer, x, top1) for cls in SIX_LIBRARY],
        "e": lambda: explain(model, image, methods=["gradcam"], top_k=5),
    }
    times: dict[str, list[float]] = {key: [] for key in cases}
    for fn in cases.values():  # warm-up
        fn()
    for _ in range(repeat):
        for key, fn in cases.items():
            times[key].append(timed(fn))
    medians = {key: statistics.median(values) for key, values in times.items()}

    if scorecam == "no":
        print("  Score-CAM: skipped (--scorecam no)")
        return medians
    estimate = _library_scorecam_estimate(library_module, layer, x)
    if scorecam == "auto" and estimate > SCORECAM_BUDGET_S and name != EMBEDDED:
        print(f"  Score-CAM: skipped on {name}: pytorch-grad-cam would take about {estimate:.0f} s "
              f"(over {SCORECAM_BUDGET_S:.0f} s); timed on the embedded model only. Use --scorecam yes to force.")
        return medians
    print(f"  Score-CAM: one run per side (library estimate {estimate:.0f} s) ...", flush=True)
    medians["f_engine"] = timed(lambda: explain(model, image, methods=["scorecam"], classes=[top1]))
    medians["f_library"] = timed(lambda: library_cam(ScoreCAM, library_module, layer, x, top1))
    return medians


def _library_scorecam_estimate(module, layer, x) -> float:
    """Seconds pytorch-grad-cam's Score-CAM would take: channels / 16 batches of 16 masked inputs."""
    captured = {}

    def record(_module, _inputs, output) -> None:  # returns None: a hook's return value replaces the output
        captured.setdefault("shape", output.shape)

    handle = layer.register_forward_hook(record)
    try:
        with torch.no_grad():
            module(x)
            batch = x.repeat(LIBRARY_SCORECAM_BATCH, 1, 1, 1)
            module(batch)  # warm-up for this batch size
            one = timed(lambda: module(batch))
    finally:
        handle.remove()
    channels = int(captured["shape"][1])
    return one * -(-channels // LIBRARY_SCORECAM_BATCH)


def report(results: dict[str, dict[str, float]]) -> bool:
    names = list(results)
    print("\n| case | " + " | ".join(f"{n} (ms)" for n in names) + " |")
    print("|---|" + "---:|" * len(names))
    for key, label in LABELS.items():
        cells = [f"{results[n][key] * 1000:.1f}" if key in results[n] else "not run" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\n| ratio | target | " + " | ".join(names) + " |")
    print("|---|---:|" + "---|" * len(names))
    all_pass = True
    for label, num, den, target in RATIOS:
        cells = []
        for n in names:
            if num in results[n] and den in results[n]:
                value = results[n][num] / results[n][den]
                ok = value <= target
                all_pass &= ok
                cells.append(f"{value:.3f} {'PASS' if ok else 'MISS'}")
            else:
                cells.append("not run")
        print(f"| {label} | <= {target} | " + " | ".join(cells) + " |")
    return all_pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per case after a warm-up (default 5)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--scorecam", choices=("auto", "yes", "no"), default="auto",
                        help=f"auto: skip ResNet-50's if the library would take over {SCORECAM_BUDGET_S:.0f} s")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    import pytorch_grad_cam  # noqa: F401
    from importlib.metadata import version

    print(f"CPU, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores; python {platform.python_version()}, "
          f"torch {torch.__version__}, grad-cam {version('grad-cam')}; median of {args.repeat} runs after a warm-up")
    image = bench_image()
    results = {name: bench_model(name, image, args.repeat, args.scorecam) for name in args.models}
    all_pass = report(results)
    print(f"\n{'all targets met' if all_pass else 'some targets missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
