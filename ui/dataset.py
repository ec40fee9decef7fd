"""Streamlit glue for the dataset page: where a labelled set comes from, cached reading,
prediction with a progress bar, the mapping editor, the confusion figure and the cell gallery's maps."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from explainers.batch import explain_batch
from explainers.class_names import map_folders
from explainers.confusion import ConfusionMatrix, DatasetPredictions, predict_dataset
from explainers.dataset import Dataset, DatasetError, DatasetLimits, read_dataset
from explainers.pipeline import on_grid
from explainers.io import load_image
from explainers.models.spec import LoadedModel
from explainers.render import overlay
from explainers.results import CamResult

from . import loaders, state

DATASETS_DIR_ENV = "CAMSCOPE_DATASETS_DIR"
SOURCE = "dataset_source"
UPLOAD = "dataset_upload"
SERVER_CHOICE = "dataset_server_choice"
MAPPING = "dataset_mapping"
BATCH = "dataset_batch"
RUN = "dataset_run"
CELL = "dataset_cell"
METHOD = "dataset_method"
GALLERY_PAGE = "dataset_gallery_page"
CURRENT = "_dataset_current"  # (key, name) of the last set read, so it survives a page switch
GALLERY_SIZE = 8


def server_datasets() -> dict[str, Path]:
    """The folders and zips in CAMSCOPE_DATASETS_DIR, by name (only these can be chosen: no free paths)."""
    root = os.environ.get(DATASETS_DIR_ENV, "").strip()
    if not root or not Path(root).is_dir():
        return {}
    return {p.name: p for p in sorted(Path(root).iterdir())
            if not p.name.startswith(".") and not p.is_symlink() and (p.is_dir() or p.suffix.lower() == ".zip")}


def source_key(data: bytes | None = None, path: Path | None = None) -> str:
    """A cache key: the upload's content hash, or the server path with its modification time."""
    if data is not None:
        return "upload:" + hashlib.sha256(data).hexdigest()
    return f"server:{path}:{path.stat().st_mtime_ns}"


@st.cache_resource(show_spinner=False, max_entries=2)  # shared, read-only; up to the size limit each
def load_dataset(key: str, _source: object, name: str, flat: bool = False) -> Dataset:
    """The set read once per content; a later call with only the key finds it here.
    ``flat``: no class folders needed (a multi-label set, labelled by a CSV)."""
    if _source is None:
        raise DatasetError("The dataset is no longer in memory; upload it again.")
    return read_dataset(_source, DatasetLimits.from_env(), name=name, flat=flat)


class _Miss(Exception):
    """Raised inside a cached function to probe the cache without filling it."""


@st.cache_data(show_spinner=False, max_entries=16)
def _stored_predictions(model_name: str, weights: Optional[str], key: str, labels: tuple, batch_size: int, fit: str,
                        _computed: Optional[DatasetPredictions]) -> DatasetPredictions:
    if _computed is None:
        raise _Miss(key)  # st.cache_data never caches an exception
    return _computed


def predictions(model: LoadedModel, dataset: Dataset, key: str, labels: dict[str, int], batch_size: int,
                progress: Optional[Callable[[float, str], None]] = None, compute: bool = True
                ) -> Optional[DatasetPredictions]:
    """The set's predictions from the cache, else computed now (with progress) and stored; None if not
    cached and ``compute`` is False."""
    args = (model.name, model.weights_sha256, key, tuple(sorted(labels.items())), batch_size, model.preprocessing.fit)
    try:
        return _stored_predictions(*args, None)
    except _Miss:
        if not compute:
            return None
    loaders.ENGINE_CALLS += 1
    result = predict_dataset(model, dataset, labels, batch_size, progress)
    return _stored_predictions(*args, result)


def class_options(model: LoadedModel) -> list[str]:
    return [f"{i}: {name}" for i, name in enumerate(model.categories)]


def default_mapping(folders: list[str], model: LoadedModel) -> list[Optional[str]]:
    """For each folder, its class as an option label when its name matches one class, else None."""
    options = class_options(model)
    out: list[Optional[str]] = []
    for folder in folders:
        try:
            out.append(options[map_folders([folder], model.categories)[folder]])
        except DatasetError:
            out.append(None)
    return out


def mapping_from_editor(folders: list[str], chosen: list[Optional[str]]) -> dict[str, int]:
    """{folder: class index} from the editor's "index: name" labels (empty cells left out)."""
    return {f: int(str(c).split(":", 1)[0]) for f, c in zip(folders, chosen) if c not in (None, "") and c == c}


def confusion_figure(matrix: ConfusionMatrix) -> go.Figure:
    """A plotly heatmap of counts (true classes down, predicted across) with the count in each cell."""
    x = [f"{n} ({c})" for c, n in zip(matrix.columns, matrix.column_names)]
    y = [f"{n} ({c})" for c, n in zip(matrix.rows, matrix.row_names)]
    fig = go.Figure(go.Heatmap(z=matrix.counts, x=x, y=y, colorscale="Blues", text=matrix.counts,
                               texttemplate="%{text}", colorbar=dict(title="images"),
                               hovertemplate="true %{y}<br>predicted %{x}<br>%{z} images<extra></extra>"))
    fig.update_layout(height=max(320, 120 + 36 * len(y)), margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(title="predicted", side="top"), yaxis=dict(title="true", autorange="reversed"))
    return fig


@st.cache_data(show_spinner=False, max_entries=128)
def _cell_raws(model_name: str, weights: Optional[str], fit: str, key: str, method: str, paths: tuple[str, ...],
               classes: tuple[tuple[int, ...], ...], _model: LoadedModel, _images: list) -> list[list[CamResult]]:
    loaders.ENGINE_CALLS += 1
    results = explain_batch(_model, _images, [list(c) for c in classes], method)
    # Only the small layer-resolution maps are kept; the page redraws them at its own size.
    return [[_without_map(r) for r in row] for row in results]


def _without_map(result: CamResult) -> CamResult:
    return dataclasses.replace(result, map=np.zeros((0, 0), np.float32))


def cell_maps(model: LoadedModel, key: str, method: str, paths: list[str], classes: list[list[int]],
              images: list) -> list[list[CamResult]]:
    """For each image of a gallery page, the maps of its classes (true, then predicted), cached."""
    return _cell_raws(*loaders.cache_key(model), key, method, tuple(paths),
                      tuple(tuple(c) for c in classes), model, images)


def source_picker(flat: bool = False) -> tuple[Optional[Dataset], str]:
    """Upload a zip, or pick a set on the server (CAMSCOPE_DATASETS_DIR). Returns (dataset, cache key).

    The last set read is remembered, so coming back from another page shows it again. ``flat``: images
    in any folders (a multi-label set whose labels come from a CSV), not one folder per class.
    """
    servers = server_datasets()
    source = "Upload a zip"
    if servers:  # the choice exists only where the deployment names a datasets folder
        source = st.radio("Dataset source", ["Upload a zip", "On the server"], key=SOURCE, horizontal=True)
    if source == "On the server":
        choice = st.selectbox("Dataset", list(servers), key=SERVER_CHOICE)
        path = servers[choice]
        key, name, raw = source_key(path=path), choice, path
    else:
        upload = st.file_uploader("Images as a zip (named in the labels CSV)" if flat else
                                  "Labelled images as a zip: one folder per class (class_name/image.jpg)",
                                  type=["zip"], key=UPLOAD)
        if upload is None:
            remembered = st.session_state.get(CURRENT)
            if remembered and remembered[0].startswith("upload:"):
                try:
                    return load_dataset(remembered[0], None, remembered[1], flat), remembered[0]
                except DatasetError:
                    pass  # evicted from memory: ask for the upload again
            return None, ""
        data = upload.getvalue()
        key, name, raw = source_key(data=data), upload.name, data
    dataset = load_dataset(key, raw, name, flat)
    st.session_state[CURRENT] = (key, name)
    return dataset, key


@st.cache_data(show_spinner=False, max_entries=32)
def _defaults(model_name: str, folders: tuple[str, ...], _model: LoadedModel) -> list[Optional[str]]:
    return default_mapping(list(folders), _model)


def mapping_key(model: LoadedModel, key: str) -> str:
    """The editor's widget key: a new set or model starts from fresh defaults."""
    return f"{MAPPING}_{model.name}_{key[-16:]}"


def mapping_editor(model: LoadedModel, dataset: Dataset, key: str) -> dict[str, int]:
    """A table folder -> class, prefilled where a folder's name is a class name; returns {folder: index}.

    Raises:
        DatasetError: listing the folders still without a class.
    """
    import pandas as pd

    folders = dataset.folders
    counts = {f: 0 for f in folders}
    for file in dataset.files:
        counts[file.folder] += 1
    defaults = _defaults(model.name, tuple(folders), model)
    table = pd.DataFrame({"folder": folders, "files": [counts[f] for f in folders], "class": defaults})
    with st.expander("Folder → class mapping", expanded=any(d is None for d in defaults)):
        st.caption("Folders named like a class are matched already; pick the class of the others "
                   "(type to search).")
        edited = st.data_editor(table, key=mapping_key(model, key), hide_index=True, width="stretch",
                                disabled=["folder", "files"], column_config={
                                    "class": st.column_config.SelectboxColumn(
                                        "class", options=class_options(model), required=False)})
    chosen = edited["class"].tolist()
    try:
        return map_folders(folders, model.categories, mapping_from_editor(folders, chosen))
    except DatasetError:
        missing = [f for f, c in zip(folders, chosen) if c in (None, "") or c != c]
        raise DatasetError(f"No class yet for the folder{'s' * (len(missing) != 1)} {', '.join(missing)}: pick "
                           "one in the “Folder → class mapping” table above (type a class name to search), "
                           "or rename the folder to a class name.") from None


def gallery(model: LoadedModel, dataset: Dataset, key: str, result: DatasetPredictions, true_index: int,
            predicted_index: int, method: str) -> None:
    """The images of one cell, each with the map of its true class and of its predicted class."""
    rows = result.in_cell(true_index, predicted_index)
    pages = max(1, -(-len(rows) // GALLERY_SIZE))
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key=GALLERY_PAGE) if pages > 1 else 1
    rows = rows[(page - 1) * GALLERY_SIZE: page * GALLERY_SIZE]
    data = {f.path: f.data for f in dataset.files}
    images = [load_image(data[r.path]) for r in rows]
    classes = [list(dict.fromkeys([r.true_index, r.predicted_index])) for r in rows]
    with st.spinner("Computing maps…"):
        maps = cell_maps(model, key, method, [r.path for r in rows], classes, images)
    opacity = float(st.session_state.get(state.OPACITY, 0.5))  # as last set on a compare page
    colormap = str(st.session_state.get(state.COLORMAP, "jet"))
    for row, image, cams in zip(rows, images, maps):
        small = image.copy()
        small.thumbnail((320, 320))
        cells = [(small, f"{row.path} · p({row.predicted_name})={row.probability:.1%}")]
        for cam, role in zip(cams, ["true", "predicted"] if len(cams) == 2 else ["true = predicted"]):
            cam_map = on_grid(cam.raw, small.width, small.height, model.preprocessing)
            cells.append((overlay(small, cam_map, opacity, colormap),
                          f"{role}: {cam.class_name} · p={cam.probability:.1%}"))
        for column, (picture, caption) in zip(st.columns(3), cells):
            column.image(picture, caption=caption, width="stretch")
