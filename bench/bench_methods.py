"""Benchmark: CAMscope's new methods against the library that defines each, at the same settings.

Not a test. One 224x224 image (scikit-image's cat), the embedded EfficientNet-Lite0. The cases run
round-robin (ours, the peer's, the next method's...), one warm-up then --repeat timed runs each, and
the table shows medians and the ratio ours / peer's:

  Smooth Grad-CAM++  explain(["smoothgradcam++"])      vs TorchCAM SmoothGradCAMpp (4 samples, std 0.3)
  SS-CAM, IS-CAM     explain(["sscam"] / ["iscam"])     vs TorchCAM SSCAM / ISCAM (batch 32, its default)
  Occlusion          explain(["occlusion"])             vs Captum Occlusion, same window / stride / fill
  Int. Gradients     explain(["integrated_gradients"])  vs Captum IntegratedGradients, same steps

    python bench/bench_methods.py [--repeat 3] [--score-layer blocks.1] [--sscam-samples 35]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

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

TARGETS = {"smoothgradcam++": 0.5, "sscam": 0.3, "iscam": 0.3, "occlusion": 0.5, "integrated_gradients": 0.7}


def bench_image() -> Image.Image:
    from skimage import data
    return Image.fromarray(data.chelsea()).resize((224, 224))


def cases(model, image, args) -> dict[str, tuple]:
    """{method: (ours, peer's)} zero-argument callables."""
    module, x = model.module, model.preprocessing.to_tensor(image).to(model.device)
    with torch.no_grad():
        cls = int(module(x).argmax())
    opts = MethodOptions(occlusion_window=args.window, occlusion_stride=args.stride, sscam_samples=args.sscam_samples,
                         iscam_samples=args.iscam_samples, ig_steps=args.steps)
    layer = args.score_layer

    def ours(method, layers=None):
        return lambda: explain(model, image, [method], classes=[cls], layers=layers, options=opts,
                               batch_size=args.batch_size)

    def torchcam(extractor_class, target_layer, **kwargs):
        def run():
            with extractor_class(module, target_layer, **kwargs) as extractor:
                with torch.no_grad():
                    module(x)
                return extractor(class_idx=cls)
        return run

    def occlusion():
        return Occlusion(module).attribute(x, sliding_window_shapes=(3, args.window, args.window),
                                           strides=(3, args.stride, args.stride), baselines=0.0, target=cls,
                                           perturbations_per_eval=args.captum_ppe)

    def integrated_gradients():
        return IntegratedGradients(module).attribute(x, target=cls, n_steps=args.steps)

    return {"smoothgradcam++": (ours("smoothgradcam++"), torchcam(SmoothGradCAMpp, model.target_layer)),
            "sscam": (ours("sscam", [layer]), torchcam(SSCAM, layer, num_samples=args.sscam_samples)),
            "iscam": (ours("iscam", [layer]), torchcam(ISCAM, layer, num_samples=args.iscam_samples)),
            "occlusion": (ours("occlusion"), occlusion),
            "integrated_gradients": (ours("integrated_gradients"), integrated_gradients)}


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
    parser.add_argument("--captum-ppe", type=int, default=1, help="Captum's perturbations_per_eval (its default: 1)")
    args = parser.parse_args()

    model = load_model("efficientnet_lite0")
    image = bench_image()
    todo = {k: v for k, v in cases(model, image, args).items() if k in args.methods}
    times: dict[tuple[str, int], list[float]] = {(k, side): [] for k in todo for side in (0, 1)}
    for round_ in range(args.repeat + 1):  # round 0 is the warm-up
        for key, pair in todo.items():
            for side, call in enumerate(pair):
                start = time.perf_counter()
                call()
                if round_:
                    times[(key, side)].append(time.perf_counter() - start)
                print(f"round {round_} {key} {'peer' if side else 'CAMscope'}: {time.perf_counter() - start:.3f} s",
                      file=sys.stderr, flush=True)  # partial results survive a timeout
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, device {model.device}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} cores; medians of {args.repeat} runs after a warm-up")
    print(f"settings: {vars(args)}")
    print("| method | CAMscope (s) | peer (s) | ratio | target | |")
    print("|---|---|---|---|---|---|")
    for key in todo:
        ours, peer = (statistics.median(times[(key, side)]) for side in (0, 1))
        ratio = ours / peer
        verdict = "PASS" if ratio <= TARGETS[key] else "MISS"
        print(f"| {key} | {ours:.3f} | {peer:.3f} | {ratio:.2f}x | <= {TARGETS[key]}x | {verdict} |")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
