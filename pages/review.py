"""Review a CAM store: a filtered gallery with verdicts, the model's strategies, checkpoints, localisation."""
import streamlit as st

from ui import review_gallery, review_localisation, review_stores, review_strategies, review_timeline, state
from ui.errors import shown_as_error

VIEWS = {  # only the chosen view runs (tabs would compute all four on every rerun)
    "Gallery": review_gallery.render,
    "Strategies": review_strategies.render,
    "Checkpoints": review_timeline.render,
    "Localisation": review_localisation.render,
}

state.through_the_frame()  # a direct visit to /review runs inside app.py (its sidebar and defaults)
st.title("Review a store")
store = review_stores.store_picker()
if store is None:
    st.stop()
view = st.radio("View", list(VIEWS), horizontal=True, key="review_view", label_visibility="collapsed")
with shown_as_error():
    VIEWS[view](store)
