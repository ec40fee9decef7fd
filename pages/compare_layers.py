"""Compare layers: one method across several layers, early to late, to see where the evidence forms."""
import streamlit as st

from explainers.comparisons import stage_layers
from ui import compare_views as views
from ui import loaders, report, state

st.title("Compare layers")
chosen = state.require_selection()
model, image, sha = chosen.model, chosen.image, chosen.image_sha256
top = loaders.predictions(model.name, model.weights_sha256, sha, 5, model, image)
infos = loaders.layers(model.name, model.weights_sha256, model)
usable = [i for i in infos if len(i.output_shape) == 4 or (model.spec.reshape_transform and len(i.output_shape) == 3)]
shapes = {i.name: i.output_shape for i in usable}
views.reset_on_change("layers_context", (model.name, sha), {"layers_class": top[0].index})
stages = [n for n in stage_layers(infos) if n in shapes]
views.reset_on_change("layers_model", (model.name,), {"layers_picked": stages})

left, right = st.columns([1, 2])
with left:
    method = views.method_picker("layers_method")
    class_index = st.selectbox("Class", range(model.num_classes), key="layers_class",
                               format_func=lambda i: views.class_label(model, i))
with right:
    picked = st.multiselect("Layers (listed in model order, early to late)", list(shapes), key="layers_picked",
                            help="By default one layer per resolution, ending with the recommended one.")
if not picked:
    st.info("Pick at least one layer.")
    st.stop()
layers = sorted(picked, key=list(shapes).index)  # early to late, whatever the order they were picked in
opacity, colormap, shared = views.rendering_controls("layers", shared_default=False)

with st.spinner("Computing maps…"):
    results = views.cams(model, image, sha, method, layers=layers, classes=[class_index])
shown = views.display_image(sha, image)
cells = [(shown, f"Original · {image.width} × {image.height}")]
for r, picture in zip(results, views.overlays(shown, results, opacity, colormap, shared, model.preprocessing)):
    height, width = r.raw.shape
    star = " ★" if r.layer == model.target_layer else ""
    cells.append((picture, f"{r.layer}{star} · {height} × {width}"))
views.grid(cells)
st.caption(f"{results[0].method_name} of class {results[0].class_name} at {len(results)} layers; "
           "each panel says the layer's resolution (height × width). ★ marks the recommended layer.")
report.offer(model, image, chosen.image_name, results, opacity=opacity, colormap=colormap, shared=shared,
             key="layers")
