"""The compare page's grid of overlays, its rendering controls and downloads.

Everything here runs inside one ``st.fragment``: moving the opacity slider, the
colormap or the scale toggle re-renders these panels only, from maps that
were already computed; no map is ever recomputed here.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import streamlit as st
from PIL import Image

from explainers.models.spec import LoadedModel
from explainers.image_limits import load_notes
from explainers.render import overlay, to_png_bytes
from explainers.results import CamResult
from explainers.strength import GRADIENT_X_ACTIVATION, UNIT_FAMILIES

from . import export, figures, loaders, report, state
from . import strength_panels as strong
from .errors import shown_as_error

DISPLAY_SIDE = 512  # panels are drawn at most this large; downloads have their own size
COLUMNS = 4
NO_FOCUS = "(none)"
SCALE_HELP = ("Methods' raw maps are in different units (EigenCAM reaches ~24 where Grad-CAM reaches ~0.5), "
              "so one range over all methods would paint most panels flat. Off: each map is stretched over its "
              "own range; the colorbar under it gives that range in raw units. On: methods whose units agree ("
              f"{GRADIENT_X_ACTIVATION}: " + ", ".join(sorted(UNIT_FAMILIES)) + ") share one range, so the weaker "
              "looks weaker; every other method keeps its own.")
ZIP = "compare_zip"  # session key: (what was built, the zip's bytes)


@st.cache_data(show_spinner=False, max_entries=16)
def _display_image(image_sha: str, _image: Image.Image) -> Image.Image:
    small = _image.copy()
    small.thumbnail((DISPLAY_SIDE, DISPLAY_SIDE), Image.Resampling.BILINEAR)
    return small


@st.fragment
def compare_panels(model: LoadedModel, image: Image.Image, image_name: str, image_sha: str, layer: str,
                   results: list[CamResult], references: Mapping[str, np.ndarray], top_class: str) -> None:
    """The grid (original + one overlay per method, each with its strength), rendering controls,
    the hover view and downloads.

    Args:
        references: {method: raw map of the top class} for the strength against the top class.
        top_class: the top class's name.
    """
    with shown_as_error():  # a fragment rerun does not pass through app.py's guard
        _panels(model, image, image_name, image_sha, layer, results, references, top_class)


def _panels(model: LoadedModel, image: Image.Image, image_name: str, image_sha: str, layer: str,
            results: list[CamResult], references: Mapping[str, np.ndarray], top_class: str) -> None:
    grid = st.container()  # drawn above the controls, once their values are known
    left, middle, right = st.columns(3)
    opacity = left.slider("Overlay opacity", 0.0, 1.0, step=0.05, key=state.OPACITY)
    colormap = middle.selectbox("Colormap", state.COLORMAPS, key=state.COLORMAP)
    shared = right.toggle("Shared scale within like units", key=state.SHARED_SCALE, help=SCALE_HELP)

    shown = _display_image(image_sha, image)
    powers = strong.strengths(results, references)
    cells = [(np.asarray(shown), f"As uploaded: {image_name} · {image.width} × {image.height}")]
    cells += [(picture, strong.caption(r, s, top_class, r.method_name, probability=False, last=f"{r.seconds:.2f} s"))
              for r, s, picture in zip(results, powers, strong.pictures(shown, results, powers, opacity, colormap,
                                                                        shared, model.preprocessing))]
    with grid:
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
        full = strong.scaled_map(results, index, (image.height, image.width), shared, model.preprocessing)
        st.plotly_chart(figures.heatmap_figure(image, full, colormap, opacity, names[focus]), width="stretch")
    _downloads(model, image, image_name, image_sha, layer, results, focus if focus in names else results[0].method,
               {"opacity": opacity, "colormap": colormap, "shared_scale": shared})


def _downloads(model: LoadedModel, image: Image.Image, image_name: str, image_sha: str, layer: str,
               results: list[CamResult], method: str, rendering: dict) -> None:
    """Overlay PNG and map .npy of one panel (the opened one, else the first), and the zip of all."""
    chosen = next(r for r in results if r.method == method)
    stem = export.file_stem(chosen)
    full_size = st.checkbox(f"Full-size downloads (else at most {export.CAP} px on the long side)",
                            key="compare_full_size", help="Pictures and image-grid maps at the photo's own size. "
                            "For a large photo this makes files of hundreds of MB.")
    width, height = export.written_size(image.size, full_size)

    def overlays(step=lambda done, text: None) -> dict[str, np.ndarray]:
        original = export.written_original(image, full_size)
        maps = strong.scaled_maps(results, (height, width), rendering["shared_scale"], model.preprocessing)
        drawn = {}
        for i, (r, m) in enumerate(zip(results, maps)):
            step(i / len(results), f"Drawing the {r.method_name} overlay ({i + 1} of {len(results)})")
            drawn[r.method] = overlay(original, m, rendering["opacity"], rendering["colormap"])
        return drawn

    def overlay_png() -> bytes:
        index = [r.method for r in results].index(method)
        cam = strong.scaled_map(results, index, (height, width), rendering["shared_scale"], model.preprocessing)
        return to_png_bytes(overlay(export.written_original(image, full_size), cam, rendering["opacity"],
                                    rendering["colormap"]))

    def reviewer_report() -> bytes:
        return report.report_bytes(model, image, image_name, results, rendering["opacity"], rendering["colormap"],
                                   rendering["shared_scale"])

    one, two, three = st.columns(3)
    one.download_button(f"{chosen.method_name} overlay (PNG)", overlay_png, file_name=f"{stem}.png",
                        mime="image/png", on_click="ignore", key="compare_dl_png",
                        help=f"{width} × {height} pixels.")
    two.download_button(f"{chosen.method_name} map (.npy)", lambda: export.npy_bytes(
                        export.grid_map(chosen, (width, height), model.preprocessing)),
                        file_name=f"{stem}.npy", mime="application/octet-stream", on_click="ignore",
                        key="compare_dl_npy", help=f"The map on a {width} × {height} grid, float16 in [0, 1].")
    report.button(three, reviewer_report, "compare_dl_report")

    what = (image_sha, *loaders.cache_key(model), layer,  # the fit and the method options (in names) too
            tuple((r.method, r.method_name, r.class_index) for r in results),
            tuple(sorted(rendering.items())), full_size)
    bound = export.zip_upper_bound((width, height), results)
    if st.button(f"Build the zip of everything (at most {bound / 1e6:.1f} MB)", key="compare_build_zip",
                 help=f"Original and every overlay (PNG, {width} × {height}), each map (float16 on that grid) and "
                      "raw map (float32, layer resolution), and settings.json."):
        bar = st.progress(0.0, text="Sizing the original")
        show = lambda done, text: bar.progress(min(max(done, 0.0), 1.0), text=text)  # noqa: E731
        original = export.written_original(image, full_size)
        settings = export.settings(model, image_name, image_sha, image.size, layer, results, rendering, full_size,
                                   load_notes(image))
        pictures = overlays(lambda done, text: show(0.5 * done, text))  # half the bar: drawing, half: writing
        data = export.zip_bytes(original, results, pictures, settings,
                                progress=lambda done, text: show(0.5 + 0.5 * done, text),
                                preprocessing=model.preprocessing)
        bar.empty()
        st.session_state[ZIP] = (what, data)
    built = st.session_state.get(ZIP)
    if built and built[0] == what:
        st.download_button(f"Everything (.zip), {len(built[1]) / 1e6:.1f} MB", built[1], file_name="camscope.zip",
                           mime="application/zip", on_click="ignore", key="compare_dl_zip")
