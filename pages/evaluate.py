"""Evaluate the maps: faithfulness, localisation against a ground truth, sanity check, stability."""
import streamlit as st

from ui import evaluate as ev
from ui import evaluate_panels as panels
from ui import loaders, report, state, widgets
from ui.errors import shown_as_error

st.title("Evaluate maps")
chosen = state.require_selection()
model, image, sha = chosen.model, chosen.image, chosen.image_sha256
ev.keep_state()

top = loaders.predictions(model.name, model.weights_sha256, sha, 5, model, image)
pick_class, pick_layer = st.columns([4, 3])
with pick_class:
    class_index = widgets.class_picker(model, top[0].index, (model.name, sha), top)
with pick_layer:
    layer = widgets.layer_picker(model)
methods = ev.method_picker()
if not methods:
    st.info("Pick at least one method to evaluate.")
    st.stop()
job = ev.Job(model, image, sha, layer, class_index)
references = ev.reference_methods()  # baselines in the maps (faithfulness, localisation, report), not re-checked
with st.spinner("Computing maps…"):
    results = ev.explained(job, methods + references)
maps = {m: r.map for m, r in results.items()}

faithful, localised, sane, stable = st.tabs(["Faithfulness", "Localisation", "Sanity check", "Stability"])
metrics: dict[str, object] = {}  # what the tabs show, for the report
with faithful, shown_as_error():  # a bad setting in one tab leaves the others working
    metrics |= panels.faithfulness_tab(job, maps)
with localised, shown_as_error():
    metrics |= panels.localisation_tab(job, maps)
with sane, shown_as_error():
    metrics |= panels.sanity_tab(job, methods)
with stable, shown_as_error():
    metrics |= panels.stability_tab(job, methods)
opacity, colormap, shared = state.rendering()
report.offer(model, image, chosen.image_name, list(results.values()), opacity=opacity, colormap=colormap,
             shared=shared, metrics=metrics, key="evaluate")
