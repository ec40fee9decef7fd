"""Shared widgets: the sidebar's image and model pickers; the class, layer and slow-method pickers."""
from __future__ import annotations

from typing import Optional, Sequence

import streamlit as st
from PIL import Image

from explainers.comparisons import layers_in_range, stage_layers
from explainers.errors import ExplainerError
from explainers.image_limits import load_notes
from explainers.io import sniff_format
from explainers.fit import FIT_LABELS, FITS, aspect_warning
from explainers.layers import LayerInfo
from explainers.methods.catalog import list_methods
from explainers.methods.options import NOISE_TUNNEL_TYPES, MethodOptions, NoiseTunnel
from explainers.models import MANIFEST_ERRORS
from explainers.models.spec import LoadedModel
from explainers.results import Prediction

from . import dicom_controls, loaders, state

PER_CHANNEL = ("scorecam", "ablationcam")  # one masked forward pass per channel of the layer


def image_picker(errors: list[str]) -> tuple[Optional[Image.Image], str, str]:
    """Sidebar: gallery, upload or camera. Returns (image, pixel hash, name); image None if none.

    A file that cannot be read adds a sentence to ``errors`` (shown by app.py); the app keeps working.
    What was done to its pixels (rescaled range, NaN replaced, one flat colour) is shown as a warning.
    """
    image, sha, name = _picked_image(errors)
    for note in load_notes(image) if image is not None else []:
        st.warning(note)
    return image, sha, name


def _picked_image(errors: list[str]) -> tuple[Optional[Image.Image], str, str]:
    sources = state.SOURCES + ([state.STORE_SOURCE] if st.session_state.get(state.STORE_IMAGE) else [])
    if st.session_state.get(state.SOURCE) not in sources:
        st.session_state[state.SOURCE] = state.SOURCES[0]
    source = st.radio("Image source", sources, key=state.SOURCE, horizontal=True)
    if source == state.STORE_SOURCE:
        from .review_open import store_image  # the image the Review page opened

        return store_image(errors)
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
        if sniff_format(data[:132]) == "DICOM":  # decoded with its window and frame controls, never cached by file
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


def short_model_name(display: str) -> str:
    """The display name without its parenthesis ('ResNet-18 (ImageNet, torchvision)' -> 'ResNet-18'),
    so the sidebar shows it whole; the full name is in the caption below the picker."""
    return display.split(" (")[0].strip() or display


def _model_label(names: dict[str, tuple[str, str, bool]], name: str) -> str:
    display, source, available = names[name]
    label = short_model_name(display) + (" · your model" if source == "user" else "")
    return label if available else f"{label} · not here yet"


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
                        help="Zoo models download their weights on first use when online ('not here yet' "
                             "until then); 'your model' marks models from the models manifest. The full name "
                             "is under the picker.")
    try:
        with st.spinner(f"Loading {names[name][0]}…"):
            model = loaders.get_model(name)
    except ExplainerError as error:
        errors.append(str(error))
        return None
    for note in model.weights_notes:  # e.g. fp16 or int8 tensors cast on loading
        st.warning(note)
    weights = "random weights" if model.random_weights else f"weights sha256 {(model.weights_sha256 or 'n/a')[:12]}"
    labels = " (independent labels, sigmoid)" if model.head == "sigmoid" else ""
    st.caption(f"**{names[name][0]}** · device **{model.device}** · {model.num_classes} classes{labels} · {weights}")
    return model


def fit_picker(model: Optional[LoadedModel]) -> Optional[LoadedModel]:
    """Sidebar, under the model: how a non-square image meets the model's input; returns the model with it."""
    fit = st.radio("Image fit", FITS, key=state.FIT, format_func=FIT_LABELS.get,
                   help="Squash: the whole image resized to the model's input, stretched. Letterbox: the whole "
                        "image, aspect kept, padded with the mean color (the padding's part of the map is "
                        "dropped). Centre crop: the model's own evaluation transform (shorter side resized, "
                        "centre cropped); the map covers the crop, the rest is hatched.")
    return model.with_fit(fit) if model is not None else None


def fit_notice(model: LoadedModel, image: Image.Image) -> str:
    """The caption of 'as the model sees it' (which fit is active); warns when the aspect ratio is far off."""
    pre = model.preprocessing
    warning = aspect_warning(image.width, image.height, pre.input_size, pre.fit)
    if warning:
        st.warning(warning)
    height, width = pre.input_size
    return f"As the model sees it: {width} × {height}, {FIT_LABELS[pre.fit].split(' (')[0].lower()}"


def class_picker(model: LoadedModel, top1: int, context: tuple, predictions: Sequence[Prediction] = ()) -> int:
    """A searchable 'index: name' select and an index box, kept in sync; top-1 by default.

    For a sigmoid head (independent labels) a caption lists the labels above 0.5 among ``predictions``.

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

    if model.head == "sigmoid":
        st.caption("Independent labels (sigmoid per label): explain any label; " + labels_above_half(predictions))
    left, right = st.columns([3, 1])
    left.selectbox("Class to explain", range(n), key=state.CLASS_SELECT, on_change=from_select,
                   format_func=lambda i: f"{i}: {model.categories[i]}", help="Type to search all class names.")
    right.number_input("Class index", min_value=0, max_value=n - 1, step=1, key=state.CLASS_INDEX,
                       on_change=from_index)
    return int(st.session_state[state.CLASS_INDEX])


EVERY_MODULE_HELP = ("Off: only modules that make a map of their own. On: every module, including Identity, "
                     "Dropout, activations and containers whose output repeats their last child's.")


def mappable_layers(model: LoadedModel, every_module: bool = False) -> list[LayerInfo]:
    """The layers that give a map (4D, or tokens for transformers), in model order; by default only those
    that make a map of their own (see ``LayerInfo.makes_own_map``). The recommended layer is always there."""
    grids = model.extra.get("grids")  # token models: the layers whose output maps onto the patch grid
    tokens = 3 if model.reshape_transform else 4
    return [i for i in loaders.layers(model.name, model.weights_sha256, model)
            if i.recommended or ((i.name in grids if grids else len(i.output_shape) in (tokens, 4))
                                 and (every_module or i.makes_own_map))]


def every_module_switch(key: str) -> bool:
    """The "Show every module" toggle; returns its value (read from the state first, so lists built above it
    already follow it)."""
    return bool(st.toggle("Show every module", key=key, help=EVERY_MODULE_HELP))


def layer_label(info: LayerInfo, grids: dict | None = None) -> str:
    shape = " × ".join(str(d) for d in info.output_shape[1:])
    grid = (grids or {}).get(info.name)  # token models: the map this layer becomes
    shape += f" → map {grid[0]} × {grid[1]}" if grid else ""
    same = f" (= {info.same_map_as})" if info.same_map_as else ""
    return f"{'★ ' if info.recommended else ''}{info.name}{same} · {info.type} · {shape}"


def labels_above_half(predictions: Sequence[Prediction]) -> str:
    """'labels above 0.5: name (p), ...' for a sigmoid head's predictions."""
    above = [f"{p.name} ({p.probability:.0%})" for p in predictions if p.probability > 0.5]
    return "labels above 0.5: " + (", ".join(above) if above else "none")


def layer_picker(model: LoadedModel) -> str:
    """The layers that give a map, with output shapes; recommended first pick; a switch under it shows every module."""
    infos = mappable_layers(model, bool(st.session_state.get(state.LAYER_EVERY)))
    names = [i.name for i in infos]
    if st.session_state.get(state.LAYER) not in names or st.session_state.get(state.LAYER_MODEL) != model.name:
        st.session_state[state.LAYER_MODEL] = model.name
        st.session_state[state.LAYER] = model.target_layer if model.target_layer in names else names[-1]
    by_name = {i.name: i for i in infos}
    grids = model.extra.get("grids")
    layer = st.selectbox("Layer", names, key=state.LAYER, format_func=lambda n: layer_label(by_name[n], grids),
                         help="★ marks the recommended layer. Shapes are channels × height × width.")
    every_module_switch(state.LAYER_EVERY)
    return layer


def layer_range_picker(model: LoadedModel, key: str) -> list[str]:
    """Compare layers: a depth range (from, to) over the layers in model order and how many to show.

    Defaults to one layer per resolution ending with the recommended one (``stage_layers``); keys are
    ``{key}_range``, ``{key}_count`` and ``{key}_every``. Returns the picked names, early to late.
    """
    every = bool(st.session_state.get(f"{key}_every"))
    infos = mappable_layers(model, every)
    names = [i.name for i in infos]
    stages = [n for n in stage_layers(loaders.layers(model.name, model.weights_sha256, model)) if n in names]
    stages = stages or names[-1:]
    default_range, default_count = (stages[0], model.target_layer if model.target_layer in names else names[-1]), \
        len(stages)
    fresh = st.session_state.get(f"{key}_model") != model.name
    held = st.session_state.get(f"{key}_range")
    if fresh or not isinstance(held, (tuple, list)) or any(n not in names for n in held):
        st.session_state[f"{key}_model"] = model.name
        for widget in (f"{key}_range", f"{key}_count"):  # back to the defaults given below
            st.session_state.pop(widget, None)
    if len(names) < 2:
        return names
    by_name = {i.name: i for i in infos}
    first, last = st.select_slider(
        "Depth: from layer … to layer", names, value=default_range, key=f"{key}_range",
        format_func=lambda n: f"{'★ ' if by_name[n].recommended else ''}{n}",
        help=f"{len(names)} layers in model order, early to late. ★ marks the recommended layer.")
    count = st.slider("How many layers", 1, min(12, len(names)), value=min(default_count, 12), key=f"{key}_count",
                      help="Both ends of the range, then one layer per resolution inside it, "
                           "then evenly spaced layers until there are this many.")
    every_module_switch(f"{key}_every")
    return layers_in_range(names, first, last, count, prefer=stages)


def smoothing_toggles() -> MethodOptions:
    """pytorch-grad-cam's aug_smooth and eigen_smooth as two toggles, then Captum's noise tunnel (off unless
    picked; not with aug-smooth) with its samples and noise std."""
    aug, eigen, tunnel = st.columns(3)
    aug_smooth = aug.toggle("Aug-smooth", key=state.AUG_SMOOTH,
                            help="Average each one-pass CAM over 6 flipped / brightened copies (one batched pass).")
    eigen_smooth = eigen.toggle("Eigen-smooth", key=state.EIGEN_SMOOTH,
                                help="First principal component of the weighted activations: less noise.")
    kind = tunnel.selectbox("Noise tunnel", ["off", *NOISE_TUNNEL_TYPES], key=state.NOISE_TUNNEL, disabled=aug_smooth,
                            help="Captum's NoiseTunnel for the gradient methods (one-pass CAMs, Guided Backprop, "
                                 "Integrated Gradients): maps of noisy copies combined, in one batched pass.")
    noise = None
    if kind != "off" and not aug_smooth:
        samples, std = st.columns(2)
        noise = NoiseTunnel(kind, int(samples.number_input("Noisy copies", 1, 64, step=1, key=state.NT_SAMPLES)),
                            float(std.number_input("Noise std (model-input units)", 0.0, 10.0, step=0.1,
                                                   key=state.NT_STD)))
    return MethodOptions(aug_smooth=aug_smooth, eigen_smooth=eigen_smooth, noise_tunnel=noise)


def slow_methods(model: LoadedModel, image: Image.Image, image_sha: str, layer: str, class_index: int,
                 methods: list[str], options: MethodOptions | None = None) -> dict:
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
        if key == "scorecam":
            per_channel += " at most (channels that are constant on this image run once)"
        st.caption(f"**{specs[key].display_name}** costs {specs[key].cost}{per_channel}.")
    done = loaders.explanations(model, image, image_sha, layer, class_index, methods, compute=False,
                                options=options)
    pending = [m for m in methods if m not in done]
    if not pending:
        return done
    names = ", ".join(specs[m].display_name for m in pending)
    if done:
        st.caption("Kept from an earlier run: " + ", ".join(specs[m].display_name for m in done) + ".")
    if not st.button(f"Compute {names}", key=state.RUN_SLOW, type="primary"):
        st.caption("They are computed only when you press the button, then kept for this image.")
        return done
    # The run's own status (the toolbar's running indicator is hidden: toolbarMode "minimal").
    # Each method is kept as soon as it ends: changing a control stops the run, not what it finished.
    with st.status(f"Running {names}…", expanded=True) as status:
        bar = st.progress(0.0, text="Starting…")

        def progress(fraction: float, message: str) -> None:
            bar.progress(min(max(float(fraction), 0.0), 1.0), text=message)

        done = loaders.explanations(model, image, image_sha, layer, class_index, methods, progress=progress,
                                    options=options)
        status.update(label=f"Done: {names}", state="complete", expanded=False)
    return done
