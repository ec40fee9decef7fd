"""Paths named in a models manifest stay inside the models folder (or a folder the deployment allows).

A manifest is configuration a server trusts; without this check ``labels = "/proc/self/environ"``
would make the server's environment the class names, and ``weights = "../../x.pt"`` would load
any file the server can read.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModelError

ALLOWED_DIRS_ENV = "CAMSCOPE_WEIGHTS_DIRS"  # extra folders, separated by os.pathsep (":" on Linux)


def allowed_folders(folder: Path) -> list[Path]:
    """The models folder, then every folder listed in ``CAMSCOPE_WEIGHTS_DIRS``, resolved."""
    extra = [Path(p).expanduser() for p in os.environ.get(ALLOWED_DIRS_ENV, "").split(os.pathsep) if p.strip()]
    return [Path(f).resolve() for f in [folder, *extra]]


def contained_file(folder: Path, value: str, what: str) -> Path:
    """``value`` (relative to ``folder``) resolved, symlinks included; it must be a file inside an allowed folder.

    Args:
        folder: the folder holding models.toml.
        value: the path as written in the manifest.
        what: "weights" or "labels", for the message.

    Raises:
        ModelError: the file escapes every allowed folder, or does not exist.
    """
    written = Path(value).expanduser()
    path = (folder / written).resolve()  # an absolute ``written`` replaces ``folder``
    roots = allowed_folders(folder)
    if not any(path.is_relative_to(root) for root in roots):
        raise ModelError(f"the {what} file {value!r} is outside the models folder; keep it there, or list its "
                         f"folder in {ALLOWED_DIRS_ENV}.")
    if not path.is_file():
        raise ModelError(f"the {what} file {folder / written} does not exist.")
    return path


def contained_folder(folder: Path, value: str, what: str = "model folder") -> Path:
    """As ``contained_file``, for a Hugging Face or timm model folder: the folder and every file in it
    (symlinks resolved) must lie inside an allowed folder.

    Raises:
        ModelError: the folder or one of its files escapes every allowed folder, or it does not exist.
    """
    path = (folder / Path(value).expanduser()).resolve()
    roots = allowed_folders(folder)
    inside = lambda p: any(p.is_relative_to(root) for root in roots)  # noqa: E731
    if not inside(path):
        raise ModelError(f"the {what} {value!r} is outside the models folder; keep it there, or list its "
                         f"folder in {ALLOWED_DIRS_ENV}.")
    if not path.is_dir():
        raise ModelError(f"the {what} {folder / value} does not exist.")
    for item in path.rglob("*"):
        if not inside(item.resolve()):
            raise ModelError(f"the {what} {value!r} holds {item.name!r}, a link to a file outside the models "
                             f"folder; copy the file in, or list its folder in {ALLOWED_DIRS_ENV}.")
    return path
