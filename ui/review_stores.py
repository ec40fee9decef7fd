"""The Review page's store picker (the stores under CAMSCOPE_STORES_DIR)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import streamlit as st

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
