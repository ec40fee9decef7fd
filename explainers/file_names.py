"""How outputs (settings.json, summary.json, the report, captions) name an input file.

DICOM file names often carry the patient's name (``JANE_DOE_CT.dcm``), so a DICOM input is
named by the hash of its bytes unless the user asks for its real name; other images keep theirs.

Example:
    >>> input_label("JANE_DOE_CT.dcm", b"\\0" * 128 + b"DICM")
    'dicom-314a5c728edd.dcm'
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from .dicom import is_dicom

HASH_CHARS = 12  # 48 bits: enough to tell a user's files apart, short enough to read


def input_label(name: str, data: bytes, keep_name: bool = False) -> str:
    """``name`` for ordinary images (or when ``keep_name``); ``dicom-<sha256 prefix>.dcm`` for DICOM data."""
    if keep_name or not is_dicom(data[:132]):
        return name
    return f"dicom-{hashlib.sha256(data).hexdigest()[:HASH_CHARS]}.dcm"


def input_label_of_path(path: str | Path, keep_name: bool = False) -> str:
    """As ``input_label`` for a file on disk; a DICOM file's folder is left out too (it can name the patient)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return str(path)  # reading the image itself will say what is wrong
    if keep_name or not is_dicom(head):
        return str(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"dicom-{digest.hexdigest()[:HASH_CHARS]}.dcm"
