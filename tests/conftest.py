"""Shared fixtures: the embedded model (loaded once) and scikit-image's sample photos."""
from __future__ import annotations

import os

os.environ.setdefault("CAMSCOPE_DEVICE", "cpu")  # tests always run on the CPU

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def lite0():
    from explainers.models import load_model

    return load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def cat_image() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.chelsea())  # 451 x 300, public domain


@pytest.fixture(scope="session")
def coffee_image() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.coffee())  # 600 x 400, public domain


@pytest.fixture(scope="session")
def astronaut_image() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def imagenet_index(model, *names: str) -> list[int]:
    return [model.categories.index(n) for n in names]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def engine_spy(monkeypatch) -> list[list[str]]:
    """Records the methods of every engine call the app's loaders make."""
    from ui import loaders

    asked: list[list[str]] = []
    real = loaders.explain

    def record(model, image, methods, **kwargs):
        asked.append(list(methods))
        return real(model, image, methods=methods, **kwargs)

    monkeypatch.setattr(loaders, "explain", record)
    return asked
