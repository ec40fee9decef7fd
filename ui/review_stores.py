"""The Review page's store picker (the stores under CAMSCOPE_STORES_DIR) and the method names its views show."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import streamlit as st

from explainers.errors import ExplainerError
from explainers.methods.catalog import resolve_method
from explainers.review.stores import STORES_DIR_ENV, list_stores, stores_dir

STORE = "review_store"


def store_picker() -> Optional[Path]:
    """The chosen store folder, or None (with a sentence saying what to do)."""
    root = stores_dir()
    if root is None:
        st.info(f"No stores to review: set {STORES_DIR_ENV} to a folder of stores made by "
                "`python -m explainers run SOURCE --out FOLDER/NAME`, then reload.")
        return None
    stores = list_stores(root)
    if not stores:
        st.info(f"{root} holds no store yet; make one with `python -m explainers run SOURCE --out {root}/NAME`.")
        return None
    names = [p.name for p in stores]
    name = st.selectbox("Store", names, key=STORE)
    return root / name


def method_label(key: str) -> str:
    """A stored method's display name (as on the Compare pages), in every Review view."""
    try:
        return resolve_method(key).display_name
    except ExplainerError:  # a method this deployment does not register: its key
        return key
