"""The Review page's "Strategies (SpRAy)" view: per class, the clusters of the model's maps
(explainers/review/strategies.py), each with its mean map, size, accuracy, representatives and
outliers, and the eigenvalue plot that justifies the number of clusters."""
from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from explainers.render import to_png_bytes
from explainers.review.strategies import SHOWN, ClassStrategies, Strategies, StrategySettings, find_strategies
from explainers.review.strategies_report import (mean_map_caption, mean_map_picture, source_reader, thumbnail,
                                                 thumbnail_caption)
from explainers.review.strategy_maps import StoreChoices, load_maps, store_choices
from explainers.review.stores import NO_MAPS_YET, parts_key

from .review_stores import method_label

KEY = "review_strategies_"


@st.cache_data(show_spinner=False, max_entries=16)
def _choices(store: str, parts: tuple[str, ...]) -> StoreChoices:  # parts: the cache follows new runs
    return store_choices(store)


@st.cache_data(show_spinner=False, max_entries=32)
def _classes(store: str, parts: tuple[str, ...], method: str, model: str, layer: str, by: str) -> list[tuple[int, str]]:
    """The classes that have maps of this method, model, layer and class rule (StrategiesError if none)."""
    return load_maps(store, StrategySettings(method=method, model=model, layer=layer, by=by)).classes


@st.cache_data(show_spinner="Clustering the maps...", max_entries=32)
def _strategies(store: str, parts: tuple[str, ...], method: str, model: str, layer: str, by: str,
                class_index: int) -> Strategies:
    return find_strategies(store, StrategySettings(method=method, model=model, layer=layer, by=by,
                                                   classes=(str(class_index),)))


@st.cache_data(show_spinner=False, max_entries=32)
def _thumbnails(store: str, parts: tuple[str, ...], method: str, model: str, layer: str, by: str,
                class_index: int) -> dict[str, bytes]:
    """PNG thumbnails (original image with its map, or the map) of every image shown."""
    found = _strategies(store, parts, method, model, layer, by, class_index)
    read = source_reader(store)
    shown = {i for c in found.classes for k in c.clusters for i in k.representatives + k.outliers}
    return {i: to_png_bytes(thumbnail(found.maps[i], read(i))) for i in sorted(shown)}


def eigenvalue_figure(found: ClassStrategies) -> go.Figure:
    k = len(found.clusters)
    figure = go.Figure(go.Scatter(x=list(range(1, len(found.eigenvalues) + 1)), y=found.eigenvalues,
                                  mode="lines+markers", name="eigenvalue"))
    figure.add_vrect(x0=k, x1=k + 1, fillcolor="orange", opacity=0.25, line_width=0,
                     annotation_text=f"largest gap: k = {k}", annotation_position="top left")
    figure.update_layout(height=260, margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
                         xaxis_title="eigenvalue number (smallest first)", yaxis_title="normalized Laplacian")
    return figure


def _pictures(found: Strategies, ids: list[str], distances: dict[str, float], pictures: dict[str, bytes]) -> None:
    if not ids:
        st.caption("None beyond the representatives: the cluster is that small.")
        return
    columns = st.columns(max(len(ids), SHOWN))  # a lone picture keeps the size of three
    for column, image_id in zip(columns, ids):
        column.image(pictures[image_id], caption=thumbnail_caption(found, image_id, distances[image_id]),
                     width="stretch")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def render(store: Path) -> None:
    """Draw the view for the store folder ``store``."""
    parts = parts_key(store)
    choices = _choices(str(store), parts)
    if not choices.pairs:
        st.info(NO_MAPS_YET)
        return
    left, middle, right = st.columns(3)
    methods = choices.methods
    method = left.selectbox("Method", methods, index=methods.index("gradcam") if "gradcam" in methods else 0,
                            key=KEY + "method", format_func=method_label)
    model, layer = middle.selectbox("Model and layer", choices.pairs, format_func=lambda p: f"{p[0]} at {p[1]}",
                                    key=KEY + "pair")
    by = right.radio("Group images by", ["predicted", "true"], horizontal=True, key=KEY + "by",
                     format_func=lambda b: f"{b} class", help="true: needs a run with --targets true or both")
    classes = _classes(str(store), parts, method, model, layer, by)
    class_index, class_name = st.selectbox("Class", classes, format_func=lambda c: f"{c[1]} ({c[0]})",
                                           key=KEY + "class")
    found = _strategies(str(store), parts, method, model, layer, by, class_index)
    result = found.classes[0]
    st.subheader(f"{class_name}: {_count(result.images, 'image')}, {len(result.clusters)} "
                 f"strateg{'y' if len(result.clusters) == 1 else 'ies'}")
    st.caption(f"{result.reason}. Each map is resized to {found.grid}x{found.grid} and divided by its maximum; "
               "spectral clustering of a 10-nearest-neighbour graph (Lapuschkin et al., Nature Communications 2019).")
    if result.eigenvalues:
        st.plotly_chart(eigenvalue_figure(result), width="stretch", key=KEY + "eigen")
    distances = {i.image_id: i.distance_to_centre for i in found.images}
    pictures = _thumbnails(str(store), parts, method, model, layer, by, class_index)
    for cluster in result.clusters:
        with st.container(border=True):
            accuracy = "unknown (no labels)" if cluster.accuracy is None else f"{cluster.accuracy:.0%}"
            st.markdown(f"**Cluster {cluster.index}**: {_count(cluster.size, 'image')}, accuracy {accuracy}")
            picture, shown = st.columns([1, 3])
            picture.image(to_png_bytes(mean_map_picture(cluster.mean_map)),
                          caption=mean_map_caption(cluster))
            with shown:
                st.markdown("Representatives (closest to the mean map)")
                _pictures(found, cluster.representatives, distances, pictures)
                st.markdown("Outliers (farthest from it)")
                _pictures(found, [i for i in cluster.outliers if i not in cluster.representatives], distances, pictures)
