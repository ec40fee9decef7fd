"""Open a store's image on the Compare page, and the sidebar's "Store" image source that shows it."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import streamlit as st
from PIL import Image

from explainers.errors import ExplainerError
from explainers.fit import FITS
from explainers.methods.catalog import picker_options
from explainers.review.browse import GalleryRow
from explainers.review.images import check_store, source_bytes
from explainers.review.verdicts import history
from explainers.review.stores import stored_models

from . import loaders, state

COMPARE_PAGE = "pages/compare.py"


def choose(store: Path, row: GalleryRow) -> None:
    """Put ``row``'s image, model, layer, method and class into the sidebar and Compare page state.

    An ``on_click`` callback: it runs before the script, so the sidebar's widgets take these values.
    """
    session = st.session_state
    session[state.STORE_IMAGE] = state.StoreImage(str(store), row.image_id, row.model)
    session[state.SOURCE] = state.STORE_SOURCE
    if row.model in {name for name, *_ in loaders.model_specs()}:  # a model of this deployment's registry
        session[state.MODEL] = row.model
        session[state.LAYER], session[state.LAYER_MODEL] = row.layer, row.model
        session[state.CLASS_CONTEXT] = (row.model, row.image_sha256)  # the class picker keeps this class
        session[state.CLASS_INDEX] = session[state.CLASS_SELECT] = int(row.class_index)
        fit = run_fit(store, row.model)
        if fit in FITS:  # the maps on Compare are made as the run made them
            session[state.FIT] = fit
    methods = list(session.get(state.METHODS) or [])
    if row.method in picker_options(slow=False, layers=1) and row.method not in methods:
        session[state.METHODS] = [row.method, *methods]


def run_fit(store: Path, model: str) -> Optional[str]:
    """How the run fitted images to ``model``'s input (run.json), or None when it does not say."""
    return (stored_models(store).get(model, {}).get("preprocessing") or {}).get("fit")


def open_button(store: Path, row: GalleryRow, key: str) -> None:
    """The "Open on Compare" button of one gallery image."""
    if st.button("Open on Compare", key=key, on_click=choose, args=(store, row),
                 help="Show this image on the Compare page with the store's model, layer, method and class."):
        st.switch_page(COMPARE_PAGE)


def store_image(errors: list[str]) -> tuple[Optional[Image.Image], str, str]:
    """Sidebar, source "Store": the image opened from the Review page, read from its run's SOURCE."""
    opened: state.StoreImage = st.session_state[state.STORE_IMAGE]
    try:
        folder = check_store(opened.store)  # still a store of this deployment
        data = source_bytes(folder, opened.image_id)
        image, sha = loaders.decode_image(loaders.file_sha256(data), data)
    except ExplainerError as error:
        errors.append(f"{opened.image_id}: {error}")
        return None, "", ""
    st.caption(f"From the store **{folder.name}**: {opened.image_id} (model {opened.model}). "
               "Pick Gallery or Upload above for another image.")
    return image, sha, opened.image_id


def opened_from_store() -> Optional[state.StoreImage]:
    """The store image the sidebar shows now, or None (another source is chosen)."""
    session = st.session_state
    return session.get(state.STORE_IMAGE) if session.get(state.SOURCE) == state.STORE_SOURCE else None


def verdicts_for_report(model_name: str) -> list[dict[str, str]]:
    """The verdicts on the sidebar's store image with this model (oldest first); none for other images."""
    opened = opened_from_store()
    if opened is None or opened.model != model_name:
        return []
    return [{"time": v.time, "reviewer": v.reviewer, "verdict": v.verdict, "note": v.note}
            for v in history(check_store(opened.store), opened.image_id, opened.model)]
