"""The Review page's "Strategies (SpRAy)" view."""
from __future__ import annotations

from pathlib import Path

import streamlit as st


def render(store: Path) -> None:
    """Draw the view for the store folder ``store``."""
    st.info("Strategies (SpRAy): not built yet.")
