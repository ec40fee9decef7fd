"""Cached loading: models once per server process, images and results per content hash.

Explanations are cached per (model, weights, image hash, layer, class, method): one
cache entry is ONE method's CamResult, so adding a method to the page computes only
that method, and coming back to an image is instant. The methods that are not cached
yet are computed together in ONE ``explain()`` call, so the one-pass methods still
share their single forward/backward pass; each method is cached as soon as it is done,
so a run stopped by a widget change keeps what it finished.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Callable, Optional, Sequence

import numpy as np
import streamlit as st
from PIL import Image

from explainers.errors import ExplainerError
from explainers.pipeline import explain, on_grid, predict
from explainers.io import image_sha256, load_image
from explainers.layers import LayerInfo, list_layers
from explainers.methods.options import MethodOptions
from explainers.models import list_models, load_model
from explainers.models.spec import LoadedModel, ModelSpec, Preprocessing
from explainers.results import CamResult, Prediction

ENGINE_CALLS = 0  # explain() and predict() calls made by this process; tests read it
Progress = Callable[[float, str], None]


@st.cache_resource(show_spinner=False, max_entries=4)
def get_model(name: str) -> LoadedModel:
    """The model, built once per server process and shared by every session (read-only)."""
    return load_model(name)  # device: CAMSCOPE_DEVICE, else CUDA, else MPS, else CPU


@st.cache_data(show_spinner=False, ttl=60)  # weights may be downloaded meanwhile
def model_specs() -> list[tuple[str, str, str, bool]]:
    """(name, display name, source, weights available here) for every registered model."""
    return [(s.name, s.display_name, s.source, _available(s)) for s in list_models()]


def _available(spec: ModelSpec) -> bool:
    try:
        return bool(spec.weights_available())
    except Exception:  # a broken manifest entry is shown as unavailable, not as a crash
        return False


@st.cache_data(show_spinner=False, max_entries=32)
def decode_image(file_sha256: str, _data: bytes) -> tuple[Image.Image, str]:
    """Decode an image once per file content; returns (RGB image, hash of its pixels)."""
    image = load_image(_data)
    return image, image_sha256(image)


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@st.cache_data(show_spinner=False, max_entries=64)
def layers(model_name: str, weights_sha256: Optional[str], _model: LoadedModel) -> list[LayerInfo]:
    """The model's layers with output shapes (one dry forward pass per model)."""
    return list_layers(_model)


def predictions(model_name: str, weights_sha256: Optional[str], image_sha: str, k: int,
                _model: LoadedModel, _image: Image.Image) -> list[Prediction]:
    """The top-k classes of the model for the image (cached per model, weights, fit, image and k)."""
    return _predictions(model_name, weights_sha256, _model.preprocessing.fit, image_sha, k, _model, _image)


@st.cache_data(show_spinner=False, max_entries=256)
def _predictions(model_name: str, weights_sha256: Optional[str], fit: str, image_sha: str, k: int,
                 _model: LoadedModel, _image: Image.Image) -> list[Prediction]:
    global ENGINE_CALLS
    ENGINE_CALLS += 1
    return predict(_model, _image, k=k)


def cache_key(model: LoadedModel) -> tuple[str, Optional[str], str]:
    """What identifies a model's results in every cache: name, weights and the image fit."""
    return model.name, model.weights_sha256, model.preprocessing.fit


class _Miss(Exception):
    """Raised inside the cached function to probe the cache without filling it."""


@st.cache_data(show_spinner=False, max_entries=2048)
def _cam(model_name: str, weights_sha256: Optional[str], fit: str, image_sha: str, layer: str, class_index: int,
         method: str, _computed: Optional[dict[str, CamResult]]) -> CamResult:
    # Called first with _computed=None as a probe: a miss raises (st.cache_data never
    # caches an exception); called again with the fresh results to store them.
    if _computed is None:
        raise _Miss(method)
    # Only the small layer-resolution map is stored; the image-size map is a pure function
    # of it (on_grid) and would make each entry as large as the photo.
    return dataclasses.replace(_computed[method], map=np.zeros((0, 0), np.float32))


def with_map(result: CamResult, image: Image.Image, preprocessing: Optional[Preprocessing] = None) -> CamResult:
    """``result`` with its map on the image grid (cached results keep only the layer-size map), through
    the fit of ``preprocessing`` when given (NaN outside a centre crop)."""
    return dataclasses.replace(result, map=on_grid(result.raw, image.width, image.height, preprocessing))


def explanations(model: LoadedModel, image: Image.Image, image_sha: str, layer: str, class_index: int,
                 methods: Sequence[str], progress: Optional[Progress] = None,
                 compute: bool = True, options: Optional[MethodOptions] = None) -> dict[str, CamResult]:
    """One CamResult per method, from the cache where possible.

    Args:
        model, image: what to explain; image_sha: the image's pixel hash (cache key).
        layer, class_index: the target layer and class.
        methods: method keys, e.g. ["gradcam", "scorecam"].
        progress: called with (fraction, message) while missing maps are computed.
        compute: False returns only what is cached already (nothing is computed).
        options: aug-smooth / eigen-smooth (part of the cache key).

    Returns:
        {method: CamResult} in the order of ``methods`` (without the missing ones if not ``compute``).

    Raises:
        ExplainerError: with a message for the user (bad layer, method, class...).
    """
    global ENGINE_CALLS
    key = (*cache_key(model), image_sha, layer, int(class_index))
    found: dict[str, CamResult] = {}
    missing: list[str] = []
    tag = options.suffix() if options is not None else ""  # "" for the defaults: old cache keys stay valid
    if options is not None and options.noise_tunnel is not None:
        tag += f" std {options.noise_tunnel.std}"  # the name shows the samples, not the noise
    for method in methods:
        try:
            found[method] = with_map(_cam(*key, method + tag, None), image, model.preprocessing)
        except _Miss:
            missing.append(method)
    if missing and compute:
        ENGINE_CALLS += 1

        def keep(results: list[CamResult]) -> None:  # cached as each method ends: kept if the run is stopped
            for r in results:
                if r.method in missing and r.method not in found:
                    _cam(*key, r.method + tag, {r.method + tag: r})
                    found[r.method] = r

        explain(model, image, methods=missing, classes=[int(class_index)], layers=[layer], progress=progress,
                on_result=keep, options=options)
        for method in missing:
            if method not in found:
                raise ExplainerError(f"The engine returned no map for method {method!r}.")
    return {m: found[m] for m in methods if m in found}
