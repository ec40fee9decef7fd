"""CAMscope: the frame. Page config, the shared sidebar (image, model, device), the page router."""
from pathlib import Path

import streamlit as st

from ui import sessions, state, widgets
from ui.errors import shown_as_error

ICON = Path(__file__).resolve().parent / "assets" / "icon.png"  # local: a ":material/..." favicon is fetched
state.through_the_frame()  # never run in Streamlit's old pages/ mode (see ui.state)
st.set_page_config(page_title="CAMscope", page_icon=str(ICON), layout="wide")  # from fonts.gstatic.com
state.init_state()
sessions.install()  # once per server process: frees the memory of sessions that have left

errors: list[str] = []
image, image_sha, image_name, model = None, "", "", None
with st.sidebar:
    st.header("CAMscope")
    with shown_as_error():
        image, image_sha, image_name = widgets.image_picker(errors)
        model = widgets.fit_picker(widgets.model_picker(errors))
for message in errors:  # in the main area, where they are seen; the pages say what is missing
    st.error(message)
st.session_state[state.SELECTION] = state.Selection(image, image_sha, image_name, model)

page = st.navigation([
    st.Page("pages/compare.py", title="Compare methods", icon=":material/compare:", default=True),
    st.Page("pages/compare_classes.py", title="Compare classes", icon=":material/category:"),
    st.Page("pages/compare_layers.py", title="Compare layers", icon=":material/stacks:"),
    st.Page("pages/compare_models.py", title="Compare models", icon=":material/difference:"),
    st.Page("pages/dataset.py", title="Dataset confusion", icon=":material/grid_on:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
    st.Page("pages/review.py", title="Review a store", icon=":material/rate_review:"),
    st.Page("pages/model.py", title="Layers & model", icon=":material/layers:"),
])
with shown_as_error():
    page.run()
