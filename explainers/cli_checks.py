"""What every subcommand checks before the slow part: where it will write, and text safe for a terminal.

Output paths are checked (creating nothing) BEFORE any computation, so a bad ``--out``
costs a second, not a finished run, and is explained in one plain line.
"""
from __future__ import annotations

import os
import secrets
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


def _nearest_existing(path: Path) -> Path:
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _probe_write(folder: Path) -> None:
    with tempfile.TemporaryFile(dir=folder):  # a real write (permission bits do not tell root's story); no trace
        pass


def writable_folder(path: str | Path, flag: str = "--out") -> Path:
    """Check, creating nothing, that the output folder exists or can be created, and can be written.

    Raises:
        OutputError: the path (or a folder above it) is a file, or nothing can be written there.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{flag} {printable(folder)} is an existing file; give a folder (it is created if needed).")
    _check_creatable(folder, flag, "folder")
    return folder


def writable_file(path: str | Path, flag: str = "--out") -> Path:
    """Check, changing nothing, that the output file can be written with ``write_file`` (a new file
    in its folder, then renamed over any old one).

    Raises:
        OutputError: the path is a folder, or no file can be created in its folder.
    """
    file = Path(path)
    if file.is_dir():
        raise OutputError(f"{flag} {printable(file)} is a folder; give a file name, "
                          f"e.g. {printable(file / 'report.html')}.")
    _check_creatable(file.parent, flag, "file", shown=file)
    return file


def _check_creatable(folder: Path, flag: str, kind: str, shown: Path | None = None) -> None:
    shown = folder if shown is None else shown
    probe = _nearest_existing(folder)
    if not probe.is_dir():
        raise OutputError(f"{flag} {printable(shown)} cannot be written: {printable(probe)} is a file.")
    try:
        _probe_write(probe)
    except OSError as error:
        raise OutputError(f"{flag} {printable(shown)} cannot be written: no file can be created in "
                          f"{printable(probe)} ({_reason(error)}); choose another {kind}.") from None


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file beside ``path``, then rename it over ``path`` (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as handle:  # umask applies
        handle.write(data)
    os.replace(partial, path)


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
