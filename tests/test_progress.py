"""Progress that tells the truth: from 0, never backwards, counts of real passes, time left from the rate
so far; finished methods handed over as soon as they are done (kept when a run is interrupted)."""
from __future__ import annotations

import re

import pytest

from explainers.models.spec import Preprocessing, wrap_module
from explainers.pipeline import explain
from explainers.progress import ProgressTracker, time_left
from tests.test_slow_methods import SmallNet
from tests.tiny import tiny_image


@pytest.fixture(scope="module")
def small():
    pre = Preprocessing(input_size=(32, 32), interpolation="bilinear")
    return wrap_module(SmallNet(), ["a", "b", "c"], "body.3", name="small", preprocessing=pre)


def counts(steps: list[tuple[float, str]], label: str) -> list[tuple[int, int]]:
    found = [re.match(rf"{re.escape(label)}: [a-z ]+ ([\d,]+) / ([\d,]+)", text) for _, text in steps]
    return [(int(m[1].replace(",", "")), int(m[2].replace(",", ""))) for m in found if m]


def test_progress_sequence_from_the_engine(small):
    steps: list[tuple[float, str]] = []
    explain(small, tiny_image().resize((40, 30)), methods=["gradcam", "scorecam", "ablationcam", "fullgrad"],
            top_k=2, batch_size=3, progress=lambda f, text: steps.append((f, text)))
    fractions = [f for f, _ in steps]
    assert fractions[0] == 0.0 and fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    # 8 channels, none constant: one sweep of 8 masked passes for both classes, in batches of 3
    assert counts(steps, "Score-CAM") == [(0, 8), (3, 8), (6, 8), (8, 8)]
    # the library ablates each of the 8 channels once per class: 2 x 8 passes
    assert counts(steps, "Ablation-CAM") == [(0, 16), (3, 16), (6, 16), (8, 16), (8, 16), (11, 16), (14, 16),
                                            (16, 16)]
    assert counts(steps, "FullGrad") == [(1, 2), (2, 2)]
    # 8 + 16 + 2 units: the fraction is the share of them done
    assert [f for f, t in steps if t.startswith("Score-CAM: masked pass 8 / 8")] == [pytest.approx(8 / 26)]
    assert not any(t.count("Score-CAM") > 1 for _, t in steps)  # the method's name once, not twice


def test_counts_and_time_left_with_a_clock():
    now = [0.0]
    seen: list[tuple[float, str]] = []
    tracker = ProgressTracker(lambda f, t: seen.append((f, t)), {"Score-CAM": (1280, "masked pass")},
                              clock=lambda: now[0])
    tracker.start()
    counter = tracker.method("Score-CAM").call(1280)
    counter(0, 1280)
    now[0] = 5.0
    counter(240, 1280)  # 48 passes/s so far: 1040 left take about 21.7 s
    assert seen == [(0.0, "one forward and backward pass"), (0.0, "Score-CAM: masked pass 0 / 1,280"),
                    (240 / 1280, "Score-CAM: masked pass 240 / 1,280 · about 22 s left")]
    counter(256, 516)  # Score-CAM learns that only 516 channels vary: the total drops, the fraction moves on
    assert seen[-1] == (256 / 516, "Score-CAM: masked pass 256 / 516 · about 5 s left")


def test_time_left_wording():
    assert [time_left(s) for s in (0.4, 1.2, 25.4, 89, 200)] == [
        "less than a second left", "about 1 s left", "about 25 s left", "about 89 s left", "about 3 min left"]


def test_finished_methods_are_handed_over_before_an_interruption(small):
    kept: list[str] = []

    def interrupt(fraction: float, text: str) -> None:
        if text.startswith("Ablation-CAM"):
            raise KeyboardInterrupt  # as Streamlit stops a run when the user changes a widget

    with pytest.raises(KeyboardInterrupt):
        explain(small, tiny_image().resize((40, 30)), methods=["gradcam", "scorecam", "ablationcam"],
                progress=interrupt, on_result=lambda results: kept.extend(r.method for r in results))
    assert kept == ["gradcam", "scorecam"]


def test_the_app_cache_keeps_methods_finished_before_a_stop(small):
    """ui.loaders caches each method when it ends: a run stopped by a widget change keeps them."""
    pytest.importorskip("streamlit")
    from ui import loaders

    image = tiny_image().resize((41, 30))
    methods = ["gradcam", "scorecam", "ablationcam"]

    def stop_at_ablation(fraction: float, text: str) -> None:
        if text.startswith("Ablation-CAM"):
            raise KeyboardInterrupt  # Streamlit raises its own StopException / RerunException here

    with pytest.raises(KeyboardInterrupt):
        loaders.explanations(small, image, "progress-test", "body.3", 1, methods, progress=stop_at_ablation)
    kept = loaders.explanations(small, image, "progress-test", "body.3", 1, methods, compute=False)
    assert list(kept) == ["gradcam", "scorecam"]
    assert kept["scorecam"].map.shape == (30, 41)


def test_the_slow_run_shows_its_own_status():
    """The toolbar's running indicator is hidden (toolbarMode "minimal"): the run has its own status box."""
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from tests.streamlit_server import ROOT
    from ui import state

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[state.METHODS] = ["gradcam"]
    at.session_state[state.SLOW_ON] = True
    at.session_state[state.SLOW_METHODS] = ["finercam"]
    at.run()
    assert not at.status
    at.button(key=state.RUN_SLOW).click().run()
    assert not at.exception
    assert [s.label for s in at.status] == ["Done: Finer-CAM"]
