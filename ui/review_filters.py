"""The Gallery view's filter and sort controls (keys ``review_*``) and its cached store queries."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pyarrow as pa
import streamlit as st

from explainers.review import browse
from explainers.review.verdicts import VERDICTS

from . import state
from .review_stores import method_label

ANY = "any"
PAGE = "review_page"


@st.cache_data(show_spinner=False, max_entries=16)
def choices(store: str, parts: tuple[str, ...]) -> dict[str, list]:
    return browse.choices(store)


@st.cache_data(show_spinner="Comparing the methods' maps…", max_entries=8)
def disagreements(store: str, parts: tuple[str, ...]) -> pa.Table:
    return browse.disagreements(store)


@st.cache_data(show_spinner="Measuring the maps outside the boxes…", max_entries=8)
def outside(store: str, parts: tuple[str, ...], boxes_json: str) -> pa.Table:
    return browse.outside_mass(store, browse.boxes_from_json(boxes_json))


@dataclass(frozen=True)
class Controls:
    filter: browse.Filter
    sort: str  # a key of browse.SORTS
    boxes_json: Optional[str]  # the boxes file's text, None when none was given
    page_number: int  # from 0
    opacity: float
    colormap: str


def controls(options: dict[str, list]) -> Controls:
    """The filters over the store's ``choices`` (a closed expander, so the first screen shows tiles), then one
    row: sort, page, opacity and colormap (the Compare pages' state)."""
    with st.expander("Filters", expanded=False):
        one, two, three, four = st.columns(4)
        model = one.selectbox("Model", [ANY, *options["models"]], key="review_model") \
            if len(options["models"]) > 1 else None
        method = one.selectbox("Method", [ANY, *options["methods"]], key="review_method",
                               format_func=lambda m: m if m == ANY else method_label(m))
        true_class = two.selectbox("True class", [ANY, *options["true_classes"]], key="review_true")
        predicted = two.selectbox("Predicted class", [ANY, *options["predicted_classes"]], key="review_predicted")
        correct = three.radio("Prediction", browse.CORRECTNESS, key="review_correct", horizontal=True)
        target = three.radio("Maps of", browse.TARGETS, key="review_target", horizontal=True,
                             format_func={"any": "any class", "predicted": "predicted", "true": "true class"}.get)
        probability = four.slider("Top-1 probability", 0.0, 1.0, (0.0, 1.0), step=0.01, key="review_probability")
        verdict = four.selectbox("Verdict", [ANY, browse.NO_VERDICT, *VERDICTS], key="review_verdict_filter")
        boxes = st.file_uploader("Boxes (optional, the evaluate CLI's JSON)", type=["json"], key="review_boxes",
                                 help='[{"file": "class/image.jpg", "box": [x0, y0, x1, y1]}, ...]: '
                                      "adds the sort by map mass outside the object.")
    boxes_json = boxes.getvalue().decode("utf-8", "replace") if boxes is not None else None
    sorts = [k for k in browse.SORTS if k != "outside" or boxes_json is not None]
    if st.session_state.get("review_sort") not in sorts:  # e.g. the boxes file was removed
        st.session_state["review_sort"] = sorts[0]
    sort_column, page_column, opacity_column, colormap_column = st.columns([3, 1, 2, 2])
    sort = sort_column.selectbox("Sort", sorts, key="review_sort", format_func=lambda k: browse.SORTS[k][0])
    number = page_column.number_input("Page", min_value=1, step=1, key=PAGE)
    opacity = opacity_column.slider("Overlay opacity", 0.0, 1.0, step=0.05, key=state.OPACITY)
    colormap = colormap_column.selectbox("Colormap", state.COLORMAPS, key=state.COLORMAP)
    chosen = browse.Filter(
        true_class=None if true_class == ANY else true_class,
        predicted_class=None if predicted == ANY else predicted, correct=correct,
        probability=(float(probability[0]), float(probability[1])), method=None if method == ANY else method,
        model=None if model in (None, ANY) else model, target=target, verdict=None if verdict == ANY else verdict)
    return Controls(chosen, sort, boxes_json, int(number) - 1, float(opacity), str(colormap))
