"""A real small CAM store for the Review page tests: four sample photos in ImageNet class folders, explained
by the embedded model with ``python -m explainers run`` (Grad-CAM and EigenCAM, predicted and true class)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = {"tabby/cat.jpg": "cat.jpg", "espresso/coffee.jpg": "coffee.jpg",
           "space_shuttle/rocket.jpg": "rocket.jpg", "space_shuttle/astronaut.jpg": "astronaut.jpg"}
STORE_NAME = "samples"


def make_review_store(folder: Path) -> Path:
    """SOURCE at folder/source, the store at folder/stores/samples; returns the stores folder."""
    for image_id, sample in SAMPLES.items():
        (folder / "source" / image_id).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "assets" / "samples" / sample, folder / "source" / image_id)
    stores = folder / "stores"
    done = run_cli(folder / "source", stores / STORE_NAME, "--method", "gradcam", "eigencam", "--targets", "both")
    assert done.returncode == 0, done.stderr
    return stores


def run_cli(source: Path, out: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m explainers run SOURCE --out OUT ARGS --quiet`` on the CPU, as a user runs it into a store."""
    return subprocess.run([sys.executable, "-m", "explainers", "run", str(source), "--out", str(out), *args, "--quiet"],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "CAMSCOPE_DEVICE": "cpu", **(env or {})})


def open_review(monkeypatch, stores: Path, view: str = "Gallery", methods: tuple[str, ...] = ("gradcam",),
                timeout: float = 180):
    """AppTest of the app with CAMSCOPE_STORES_DIR=stores, on the Review page's ``view``; checked clean."""
    from streamlit.testing.v1 import AppTest

    from ui import state

    monkeypatch.setenv("CAMSCOPE_STORES_DIR", str(stores))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.session_state[state.METHODS] = list(methods)
    at.run()
    at.switch_page("pages/review.py").run()
    if view != "Gallery":
        at.radio(key="review_view").set_value(view).run()
    assert_clean(at)
    return at


def assert_clean(at) -> None:
    """No exception and no st.error on the AppTest's page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
