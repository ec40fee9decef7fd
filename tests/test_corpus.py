"""The corpus of bad and odd files through the engine and through the app, and DICOM specifics."""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explainers.dicom import MAX_FRAMES
from explainers.errors import ImageError
from explainers.io import NOTES_KEY, dicom_info, load_dicom, load_image, load_notes, sniff_format

from tests import corpus_hostile
from tests.corpus import PATIENT, Case, build, dicom
from tests.corpus_hostile import dicom_with

CASES = build()
BY_NAME = {c.name: c for c in CASES}


def test_the_corpus_is_large_and_covers_both_outcomes():
    assert len(CASES) >= 20 and len(BY_NAME) == len(CASES)
    assert sum(c.error is None for c in CASES) >= 10 and sum(c.error is not None for c in CASES) >= 8


def check_image(case: Case, image: Image.Image) -> None:
    assert image.mode == "RGB" and image.size == case.size
    array = np.asarray(image).astype(int)
    for (x, y), expected in case.pixels.items():
        assert np.abs(array[y, x] - np.array(expected)).max() <= case.tolerance, (case.name, (x, y), array[y, x])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_engine(case, tmp_path):
    path = tmp_path / case.name
    path.write_bytes(case.data)
    for source in (case.data, path, io.BytesIO(case.data)):
        if case.error is None:
            check_image(case, load_image(source))
        else:
            with pytest.raises(ImageError) as info:
                load_image(source)
            assert case.error in str(info.value)


def test_formats_are_told_by_bytes_not_names():
    assert sniff_format(BY_NAME["plain.bmp"].data) == "BMP"
    assert sniff_format(BY_NAME["ct.dcm"].data) == "DICOM"
    assert sniff_format(BY_NAME["page.png"].data) is None  # named .png, is HTML
    assert sniff_format(BY_NAME["archive.jpg"].data) is None  # named .jpg, is a zip
    assert sniff_format(b"RIFF\x00\x00\x00\x00WEBPVP8L") == "WEBP"
    assert sniff_format(b"RIFF\x00\x00\x00\x00WAVEfmt ") is None  # a RIFF that is not WebP


def test_a_bomb_is_refused_quickly():
    import time

    started = time.perf_counter()
    with pytest.raises(ImageError, match="too large"):
        load_image(BY_NAME["bomb.png"].data)
    assert time.perf_counter() - started < 0.5  # refused from the header, nothing decoded


def test_frame_count_cap(monkeypatch):
    import explainers.io as image_io

    monkeypatch.setattr(image_io, "MAX_FRAMES", 1)
    with pytest.raises(ImageError, match="2 frames; CAMscope reads files with up to 1"):
        load_image(BY_NAME["animated.gif"].data)
    assert MAX_FRAMES >= 100


# --- DICOM -------------------------------------------------------------------------------------------

def test_dicom_window_override_in_modality_units():
    data = BY_NAME["ct.dcm"].data  # -1024, 0, 1024, 3070 HU
    # LINEAR window 500 / 2001 (PS3.3 C.11.2.1.2.1): c = 499.5, w = 2000; at or below -500.5 -> black,
    # above 1499.5 -> white, between: ((v - c) / w + 0.5) of the range -> 0 HU: 0.25025 * 255 = 63.8
    shown = np.asarray(load_image(data, window=(500, 2001)))[..., 0].astype(int)
    assert shown.tolist() == [[0, round(((0 - 499.5) / 2000 + 0.5) * 255)],
                              [round(((1024 - 499.5) / 2000 + 0.5) * 255), 255]] == [[0, 64], [194, 255]]
    with pytest.raises(ImageError, match="window width"):
        load_image(data, window=(0, 0.5))


def test_dicom_frames_and_info_without_other_header_fields():
    data = BY_NAME["cine.dcm"].data
    for frame, value in enumerate((10, 80, 200)):
        assert np.asarray(load_image(data, frame=frame)).tolist() == [[[value] * 3] * 4] * 4
    with pytest.raises(ImageError, match="Frame 3 does not exist: this DICOM file has 3 frame"):
        load_image(data, frame=3)
    info = dicom_info(data)
    assert dataclasses.asdict(info) == {"modality": "US", "width": 4, "height": 4, "frames": 3,
                                        "window_center": 128.0, "window_width": 256.0}
    # no window in the file: the data's own range is the window
    mono1 = dicom_info(BY_NAME["mono1.dcm"].data)
    assert (mono1.window_center, mono1.window_width) == (127.5, 255.0)
    with pytest.raises(ImageError, match="not a DICOM file"):
        load_dicom(BY_NAME["tiny.png"].data)


def test_dicom_signed_pixels_and_pixel_limit(monkeypatch):
    data = dicom(np.array([[-1000, 0], [1000, 40]]), bits_stored=16, signed=True, window=(40, 400))
    shown = np.asarray(load_image(data))[..., 0].astype(int)
    # LINEAR: c = 39.5, w = 399; 0 -> ((0 - 39.5) / 399 + 0.5) * 65535 - 32768, scaled over 65535
    assert shown[0, 0] == 0 and shown[1, 0] == 255
    assert shown[0, 1] == round(((0 - 39.5) / 399 + 0.5) * 255)
    monkeypatch.setenv("CAMSCOPE_MAX_PIXELS", "3")
    with pytest.raises(ImageError, match=r"too large \(2 x 2 pixels\)"):
        load_image(data)


def test_dicom_headers_are_not_logged_or_returned(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("ct.dcm", "mono1.dcm", "cine.dcm", "jpegls.dcm", "DICOMDIR.dcm"):
        try:
            result = load_dicom(BY_NAME[name].data)
            assert PATIENT not in repr(result.info) and "31337" not in repr(result.info)
        except ImageError as error:
            assert PATIENT not in str(error)
    assert PATIENT not in caplog.text and "31337" not in caplog.text


# --- hostile inputs: bounded memory and time, honest pixels, plain sentences ---------------------------

HOSTILE = corpus_hostile.build()


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory) -> dict:
    """Every hostile case read in a forked child of one subprocess (tests/hostile_probe.py)."""
    folder = tmp_path_factory.mktemp("hostile")
    jobs = []
    for case in HOSTILE:
        (folder / case.name).write_bytes(case.make())
        jobs.append([case.reader, str(folder / case.name)])
    (folder / "jobs.json").write_text(json.dumps(jobs))
    probe = Path(__file__).parent / "hostile_probe.py"
    done = subprocess.run([sys.executable, str(probe), str(folder / "jobs.json")], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(zip((c.name for c in HOSTILE), json.loads(done.stdout.strip().splitlines()[-1])))


@pytest.mark.parametrize("case", HOSTILE, ids=lambda c: c.name)
def test_hostile_input_is_bounded_and_explained(case, hostile_results):
    result = hostile_results[case.name]
    assert result["outcome"] == ("refused" if case.error else "ok"), result
    assert (case.error or "") in result["message"]
    assert (case.note or "") in result["note"], result
    assert result["peak_mb"] <= case.max_mb, result
    assert result["seconds"] <= case.max_s, result


def test_scaled_pixels_are_hand_computed():
    by_name = {c.name: c for c in HOSTILE}
    gray = {  # finite range, NaN/Inf black; from 0 up: by the max (floats within [0, 1]: by 1)
        "nan.tif": [[0, 128], [255, 0]], "inf.tif": [[0, 128], [255, 0]],
        "negative.tif": [[0, 85], [170, 255]],  # -4..-1: (v + 4) * 85
        "signed16.tif": [[0, 64], [128, 255]],  # -1000..3000: (v + 1000) * 255 / 4000
        "window-nan.dcm": [[0, 85], [170, 255]],  # 0..300 HU, the header's window unusable: the data's range
        "window-text.dcm": [[0, 85], [170, 255]],
    }
    for name, expected in gray.items():
        image = load_image(by_name[name].make())
        assert np.asarray(image)[..., 0].tolist() == expected, name
        assert load_notes(image), name
    palette = np.asarray(load_image(by_name["palette.dcm"].make()))
    assert palette[0, 0].tolist() == [255, 0, 0] and palette[0, 1].tolist() == [0, 0, 255]
    assert np.asarray(load_image(by_name["dicm-at-128.png"].make()))[0, :4, 0].tolist() == [0, 1, 2, 3]
    assert load_notes(load_image(BY_NAME["ct.dcm"].data)) == []  # an ordinary file carries no note


def test_a_deflated_dicom_is_inflated_under_a_cap(monkeypatch):
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    import explainers.dicom_read as dicom_read

    pixels = np.tile(np.arange(64) * 60, (64, 1))  # a ramp: 0..3780, repeated on every row
    deflated = dicom(pixels, bits_stored=12, syntax=DeflatedExplicitVRLittleEndian)
    plain = dicom(pixels, bits_stored=12)
    assert len(deflated) < len(plain) / 2  # really deflated by pydicom
    assert np.array_equal(np.asarray(load_image(deflated)), np.asarray(load_image(plain)))
    monkeypatch.setattr(dicom_read, "MAX_INFLATED_MB", 0.004)  # 4 KB: less than its 8 KB of pixels
    with pytest.raises(ImageError, match="inflates to more than 0.004 MB"):
        load_image(deflated)


def test_max_pixels_setting_works_both_ways(monkeypatch):
    from tests.corpus import _bomb_png

    header_only = _bomb_png(10_000, 9_500)  # 95 MP, past Pillow's own 89.5 MP check; no pixel data
    with pytest.raises(ImageError, match="up to 50,000,000 pixels"):
        load_image(header_only)
    monkeypatch.setenv("CAMSCOPE_MAX_PIXELS", "100000000")
    with pytest.raises(ImageError) as raised:  # past the size checks: it fails only for its missing data
        load_image(header_only)
    assert "truncated or damaged" in str(raised.value)
    monkeypatch.setenv("CAMSCOPE_MAX_PIXELS", "90000000")
    with pytest.raises(ImageError, match="up to 90,000,000 pixels"):
        load_image(header_only)


def test_dicom_header_values_reach_no_log_or_warning(caplog):
    import warnings

    data = dicom_with(SpecificCharacterSet=("CS", "DOE_JANE"), WindowCenter=("DS", "DOE_JANE_W"))
    jpeg12 = corpus_hostile.jpeg12_dicom()
    caplog.clear()  # building the files may log; only reading them counts
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_image(data)
        with pytest.raises(ImageError, match="pylibjpeg"):  # pydicom's decoders log their failures
            load_image(jpeg12)
    assert "DOE_JANE" not in caplog.text and not [w for w in caught if "DOE_JANE" in str(w.message)]
    assert not [r for r in caplog.records if r.name.startswith("pydicom")], caplog.text


def test_a_legacy_format_checkpoint_still_loads(tmp_path):
    import torch

    from explainers.models.user import read_state_dict

    torch.save({"w": torch.arange(3.0)}, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    assert read_state_dict(tmp_path / "old.pt")["w"].tolist() == [0.0, 1.0, 2.0]


# --- the app -----------------------------------------------------------------------------------------

streamlit = pytest.importorskip("streamlit")
from tests.test_app import assert_clean, new_app, panel_captions  # noqa: E402


def upload(name: str, data: bytes):
    from ui import state

    at = new_app().run()
    at.radio(key=state.SOURCE).set_value("Upload").run()
    at.file_uploader(key=state.UPLOAD).upload(name, data, "application/octet-stream").run()
    return at


def texts(at) -> str:
    """Every string the page shows (markdown, captions, errors, widget labels and values)."""
    parts = []
    for kind in ("markdown", "caption", "error", "warning", "info", "title", "number_input", "text"):
        for element in getattr(at, kind):
            parts += [str(getattr(element, "value", "")), str(getattr(element, "label", ""))]
    parts += [c for image in at.image for c in image.captions]
    return "\n".join(parts)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_app(case):
    at = upload(case.name, case.data)
    assert not at.exception, [e.value for e in at.exception]
    if case.error is None:
        assert_clean(at)
        assert panel_captions(at), f"{case.name}: no heatmap"
    else:
        assert any(case.error in e.value for e in at.error), [e.value for e in at.error]
        assert not panel_captions(at)
    assert PATIENT not in texts(at) and "31337" not in texts(at)


@pytest.mark.parametrize("case", [c for c in HOSTILE if c.app], ids=lambda c: c.name)
def test_app_hostile(case):
    at = upload(case.name, case.make())
    assert not at.exception, [e.value for e in at.exception]
    if case.error:
        assert any(case.error in e.value for e in at.error), [e.value for e in at.error]
        assert not panel_captions(at)
    else:
        assert_clean(at)
        assert panel_captions(at), f"{case.name}: no heatmap"
        if case.note:  # what was done to the pixels is on the screen, next to the picture explained
            assert any(case.note in w.value for w in at.warning), [w.value for w in at.warning]


def test_app_dicom_window_and_frame_controls():
    from ui import dicom_controls

    at = upload("cine.dcm", BY_NAME["cine.dcm"].data)
    assert_clean(at)
    assert any("DICOM · US · 4 × 4 · 3 frames" in c.value for c in at.caption)
    assert at.number_input(key=dicom_controls.CENTER).value == 128.0
    assert at.number_input(key=dicom_controls.WIDTH).value == 256.0
    first = at.image[0].value[0] if at.image else None
    at.number_input(key=dicom_controls.FRAME).set_value(2).run()
    assert_clean(at)
    assert panel_captions(at)
    assert at.image[0].value[0] != first  # a different picture is shown and explained
    at.number_input(key=dicom_controls.WIDTH).set_value(10.0).run()
    assert_clean(at)
    assert any("Window 128 / 10 (file: 128 / 256)" in c.value for c in at.caption)


def _png_chunks(data: bytes) -> list[bytes]:
    import struct

    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunks.append(kind)
        at += 12 + length
    return chunks


def test_exports_carry_no_metadata():
    """A JPEG with EXIF (GPS-like text), an ICC profile and a PNG with text chunks: nothing survives."""
    from PIL import ImageCms, PngImagePlugin

    from explainers.render import overlay, to_png_bytes

    exif = Image.Exif()
    exif[0x010E] = "Patient Doe^Jane, ward 7"  # ImageDescription
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buffer, format="JPEG", exif=exif.tobytes(), icc_profile=icc)
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", PATIENT)
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG", pnginfo=text, icc_profile=icc)
    for data in (buffer.getvalue(), png.getvalue()):
        image = load_image(data)
        assert set(image.info) <= {NOTES_KEY}  # only CAMscope's own notes on the reading (a flat picture here)
        for exported in (to_png_bytes(image), to_png_bytes(overlay(image, np.ones((8, 8)), 0.5, "jet"))):
            assert _png_chunks(exported) == [b"IHDR", b"IDAT", b"IEND"]
            assert b"Doe" not in exported


def test_app_dataset_upload_with_a_bad_entry_name():
    from tests.test_app_confusion import DATASET, open_page
    from ui import dataset as dataset_page

    case = next(c for c in HOSTILE if c.name == "bad-utf8-name.zip")
    at = open_page(DATASET)
    at.file_uploader(key=dataset_page.UPLOAD).upload(case.name, case.make(), "application/zip").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(case.error in e.value for e in at.error), [e.value for e in at.error]
