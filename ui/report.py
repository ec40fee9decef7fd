"""The reviewer's HTML report, offered in the sidebar of every page.

A page with maps of its own offers the report of exactly those maps (with its metrics,
if it has any); a page without maps offers the Compare page's maps of the sidebar's
image (its methods, class and layer). Either way the report is built only when the
button is pressed, from the engine (no Streamlit cache is needed at that moment).
"""
from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence

import streamlit as st
from PIL import Image

from explainers.pipeline import explain, predict
from explainers.models.spec import LoadedModel
from explainers.report import build_report
from explainers.results import CamResult

from . import loaders, state

LABEL = "Reviewer report (HTML)"
HELP = ("One self-contained page for reviewers: the image, the prediction, the maps of this page side by side, "
        "the settings and their hash, the metrics computed here, and an intended-use note.")


def report_bytes(model: LoadedModel, image: Image.Image, image_name: str, results: Sequence[CamResult],
                 opacity: float, colormap: str, shared: bool = False,
                 metrics: Optional[Mapping[str, object]] = None) -> bytes:
    """The report (explainers.report) of ``results`` as UTF-8 HTML; fills in maps kept at layer size only."""
    full = [r if r.map.size else loaders.with_map(r, image, model.preprocessing) for r in results]
    from .review_open import verdicts_for_report  # the image's verdicts when it came from a store

    report = build_report(model, image, full, predict(model, image, k=5), image_name=image_name,
                          metrics=metrics, colormap=colormap, opacity=opacity, shared_scale=shared,
                          verdicts=verdicts_for_report(model.name))
    return report.html.encode("utf-8")


def button(where, build: Callable[[], bytes], key: str, label: str = LABEL, help: str = HELP) -> None:
    """The report's download button in ``where`` (a column or the sidebar); ``build`` runs on click only."""
    where.download_button(label, build, file_name="camscope-report.html", mime="text/html", on_click="ignore",
                          key=key, help=help)


def offer(model: LoadedModel, image: Image.Image, image_name: str, results: Sequence[CamResult], *,
          opacity: float, colormap: str, shared: bool = False, metrics: Optional[Mapping[str, object]] = None,
          label: str = LABEL, key: str = "page") -> None:
    """A sidebar button that downloads the report of this page's maps."""
    results, metrics = list(results), dict(metrics or {})
    button(st.sidebar, lambda: report_bytes(model, image, image_name, results, opacity, colormap, shared, metrics),
           f"report_{key}", label)


def offer_compare_maps(chosen: state.Selection) -> None:
    """For pages without maps of their own: the report of the Compare page's maps of the sidebar's image."""
    model, image = chosen.model, chosen.image
    if model is None or image is None:
        return
    session = st.session_state
    same_image = session.get(state.CLASS_CONTEXT) == (model.name, chosen.image_sha256)
    classes = [int(session[state.CLASS_INDEX])] if same_image and state.CLASS_INDEX in session else None
    layers = [session[state.LAYER]] if session.get(state.LAYER_MODEL) == model.name else None
    methods = list(session.get(state.METHODS) or ["gradcam"])
    opacity, colormap, shared = state.rendering()

    def build() -> bytes:
        results = explain(model, image, methods=methods, classes=classes, layers=layers).results
        return report_bytes(model, image, chosen.image_name, results, opacity, colormap, shared)

    button(st.sidebar, build, "report_compare_maps", help=HELP.replace(
        "of this page", "of the Compare page (its methods, class and layer) for the image chosen above"))
