"""Benchmark: CAMscope's new methods against the library that defines each, at the same settings.

Not a test. One 224x224 image (scikit-image's cat), the embedded EfficientNet-Lite0. The cases run
round-robin (ours, then each peer setting, then the next method...), one warm-up then --repeat timed runs
each. The table shows medians of wall time, the ratio ours / peer's with its range over the rounds (each
round's calls are neighbours in time, so they share the machine's load), and the ratio of CPU time
(process time: what the call itself spent, less sensitive to other jobs on a shared machine):

  Smooth Grad-CAM++  explain(["smoothgradcam++"])      vs TorchCAM SmoothGradCAMpp (4 samples, std 0.3)
  SS-CAM, IS-CAM     explain(["sscam"] / ["iscam"])     vs TorchCAM SSCAM / ISCAM (--torchcam-batch: 32, its default)
  Occlusion          explain(["occlusion"])             vs Captum Occlusion, same window / stride / fill
                                                          (--captum-ppe: its perturbations_per_eval settings)
  Int. Gradients     explain(["integrated_gradients"])  vs Captum IntegratedGradients, same steps
                                                          (--captum-ig-batch: its internal_batch_size settings)

    python bench/bench_methods.py [--repeat 3] [--score-layer blocks.1] [--sscam-samples 35]
        [--torchcam-batch 32 8] [--captum-ppe 1 8 64] [--captum-ig-batch 0 8] [--malloc default]

glibc's malloc hands large freed blocks back to the system and page-faults them in again at the next
pass: the peers' eager passes over batches of 8-64 images took 2-3x longer that way in some runs and not
in others (TorchCAM's SS-CAM at batch 32: 49 s in a fresh process, 17 s after other calls had raised
glibc's thresholds). So the script re-runs itself with MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_
raised, which keeps every call in the fast state (``--malloc default`` leaves glibc's defaults).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

threadpool_limits(1)  # NumPy's idle BLAS threads would steal torch's cores on small machines
import torch  # noqa: E402
from captum.attr import IntegratedGradients, Occlusion  # noqa: E402
from PIL import Image  # noqa: E402
from torchcam.methods import ISCAM, SSCAM, SmoothGradCAMpp  # noqa: E402

from explainers.pipeline import explain  # noqa: E402
from explainers.methods.options import MethodOptions  # noqa: E402
from explainers.models import load_model  # noqa: E402

FAST_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
TARGETS = {"smoothgradcam++": 0.5, "sscam": 0.3, "iscam": 0.3, "occlusion": 0.5, "integrated_gradients": 0.7}


def bench_image() -> Image.Image:
    from skimage import data
    return Image.fromarray(data.chelsea()).resize((224, 224))


def cases(model, image, args) -> dict[str, list[tuple[str, Callable]]]:
    """{method: [("CAMscope", call), (peer setting, call), ...]} zero-argument callables."""
    module, x = model.module, model.preprocessing.to_tensor(image).to(model.device)
    with torch.no_grad():
        cls = int(module(x).argmax())
    opts = MethodOptions(occlusion_window=args.window, occlusion_stride=args.stride, sscam_samples=args.sscam_samples,
                         iscam_samples=args.iscam_samples, ig_steps=args.steps)
    layer = args.score_layer

    def ours(method, layers=None):
        return "CAMscope", lambda: explain(model, image, [method], classes=[cls], layers=layers, options=opts,
                                           batch_size=args.batch_size)

    def torchcam(extractor_class, target_layer, **kwargs):
        def run():
            with extractor_class(module, target_layer, **kwargs) as extractor:
                with torch.no_grad():
                    module(x)
                return extractor(class_idx=cls)
        return run

    def occlusion(ppe):
        return f"Captum perturbations_per_eval={ppe}", lambda: Occlusion(module).attribute(
            x, sliding_window_shapes=(3, args.window, args.window), strides=(3, args.stride, args.stride),
            baselines=0.0, target=cls, perturbations_per_eval=ppe)

    def integrated_gradients(batch):
        return (f"Captum internal_batch_size={batch}",
                lambda: IntegratedGradients(module).attribute(x, target=cls, n_steps=args.steps,
                                                              internal_batch_size=batch or None))

    def score(extractor_class, samples):
        return [(f"TorchCAM batch_size={b}", torchcam(extractor_class, layer, num_samples=samples, batch_size=b))
                for b in args.torchcam_batch]

    return {"smoothgradcam++": [ours("smoothgradcam++"),
                                ("TorchCAM", torchcam(SmoothGradCAMpp, model.target_layer))],
            "sscam": [ours("sscam", [layer]), *score(SSCAM, args.sscam_samples)],
            "iscam": [ours("iscam", [layer]), *score(ISCAM, args.iscam_samples)],
            "occlusion": [ours("occlusion"), *(occlusion(p) for p in args.captum_ppe)],
            "integrated_gradients": [ours("integrated_gradients"),
                                     *(integrated_gradients(b) for b in args.captum_ig_batch)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--methods", nargs="*", default=list(TARGETS))
    parser.add_argument("--score-layer", default="blocks.1", help="SS-CAM / IS-CAM layer (blocks.1: 24 channels)")
    parser.add_argument("--sscam-samples", type=int, default=35)
    parser.add_argument("--iscam-samples", type=int, default=10)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--stride", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64, help="CAMscope's masked / occluded passes per batch")
    parser.add_argument("--captum-ppe", type=int, nargs="+", default=[1, 8, 64],
                        help="Captum Occlusion's perturbations_per_eval settings (its default: 1)")
    parser.add_argument("--captum-ig-batch", type=int, nargs="+", default=[0],
                        help="Captum IG's internal_batch_size settings (0: None, its default: all steps at once)")
    parser.add_argument("--torchcam-batch", type=int, nargs="+", default=[32],
                        help="TorchCAM SS-CAM / IS-CAM batch_size settings (its default: 32)")
    parser.add_argument("--malloc", choices=["fast", "default"], default="fast",
                        help="fast: glibc keeps freed blocks (the peers' fast state, see above); default: as is")
    args = parser.parse_args()
    if args.malloc == "fast" and any(os.environ.get(k) != v for k, v in FAST_MALLOC.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **FAST_MALLOC})  # glibc reads them at start

    model = load_model("efficientnet_lite0")
    image = bench_image()
    todo = {k: v for k, v in cases(model, image, args).items() if k in args.methods}
    wall: dict[tuple[str, str], list[float]] = {(k, label): [] for k, calls in todo.items() for label, _ in calls}
    cpu = {key: [] for key in wall}
    for round_ in range(args.repeat + 1):  # round 0 is the warm-up
        for key, calls in todo.items():
            for label, call in calls:
                start, start_cpu = time.perf_counter(), time.process_time()
                call()
                took, took_cpu = time.perf_counter() - start, time.process_time() - start_cpu
                if round_:
                    wall[(key, label)].append(took)
                    cpu[(key, label)].append(took_cpu)
                print(f"round {round_} {key} {label}: {took:.3f} s wall, {took_cpu:.3f} s CPU",
                      file=sys.stderr, flush=True)  # partial results survive a timeout
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, device {model.device}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          f"medians of {args.repeat} runs after a warm-up")
    print(f"settings: {vars(args)}; glibc malloc: "
          f"{', '.join(f'{k}={os.environ[k]}' for k in FAST_MALLOC if k in os.environ) or 'its defaults'}")
    print("| method | peer setting | CAMscope wall (s) | peer wall (s) | ratio wall (per-round range) | "
          "ratio CPU time | target | |")
    print("|---|---|---|---|---|---|---|---|")
    for key, calls in todo.items():
        ours_wall, ours_cpu = wall[(key, "CAMscope")], cpu[(key, "CAMscope")]
        for label, _ in calls[1:]:
            peer_wall, peer_cpu = wall[(key, label)], cpu[(key, label)]
            ratio = statistics.median(ours_wall) / statistics.median(peer_wall)
            paired = [o / p for o, p in zip(ours_wall, peer_wall)]  # neighbours in time share the machine's load
            ratio_cpu = statistics.median(ours_cpu) / statistics.median(peer_cpu)
            verdict = "PASS" if max(ratio, ratio_cpu) <= TARGETS[key] else (
                "pass on CPU time" if ratio_cpu <= TARGETS[key] else "MISS")
            print(f"| {key} | {label} | {statistics.median(ours_wall):.3f} | {statistics.median(peer_wall):.3f} | "
                  f"{ratio:.2f}x ({min(paired):.2f}-{max(paired):.2f}) | {ratio_cpu:.2f}x | "
                  f"<= {TARGETS[key]}x | {verdict} |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
