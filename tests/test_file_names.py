"""A DICOM file's name (often the patient's) stays out of captions, settings, summaries and reports
unless the user opts in; other images keep their names."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from explainers.cli import main
from explainers.file_names import input_label, input_label_of_path
from tests.corpus import dicom

NAME = "JANE_DOE_CT.dcm"


@pytest.fixture(scope="module")
def scan() -> bytes:
    ramp = np.add.outer(np.arange(64), np.arange(64)) * 16  # (64, 64), 0..2016
    return dicom(ramp, bits_stored=12, window=(1000, 2000))


@pytest.fixture
def scan_file(tmp_path, scan):
    folder = tmp_path / "DOE_JANE"  # folders can name the patient too
    folder.mkdir()
    (folder / NAME).write_bytes(scan)
    return folder / NAME


def hashed(data: bytes) -> str:
    return f"dicom-{hashlib.sha256(data).hexdigest()[:12]}.dcm"


def test_dicom_is_named_by_its_hash_unless_asked(scan, scan_file, cat_image, tmp_path):
    assert input_label(NAME, scan) == hashed(scan) and input_label(NAME, scan, keep_name=True) == NAME
    assert input_label_of_path(scan_file) == hashed(scan)
    assert input_label_of_path(scan_file, keep_name=True) == str(scan_file)
    cat_image.save(tmp_path / "JANE_DOE.png")
    assert input_label("JANE_DOE.png", (tmp_path / "JANE_DOE.png").read_bytes()) == "JANE_DOE.png"
    assert input_label_of_path(tmp_path / "JANE_DOE.png") == str(tmp_path / "JANE_DOE.png")


def test_cli_outputs_name_a_dicom_by_its_hash(scan, scan_file, tmp_path, capsys):
    assert main(["report", str(scan_file), "--out", str(tmp_path / "r.html"), "--device", "cpu"]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "JANE" not in page and hashed(scan) in page
    assert main(["explain", str(scan_file), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    summary = (tmp_path / "out" / "summary.json").read_text()
    assert "JANE" not in summary and json.loads(summary)["image"]["path"] == hashed(scan)
    assert "JANE" not in capsys.readouterr().out
    assert main(["report", str(scan_file), "--out", str(tmp_path / "named.html"), "--device", "cpu",
                 "--dicom-file-name"]) == 0
    assert NAME in (tmp_path / "named.html").read_text()


def test_app_names_a_dicom_upload_by_its_hash_until_the_box_is_ticked(scan):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from ui import dicom_controls, state
    from tests.test_app import APP, panel_captions

    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state[state.METHODS] = ["gradcam"]
    at.run()
    at.radio(key=state.SOURCE).set_value("Upload").run()
    at.file_uploader(key=state.UPLOAD).upload(NAME, scan, "application/dicom").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert panel_captions(at)
    shown = [c for image in at.image for c in image.captions] + [c.value for c in at.caption]
    assert at.session_state[state.SELECTION].image_name == hashed(scan)
    assert any(hashed(scan) in c for c in shown) and not any("JANE" in c for c in shown)
    at.checkbox(key=dicom_controls.SHOW_NAME).check().run()
    assert at.session_state[state.SELECTION].image_name == NAME
    assert any(NAME in c for image in at.image for c in image.captions)
