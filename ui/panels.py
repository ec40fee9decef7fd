"""The compare page's grid of overlays, its rendering controls and downloads.

Everything here runs inside one ``st.fragment``: moving the opacity slider, the
colormap or the shared-scale toggle re-renders these panels only, from maps that
were already computed; no map is ever recomputed here.
"""
from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

from explainers.models.spec import LoadedModel
from explainers.render import normalize_maps, overlay, to_png_bytes
from explainers.results import CamResult

from . import export, figures, report, state
from .errors import shown_as_error

DISPLAY_SIDE = 768  # panels are drawn at most this large; downloads stay full size
COLUMNS = 4
NO_FOCUS = "(none)"


@st.cache_data(show_spinner=False, max_entries=16)
def _display_image(image_sha: str, _image: Image.Image) -> Image.Image:
    small = _image.copy()
    small.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.BILINEAR)
    return small


def _maps(results: list[CamResult], size: tuple[int, int], shared: bool, preprocessing=None) -> list[np.ndarray]:
    """Maps in [0, 1] at ``size`` (height, width): each by its own range, or all by one shared range."""
    if shared:
        return normalize_maps([r.raw for r in results], size, shared=True, preprocessing=preprocessing)
    return [r.map for r in results]  # already normalized per map by the engine; overlay() resizes


@st.fragment
def compare_panels(model: LoadedModel, image: Image.Image, image_name: str, image_sha: str, layer: str,
                   results: list[CamResult]) -> None:
    """Rendering controls, the grid (original + one overlay per method), the hover view, downloads."""
    with shown_as_error():  # a fragment rerun does not pass through app.py's guard
        _panels(model, image, image_name, image_sha, layer, results)


def _panels(model: LoadedModel, image: Image.Image, image_name: str, image_sha: str, layer: str,
            results: list[CamResult]) -> None:
    left, middle, right = st.columns(3)
    opacity = left.slider("Overlay opacity", 0.0, 1.0, step=0.05, key=state.OPACITY)
    colormap = middle.selectbox("Colormap", state.COLORMAPS, key=state.COLORMAP)
    shared = right.toggle("One shared scale", key=state.SHARED_SCALE,
                          help="Off: each map is scaled to its own range. On: all maps share one range, "
                               "so a weaker map looks weaker.")

    shown = _display_image(image_sha, image)
    maps = _maps(results, (shown.height, shown.width), shared, model.preprocessing)
    cells = [(np.asarray(shown), f"Original · {image.width} × {image.height}")]
    cells += [(overlay(shown, m, opacity, colormap), f"{r.method_name} · {r.seconds:.2f} s")
              for r, m in zip(results, maps)]
    for row in range(0, len(cells), COLUMNS):
        for column, (picture, caption) in zip(st.columns(COLUMNS), cells[row:row + COLUMNS]):
            column.image(picture, caption=caption, width="stretch")

    names = {r.method: r.method_name for r in results}
    if st.session_state.get(state.FOCUS) not in (NO_FOCUS, *names):
        st.session_state[state.FOCUS] = NO_FOCUS  # the opened method was removed from the selection
    focus = st.selectbox("Open one panel as an interactive heatmap", [NO_FOCUS, *names], key=state.FOCUS,
                         format_func=lambda k: names.get(k, k))
    if focus in names:
        index = list(names).index(focus)
        full = _maps(results, (image.height, image.width), shared)[index]
        st.plotly_chart(figures.heatmap_figure(image, full, colormap, opacity, names[focus]), width="stretch")
    _downloads(model, image, image_name, image_sha, layer, results, focus if focus in names else results[0].method,
               {"opacity": opacity, "colormap": colormap, "shared_scale": shared})


def _downloads(model: LoadedModel, image: Image.Image, image_name: str, image_sha: str, layer: str,
               results: list[CamResult], method: str, rendering: dict) -> None:
    """Overlay PNG and map .npy of one panel (the opened one, else the first), and the zip of all."""
    chosen = next(r for r in results if r.method == method)
    stem = export.file_stem(chosen)

    # Full-size overlays are made only when a download is clicked (callables below).
    def full_overlays() -> dict[str, np.ndarray]:
        maps = _maps(results, (image.height, image.width), rendering["shared_scale"])
        return {r.method: overlay(image, m, rendering["opacity"], rendering["colormap"]) for r, m in zip(results, maps)}

    def overlay_png() -> bytes:
        index = [r.method for r in results].index(method)
        cam = _maps(results, (image.height, image.width), rendering["shared_scale"])[index]
        return to_png_bytes(overlay(image, cam, rendering["opacity"], rendering["colormap"]))

    def everything() -> bytes:
        settings = export.settings(model, image_name, image_sha, image.size, layer, results, rendering)
        return export.zip_bytes(image, results, full_overlays(), settings)

    def reviewer_report() -> bytes:
        return report.report_bytes(model, image, image_name, results, rendering["opacity"], rendering["colormap"],
                                   rendering["shared_scale"])

    one, two, three, four = st.columns(4)
    one.download_button(f"{chosen.method_name} overlay (PNG)", overlay_png, file_name=f"{stem}.png",
                        mime="image/png", on_click="ignore", key="compare_dl_png")
    two.download_button(f"{chosen.method_name} map (.npy)", lambda: export.npy_bytes(chosen.map), file_name=f"{stem}.npy",
                        mime="application/octet-stream", on_click="ignore", key="compare_dl_npy",
                        help="The map on the image grid, float32 in [0, 1].")
    three.download_button("Everything (.zip)", everything, file_name="camscope.zip", mime="application/zip",
                          on_click="ignore", key="compare_dl_zip",
                          help="Original, every overlay (PNG), map and raw map (.npy), and settings.json.")
    report.button(four, reviewer_report, "compare_dl_report")
