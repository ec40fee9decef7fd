"""Compare CAM methods side by side on one image, for one class and one layer."""
import streamlit as st

from explainers.methods.catalog import picker_options
from ui import figures, loaders, panels, state, widgets

st.title("Compare CAM methods")
chosen = state.require_selection()
st.sidebar.caption("The reviewer report of this page is with the downloads under the maps.")
model, image, sha = chosen.model, chosen.image, chosen.image_sha256

predictions = loaders.predictions(model.name, model.weights_sha256, sha, 5, model, image)
seen, resized, chart = st.columns([1, 1, 1.4])
seen.image(image, caption=f"As uploaded: {chosen.image_name}, {image.width} × {image.height}", width="stretch")
height, width = model.preprocessing.input_size
resized.image(model.preprocessing.resize(image), caption=f"As the model sees it: {width} × {height}",
              width="stretch")
chart.plotly_chart(figures.top_k_chart(predictions), width="stretch", key="compare_top_k_chart")

pick_class, pick_layer = st.columns([4, 3])
with pick_class:
    class_index = widgets.class_picker(model, predictions[0].index, (model.name, sha))
with pick_layer:
    layer = widgets.layer_picker(model)
names = picker_options(slow=False, layers=1)  # grouped by family, cost up front
fast = st.multiselect("Methods", list(names), key=state.METHODS, format_func=names.get)
options = widgets.smoothing_toggles()
slow = []
if st.checkbox("Include slow methods (many forward passes)", key=state.SLOW_ON):
    slow_names = picker_options(slow=True, layers=1)
    slow = st.multiselect("Slow methods", list(slow_names), key=state.SLOW_METHODS, format_func=slow_names.get)

results = {}
if fast:
    with st.spinner("Computing maps…"):
        results = loaders.explanations(model, image, sha, layer, class_index, fast, options=options)
if slow:
    results |= widgets.slow_methods(model, image, sha, layer, class_index, slow, options=options)
if not results:
    st.info("Pick at least one method (slow methods run when you press their button).")
    st.stop()
panels.compare_panels(model, image, chosen.image_name, sha, layer, list(results.values()))
