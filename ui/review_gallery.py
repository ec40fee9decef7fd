"""The Review page's "Gallery and verdicts" view: filtered, sorted pages of stored maps drawn on their images."""
from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

from explainers.errors import ExplainerError
from explainers.review import browse, verdicts
from explainers.review.images import SourceImage, check_store, draw, map_caption, source_image
from explainers.review.stores import NO_MAPS_YET, parts_key

from . import review_filters, review_open, state
from .review_stores import method_label

COLUMNS, ROWS = 4, 3
BADGES = {"evidence right": "green", "spurious evidence": "red", "unsure": "orange"}
FLASH = "review_flash"  # the last "recorded" message, shown once
SORT_VALUES = {"disagreement": "disagreement", "outside": "outside the box"}  # sort values not in the caption yet


@st.cache_data(show_spinner=False, max_entries=64)
def original(store: str, image_id: str, sha256: str) -> SourceImage:
    """The original from SOURCE, shrunk for the gallery (cached per store, image and pixels)."""
    got = source_image(store, image_id, sha256)
    if got.image is not None:
        got.image.thumbnail((640, 640))
    return got


def render(store: Path) -> None:
    """Draw the view for the store folder ``store``."""
    folder = check_store(store)  # only stores under CAMSCOPE_STORES_DIR
    reviewer = st.sidebar.text_input("Reviewer name", key=state.REVIEWER,
                                     help="Recorded with each verdict you give on the Review page.")
    parts = parts_key(folder)
    options = review_filters.choices(str(folder), parts)
    if not options["methods"]:
        st.info(NO_MAPS_YET)
        return
    picked = review_filters.controls(options)
    sort = picked.sort
    disagreement = review_filters.disagreements(str(folder), parts) if sort == "disagreement" else None
    outside = review_filters.outside(str(folder), parts, picked.boxes_json) if picked.boxes_json else None
    shown = browse.page(folder, picked.filter, sort, picked.page_number, COLUMNS * ROWS, disagreement, outside)
    st.caption(f"{shown.total} maps match · page {shown.page_number + 1} of {shown.pages} · "
               f"{browse.SORTS[sort][0].lower()}")
    if not shown.rows:
        st.info("No stored map matches these filters; widen them (set a filter back to \"any\").")
    opacity, colormap = picked.opacity, picked.colormap
    several = len(options["models"]) > 1  # a store of several checkpoints names each tile's model
    fits = {m: review_open.run_fit(folder, m) for m in {r.model for r in shown.rows}}  # run.json read once a page
    for start in range(0, len(shown.rows), COLUMNS):
        for column, row in zip(st.columns(COLUMNS), shown.rows[start:start + COLUMNS]):
            with column:
                _tile(folder, row, opacity, colormap, SORT_VALUES.get(sort), several, fits[row.model])
    _verdict_form(folder, shown.rows, reviewer)


def _tile(store: Path, row: browse.GalleryRow, opacity: float, colormap: str, sorted_by: str | None,
          several_models: bool, fit: str | None) -> None:
    got = original(str(store), row.image_id, row.image_sha256)
    picture = draw(row.raw_map(), got.image, (row.width, row.height), opacity, colormap)
    value = "" if sorted_by is None else \
        f" · {sorted_by} " + ("n/a" if row.sort_value is None else f"{row.sort_value:.2f}")
    st.image(picture, width="stretch",
             caption=f"{method_label(row.method)} · {row.class_name} · p {row.probability:.2f} · "
                     + map_caption(row.max) + value)
    truth = f"true {row.true_name}" if row.true_name else "label unknown"
    model = f" · model {row.model}" if several_models else ""
    st.caption(f"{row.image_id}{model} · predicted {row.predicted_name} ({row.predicted_probability:.0%}) · {truth}")
    if fit not in (None, "squash"):  # maps are drawn over the whole image (squash) here
        st.caption(f"Drawn over the whole image; the run fitted images by {fit} (Compare places it exactly).")
    if got.image is None:
        st.caption(f"The map alone: {got.problem}")
    elif got.changed:
        st.caption("The file at SOURCE has changed since the run; the map was made from the earlier pixels.")
    if row.verdict:
        st.markdown(f":{BADGES[row.verdict]}-badge[{row.verdict}]")
    key = hashlib.sha256(repr((row.image_id, row.model, row.method, row.layer, row.class_index)).encode())
    review_open.open_button(store, row, f"review_open_{key.hexdigest()[:16]}")


def _record(store: Path, images: list[tuple[str, str]], key: str) -> None:
    """on_click of "Record verdict": runs before the script, so the badges above show the new verdict."""
    session = st.session_state
    image_id, model = images[int(session[key])]
    try:
        saved = verdicts.record(store, image_id, model, session["review_verdict_value"],
                                session.get("review_note", ""), session.get(state.REVIEWER, ""))
    except ExplainerError as error:
        session[FLASH] = ("error", str(error))
        return
    session[FLASH] = ("success", f"Recorded “{saved.verdict}” for {image_id} by {saved.reviewer}.")
    session["review_note"] = ""


def _verdict_form(store: Path, rows: list[browse.GalleryRow], reviewer: str) -> None:
    st.subheader("Verdicts")
    images = list(dict.fromkeys((r.image_id, r.model) for r in rows))
    kind, message = st.session_state.pop(FLASH, (None, ""))
    if kind:
        getattr(st, kind)(message)
    if images:
        # one widget per store and page: a kept index would name another store's or page's image
        key = "review_verdict_image:" + hashlib.sha256(repr((store.name, images)).encode()).hexdigest()[:16]
        pick = st.selectbox("Image", range(len(images)), key=key,
                            format_func=lambda i: f"{images[i][0]} · {images[i][1]}")
        st.radio("Verdict", verdicts.VERDICTS, key="review_verdict_value", horizontal=True)
        st.text_input("Note", key="review_note", placeholder="What the map looks at, in a few words")
        if not reviewer.strip():
            st.caption("Enter your name as reviewer in the sidebar to record a verdict.")
        st.button("Record verdict", key="review_record", on_click=_record, args=(store, images, key),
                  disabled=not reviewer.strip())
        earlier = verdicts.history(store, *images[pick])
        if earlier:
            st.caption("History of this image: " + " · ".join(
                f"{v.time[:16].replace('T', ' ')} UTC {v.reviewer}: {v.verdict}" + (f" ({v.note})" if v.note else "")
                for v in reversed(earlier)))
    st.download_button("Verdicts (CSV)", verdicts.export_csv(store), file_name=f"{store.name}-verdicts.csv",
                       mime="text/csv", key="review_verdicts_csv", on_click="ignore")
