"""Compare CAM methods side by side on one image, for one class and one layer."""
import streamlit as st

from explainers.methods.catalog import picker_options
from ui import figures, loaders, panels, state, widgets
from ui import strength_panels as strong

st.title("Compare CAM methods")
chosen = state.require_selection()
model, image, sha = chosen.model, chosen.image, chosen.image_sha256

predictions = loaders.predictions(model.name, model.weights_sha256, sha, 5, model, image)
with st.sidebar:  # the prediction stays in view beside the maps
    st.plotly_chart(figures.top_k_chart(predictions, compact=True), width="stretch", key="compare_top_k_chart")
    st.image(model.preprocessing.resize(image), caption=widgets.fit_notice(model, image), width=160)
    st.caption("The reviewer report of this page is with the downloads under the maps.")

pick_class, pick_layer, pick_methods = st.columns([4, 3, 4])  # one compact control row
with pick_class:
    class_index = widgets.class_picker(model, predictions[0].index, (model.name, sha), predictions)
with pick_layer:
    layer = widgets.layer_picker(model)
names = picker_options(slow=False, layers=1)  # grouped by family, cost up front
fast = pick_methods.multiselect("Methods", list(names), key=state.METHODS, format_func=names.get)
st.caption("Top classes: " + " · ".join(f"{p.name} ({p.index}) {p.probability:.0%}" for p in predictions))
grid = st.container()  # the maps come right under the controls; slow methods are offered below them
options = widgets.smoothing_toggles()
slow = []
if st.checkbox("Include slow methods (many forward passes)", key=state.SLOW_ON):
    slow_names = picker_options(slow=True, layers=1)
    slow = st.multiselect("Slow methods", list(slow_names), key=state.SLOW_METHODS, format_func=slow_names.get)

results = {}
if fast:
    with grid, st.spinner("Computing maps…"):
        results = loaders.explanations(model, image, sha, layer, class_index, fast, options=options)
if slow:
    results |= widgets.slow_methods(model, image, sha, layer, class_index, slow, options=options)
if not results:
    grid.info("Pick at least one method (slow methods run when you press their button).")
    st.stop()
with grid:
    references = strong.top_class_maps(model, image, sha, layer, predictions[0].index, results, slow, options)
    panels.compare_panels(model, image, chosen.image_name, sha, layer, list(results.values()), references,
                          predictions[0].name)
