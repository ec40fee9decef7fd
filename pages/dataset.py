"""Dataset confusion: predict a labelled set, see its confusion matrix, open a cell's images with their maps.
A multi-label (sigmoid) model gets per-label precision and recall instead, with its false positives and negatives."""
import streamlit as st

from explainers.batch import default_batch_size
from explainers.confusion import confusion_csv, confusion_matrix, per_class_accuracy, predictions_csv
from explainers.dataset import DatasetLimits
from explainers.dataset_summary import summarize
from explainers.multilabel import per_label_metrics
from explainers.multilabel import predictions_csv as label_predictions_csv
from ui import compare_views as views
from ui import dataset as ds
from ui import multilabel as ml
from ui import report, state

st.title("Dataset confusion")
report.offer_compare_maps(state.selection())
model = state.require_model().model
if model.head == "sigmoid":  # independent labels: per-label precision and recall, not a confusion matrix
    st.caption(f"{model.spec.display_name} scores each label on its own (sigmoid), so the set is measured per "
               "label at a threshold you set; true labels come from a CSV.")
    dataset, key = ds.source_picker(flat=True)
    truth, truth_sha = ml.truth_picker(model)
    if dataset is None or truth is None:
        st.info("Upload a zip of images and a CSV with the columns image (the path inside the zip) and labels "
                "(label names separated by ';', empty for none).")
        st.stop()
    batch_size = st.number_input("Batch size (images per forward pass)", 1, 256, default_batch_size(model),
                                 key=ds.BATCH)
    with st.spinner("Scoring the images…"):
        scored = ml.scored_set(model, dataset, key, truth, truth_sha, batch_size)
    ml.coverage(scored)
    threshold = st.slider("Threshold (a label is predicted at or above)", 0.01, 0.99, 0.5, 0.01, key=ml.THRESHOLD)
    metrics = per_label_metrics(scored.scored, model.categories, threshold)
    st.dataframe(ml.metrics_table(metrics), hide_index=True, width="stretch", column_config={
        "precision": st.column_config.NumberColumn("precision", format="%.3f"),
        "recall": st.column_config.NumberColumn("recall", format="%.3f")})
    st.download_button("Predictions (CSV)", label_predictions_csv(scored.scored, model.categories, threshold),
                       file_name="predictions.csv", mime="text/csv", on_click="ignore", key="labels_dl_predictions")
    st.subheader("False positives and false negatives")
    ml.errors_gallery(model, dataset, key, scored, threshold, views.method_picker(ml.METHOD))
    st.stop()
dataset, key = ds.source_picker()
if dataset is None:
    limits = DatasetLimits.from_env()
    st.info("Upload a zip with one folder per class (class_name/image.jpg), named like the model's classes "
            f"or mapped below. Up to {limits.max_files} files, {limits.max_total_bytes / 2**20:.0f} MB unpacked.")
    st.stop()
counted = st.empty()
counted.caption(summarize(dataset).sentence)
labels = ds.mapping_editor(model, dataset, key)
batch_size = st.number_input("Batch size (images per forward pass)", 1, 256, default_batch_size(model), key=ds.BATCH)

result = ds.predictions(model, dataset, key, labels, batch_size, compute=False)
if result is None:
    slot = st.empty()
    files = len(dataset.files)
    if not slot.button(f"Predict the {files} file{'s' * (files != 1)} of the class folders with "
                       f"{model.spec.display_name}", key=ds.RUN, type="primary"):
        st.stop()
    slot.empty()
    bar = st.progress(0.0, text="Predicting…")
    result = ds.predictions(model, dataset, key, labels, batch_size,
                            progress=lambda fraction, message: bar.progress(min(fraction, 1.0), text=message))
    bar.empty()

matrix = confusion_matrix(result)
summary = summarize(dataset, result)
counted.caption(summary.sentence)
files, images, skipped, accuracy = st.columns(4)
files.metric("Files", summary.files)
images.metric("Images", summary.images)
skipped.metric("Skipped files", summary.skipped)
accuracy.metric("Accuracy", f"{result.accuracy:.1%}", help="Share of the images (not files) predicted right.")
short = [f.sentence for f in summary.folders if f.skipped]
if short:
    st.caption("Folders with skipped files: " + " · ".join(short) + ".")
if result.skipped:
    with st.expander(f"The {len(result.skipped)} skipped file{'s' * (len(result.skipped) != 1)} and why"):
        st.dataframe([{"file": s.path, "reason": s.reason} for s in result.skipped], hide_index=True, width="stretch")
st.plotly_chart(ds.confusion_figure(matrix), width="stretch", key="dataset_confusion_chart")
st.dataframe([{"class": f"{a.name} ({a.index})", "images": a.images, "correct": a.correct, "accuracy": a.accuracy,
               "most confused with": a.most_confused_with} for a in per_class_accuracy(result)],
             hide_index=True, width="stretch",
             column_config={"accuracy": st.column_config.ProgressColumn("accuracy", format="percent")})
left, right = st.columns(2)
left.download_button("Predictions (CSV)", predictions_csv(result), file_name="predictions.csv", mime="text/csv",
                     on_click="ignore", key="dataset_dl_predictions")
right.download_button("Confusion matrix (CSV)", confusion_csv(matrix), file_name="confusion.csv", mime="text/csv",
                      on_click="ignore", key="dataset_dl_confusion")

st.subheader("Open a cell")
names = dict(zip(matrix.columns, matrix.column_names))
cells = matrix.cells()
if st.session_state.get(ds.CELL) not in cells:  # a new set or model: start at its biggest mistake
    st.session_state[ds.CELL] = cells[0]
pick, method_column = st.columns([3, 1])
cell = pick.selectbox("True → predicted (mistakes first)", cells, key=ds.CELL,
                      format_func=lambda c: f"{names[c[0]]} → {names[c[1]]} · {c[2]} image{'s' * (c[2] != 1)}")
with method_column:
    method = views.method_picker(ds.METHOD)
ds.gallery(model, dataset, key, result, cell[0], cell[1], method)
