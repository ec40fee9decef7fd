"""Compare models: two models (or two checkpoints of one architecture) on the same image and class."""
import streamlit as st

from explainers.errors import ExplainerError
from ui import compare_views as views
from ui import figures, loaders, report, state
from ui import strength_panels as strong

st.title("Compare models")
chosen = state.require_selection()
image, sha = chosen.image, chosen.image_sha256
specs = {name: (display, available) for name, display, _, available in loaders.model_specs()}
others = [n for n, (_, available) in specs.items() if available and n != chosen.model.name]
views.reset_on_change("models_context", (chosen.model.name,), {
    "models_left": chosen.model.name, "models_right": others[0] if others else chosen.model.name})


def label(name: str) -> str:
    display, available = specs[name]
    return display if available else f"{display} · weights not here yet"


pick_left, pick_right, pick_method = st.columns([2, 2, 1])
names = [pick_left.selectbox("Model A", list(specs), key="models_left", format_func=label),
         pick_right.selectbox("Model B", list(specs), key="models_right", format_func=label)]
with pick_method:
    method = views.method_picker("models_method")
if names[0] == names[1]:
    hint = "" if others else (" Only this model has its weights here: a zoo model downloads them on first use "
                              "when online, and a second checkpoint is added through the models manifest.")
    st.info(f"Pick two different models (a second checkpoint of an architecture is listed as its own model).{hint}")
    st.stop()
models = []
for name in names:
    try:
        with st.spinner(f"Loading {specs[name][0]}…"):
            models.append(loaders.get_model(name).with_fit(chosen.model.preprocessing.fit))
    except ExplainerError as error:
        st.error(str(error))
        st.stop()

first, second = models
top = loaders.predictions(first.name, first.weights_sha256, sha, 5, first, image)
views.reset_on_change("models_class_context", (first.name, sha), {"models_class": top[0].index})
class_a = st.selectbox("Class (named by model A; model B explains the class of the same name)",
                       range(first.num_classes), key="models_class", format_func=lambda i: views.class_label(first, i))
name = first.categories[class_a]
class_b = second.categories.index(name) if name in second.categories else None
if class_b is None:
    st.warning(f"Model B has no class named {name!r}; it explains its own top-1 class instead.")
opacity, colormap, shared = views.rendering_controls("models", shared_default=False)

shown = views.display_image(sha, image)
with st.spinner("Computing the maps…"):
    results = [views.cams(model, image, sha, method, classes=[] if c is None else [c])[0]
               for model, c in zip(models, [class_a, class_b])]
powers = strong.strengths(results, {})
pictures = strong.pictures(shown, results, powers, opacity, colormap, shared,  # colorbars in raw units
                           [m.preprocessing for m in models])  # each map through its own model's crop
for column, model, result, picture, letter in zip(st.columns(2), models, results, pictures, "AB"):
    with column:
        st.subheader(f"{letter}: {model.spec.display_name}")
        predictions = loaders.predictions(model.name, model.weights_sha256, sha, 5, model, image)
        st.plotly_chart(figures.top_k_chart(predictions), width="stretch", key=f"models_top_k_{letter}")
        st.image(picture, width="stretch", caption=f"{result.method_name} of {result.class_name} "
                 f"({result.class_index}) · p={result.probability:.1%} · layer {result.layer} · "
                 f"{strong.strength_note(result, powers[letter == 'B'])}")
        weights = "random weights" if model.random_weights else f"weights {(model.weights_sha256 or 'n/a')[:12]}"
        st.caption(f"`{model.spec.architecture}` · {weights}")
    report.offer(model, image, chosen.image_name, [result], opacity=opacity, colormap=colormap, shared=shared,
                 label=f"Reviewer report, model {letter} (HTML)", key=f"models_{letter}")
