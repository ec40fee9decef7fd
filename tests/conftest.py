"""Shared fixtures: the embedded model (loaded once) and scikit-image's sample photos."""
from __future__ import annotations

import os

os.environ.setdefault("CAMSCOPE_DEVICE", "cpu")  # tests always run on the CPU

import numpy as np
import pytest
import torch
from PIL import Image

# One torch thread for every in-process test, whatever ran before (some fixtures set it) and however many
# cores CI has: eager CPU kernels split their sums by thread, and ReLU6's gradient flips where an activation
# sits at its clip points, so a weak class's map moved 0.5% between one and two threads (the coffee photo's
# "cup" at Lite0's blocks.5). The comparisons here are of methods and paths, at one fixed summation order.
torch.set_num_threads(1)


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


@pytest.fixture(autouse=True)
def _apptest_runs_as_a_navigation_app(monkeypatch):
    """AppTest runs app.py as the server does once ``st.navigation`` has run, despite ``pages/``.

    ``AppTest.run()`` resets ``PagesManager.uses_pages_directory`` to None before every run
    (streamlit/streamlit#14217), and ``PagesManager`` then finds ``pages/`` beside app.py and turns
    Streamlit's old multipage mode on, in which the script runner runs the requested page ALONE
    (``_mpa_v1``): no app.py, no sidebar, the previous run's selection. A server turns that mode
    off for good at the first ``st.navigation`` call of the process (and ``ui.state`` turns it off
    for a page requested before that), so every AppTest run starts in that state.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # the engine's tests run without Streamlit too
        return

    original = PagesManager.__init__

    def init(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False  # what st.navigation does on its first call

    monkeypatch.setattr(PagesManager, "__init__", init)
