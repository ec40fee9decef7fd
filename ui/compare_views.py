"""Streamlit glue for the class, layer and model comparison pages: cached maps and a grid of panels.

One cache entry is one ``explain()`` call's results (several classes, or several layers, of
one method), stored without the image-size maps; the panels are drawn at display size.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
import streamlit as st
from PIL import Image

from explainers.comparisons import SIGNED_COLORMAP, class_difference
from explainers.pipeline import explain, on_grid
from explainers.methods.catalog import list_methods
from explainers.models.spec import LoadedModel
from explainers.render import normalize_maps, overlay
from explainers.results import CamResult

from . import loaders, state

DISPLAY_SIDE = 512
COLUMNS = 4


@st.cache_data(show_spinner=False, max_entries=512)
def _cams(model_name: str, weights: Optional[str], fit: str, image_sha: str, method: str, layers: tuple[str, ...],
          classes: tuple[int, ...], contrast: Optional[tuple[int, int]], _model: LoadedModel,
          _image: Image.Image) -> list[CamResult]:
    loaders.ENGINE_CALLS += 1
    result = explain(_model, _image, methods=[method], classes=list(classes) or None, contrast=contrast,
                     layers=list(layers) or None)
    return [dataclasses.replace(r, map=np.zeros((0, 0), np.float32)) for r in result.results]


def cams(model: LoadedModel, image: Image.Image, image_sha: str, method: str, layers: Sequence[str] = (),
         classes: Sequence[int] = (), contrast: Optional[tuple[int, int]] = None) -> list[CamResult]:
    """One method's maps (at layer resolution; ``map`` left empty) for classes x layers, cached.

    Args:
        layers: module names (empty: the recommended layer); classes: indices (empty: the top-1).
        contrast: (A, B) adds the map of "A rather than B" after the class maps.
    """
    return _cams(*loaders.cache_key(model), image_sha, method, tuple(layers), tuple(int(c) for c in classes),
                 tuple(int(c) for c in contrast) if contrast else None, model, image)


def method_picker(key: str) -> str:
    """One method (the one-pass ones: the comparisons run several maps at a time)."""
    fast = [m for m in list_methods() if not m.slow]
    names = {m.key: m.display_name for m in fast}
    if st.session_state.get(key) not in names:
        st.session_state[key] = "gradcam"
    return st.selectbox("Method", list(names), key=key, format_func=names.get)


def reset_on_change(key: str, context: tuple, defaults: dict) -> None:
    """Widget defaults: all of them when ``context`` (e.g. model and image) differs from the last run's,
    else only for widgets not in the state (Streamlit drops a widget's state when it is not drawn)."""
    changed = st.session_state.get(key) != context
    st.session_state[key] = context
    for name, value in defaults.items():
        if changed or name not in st.session_state:
            st.session_state[name] = value


def class_label(model: LoadedModel, index: int) -> str:
    return f"{index}: {model.categories[index]}"


@st.cache_data(show_spinner=False, max_entries=16)
def display_image(image_sha: str, _image: Image.Image) -> Image.Image:
    small = _image.copy()
    small.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.BILINEAR)
    return small


def rendering_controls(prefix: str, shared_default: bool) -> tuple[float, str, bool]:
    """Opacity and colormap (shared with the compare page) and this page's shared-scale toggle."""
    left, middle, right = st.columns(3)
    opacity = left.slider("Overlay opacity", 0.0, 1.0, step=0.05, key=state.OPACITY)
    colormap = middle.selectbox("Colormap", state.COLORMAPS, key=state.COLORMAP)
    key = f"{prefix}_shared_scale"
    if key not in st.session_state:
        st.session_state[key] = shared_default
    shared = right.toggle("One shared scale", key=key,
                          help="The maps here are of one method, so their raw values share units. On: every panel uses "
                                "one range, so a weaker map looks weaker. Off: each is stretched over its own range.")
    return opacity, colormap, shared


def overlays(image: Image.Image, results: Sequence[CamResult], opacity: float, colormap: str,
             shared: bool, preprocessing=None) -> list[np.ndarray]:
    """Each result's overlay on ``image``: the engine's map (its own range), or one range over all raw maps;
    through the fit of ``preprocessing`` (the model's) when given."""
    if shared:
        maps = normalize_maps([r.raw for r in results], (image.height, image.width), shared=True,
                              preprocessing=preprocessing)
    else:
        maps = [on_grid(r.raw, image.width, image.height, preprocessing) for r in results]
    return [overlay(image, m, opacity, colormap) for m in maps]


def difference_overlay(image: Image.Image, first: CamResult, second: CamResult, opacity: float,
                       preprocessing=None) -> tuple[np.ndarray, float]:
    """``first`` minus ``second`` on one shared scale, red where ``first`` is stronger, blue where ``second`` is;
    through the fit of ``preprocessing`` (the model's) when given, hatched where the model did not see the image.

    Returns:
        The overlay, colors stretched so the largest difference is saturated (similar maps would
        otherwise look white), and that largest difference (in [0, 1]) for the caption.
    """
    diff = class_difference(first, second, (image.height, image.width), preprocessing)
    largest = float(np.nanmax(np.abs(diff), initial=0.0))
    stretched = diff / largest if largest > 0 else diff
    # -1..1 onto the diverging map's 0..1 (colorize_signed's colors); overlay hatches the NaN outside a crop
    return overlay(image, (stretched + 1.0) / 2.0, opacity, SIGNED_COLORMAP), largest


def grid(cells: Sequence[tuple[np.ndarray | Image.Image, str]], columns: int = COLUMNS) -> None:
    """Pictures with captions, ``columns`` per row."""
    for row in range(0, len(cells), columns):
        for column, (picture, caption) in zip(st.columns(columns), cells[row:row + columns]):
            column.image(picture, caption=caption, width="stretch")
