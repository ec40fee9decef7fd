"""The chosen model: where it comes from, how images are prepared, its layers, and the methods."""
import streamlit as st

from explainers.clones import has_hooks
from explainers.methods.catalog import list_methods
from ui import loaders, report, state

st.title("Layers & model")
report.offer_compare_maps(state.selection())
model = state.require_model().model

spec = model.spec
st.subheader(spec.display_name)
st.markdown(f"{spec.description}\n\n"
            f"- Architecture: `{spec.architecture}` ({spec.source})\n"
            f"- Weights: `{spec.weights_file or 'built in'}`, sha256 `{model.weights_sha256 or 'n/a'}`"
            f"{' (RANDOM weights)' if model.random_weights else ''}\n"
            f"- Device: `{model.device}` · {model.num_classes} classes · recommended layer `{model.target_layer}`")
hooked = has_hooks(model.module)
graded = any(p.grad is not None for p in model.module.parameters())
st.caption(f"Shared model, checked on this run: {'HOOKS ATTACHED' if hooked else 'no hooks'} · "
           f"{'GRADIENTS STORED' if graded else 'no stored gradients'} (every explanation runs on a private clone)")
st.caption("Preprocessing (the whole image is resized, never cropped, so a map covers all of it)")
st.json(model.preprocessing.as_dict(), expanded=True)

st.subheader("Layers")
rows = [{"layer": i.name, "type": i.type, "output shape": " × ".join(map(str, i.output_shape)),
         "recommended": "★" if i.recommended else ""}
        for i in loaders.layers(model.name, model.weights_sha256, model)]
st.dataframe(rows, width="stretch", hide_index=True, height=360)

st.subheader("Methods")
st.dataframe([{"method": m.display_name, "what it does": m.description, "cost": m.cost, "paper": m.paper}
              for m in list_methods()], width="stretch", hide_index=True)
