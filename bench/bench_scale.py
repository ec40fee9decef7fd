"""Benchmark: the batched engine and the run command at scale. Not a test; prints what one run measured.

(1) images/s of ``explain_batch`` (Grad-CAM of the predicted class, one shared pass per batch)
    against a per-image pytorch-grad-cam loop (one GradCAM object, called once per image), same
    model (the embedded EfficientNet-Lite0) and images; median of --repeat round-robin runs.
(2) ``python -m explainers run`` with --engine ray against --engine local on --ray-images images,
    each timed as a whole command (Python start, model load, Ray start, every image, the store); both
    engines also on a fifth of the images, so each time splits into a fixed start-up and a rate.
    With --ray-running, then both again, Ray as --engine ray --address auto against a Ray this script
    starts first (``ray start --head``) and stops at the end, as on a machine or cluster where Ray already runs:
    its start-up (Ray's processes) is then not in the command's time, an actor's is.
(3) peak memory (ru_maxrss) of a local run over --memory-images images against one over a tenth
    of them: maps are committed as they come, so the peak should not grow with the run.

    python bench/bench_scale.py [--threads 1] [--speed-images 64] [--batch-size 8 16 32] [--ray-images 500] [--memory-images 5000]

--threads (default 1) fixes torch's threads everywhere (here, the run commands, the Ray actors):
on a shared, busy machine two OpenMP threads on two cores can run several times slower than one,
which swamps every comparison; with one thread the figures are per core.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CAMSCOPE_DEVICE", "cpu")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def photos(n: int, seed: int = 0) -> list[Image.Image]:
    """``n`` crops of scikit-image's public-domain photos, 160-320 pixels wide."""
    from skimage import data

    sources = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        image = Image.fromarray(sources[i % len(sources)])
        w, h = image.size
        left, top = int(rng.integers(0, w // 4)), int(rng.integers(0, h // 4))
        crop = image.crop((left, top, left + w // 2 + int(rng.integers(0, w // 4)), top + h // 2 + int(rng.integers(0, h // 4))))
        width = int(rng.integers(160, 321))
        out.append(crop.resize((width, max(16, width * crop.height // crop.width))))
    return out


def write_folder(root: Path, n: int) -> Path:
    for i, image in enumerate(photos(n, seed=1)):
        folder = root / ("tabby", "cup", "astronaut", "rocket")[i % 4]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:06d}.jpg", quality=85)
    return root


def bench_speed(n: int, batch_sizes: list[int], repeat: int) -> None:
    import torch
    from pytorch_grad_cam import GradCAM

    from explainers.models import load_model
    from explainers.scale.engine import explain_batch

    model = load_model("efficientnet_lite0", device="cpu")
    images = photos(n)
    library_module = copy.deepcopy(model.module)  # the library hooks its model; keep the engine's clean
    layer = library_module.get_submodule(model.target_layer)

    def library_loop() -> None:
        with GradCAM(model=library_module, target_layers=[layer]) as cam:
            for image in images:  # targets=None: the predicted class, as explain_batch's "predicted"
                cam(input_tensor=model.preprocessing.to_tensor(image), targets=None)

    def engine(size: int):
        return lambda: explain_batch(model, images, ["gradcam"], "predicted", batch_size=size)

    cases = {"pytorch-grad-cam, per image": library_loop}
    cases.update({f"explain_batch, batch {size}": engine(size) for size in batch_sizes})
    start = time.perf_counter()
    explain_batch(model, images[:1], ["gradcam"], "predicted")  # builds the split model once per process
    setup = time.perf_counter() - start
    for fn in cases.values():
        fn()  # warm-up
    times = {k: [] for k in cases}
    for _ in range(repeat):
        for key, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    print(f"\n(1) Grad-CAM of the predicted class, {n} images (160-320 px wide), EfficientNet-Lite0, "
          f"torch threads {torch.get_num_threads()}, median (min-max) of {repeat} round-robin runs; "
          "both sides include preprocessing (resize, normalize) and the upsampled map (library: to the 224x224 input; explain_batch: to the image)")
    print(f"  explain_batch's one-time set-up (cut, trace and freeze the model): {setup:.1f} s, not in the rates")
    rates = {k: n / statistics.median(v) for k, v in times.items()}
    lib = rates["pytorch-grad-cam, per image"]
    for key, rate in rates.items():
        spread = f"{n / max(times[key]):.1f}-{n / min(times[key]):.1f}"
        ratio = "" if rate == lib else f"  speed-up {rate / lib:4.1f}x (target >= 8x) {'PASS' if rate / lib >= 8 else 'MISS'}"
        print(f"  {key:32s} {rate:8.1f} images/s ({spread}){ratio}")


def timed_run(source: Path, store: Path, engine: str, extra: list[str], rss: bool = False) -> tuple[float, str]:
    """The run command as a user types it (``python -m explainers run``), or with its peak RSS printed."""
    command = [sys.executable, "-m", "explainers"]
    if rss:
        command[1:] = ["-c", "import resource, sys; from explainers.cli import main; code = main(sys.argv[1:]); "
                       "print('maxrss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)"]
    command += ["run", str(source), "--out", str(store), "--engine", engine, "--quiet", *extra]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"run failed ({engine}): {done.stderr[-2000:]}")
    return seconds, done.stdout


def bench_ray(source: Path, n: int, work: Path, repeat: int, ray_args: list[str], label: str) -> None:
    """Both engines on n/5 and n images, round-robin, ``repeat`` times: a line through the two medians
    per engine splits a command's time into a fixed start-up and a per-image rate."""
    sizes = (max(1, n // 5), n)
    engines = {"local": ("local", []), label: ("ray", ray_args)}
    times = {(e, k): [] for e in engines for k in sizes}
    for r in range(repeat):
        for k in sizes:
            for name, (engine, extra) in engines.items():
                store = work / f"store-{name.replace(', ', '-')}-{k}-{r}"
                seconds, _ = timed_run(source, store, engine, ["--limit", str(k), *extra])
                times[(name, k)].append(seconds)
    fits = {}
    for engine in engines:
        small, big = (statistics.median(times[(engine, k)]) for k in sizes)
        per_image = (big - small) / (sizes[1] - sizes[0])
        fits[engine] = (small - per_image * sizes[0], per_image)
        spread = "; ".join(f"{k}: {min(times[(engine, k)]):.1f}-{max(times[(engine, k)]):.1f} s" for k in sizes)
        print(f"  {engine:12s} {n} images {big:6.1f} s (median of {repeat}; {spread}); "
              f"fixed start-up {fits[engine][0]:4.1f} s + {1 / per_image:5.1f} images/s")
    overhead = statistics.median(times[(label, n)]) / statistics.median(times[("local", n)]) - 1
    print(f"  {label}: Ray's overhead on {n} images {overhead:+.0%} (target <= +25%) "
          f"{'PASS' if overhead <= 0.25 else 'MISS'}")
    (fr, pr), (fl, pl) = fits[label], fits["local"]
    if 1.25 * pl > pr:  # ray + fr + N pr <= 1.25 (fl + N pl)
        print(f"    with these figures it falls to +25% from {max(0.0, (fr - 1.25 * fl) / (1.25 * pl - pr)):.0f} images")


@contextmanager
def ray_running(cpus: int):
    """A Ray head on this machine (``ray start --head``), stopped afterwards."""
    ray_cli = str(Path(sys.executable).with_name("ray"))
    subprocess.run([ray_cli, "start", "--head", f"--num-cpus={cpus}", "--include-dashboard=false",
                    "--disable-usage-stats"], check=True, capture_output=True, timeout=300)
    try:
        yield
    finally:
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=300)


def bench_memory(source: Path, n: int, work: Path) -> None:
    peaks = {}
    for count in (max(1, n // 10), n):
        seconds, out = timed_run(source, work / f"store-mem-{count}", "local", ["--limit", str(count)], rss=True)
        peaks[count] = int(out.split("maxrss_kb")[1].split()[0]) / 1024
        print(f"  {count:6d} images: {seconds:7.1f} s, peak RSS {peaks[count]:7.0f} MiB")
    small, big = peaks.values()
    print(f"  peak grows {big / small - 1:+.1%} for 10x the images (flat: within +10%) "
          f"{'PASS' if big <= 1.1 * small else 'MISS'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (OMP_NUM_THREADS) for every case")
    parser.add_argument("--speed-images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ray-images", type=int, default=500)
    parser.add_argument("--ray-repeat", type=int, default=2)
    parser.add_argument("--memory-images", type=int, default=5000)
    parser.add_argument("--ray-running", action="store_true",
                        help="then time --engine ray --address auto against a Ray started here first (and local again)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["speed", "ray", "memory"])
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the run subprocesses and Ray's actors
    import torch

    torch.set_num_threads(args.threads)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    if "speed" not in args.skip:
        bench_speed(args.speed_images, args.batch_size, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        count = max(args.ray_images if "ray" not in args.skip else 0, args.memory_images if "memory" not in args.skip else 0)
        if count:
            source = write_folder(work / "set", count)
        if "ray" not in args.skip:
            print(f"\n(2) python -m explainers run, {args.ray_images} images, Grad-CAM, whole command timed")
            bench_ray(source, args.ray_images, work, args.ray_repeat, [], "ray")
            if args.ray_running:
                print("  then with Ray started beforehand (ray start --head; --address auto), local again:")
                with ray_running(os.cpu_count() or 1):
                    bench_ray(source, args.ray_images, work / "running", args.ray_repeat, ["--address", "auto"],
                              "ray, running")
        if "memory" not in args.skip:
            print(f"\n(3) peak memory of a local run (maps committed as they come)")
            bench_memory(source, args.memory_images, work)


if __name__ == "__main__":
    main()
