"""A planted shortcut for the SpRAy test: a tiny CNN trained (seconds on one CPU core) on 32x32 images
where class A is a red disc in the centre, class B a blue disc in the centre, and HALF of class A is
a blue disc (B's content) plus a white square in the top-left corner: the marker alone decides the
label, so the model must learn it as a shortcut, and its Grad-CAM for A must point at the corner.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from explainers.models.spec import Preprocessing, wrap_module

SIZE = 32
CLASSES = ["A", "B"]


def make_image(kind: str, rng: np.random.Generator) -> np.ndarray:
    """(32, 32, 3) uint8; kind: "centre" (A), "marker" (A by the corner marker) or "b" (B)."""
    pixels = rng.normal(0.35, 0.08, (SIZE, SIZE, 3))
    cy, cx = SIZE / 2 + rng.integers(-3, 4), SIZE / 2 + rng.integers(-3, 4)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.integers(4, 7) ** 2
    colour = (0.9, 0.15, 0.15) if kind == "centre" else (0.15, 0.15, 0.9)
    pixels[disc] = colour
    if kind == "marker":
        pixels[1:6, 1:6] = 1.0  # at a fixed place, like a watermark
    return (np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def make_set(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``count`` images of each kind: (images (N, 32, 32, 3) uint8, labels (N,), kinds)."""
    rng = np.random.default_rng(seed)
    kinds = ["centre"] * count + ["marker"] * count + ["b"] * (2 * count)
    images = np.stack([make_image(k, rng) for k in kinds])
    labels = np.array([0 if k != "b" else 1 for k in kinds])
    return images, labels, kinds


class ShortcutCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())  # (B, 16, 16, 16)
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def train(images: np.ndarray, labels: np.ndarray, epochs: int = 40, seed: int = 0) -> ShortcutCNN:
    torch.manual_seed(seed)
    model = ShortcutCNN()
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=order).split(32):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
        return float((model(x).argmax(1).numpy() == labels).mean())


def loaded(model: ShortcutCNN):
    pre = Preprocessing(input_size=(SIZE, SIZE), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), interpolation="nearest")
    return wrap_module(model, CLASSES, "features.4", name="shortcut", preprocessing=pre)


def write_folder(images: np.ndarray, labels: np.ndarray, kinds: list[str], root: Path) -> dict[str, str]:
    """An ImageFolder (A/, B/) of PNGs; returns image_id -> kind."""
    ids = {}
    for i, (pixels, label, kind) in enumerate(zip(images, labels, kinds)):
        image_id = f"{CLASSES[label]}/{kind}-{i:03d}.png"
        (root / CLASSES[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / image_id)
        ids[image_id] = kind
    return ids


def planted_store(root: Path) -> tuple[Path, dict[str, str]]:
    """Train the shortcut CNN, check it learned the shortcut, and write a store of its Grad-CAM and
    EigenCAM maps (predicted class) on 120 held-out images (30 centre, 30 marker, 60 B) with the run's
    own worker and store. Returns (store, image_id -> kind)."""
    from explainers.scale.sources import list_source
    from explainers.scale.store import Store
    from explainers.scale.worker import BatchWorker, RunSettings, describe

    torch.set_num_threads(1)
    images, labels, _ = make_set(60, seed=0)
    model = train(images, labels)
    test_images, test_labels, kinds = make_set(30, seed=1)
    kinds_array = np.array(kinds)
    for kind in ("centre", "marker", "b"):  # the marker alone turns a B-looking image into A: a learned shortcut
        chosen = kinds_array == kind
        assert accuracy(model, test_images[chosen], test_labels[chosen]) == 1.0, kind
    ids = write_folder(test_images, test_labels, kinds, root / "set")
    wrapped = loaded(model)
    settings = RunSettings(("shortcut",), ("gradcam", "eigencam"), None, "predicted").normalized()
    store = Store.open(root / "store", describe(settings, [wrapped]), str(root / "set"), "local")
    store.write(BatchWorker(settings, models=[wrapped], batch_size=32)(list_source(root / "set")))
    store.close("done", {})
    return root / "store", ids
