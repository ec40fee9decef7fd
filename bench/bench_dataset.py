"""Benchmark: the dataset path (batched) against a per-image loop with pytorch-grad-cam.

Not a test. The same labelled images (scikit-image photos and variants, as a zip in
memory) and the same work on both sides, on the embedded EfficientNet-Lite0, CPU:
decode every image, predict it, and for every misclassified image make the Grad-CAM
of its true class and of its predicted class on the image's own grid (what
``python -m explainers dataset`` computes before writing files).

- engine:  ``read_dataset`` + ``predict_dataset`` with a ``MapRequest``: batches of --batch-size,
           the predictions and the maps of the mistakes from ONE forward pass per batch, one
           layer-stopped backward per class slot (as the CLI runs it, less writing the files).
- library: a loop over the images: ``load_image``, one forward pass, and for a misclassified
           image ``with GradCAM(...) as cam: cam(x2, targets=[true, predicted])`` (the two targets
           in one call of batch 2, the library's own batching), maps resized to the image.

Both run round-robin --repeat times after a warm-up; each figure is the median.

    python bench/bench_dataset.py [--images 64] [--batch-size 8] [--repeat 3]
"""
from __future__ import annotations

import argparse
import copy
import io
import os
import platform
import statistics
import sys
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402
from pytorch_grad_cam import GradCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from explainers.confusion import MapRequest, default_batch_size, predict_dataset  # noqa: E402
from explainers.class_names import map_folders  # noqa: E402
from explainers.dataset import read_dataset  # noqa: E402
from explainers.io import load_image  # noqa: E402
from explainers.models import load_model  # noqa: E402

TARGET = 3.0  # engine images/s over library images/s


def make_zip(count: int) -> bytes:
    """``count`` JPEGs in four class folders; "tabby" and "cup" are (mostly) misclassified by design."""
    from skimage import data

    sources = {"Egyptian cat": data.chelsea(), "tabby": data.chelsea(), "espresso": data.coffee(), "cup": data.coffee()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in range(count):
            folder = list(sources)[n % 4]
            image = Image.fromarray(sources[folder])
            w, h = image.size
            k = n // 4
            box = (k % 5 * w // 20, k % 3 * h // 20, w - k % 4 * w // 20, h - k % 2 * h // 20)  # varied crops
            image = image.crop(box)
            image = ImageOps.mirror(image) if k % 2 else image
            jpeg = io.BytesIO()
            image.save(jpeg, format="JPEG", quality=90)
            archive.writestr(f"{folder}/{n:04d}.jpg", jpeg.getvalue())
    return buffer.getvalue()


def engine_path(model, archive: bytes, batch_size: int | None) -> tuple[int, int]:
    dataset = read_dataset(archive)
    made: list[int] = []
    maps = MapRequest(lambda row, image, cams: made.append(len(cams)), "gradcam")  # the CLI writes files here
    result = predict_dataset(model, dataset, map_folders(dataset.folders, model.categories), batch_size, maps=maps)
    return len(result.rows), sum(made)


def library_loop(model, module, layer, archive: bytes, labels: dict[str, int]) -> tuple[int, int]:
    images = maps = 0
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        for name in zf.namelist():
            image = load_image(zf.read(name))
            true = labels[name.split("/")[0]]
            x = model.preprocessing.to_tensor(image)
            with torch.no_grad():
                predicted = int(module(x).argmax())
            images += 1
            if predicted == true:
                continue
            with GradCAM(model=module, target_layers=[layer]) as cam:
                grayscale = cam(input_tensor=x.repeat(2, 1, 1, 1),
                                targets=[ClassifierOutputTarget(true), ClassifierOutputTarget(predicted)])
            for m in grayscale:  # onto the image's grid, as the engine returns it
                cv2.resize(m, image.size, interpolation=cv2.INTER_LINEAR)
                maps += 1
    return images, maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the engine's (8 on a CPU)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model("efficientnet_lite0", device="cpu")
    module = copy.deepcopy(model.module)  # the library hooks its model; keep the engine's clean
    layer = module.get_submodule(model.target_layer)
    archive = make_zip(args.images)
    labels = map_folders(read_dataset(archive).folders, model.categories)
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}, torch {torch.__version__}")
    batch = args.batch_size or default_batch_size(model)
    print(f"{args.images} JPEG images (451x300 and 600x400 crops), batch size {batch}, "
          f"layer {model.target_layer}, median of {args.repeat} after a warm-up")

    cases = {"engine": lambda: engine_path(model, archive, args.batch_size),
             "library": lambda: library_loop(model, module, layer, archive, labels)}
    counts = {name: fn() for name, fn in cases.items()}  # warm-up, and the work done
    assert counts["engine"] == counts["library"], f"different work: {counts}"
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    images, maps = counts["engine"]
    print(f"work per run: {images} images predicted, {maps} maps ({maps // 2} misclassified images x 2 classes)\n")
    speed = {name: images / statistics.median(t) for name, t in times.items()}
    print(f"{'path':<52}{'seconds':>9}{'images/s':>10}")
    print(f"{'engine: read + batched predict + batched maps':<52}{statistics.median(times['engine']):>9.2f}"
          f"{speed['engine']:>10.1f}")
    print(f"{'pytorch-grad-cam: per-image loop':<52}{statistics.median(times['library']):>9.2f}"
          f"{speed['library']:>10.1f}")
    ratio = speed["engine"] / speed["library"]
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"\nratio engine / library: {ratio:.2f}x (target >= {TARGET:.0f}x): {verdict}")


if __name__ == "__main__":
    main()
