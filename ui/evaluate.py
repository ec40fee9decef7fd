"""Streamlit glue for the Evaluate page: its state keys, its method picker, and cached metric runs.

Each long run (faithfulness, sanity check, stability) is cached with ``st.cache_data`` keyed by
model, weights, image hash, layer, class, method(s) and settings. The cache is probed first
without computing (as ``loaders.explanations`` does), so a run only starts when its button is
pressed, and its progress bar lives outside the cached function (a cached function would replay it).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import streamlit as st
from PIL import Image

from explainers.methods.catalog import list_methods
from explainers.metrics import faithfulness, record, sanity, stability
from explainers.models.spec import LoadedModel
from explainers.results import CamResult
from explainers.render import upsample

from . import loaders

# Widget keys of this page (namespaced "evaluate_").
METHODS = "evaluate_methods"
STEPS = "evaluate_steps"
DELETION_BASELINE = "evaluate_deletion_baseline"
INSERTION_BASELINE = "evaluate_insertion_baseline"
RANDOM_REFERENCE = "evaluate_random_reference"
ROAD = "evaluate_road"
RUN_FAITHFULNESS = "evaluate_run_faithfulness"
TRUTH_KIND = "evaluate_truth_kind"
BOX = ("evaluate_box_x0", "evaluate_box_y0", "evaluate_box_x1", "evaluate_box_y1")
BOX_CONTEXT = "evaluate_box_context"
MASK = "evaluate_mask"
TOLERANCE = "evaluate_tolerance"
THRESHOLD = "evaluate_threshold"
SANITY_MODE = "evaluate_sanity_mode"
SANITY_STEPS = "evaluate_sanity_steps"
SANITY_REFERENCE = "evaluate_sanity_reference"
RUN_SANITY = "evaluate_run_sanity"
MIRROR = "evaluate_mirror"
ZOOMS = "evaluate_zooms"
NOISE = "evaluate_noise"
NOISE_SAMPLES = "evaluate_noise_samples"
RUN_STABILITY = "evaluate_run_stability"

DEFAULTS: dict[str, object] = {
    METHODS: ["gradcam", "gradcam++"], STEPS: 25, DELETION_BASELINE: "mean", INSERTION_BASELINE: "blur",
    RANDOM_REFERENCE: True, ROAD: False, TRUTH_KIND: "Box", TOLERANCE: 15.0, THRESHOLD: 0.5,
    SANITY_MODE: "cascading", SANITY_STEPS: 6, SANITY_REFERENCE: True, MIRROR: True, ZOOMS: [0.9, 1.1],
    NOISE: 0.05, NOISE_SAMPLES: 2,
}
RANDOM = "random"  # the random reference map's key among the methods
THUMB_SIDE = 160  # sanity-strip maps are stored this small: 20 steps x methods of full-size maps is megabytes
DISPLAY_SIDE = 512
Progress = Callable[[float, str], None]


def keep_state() -> None:
    """Defaults once; and keep this page's choices when the user visits another page and comes back."""
    for key, value in DEFAULTS.items():
        st.session_state[key] = st.session_state.get(key, list(value) if isinstance(value, list) else value)
    for key in (*BOX, BOX_CONTEXT):
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def reference_methods() -> list[str]:
    """RandomCAM and SobelCAM, evaluated beside the chosen maps as the baselines they should beat (Arun et al. 2021)."""
    from explainers.methods.baselines import BASELINE_METHODS
    if not st.toggle("Baselines as references (RandomCAM, SobelCAM)", value=False, key="evaluate_references",
                     help="A map worth trusting should score clearly better than a random map and an edge map."):
        return []
    return [m for m in BASELINE_METHODS if m not in st.session_state[METHODS]]


def method_picker() -> list[str]:
    """The one-pass and guided methods (slow ones stay on the compare page)."""
    usable = [m for m in list_methods() if not m.slow]
    names = {m.key: m.display_name for m in usable}
    st.session_state[METHODS] = [m for m in st.session_state[METHODS] if m in names]
    return st.multiselect("Methods to evaluate", list(names), key=METHODS, format_func=names.get)


@dataclass(frozen=True)
class Job:
    """What is evaluated: one image, model, layer and class."""

    model: LoadedModel
    image: Image.Image
    image_sha: str
    layer: str
    class_index: int

    @property
    def key(self) -> tuple:
        return (*loaders.cache_key(self.model), self.image_sha, self.layer, int(self.class_index))


class _Miss(Exception):
    """Raised inside the cached function to probe the cache without filling it."""


@st.cache_data(show_spinner=False, max_entries=256)
def _stored(kind: str, key: tuple, _value: object = None) -> object:
    if _value is None:
        raise _Miss(kind)
    return _value


def cached(kind: str, key: tuple) -> Optional[object]:
    """The cached result of one run, or None when it was not computed yet."""
    try:
        return _stored(kind, key)
    except _Miss:
        return None


def _store(kind: str, key: tuple, value: object) -> object:
    _stored(kind, key, value)
    return value


def progress_bar() -> tuple[Progress, Callable[[], None]]:
    """An st.progress updater and a function that removes the bar."""
    slot = st.empty()

    def update(fraction: float, message: str) -> None:
        slot.progress(min(max(float(fraction), 0.0), 1.0), text=message)

    return update, slot.empty


def faithfulness_key(job: Job, method: str, steps: int, deletion: str, insertion: str) -> tuple:
    return (*job.key, method, int(steps), deletion, insertion)


def faithfulness_run(job: Job, maps: dict[str, np.ndarray], steps: int, deletion: str, insertion: str,
                     road: bool, progress: Optional[Progress]) -> dict[str, dict]:
    """Deletion/insertion (and ROAD + confidence change if asked) per method, from the cache where possible.

    Args:
        maps: {method: (H, W) map}; the key RANDOM is the random reference map.
        progress: None only looks up the cache (nothing is computed).
    Returns:
        {method: {"curves": Faithfulness, "road": RoadScores | None, "confidence": ConfidenceChange | None}}
        for the methods whose results are (now) available.
    """
    out: dict[str, dict] = {}
    for i, (method, cam) in enumerate(maps.items()):
        key = faithfulness_key(job, method, steps, deletion, insertion)
        found = cached("faithfulness", key)
        extra = cached("road", key) if road else None
        if progress is not None and found is None:
            share = (lambda f, m, i=i: progress((i + f) / len(maps), f"{method}: {m}"))
            found = _store("faithfulness", key, faithfulness.deletion_insertion(
                job.model, job.image, cam, job.class_index, steps, deletion, insertion, progress=share))
        if progress is not None and road and extra is None:
            progress((i + 0.99) / len(maps), f"{method}: ROAD imputation")
            start = time.perf_counter()
            scores = faithfulness.road(job.model, job.image, cam, job.class_index)
            _road_times()[_road_key(job)] = time.perf_counter() - start  # the next estimate uses this run
            extra = _store("road", key, (scores,
                                         faithfulness.confidence_change(job.model, job.image, cam, job.class_index)))
        if found is not None:
            out[method] = {"curves": found, "road": extra[0] if extra else None,
                           "confidence": extra[1] if extra else None}
    return out


@st.cache_resource(show_spinner=False)
def _road_times() -> dict[tuple, float]:
    """Seconds of the last ROAD run per (model, weights, input size), shared by the server's sessions."""
    return {}


def _road_key(job: Job) -> tuple:
    return (job.model.name, job.model.weights_sha256, tuple(job.model.preprocessing.input_size))


@st.cache_resource(show_spinner=False, max_entries=16)
def _road_step_seconds(model_name: str, weights: Optional[str], size: tuple, _job: Job) -> float:
    return record.time_road_step(_job.model, _job.image)


def road_estimate(job: Job) -> tuple[float, str]:
    """(seconds per method, where the figure comes from): the last ROAD run on this server for this
    model and input size, else one imputation timed here (once per server process) times the run's count."""
    last = _road_times().get(_road_key(job))
    if last is not None:
        return last, "measured on the last ROAD run"
    step = _road_step_seconds(*_road_key(job), job)
    return record.road_seconds(step), f"one imputation timed here: {step:.2f} s × {record.road_seconds(1):.0f}"


def random_map(job: Job) -> np.ndarray:
    """The random reference map (fixed seed, CAM-like 7 x 7 grid) on the image grid."""
    return faithfulness.random_saliency(job.image.height, job.image.width, seed=0)


def sanity_key(job: Job, methods: list[str], mode: str, steps: int) -> tuple:
    return (*job.key, tuple(methods), mode, int(steps))


def sanity_run(job: Job, methods: list[str], mode: str, steps: int,
               progress: Optional[Progress]) -> Optional[sanity.SanityResult]:
    """The sanity check (cached); maps are kept at thumbnail size. None if not computed and no progress."""
    key = sanity_key(job, methods, mode, steps)
    found = cached("sanity", key)
    if found is not None or progress is None:
        return found
    result = sanity.sanity_check(job.model, job.image, methods, mode=mode, steps=steps,
                                 class_index=job.class_index, layer=job.layer, progress=progress)
    size = _fit(job.image, THUMB_SIDE)
    small = dataclasses.replace(
        result, original={k: upsample(v, size) for k, v in result.original.items()},
        steps=[dataclasses.replace(s, maps={k: upsample(v, size) for k, v in s.maps.items()}) for s in result.steps])
    return _store("sanity", key, small)


def stability_key(job: Job, methods: list[str], mirror: bool, zooms: list[float], noise: float,
                  samples: int) -> tuple:
    return (*job.key, tuple(methods), bool(mirror), tuple(float(z) for z in zooms), float(noise), int(samples))


def stability_run(job: Job, methods: list[str], mirror: bool, zooms: list[float], noise: float, samples: int,
                  progress: Optional[Progress]) -> Optional[dict[str, stability.Stability]]:
    """Stability per method (cached, maps at display size). None if not computed and no progress."""
    key = stability_key(job, methods, mirror, zooms, noise, samples)
    found = cached("stability", key)
    if found is not None or progress is None:
        return found
    result = stability.stability_check(job.model, job.image, methods, job.class_index, job.layer, mirror, zooms,
                                       noise, samples, progress=progress)
    size = _fit(job.image, DISPLAY_SIDE)
    small = {k: dataclasses.replace(v, original=upsample(v.original, size), maps=[],
                                    std_map=upsample(v.std_map, size)) for k, v in result.items()}
    return _store("stability", key, small)


def _fit(image: Image.Image, side: int) -> tuple[int, int]:
    """(height, width) of ``image`` shrunk to fit in side x side (never enlarged)."""
    scale = min(1.0, side / max(image.width, image.height))
    return max(1, round(image.height * scale)), max(1, round(image.width * scale))


def explained(job: Job, methods: list[str]) -> dict[str, CamResult]:
    """The methods' maps (cached across pages by ``loaders.explanations``)."""
    return loaders.explanations(job.model, job.image, job.image_sha, job.layer, job.class_index, methods)
