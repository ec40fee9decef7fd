"""A small labelled set in ImageFolder layout from scikit-image's public-domain photos.

Outcomes known by hand (the embedded model, checked in tests/test_dataset.py):
Chelsea is an "Egyptian cat" in every variant, so the "tabby" folder is all wrong
(called Egyptian cat); the coffee photo is an "espresso", so "cup" is all wrong too.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image, ImageOps

EGYPTIAN_CAT, TABBY, ESPRESSO, CUP = 285, 281, 967, 968


def _variants(image: Image.Image, names: list[str]) -> dict[str, Image.Image]:
    w, h = image.size
    every = {"orig": image, "flip": ImageOps.mirror(image), "gray": ImageOps.grayscale(image).convert("RGB"),
             "rot": image.rotate(15), "small": image.resize((w // 2, h // 2)),
             "left": image.crop((0, 0, int(w * 0.7), h)), "right": image.crop((int(w * 0.3), 0, w, h))}
    return {n: every[n] for n in names}


def labelled_images() -> dict[str, dict[str, Image.Image]]:
    """{folder: {file stem: image}}: 12 images in 4 class folders."""
    from skimage import data

    cat, coffee = Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())
    return {"Egyptian_cat": _variants(cat, ["orig", "gray", "rot"]),  # underscore: matched by name anyway
            "tabby": _variants(cat, ["orig", "flip", "small"]),
            "espresso": _variants(coffee, ["orig", "flip", "right"]),
            "cup": _variants(coffee, ["orig", "left", "small"])}


# (true, predicted) -> count, known by hand for the set above
EXPECTED_CELLS = {(EGYPTIAN_CAT, EGYPTIAN_CAT): 3, (TABBY, EGYPTIAN_CAT): 3, (ESPRESSO, ESPRESSO): 3,
                  (CUP, ESPRESSO): 3}


def write_folder(root: Path) -> Path:
    """The set as PNG files (lossless: the pixels the tests reason about) under ``root``."""
    for folder, images in labelled_images().items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for stem, image in images.items():
            image.save(root / folder / f"{stem}.png")
    return root


def zip_bytes(extra: dict[str, bytes] | None = None, prefix: str = "") -> bytes:
    """The set as a zip made in memory; ``extra`` adds members {name: bytes} as they are."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, images in labelled_images().items():
            for stem, image in images.items():
                png = io.BytesIO()
                image.save(png, format="PNG")
                archive.writestr(f"{prefix}{folder}/{stem}.png", png.getvalue())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()
