"""Streamlit glue for the dataset page with a multi-label (sigmoid) model: the labels CSV, the set scored
once (cached), the per-label table at the user's threshold, and the false positives and false negatives
with the map of their label. The numbers come from ``explainers.multilabel``."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import streamlit as st

from explainers.dataset import Dataset, Skip
from explainers.errors import ImageError
from explainers.io import load_image
from explainers.models.spec import LoadedModel
from explainers.multilabel import (LabelMetrics, LabelsError, ScoredImage, label_errors, match_files, parse_truth,
                                   score_loaded)
from explainers.pipeline import on_grid
from explainers.render import overlay

from . import dataset as ds
from . import loaders, state

TRUTH = "labels_truth"
THRESHOLD = "labels_threshold"
LABEL = "labels_label"
KIND = "labels_kind"
METHOD = "labels_method"
PAGE = "labels_gallery_page"
KINDS = ["false positive", "false negative"]
GALLERY_SIZE = 6


@dataclass(frozen=True)
class ScoredSet:
    """A set scored against its CSV: the images scored, and what could not be."""

    scored: list[ScoredImage]  # ScoredImage.path is the CSV's image name
    files: dict[str, str]  # CSV image -> file path in the set
    missing: list[str]  # CSV images with no file in the set
    skipped: list[Skip]  # files that were not read or do not decode
    unlabelled: int  # files in the set that the CSV does not name


def truth_picker(model: LoadedModel) -> tuple[Optional[dict[str, frozenset[int]]], str]:
    """Upload the true labels (CSV: image, labels); returns ({image: label indices}, content hash)."""
    upload = st.file_uploader("True labels as a CSV: columns image, labels (label names separated by ';')",
                              type=["csv"], key=TRUTH)
    if upload is None:
        return None, ""
    data = upload.getvalue()
    return parse_truth(data, model.categories, upload.name), hashlib.sha256(data).hexdigest()


@st.cache_data(show_spinner=False, max_entries=16)
def _scored(model_name: str, weights: Optional[str], fit: str, key: str, truth_sha: str, batch_size: int,
            _model: LoadedModel, _dataset: Dataset, _truth: dict) -> ScoredSet:
    loaders.ENGINE_CALLS += 1
    matched, missing = match_files(_truth, (f.path for f in _dataset.files))
    if not matched:
        raise LabelsError(f"None of the {len(_truth)} images named in the labels CSV is in {_dataset.name} "
                          f"(e.g. {next(iter(_truth), '')!r}); name them by their path inside the zip.")
    data = {f.path: f.data for f in _dataset.files}
    skipped = list(_dataset.skipped)

    def decoded():  # lazily, one batch in memory at a time
        for image, path in matched.items():
            try:
                yield image, load_image(data[path])
            except ImageError as error:
                skipped.append(Skip(path, str(error)))

    scored = score_loaded(_model, decoded(), _truth, batch_size)
    files = {s.path: matched[s.path] for s in scored}
    return ScoredSet(scored, files, missing, skipped, len(data) - len(matched))


def scored_set(model: LoadedModel, dataset: Dataset, key: str, truth: dict[str, frozenset[int]], truth_sha: str,
               batch_size: int) -> ScoredSet:
    """Every labelled image of the set through the model once (cached by model, set, CSV and batch size)."""
    return _scored(*loaders.cache_key(model), key, truth_sha, int(batch_size), model, dataset, truth)


def coverage(result: ScoredSet) -> None:
    """Say which images were scored and which were not, and why."""
    st.caption(f"{len(result.scored)} image{'s' * (len(result.scored) != 1)} scored against the CSV"
               + (f" · {result.unlabelled} file(s) in the set not named in the CSV" if result.unlabelled else ""))
    if result.missing:
        st.warning(f"{len(result.missing)} image(s) of the CSV are not in the set, e.g. "
                   f"{', '.join(result.missing[:5])}.")
    if result.skipped:
        with st.expander(f"The {len(result.skipped)} skipped file{'s' * (len(result.skipped) != 1)} and why"):
            st.dataframe([{"file": s.path, "reason": s.reason} for s in result.skipped], hide_index=True,
                         width="stretch")


def metrics_table(metrics: list[LabelMetrics]) -> list[dict]:
    """One row per label: precision, recall (empty where undefined), support and the counts."""
    return [{"label": m.name, "precision": m.precision, "recall": m.recall,
             "support": m.true_positives + m.false_negatives, "predicted": m.true_positives + m.false_positives,
             "false positives": m.false_positives, "false negatives": m.false_negatives} for m in metrics]


def errors_gallery(model: LoadedModel, dataset: Dataset, key: str, result: ScoredSet, threshold: float,
                   method: str) -> None:
    """Pick a label and a kind of error; each image with the map of that label."""
    errors = label_errors(result.scored, threshold)
    if not errors:
        st.success("No false positives or false negatives at this threshold.")
        return
    counts: dict[int, list[int]] = {}
    for _, label, kind in errors:
        counts.setdefault(label, [0, 0])[KINDS.index(kind)] += 1
    labels = sorted(counts, key=lambda k: -sum(counts[k]))  # the label with the most errors first
    if st.session_state.get(LABEL) not in labels:
        st.session_state[LABEL] = labels[0]
    pick, kind_column = st.columns([2, 2])
    label = pick.selectbox("Label (most errors first)", labels, key=LABEL,
                           format_func=lambda k: f"{model.categories[k]} · {counts[k][0]} FP, {counts[k][1]} FN")
    kind = kind_column.radio("Errors", KINDS, key=KIND, horizontal=True,
                             format_func=lambda k: f"{k}s ({counts[label][KINDS.index(k)]})")
    rows = [path for path, k, what in errors if k == label and what == kind]
    if not rows:
        st.info(f"No {kind}s for {model.categories[label]} at this threshold.")
        return
    pages = max(1, -(-len(rows) // GALLERY_SIZE))
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key=PAGE) if pages > 1 else 1
    rows = rows[(page - 1) * GALLERY_SIZE: page * GALLERY_SIZE]
    by_path = {s.path: s for s in result.scored}
    data = {f.path: f.data for f in dataset.files}
    files = [result.files[r] for r in rows]
    images = [load_image(data[f]) for f in files]
    with st.spinner("Computing maps…"):
        maps = ds.cell_maps(model, key, method, files, [[label]] * len(rows), images)
    opacity = float(st.session_state.get(state.OPACITY, 0.5))  # as last set on a compare page
    colormap = str(st.session_state.get(state.COLORMAP, "jet"))
    for row, image, (cam,) in zip(rows, images, maps):
        small = image.copy()
        small.thumbnail((320, 320))
        truth = ", ".join(model.categories[i] for i in sorted(by_path[row].truth)) or "none"
        left, right = st.columns(2)
        left.image(small, caption=f"{row} · true labels: {truth}", width="stretch")
        right.image(overlay(small, on_grid(cam.raw, small.width, small.height, model.preprocessing), opacity,
                            colormap),
                    caption=f"{kind}: {cam.class_name} · p={by_path[row].probabilities[label]:.1%}", width="stretch")
