"""Compare classes: one image, several classes, one method; and "why A rather than B"."""
import streamlit as st

from ui import compare_views as views
from ui import loaders, report, state
from ui import strength_panels as strong

st.title("Compare classes")
chosen = state.require_selection()
model, image, sha = chosen.model, chosen.image, chosen.image_sha256
if model.num_classes < 2:
    st.info("This model has a single class: there is nothing to compare it with.")
    st.stop()
top = loaders.predictions(model.name, model.weights_sha256, sha, 10, model, image)
label = lambda i: views.class_label(model, i)  # noqa: E731
views.reset_on_change("classes_context", (model.name, sha), {  # a new image: back to its own top classes
    "classes_picked": [p.index for p in top[:3]], "classes_a": top[0].index, "classes_b": top[1].index})

left, right = st.columns([1, 2])
with left:
    method = views.method_picker("classes_method")
    mode = st.radio("Classes", ["Top-k", "Pick by name"], key="classes_mode", horizontal=True)
with right:
    if mode == "Top-k":
        k = st.slider("How many of the best-scoring classes", 2, 8, 3, key="classes_k")
        classes = [p.index for p in top[:k]]
    else:
        classes = st.multiselect("Classes to compare (type to search)", range(model.num_classes),
                                 key="classes_picked", format_func=label)
if not classes:
    st.info("Pick at least one class.")
    st.stop()
opacity, colormap, shared = views.rendering_controls("classes", shared_default=True)

shown = views.display_image(sha, image)
with st.spinner("Computing maps…"):  # the top class too: the reference each map's strength is given against
    by_class = {r.class_index: r for r in views.cams(model, image, sha, method,
                                                     classes=list(dict.fromkeys([top[0].index, *classes])))}
reference = {method: by_class[top[0].index].raw}
results = [by_class[c] for c in classes]
powers = strong.strengths(results, reference)
cells = [(shown, f"Original · {image.width} × {image.height}")]
cells += [(picture, f"{r.class_name} ({r.class_index}) @ {r.layer} · p={r.probability:.1%} · "
                    f"{strong.strength_note(r, s, top[0].name)}")
          for r, s, picture in zip(results, powers, strong.pictures(shown, results, powers, opacity, colormap, shared,
                                                                                   model.preprocessing))]
views.grid(cells)

st.subheader("Why A rather than B?")
st.caption("The contrastive map explains the score of A minus the score of B: where the image looks "
           "more like A than like B. The difference subtracts the two class maps on one scale "
           "(red: A stronger, blue: B stronger; colors stretched to the largest difference).")
a_col, b_col = st.columns(2)
a = a_col.selectbox("A", range(model.num_classes), key="classes_a", format_func=label)
b = b_col.selectbox("B", range(model.num_classes), key="classes_b", format_func=label)
if a == b:
    st.info("Pick two different classes.")
    report.offer(model, image, chosen.image_name, results, opacity=opacity, colormap=colormap, shared=shared,
                 key="classes")
    st.stop()
map_a, map_b, contrast = views.cams(model, image, sha, method, classes=[a, b], contrast=(a, b))
a_overlay, b_overlay = views.overlays(shown, [map_a, map_b], opacity, colormap, True, model.preprocessing)
difference, largest = views.difference_overlay(shown, map_a, map_b, opacity, model.preprocessing)
views.grid([(views.overlays(shown, [contrast], opacity, colormap, False, model.preprocessing)[0], f"{contrast.label} · "
             f"logit difference {contrast.score:+.2f}"),
            (difference, f"{map_a.class_name} − {map_b.class_name} · largest difference {largest:.2f}"),
            (a_overlay, f"A: {map_a.class_name} · p={map_a.probability:.1%}"),
            (b_overlay, f"B: {map_b.class_name} · p={map_b.probability:.1%}")])
report.offer(model, image, chosen.image_name, [*results, contrast], opacity=opacity, colormap=colormap,
             shared=shared, key="classes")
