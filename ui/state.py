"""Session-state keys, defaults and the current selection shared by the pages.

Keys are namespaced per place (``sidebar_``, ``compare_``) so pages never clash.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import streamlit as st
from PIL import Image

from explainers.models.spec import LoadedModel

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "samples"
GALLERY: dict[str, str] = {  # title -> file in assets/samples (licences in assets/README.md)
    "Cat (Chelsea)": "cat.jpg",
    "Coffee": "coffee.jpg",
    "Astronaut": "astronaut.jpg",
    "Rocket launch": "rocket.jpg",
    "Photographer": "camera.jpg",
    "Hubble deep field": "hubble.jpg",
    "Retina": "retina.jpg",
}
UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif", "dcm", "dicom"]
DEFAULT_MODEL = "efficientnet_lite0"
SOURCES = ["Gallery", "Upload", "Camera"]
STORE_SOURCE = "Store"  # a fourth source, offered once an image was opened from the Review page

# Sidebar widgets (rendered on every run by app.py, so they survive page switches).
SOURCE = "sidebar_source"
GALLERY_CHOICE = "sidebar_gallery"
UPLOAD = "sidebar_upload"
CAMERA = "sidebar_camera"
MODEL = "sidebar_model"
FIT = "sidebar_fit"  # how a non-square image meets the model's input (explainers.fit)
STORE_IMAGE = "sidebar_store_image"  # the StoreImage opened on Compare from the Review page
REVIEWER = "sidebar_reviewer"  # the reviewer's name, recorded with each verdict

# Compare page widgets.
CLASS_SELECT = "compare_class_select"
CLASS_INDEX = "compare_class_index"
CLASS_CONTEXT = "compare_class_context"  # (model, image) the class was last defaulted for
LAYER = "compare_layer"
LAYER_MODEL = "compare_layer_model"  # the model the layer was last defaulted for
LAYER_EVERY = "compare_layer_every_module"  # the layer picker lists every module, not only those with a map
METHODS = "compare_methods"
SLOW_ON = "compare_slow_on"
SLOW_METHODS = "compare_slow_methods"
OPACITY = "compare_opacity"
COLORMAP = "compare_colormap"
SHARED_SCALE = "compare_shared_scale"
FOCUS = "compare_focus"
RUN_SLOW = "compare_run_slow"
AUG_SMOOTH = "compare_aug_smooth"  # pytorch-grad-cam's aug_smooth for the one-pass CAMs
EIGEN_SMOOTH = "compare_eigen_smooth"
NOISE_TUNNEL = "compare_noise_tunnel"  # Captum's noise tunnel for gradient methods ("off" or its type)
NT_SAMPLES = "compare_nt_samples"
NT_STD = "compare_nt_std"

DEFAULT_METHODS = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "eigencam"]
COLORMAPS = ["jet", "turbo", "viridis", "inferno", "magma", "plasma", "gray"]
DEFAULTS: dict[str, object] = {
    SOURCE: "Gallery", GALLERY_CHOICE: "Cat (Chelsea)", MODEL: DEFAULT_MODEL, FIT: "squash",
    METHODS: DEFAULT_METHODS, SLOW_ON: False, SLOW_METHODS: [],
    OPACITY: 0.5, COLORMAP: "jet", SHARED_SCALE: False, AUG_SMOOTH: False, EIGEN_SMOOTH: False,
    NOISE_TUNNEL: "off", NT_SAMPLES: 5, NT_STD: 1.0,  # Captum's defaults, as the CLI's
}
# Page widgets whose value must survive a visit to another page (Streamlit drops
# the state of widgets that were not drawn in a run unless it is re-assigned).
PERSISTENT = [CLASS_SELECT, CLASS_INDEX, LAYER, LAYER_EVERY, METHODS, SLOW_ON, SLOW_METHODS, OPACITY,
              COLORMAP, SHARED_SCALE, FOCUS, AUG_SMOOTH, EIGEN_SMOOTH, NOISE_TUNNEL, NT_SAMPLES, NT_STD,
              REVIEWER]
SELECTION = "_selection"


@dataclass
class Selection:
    """What the sidebar chose this run: the image and the loaded model (either may be missing)."""

    image: Optional[Image.Image] = None
    image_sha256: str = ""
    image_name: str = ""
    model: Optional[LoadedModel] = None


@dataclass(frozen=True)
class StoreImage:
    """An image of a CAM store, opened from the Review page: the store folder, the image and its model."""

    store: str
    image_id: str
    model: str


def init_state() -> None:
    """Set defaults once and keep page widgets' values across page switches."""
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = list(value) if isinstance(value, list) else value
    for key in PERSISTENT:
        if key in st.session_state:
            st.session_state[key] = st.session_state[key]


def selection() -> Selection:
    """The current selection (set by the sidebar earlier in this run)."""
    through_the_frame()
    return st.session_state.get(SELECTION) or Selection()


def through_the_frame() -> None:
    """Make sure this page runs inside app.py (the sidebar that sets the selection), never alone.

    A ``pages/`` folder beside app.py makes Streamlit start in its old multipage mode
    (``PagesManager.uses_pages_directory``, set per process, and on every ``AppTest.run``) until
    ``st.navigation`` turns it off. In that mode a page requested by URL or by the previous run
    runs ALONE: no sidebar, and the last run's selection left in the session (a new gallery choice
    would be ignored). Here the page turns that mode off, as ``st.navigation`` does, and reruns,
    so the run goes through app.py. app.py calls it first, before any widget: a widget drawn in that
    mode's run would swallow the first click of the first visitor of a fresh server.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def require_selection() -> Selection:
    """The selection, or a hint and the end of the page when the image or model is missing."""
    chosen = selection()
    if chosen.image is None or chosen.model is None:
        st.info("Choose an image and a model that loads in the sidebar.")
        st.stop()
    return chosen


def require_model() -> Selection:
    """The selection, or a hint and the end of the page when no model loads (the image may be missing)."""
    chosen = selection()
    if chosen.model is None:
        st.info("Choose a model that loads in the sidebar.")
        st.stop()
    return chosen


def rendering() -> tuple[float, str, bool]:
    """The Compare page's opacity, colormap and shared-scale setting."""
    session = st.session_state
    return float(session[OPACITY]), str(session[COLORMAP]), bool(session[SHARED_SCALE])
