"""Shared widgets: the sidebar's image and model pickers; the class, layer and slow-method pickers."""
from __future__ import annotations

from typing import Optional

import streamlit as st
from PIL import Image

from explainers.dicom import is_dicom
from explainers.errors import ExplainerError
from explainers.layers import LayerInfo
from explainers.methods.catalog import list_methods
from explainers.models import MANIFEST_ERRORS
from explainers.models.spec import LoadedModel

from . import dicom_controls, loaders, state

PER_CHANNEL = ("scorecam", "ablationcam")  # one masked forward pass per channel of the layer


def image_picker(errors: list[str]) -> tuple[Optional[Image.Image], str, str]:
    """Sidebar: gallery, upload or camera. Returns (image, pixel hash, name); image None if none.

    A file that cannot be read adds a sentence to ``errors`` (shown by app.py); the app keeps working.
    """
    source = st.radio("Image source", state.SOURCES, key=state.SOURCE, horizontal=True)
    if source == "Gallery":
        title = st.selectbox("Sample image", list(state.GALLERY), key=state.GALLERY_CHOICE)
        name = state.GALLERY[title]
        data = (state.ASSETS / name).read_bytes()
    elif source == "Upload":
        upload = st.file_uploader("Upload an image", type=state.UPLOAD_TYPES, key=state.UPLOAD,
                                  help="PNG, JPEG, WebP, BMP, TIFF, GIF or DICOM, up to 50 MB.")
        if upload is None:
            return None, "", ""
        name, data = upload.name, upload.getvalue()
        if is_dicom(data[:132]):  # decoded with its window and frame controls, never cached by file
            return dicom_controls.dicom_image(name, data, errors)
    else:
        shot = st.camera_input("Take a picture", key=state.CAMERA)
        if shot is None:
            return None, "", ""
        name, data = "camera.jpg", shot.getvalue()
    try:
        image, sha = loaders.decode_image(loaders.file_sha256(data), data)
    except ExplainerError as error:
        errors.append(f"{name}: {error}")
        return None, "", ""
    return image, sha, name


def _model_label(names: dict[str, tuple[str, str, bool]], name: str) -> str:
    display, source, available = names[name]
    label = f"{display} · your model" if source == "user" else display
    return label if available else f"{label} · weights not here yet"


def model_picker(errors: list[str]) -> Optional[LoadedModel]:
    """Sidebar: the model registry; loads the chosen model (cached) with a spinner.

    A model that cannot load adds its sentence (which says what to do) to ``errors``.
    """
    for problem in MANIFEST_ERRORS:  # each broken models.toml entry, with its own error; the others load
        st.warning(problem)
    names = {n: (d, s, a) for n, d, s, a in loaders.model_specs()}
    if st.session_state.get(state.MODEL) not in names:
        st.session_state[state.MODEL] = state.DEFAULT_MODEL if state.DEFAULT_MODEL in names else next(iter(names))
    name = st.selectbox("Model", list(names), key=state.MODEL, format_func=lambda n: _model_label(names, n),
                        help="Zoo models download their weights on first use when online; "
                             "'your model' entries come from the models manifest.")
    try:
        with st.spinner(f"Loading {names[name][0]}…"):
            model = loaders.get_model(name)
    except ExplainerError as error:
        errors.append(str(error))
        return None
    for note in model.weights_notes:  # e.g. fp16 or int8 tensors cast on loading
        st.warning(note)
    weights = "random weights" if model.random_weights else f"weights sha256 {(model.weights_sha256 or 'n/a')[:12]}"
    st.caption(f"Device: **{model.device}** · {model.num_classes} classes · {weights}")
    return model


def class_picker(model: LoadedModel, top1: int, context: tuple) -> int:
    """A searchable 'index: name' select and an index box, kept in sync; top-1 by default.

    ``context`` (model, image) resets the choice to the new top-1 when it changes.
    """
    n = model.num_classes
    if st.session_state.get(state.CLASS_CONTEXT) != context or state.CLASS_INDEX not in st.session_state:
        st.session_state[state.CLASS_CONTEXT] = context
        st.session_state[state.CLASS_INDEX] = st.session_state[state.CLASS_SELECT] = int(top1)

    def from_select() -> None:
        st.session_state[state.CLASS_INDEX] = st.session_state[state.CLASS_SELECT]

    def from_index() -> None:
        st.session_state[state.CLASS_SELECT] = st.session_state[state.CLASS_INDEX]

    left, right = st.columns([3, 1])
    left.selectbox("Class to explain", range(n), key=state.CLASS_SELECT, on_change=from_select,
                   format_func=lambda i: f"{i}: {model.categories[i]}", help="Type to search all class names.")
    right.number_input("Class index", min_value=0, max_value=n - 1, step=1, key=state.CLASS_INDEX,
                       on_change=from_index)
    return int(st.session_state[state.CLASS_INDEX])


def layer_picker(model: LoadedModel) -> str:
    """The layers that give a map (4D, or tokens for transformers) with output shapes; recommended first pick."""
    infos: list[LayerInfo] = [i for i in loaders.layers(model.name, model.weights_sha256, model)
                              if len(i.output_shape) in (3, 4) or i.recommended]
    names = [i.name for i in infos]
    if st.session_state.get(state.LAYER) not in names or st.session_state.get(state.LAYER_MODEL) != model.name:
        st.session_state[state.LAYER_MODEL] = model.name
        st.session_state[state.LAYER] = model.target_layer if model.target_layer in names else names[-1]
    by_name = {i.name: i for i in infos}

    def label(name: str) -> str:
        info = by_name[name]
        shape = " × ".join(str(d) for d in info.output_shape[1:])
        return f"{'★ ' if info.recommended else ''}{name} · {info.type} · {shape}"

    return st.selectbox("Layer", names, key=state.LAYER, format_func=label,
                        help="★ marks the recommended layer. Shapes are channels × height × width.")


def slow_methods(model: LoadedModel, image: Image.Image, image_sha: str, layer: str, class_index: int,
                 methods: list[str]) -> dict:
    """Opt-in slow methods: their cost up front, a button to run them, progress while they run.

    Returns:
        {method: CamResult} for the slow methods already computed (cached) or computed now.
    """
    specs = {m.key: m for m in list_methods()}
    info = {i.name: i for i in loaders.layers(model.name, model.weights_sha256, model)}
    shape = info[layer].output_shape if layer in info else ()
    channels = shape[1] if len(shape) == 4 else shape[-1] if shape else "?"  # (B, C, h, w) or (B, tokens, C)
    for key in methods:
        per_channel = f": {channels} channels here, so {channels} masked passes" if key in PER_CHANNEL else ""
        st.caption(f"**{specs[key].display_name}** costs {specs[key].cost}{per_channel}.")
    done = loaders.explanations(model, image, image_sha, layer, class_index, methods, compute=False)
    pending = [m for m in methods if m not in done]
    if not pending:
        return done
    names = ", ".join(specs[m].display_name for m in pending)
    if not st.button(f"Compute {names}", key=state.RUN_SLOW, type="primary"):
        st.caption("They are computed only when you press the button, then kept for this image.")
        return done
    slot = st.empty()

    def progress(fraction: float, message: str) -> None:
        slot.progress(min(max(float(fraction), 0.0), 1.0), text=message)

    done = loaders.explanations(model, image, image_sha, layer, class_index, methods, progress=progress)
    slot.empty()
    return done
