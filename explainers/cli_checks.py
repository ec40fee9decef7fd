"""What every subcommand checks before the slow part: where it will write, and text safe for a terminal.

Output paths are checked (and the folder created) BEFORE any computation, so a bad ``--out``
costs a second, not a finished run, and is explained in one plain line.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from .errors import ExplainerError


class OutputError(ExplainerError):
    """An output path cannot be written."""


def printable(text: object) -> str:
    """``text`` with control characters (terminal escape sequences included) shown escaped, e.g. ``\\x1b``."""
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in str(text))


def _reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def writable_folder(path: str | Path, flag: str = "--out") -> Path:
    """Create the output folder if needed and make sure a file can be written in it.

    Raises:
        OutputError: the path is a file, or the folder cannot be created or written.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{flag} {printable(folder)} is an existing file; give a folder (it is created if needed).")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # a real write: permission bits do not tell root's story
            pass
    except OSError as error:
        raise OutputError(f"{flag} {printable(folder)} cannot be written ({_reason(error)}); "
                          "choose another folder.") from None
    return folder


def writable_file(path: str | Path, flag: str = "--out") -> Path:
    """Make sure the output file can be written (its folder is created); an existing file is left as it is.

    Raises:
        OutputError: the path is a folder, or the file or its folder cannot be written.
    """
    file = Path(path)
    if file.is_dir():
        raise OutputError(f"{flag} {printable(file)} is a folder; give a file name, e.g. {printable(file / 'report.html')}.")
    existed = file.exists()
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(file, "ab"):  # appends nothing: an existing file is unchanged
            pass
    except OSError as error:
        raise OutputError(f"{flag} {printable(file)} cannot be written ({_reason(error)}); "
                          "choose another file.") from None
    if not existed:
        os.unlink(file)
    return file


def warn(message: str) -> None:
    """One warning line on stderr, in the CLI's voice."""
    print(f"camscope: warning: {printable(' '.join(message.split()))}", file=sys.stderr)


def load_model_warning(name: str, device: str | None):
    """``load_model``, with any warning about the weights (e.g. fp16 or int8 tensors cast) printed."""
    from .models import load_model

    model = load_model(name, device=device)
    for note in model.weights_notes:
        warn(note)
    return model
