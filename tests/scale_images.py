"""A small ImageFolder set for the scale tests: crops of scikit-image's photos, plus bad files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("tabby", "cup", "astronaut")  # "astronaut" is no ImageNet class: its label stays unknown


def make_folder(root: Path, n: int, bad: bool = True) -> Path:
    """``n`` JPEGs in class folders (cycling through CLASSES), plus a broken JPEG and a text file."""
    from skimage import data

    photos = {"tabby": data.chelsea(), "cup": data.coffee(), "astronaut": data.astronaut()}
    rng = np.random.default_rng(0)
    for i in range(n):
        name = CLASSES[i % 3]
        image = Image.fromarray(photos[name])
        w, h = image.size
        box = (int(rng.integers(0, w // 4)), int(rng.integers(0, h // 4)),
               w - int(rng.integers(0, w // 4)), h - int(rng.integers(0, h // 4)))
        (root / name).mkdir(parents=True, exist_ok=True)
        image.crop(box).resize((96 + 8 * (i % 4), 72)).save(root / name / f"{i:04d}.jpg")
    if bad:
        (root / "cup" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
        (root / "tabby" / "notes.txt").write_text("not an image")
    return root
