"""Sidebar controls for a DICOM upload: its window (center, width) and, for a cine loop, the frame.

Privacy: only modality, size and window are shown. The file is decoded in memory on
each run and never cached under anything from its header: the pages key their caches
by the hash of the displayed pixels.
"""
from __future__ import annotations

from typing import Optional

import streamlit as st
from PIL import Image

from explainers.errors import ExplainerError
from explainers.file_names import input_label
from explainers.io import image_sha256, load_dicom

FRAME = "sidebar_dicom_frame"
CENTER = "sidebar_dicom_center"
WIDTH = "sidebar_dicom_width"
DEFAULTS_FOR = "sidebar_dicom_defaults_for"  # pixel hash of the file the controls were defaulted for
SHOW_NAME = "sidebar_dicom_show_name"  # off: outputs name the file by its hash (file names often carry patients')


def dicom_image(name: str, data: bytes, errors: list[str]) -> tuple[Optional[Image.Image], str, str]:
    """Decode a DICOM upload with the chosen window and frame; draw the controls.

    Returns:
        (image, pixel hash, name); image None (and a sentence in ``errors``) if it cannot be read.
        The name is the file's hash unless the user ticks "Use the file's name".
    """
    name = input_label(name, data, st.checkbox(
        "Use the file's name", key=SHOW_NAME,
        help="Off: captions, downloads and the report name this DICOM file by its hash, because DICOM "
             "file names often carry the patient's name."))
    try:
        default = load_dicom(data)  # frame 0, the file's own window
    except ExplainerError as error:
        errors.append(f"{name}: {error}")
        return None, "", ""
    info = default.info
    marker = image_sha256(default.image)
    if st.session_state.get(DEFAULTS_FOR) != marker:  # a new file: start from its own window, frame 0
        st.session_state[DEFAULTS_FOR] = marker
        st.session_state[FRAME] = 0
        st.session_state[CENTER] = float(info.window_center)
        st.session_state[WIDTH] = float(max(info.window_width, 1.0))
    st.caption(f"DICOM · {info.modality or 'modality not given'} · {info.width} × {info.height}"
               + (f" · {info.frames} frames" if info.frames > 1 else ""))
    frame = 0
    if info.frames > 1:
        frame = int(st.number_input("Frame", min_value=0, max_value=info.frames - 1, step=1, key=FRAME))
    window = None
    if info.window_width > 0:  # grayscale: colour DICOM has no window
        left, right = st.columns(2)
        center = left.number_input("Window center", step=10.0, key=CENTER, format="%g")
        width = right.number_input("Window width", min_value=1.0, step=10.0, key=WIDTH, format="%g")
        window = (float(center), float(width))
        st.caption(f"Window {center:g} / {width:g} (file: {info.window_center:g} / {info.window_width:g})")
    if frame == 0 and (window is None or window == (info.window_center, info.window_width)):
        return default.image, marker, name
    try:
        chosen = load_dicom(data, frame=frame, window=window)
    except ExplainerError as error:
        errors.append(f"{name}: {error}")
        return None, "", ""
    return chosen.image, image_sha256(chosen.image), name
