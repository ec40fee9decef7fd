"""The Review page's "Checkpoint timeline" view."""
from __future__ import annotations

from pathlib import Path

import streamlit as st


def render(store: Path) -> None:
    """Draw the view for the store folder ``store``."""
    st.info("Checkpoint timeline: not built yet.")
