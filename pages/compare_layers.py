"""Compare layers: one method across several layers, early to late, to see where the evidence forms."""
import streamlit as st

from ui import compare_views as views
from ui import loaders, report, state, widgets
from ui import strength_panels as strong

st.title("Compare layers")
chosen = state.require_selection()
model, image, sha = chosen.model, chosen.image, chosen.image_sha256
top = loaders.predictions(model.name, model.weights_sha256, sha, 5, model, image)
views.reset_on_change("layers_context", (model.name, sha), {"layers_class": top[0].index})

left, right = st.columns([1, 2])
with left:
    method = views.method_picker("layers_method")
    class_index = st.selectbox("Class", range(model.num_classes), key="layers_class",
                               format_func=lambda i: views.class_label(model, i))
with right:
    picked = widgets.layer_range_picker(model, "layers")
if not picked:
    st.info("This model has no layer that gives a map.")
    st.stop()
layers = picked  # early to late
opacity, colormap, shared = views.rendering_controls("layers", shared_default=False)

with st.spinner("Computing maps…"):
    results = views.cams(model, image, sha, method, layers=layers, classes=[class_index])
shown = views.display_image(sha, image)
cells = [(shown, f"Original · {image.width} × {image.height}")]
powers = strong.strengths(results, {})
for r, s, picture in zip(results, powers, strong.pictures(shown, results, powers, opacity, colormap, shared,
                                                                     model.preprocessing)):
    height, width = r.raw.shape
    star = " ★" if r.layer == model.target_layer else ""
    cells.append((picture, f"{r.layer}{star} · {height} × {width} · {strong.strength_note(r, s)}"))
views.grid(cells)
st.caption(f"{results[0].method_name} of class {results[0].class_name} at {len(results)} layers; "
           "each panel says the layer's resolution (height × width). ★ marks the recommended layer.")
report.offer(model, image, chosen.image_name, results, opacity=opacity, colormap=colormap, shared=shared,
             key="layers")
