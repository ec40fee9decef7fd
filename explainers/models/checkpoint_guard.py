"""Checks on a .pt/.pth/.bin file before torch unpickles anything: bounded memory and time.

``torch.load(weights_only=True)`` runs no code, but its unpickler is pure Python (about a
second per megabyte of pickle opcodes) and it inflates each zip member to its declared size.
Reading only the zip index, this refuses what would cost minutes or gigabytes: a pickle far
larger than any state_dict's, a member that inflates far beyond its bytes in the file
(torch.save never compresses), and bytes that are no PyTorch checkpoint at all.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from ..errors import ModelError

MAX_PICKLE_MB = 4  # a state_dict's data.pkl is a few hundred KB even for large models
MAX_RATIO = 20  # inflated / stored bytes; torch.save writes members uncompressed (ratio 1)
MAX_LEGACY_MB = 8  # the pre-1.6 format is one pickle stream: its size bounds the unpickling time
# torch.save's legacy format starts with its magic number pickled with protocol 2
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
MB = 2**20


def check_torch_file(path: Path) -> None:
    """Raise ModelError, with a sentence, for a file torch.load must not be given."""
    if zipfile.is_zipfile(path):
        _check_zip(path)
        return
    with open(path, "rb") as file:
        head = file.read(len(LEGACY_MAGIC))
    if head != LEGACY_MAGIC:
        raise ModelError(f"{path.name} is not a readable PyTorch checkpoint: it is neither torch.save's zip "
                         "format nor its legacy format (damaged, or another kind of file).")
    size = path.stat().st_size
    if size > MAX_LEGACY_MB * MB:
        raise ModelError(f"{path.name} is in PyTorch's legacy (pre-1.6) format and is {size / MB:.0f} MB; "
                         f"CAMscope reads legacy files up to {MAX_LEGACY_MB} MB. Re-save it with a recent "
                         "torch.save (the zip format).")


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError, ValueError):
        raise ModelError(f"{path.name} is not a readable PyTorch checkpoint: its zip index is damaged.") from None
    for info in members:
        inflated, stored = info.file_size, info.compress_size
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelError(f"{path.name} is not a readable PyTorch checkpoint: a member uses a compression "
                             "torch.save never writes.")
        if info.filename.endswith("data.pkl") and inflated > MAX_PICKLE_MB * MB:
            raise ModelError(f"{path.name} was refused: its data.pkl (the pickled index of the tensors) is "
                             f"{inflated / MB:.1f} MB, and a state_dict's is at most a few MB (CAMscope reads "
                             f"up to {MAX_PICKLE_MB} MB); unpickling it would take minutes.")
        if inflated > MB and inflated > MAX_RATIO * max(stored, 1):
            raise ModelError(f"{path.name} was refused: a member unpacks to {inflated / MB:,.0f} MB from "
                             f"{stored / MB:.1f} MB in the file. torch.save never compresses, so this is "
                             "treated as a decompression bomb.")
