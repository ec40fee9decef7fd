"""The chosen model: where it comes from, how images are prepared, its layers, and the methods."""
import streamlit as st

from explainers.clones import has_hooks
from explainers.methods.catalog import list_methods
from ui import loaders, model_info, report, state, widgets

st.title("Layers & model")
report.offer_compare_maps(state.selection())
model = state.require_model().model

spec = model.spec
st.subheader(spec.display_name)
st.markdown(f"{spec.description}\n\n"
            f"- Architecture: `{spec.architecture}` ({spec.source})\n"
            f"- Weights: `{model_info.file_name(spec.weights_file)}`, sha256 `{model.weights_sha256 or 'n/a'}`"
            f"{' (RANDOM weights)' if model.random_weights else ''}\n"
            f"- Device: `{model.device}` · {model.num_classes} classes · recommended layer `{model.target_layer}`")
hooked = has_hooks(model.module)
graded = any(p.grad is not None for p in model.module.parameters())
st.caption(f"Shared model, checked on this run: {'HOOKS ATTACHED' if hooked else 'no hooks'} · "
           f"{'GRADIENTS STORED' if graded else 'no stored gradients'} (every explanation runs on a private clone)")
st.caption("Preprocessing (the whole image is resized, never cropped, so a map covers all of it)")
st.json(model.preprocessing.as_dict(), expanded=True)

st.subheader("Layers")
infos = loaders.layers(model.name, model.weights_sha256, model)
left, right = st.columns([3, 1])
search = left.text_input("Search layers", key="model_layer_search", placeholder="name or type, e.g. blocks.6 or Conv2d")
with right:
    every = widgets.every_module_switch("model_every_module")
rows = model_info.layer_rows(infos, search, every, model.extra.get("grids", {}))
shown = sum(1 for i in infos if every or i.makes_own_map or i.recommended)
st.caption(f"{len(rows)} of {shown} {'modules' if every else 'modules with a map of their own'}"
           f"{f' match “{search.strip()}”' if search.strip() else ''} · {len(infos)} modules in all. "
           "Scroll the table to see every row.")
st.dataframe(rows, width="stretch", hide_index=True, height=min(36 + 35 * max(len(rows), 1), 600))

st.subheader("Methods")
st.dataframe([{"method": m.display_name, "what it does": m.description, "cost": m.cost,
               "paper": model_info.short_citation(m.paper), "link": model_info.paper_link(m.paper)}
              for m in list_methods()], width="stretch", hide_index=True,
             column_config={"paper": st.column_config.TextColumn("paper", width="medium"),
                            "link": st.column_config.LinkColumn(
                                "link", display_text=r"https://(?:arxiv\.org/abs|doi\.org|hal\.science)/(.*)")})
