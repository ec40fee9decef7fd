"""The Review page's "Localisation by stratum" view: pointing game and energy in the boxes, by stratum."""
from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from explainers.review.strata import MAX_BOXES_BYTES, StrataReport, localisation_by_stratum
from explainers.review.stores import parts_key, run_settings
from explainers.scale.store import RUN_FILE

from .review_stores import method_label

UPLOAD, PICK, MODEL, METHOD, MEASURE = ("review_boxes_upload", "review_boxes_pick", "review_localisation_model",
                                        "review_localisation_method", "review_localisation_measure")
UPLOADED = "an uploaded file"
MEASURES = {"Pointing game": "pointing", "Energy in the boxes": "energy"}
FACTORS = {"all": "All images", "size": "Object size (box area / image)", "instances": "Instances",
           "confidence": "Model confidence"}


@st.cache_data(max_entries=8, show_spinner="Scoring the maps against the boxes...")
def cached_strata(store: str, parts: tuple[str, ...], boxes: bytes, model: str, method: str) -> StrataReport:
    """Keyed by the store, its committed part names, the boxes file's bytes and the choices."""
    return localisation_by_stratum(store, boxes, model=model, method=method)


def render(store: Path) -> None:
    """Draw the view for the store folder ``store``."""
    settings = run_settings(store)
    boxes = _boxes(store)
    if boxes is None:
        return
    left, right = st.columns(2)
    model = left.selectbox("Model", [m["name"] for m in settings.get("models", [])], key=_key(MODEL, store))
    method = right.selectbox("Method", settings.get("methods", ["gradcam"]), key=_key(METHOD, store),
                             format_func=method_label)
    parts = parts_key(store)
    report = cached_strata(str(store), parts, boxes, model, method)
    st.caption(f"{len(report.images)} images with boxes; {report.model}, {report.method} at {report.layer}. "
               "Pointing game with 15 px tolerance at 224 px (scaled); energy = share of the map inside the boxes. "
               "95% intervals: percentile bootstrap (scipy.stats.bootstrap, 2000 resamples, seed 0); none below 2 "
               "images. After Saporta et al., Nature Machine Intelligence 2022.")
    if report.unmatched:
        st.warning(f"{len(report.unmatched)} box groups have no map in the store or no usable box and are left "
                   "out, e.g. " + " ".join(report.unmatched[:3]))
    st.dataframe([{"factor": FACTORS[c.factor], "stratum": c.stratum, "n": c.n,
                   "pointing game": c.pointing, "pointing 95% CI": _interval(c.pointing_low, c.pointing_high),
                   "energy": c.energy, "energy 95% CI": _interval(c.energy_low, c.energy_high)}
                  for c in report.cells], hide_index=True, width="stretch")
    label = st.radio("Chart", list(MEASURES), horizontal=True, key=_key(MEASURE, store))
    st.plotly_chart(_figure(report, MEASURES[label], label), width="stretch", key="review_localisation_chart")


def _boxes(store: Path) -> bytes | None:
    """The boxes JSON's bytes: uploaded, or a .json file in the store folder; None (with a sentence) if none."""
    local = sorted(p.name for p in store.glob("*.json") if p.name != RUN_FILE)
    choice = st.selectbox("Boxes (the evaluate CLI's JSON: file, box [x0, y0, x1, y1], class)",
                          [UPLOADED] + local, key=_key(PICK, store))
    if choice != UPLOADED:
        path = store / choice
        if path.stat().st_size > MAX_BOXES_BYTES:
            st.error(f"{choice} is larger than {MAX_BOXES_BYTES // 2**20} MB.")
            return None
        return path.read_bytes()
    upload = st.file_uploader("Upload a boxes JSON", type=["json"], key=_key(UPLOAD, store))
    if upload is None:
        st.info('Upload the boxes of the store\'s images as JSON: [{"file": "tabby/0001.jpg", '
                '"box": [x0, y0, x1, y1], "class": 281}, ...], "file" being the image_id (the path inside SOURCE).')
        return None
    if upload.size > MAX_BOXES_BYTES:
        st.error(f"The boxes file is larger than {MAX_BOXES_BYTES // 2**20} MB.")
        return None
    return upload.getvalue()


def _key(name: str, store: Path) -> str:
    """Widget keys per store: another store has other models, methods and boxes files."""
    return f"{name}:{store.name}"


def _interval(low: float, high: float) -> str:
    return "-" if low != low else f"{low:.2f} - {high:.2f}"  # NaN: fewer than two images


def _figure(report: StrataReport, measure: str, label: str) -> go.Figure:
    figure = go.Figure()
    for factor, title in FACTORS.items():
        cells = [c for c in report.cells if c.factor == factor]
        plus, minus = _error_bars(cells, measure)
        figure.add_trace(go.Bar(x=[[title] * len(cells), [f"{c.stratum} (n={c.n})" for c in cells]],
                                y=[getattr(c, measure) for c in cells], name=title,
                                error_y={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus}))
    figure.update_layout(yaxis={"title": label, "range": [0, 1.05]}, showlegend=False, height=460,
                         margin={"t": 30, "b": 160})
    return figure


def _error_bars(cells: list, measure: str) -> tuple[list[float], list[float]]:
    """Distances from each value up to its CI's high end and down to its low end (0 without a CI)."""
    plus, minus = [], []
    for c in cells:
        value, low, high = getattr(c, measure), getattr(c, f"{measure}_low"), getattr(c, f"{measure}_high")
        plus.append(0.0 if high != high else high - value)  # NaN: fewer than two images
        minus.append(0.0 if low != low else value - low)
    return plus, minus
