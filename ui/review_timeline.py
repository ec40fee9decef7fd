"""The Review page's "Checkpoint timeline" view: maps across checkpoints, their drift, the most-moved images."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from explainers.render import colorize, overlay, upsample
from explainers.review.images import map_caption, source_image
from explainers.review.stores import parts_key, run_settings
from explainers.review.timeline import TimelineReview, checkpoints, review_timeline

from .review_stores import method_label

METHOD, LAYER, MODELS, IMAGE, SHARE, MEASURE = (
    "review_timeline_method", "review_timeline_layer", "review_timeline_models", "review_timeline_image",
    "review_timeline_share", "review_timeline_measure")
MEASURES = {"SSIM": "ssim", "Rank correlation (Spearman)": "spearman"}
PANEL = 192  # pixels per map panel


@st.cache_data(max_entries=8, show_spinner="Measuring how the maps drift between checkpoints...")
def cached_review(store: str, parts: tuple[str, ...], method: str, layer: Optional[str], models: tuple[str, ...],
                  share: float) -> TimelineReview:
    """Keyed by the store and its committed part names: a run that adds parts recomputes."""
    return review_timeline(store, method=method, layer=layer, models=list(models), share=share)


def render(store: Path) -> None:
    """Draw the view for the store folder ``store``."""
    names = checkpoints(store)
    if len(names) < 2:
        st.info(f"The timeline needs several checkpoints in one store; this store holds one model "
                f"({', '.join(names) or 'none'}). Make one with `python -m explainers run SOURCE --out STORE "
                "--model ckpt_a --model ckpt_b --model ckpt_c` (manifest entries of one architecture).")
        return
    settings = run_settings(store)
    layers = settings.get("models", [{}])[0].get("layers", [])
    left, middle, right = st.columns([1, 3, 1])
    method = left.selectbox("Method", settings.get("methods", ["gradcam"]), key=_key(METHOD, store),
                            format_func=method_label)
    layer = left.selectbox("Layer", layers, key=_key(LAYER, store)) if len(layers) > 1 else None
    models = middle.multiselect("Checkpoints, in order (run.json's order by default)", names, default=names,
                                key=_key(MODELS, store))
    share = right.number_input("Flag the lowest share (first -> last SSIM)", 0.01, 1.0, 0.05, 0.01,
                               key=_key(SHARE, store))
    if len(models) < 2:
        st.info("Pick at least two checkpoints.")
        return
    parts = parts_key(store)
    review = cached_review(str(store), parts, method, layer, tuple(models), float(share))
    timeline = review.timeline
    if not timeline.image_ids:
        st.info("No image has a map of one class in every checkpoint; run with `--targets true` or `both`.")
        return
    sources = {s: timeline.class_source.count(s) for s in ("true", "last")}
    st.caption(f"{len(timeline.image_ids)} images, layer {timeline.layer}; class compared: the true class for "
               f"{sources['true']}, the last checkpoint's prediction for {sources['last']}"
               + (f"; {timeline.missing} images left out (no map of one class in every checkpoint)"
                  if timeline.missing else "") + ". Each map upsampled to "
               f"{timeline.size} x {timeline.size} and scaled by its own min to max; SSIM with data_range 1.")
    _maps(store, review)
    _distribution(store, review)
    _most_moved(review)


def _maps(store: Path, review: TimelineReview) -> None:
    timeline = review.timeline
    flagged = [m.image_id for m in review.flagged]
    options = flagged + [i for i in timeline.image_ids if i not in set(flagged)]  # most moved first
    image_id = st.selectbox("Image (most moved first)", options, key=_key(IMAGE, store))
    n = timeline.index(image_id)
    st.markdown(f"**{image_id}**, class {int(timeline.class_index[n])} ({timeline.class_source[n]} class)")
    original = source_image(store, image_id)
    image = original.image
    if image is not None:
        image.thumbnail((PANEL * 2, PANEL * 2))
    for column, model, j in zip(st.columns(len(timeline.models)), timeline.models, range(len(timeline.models))):
        picture = (colorize(upsample(timeline.maps[n, j], (PANEL, PANEL)), "jet") if image is None
                   else overlay(image, timeline.maps[n, j], 0.5))
        column.image(picture, caption=f"{model} · p {timeline.probability[n, j]:.2f} · "
                                      + map_caption(float(timeline.raw_max[n, j])))
    cells = [f"{d.label}: SSIM {d.ssim[n]:.3f}, rank corr. " + (f"{d.spearman[n]:.3f}" if np.isfinite(d.spearman[n])
                                                                 else "undefined (a constant map)")
             for d in review.drifts]
    st.caption(" · ".join(cells))
    if image is None:
        st.caption(f"The maps alone: {original.problem}")


def _distribution(store: Path, review: TimelineReview) -> None:
    label = st.radio("Drift measure", list(MEASURES), horizontal=True, key=_key(MEASURE, store))
    measure = MEASURES[label]
    figure = go.Figure()
    for drift in review.drifts:
        values = getattr(drift, measure)
        figure.add_trace(go.Histogram(x=values[np.isfinite(values)], name=drift.label, opacity=0.6,
                                      xbins={"start": -1.0, "end": 1.05, "size": 0.05}))  # [1, 1.05): the same map
    figure.update_layout(barmode="overlay", xaxis_title=f"{label} (1 = the same map)", yaxis_title="images",
                         height=320, margin={"t": 30, "b": 40})
    st.plotly_chart(figure, width="stretch", key="review_timeline_histogram")
    rows = []
    for drift in review.drifts:
        q = drift.quantiles()[measure]
        rows.append({"pair": drift.label, "5%": q[0.05], "25%": q[0.25], "median": q[0.5], "75%": q[0.75],
                     "95%": q[0.95], "undefined (constant map)": int(np.isnan(getattr(drift, measure)).sum())})
    st.dataframe(rows, hide_index=True, width="stretch")


def _key(name: str, store: Path) -> str:
    """Widget keys per store: another store has other checkpoints, images and methods."""
    return f"{name}:{store.name}"


def _most_moved(review: TimelineReview) -> None:
    first_last = review.drifts[-1]
    st.subheader(f"Most moved ({first_last.label})")
    st.dataframe([{"image": m.image_id, "class": m.class_index, "SSIM": m.ssim, "rank corr.": m.spearman}
                  for m in review.flagged], hide_index=True, width="stretch")
