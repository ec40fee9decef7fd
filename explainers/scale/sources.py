"""What a run explains: the images of a folder, an ImageFolder zip, or a CSV/Parquet listing.

Nothing is read here but names: the listing holds one small ``ImageRef`` per image (so a million
images fit in memory), and each image's bytes are read by the worker that explains it.

Labels: in a folder or zip, the class folder (``tabby/001.jpg`` -> "tabby"); in a listing, its
``label`` column (a class name or index). A label that names no class of the model stays unknown.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..dataset import DatasetError, _ignored, _safe_parts, _unsafe
from ..errors import ImageError

PATH_COLUMNS = ("path", "image", "image_path", "file", "filename")
LABEL_COLUMNS = ("label", "true_label", "class", "true_class")
MAX_FILE_BYTES = 256 * 2**20  # larger files are not images CAMscope reads (load_image caps the pixels)
SYMLINK = "A symbolic link is not followed."


@dataclass(frozen=True)
class ImageRef:
    """One image to explain: its id in the store, where its bytes are, its label if known."""

    image_id: str  # the path inside SOURCE (POSIX), or as written in the listing
    location: str  # absolute path of the file, or of the zip holding it
    member: Optional[str] = None  # the zip member's name
    label: Optional[str] = None
    problem: Optional[str] = None  # set when the file is known to be unreadable (becomes a skipped row)

    def read(self) -> bytes:
        """The file's bytes; ImageError with a sentence when it cannot be read."""
        if self.problem:
            raise ImageError(self.problem)
        if self.member is None:
            path = Path(self.location)
            if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
                raise ImageError(f"The file is larger than {MAX_FILE_BYTES // 2**20} MB.")
            try:
                return path.read_bytes()
            except FileNotFoundError:
                raise ImageError(f"There is no file at {self.image_id!r}.") from None
            except OSError:
                raise ImageError("The file cannot be read (permission or disk error).") from None
        try:
            with zipfile.ZipFile(self.location) as archive, archive.open(self.member) as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, ValueError, KeyError) as error:
            reason = "it is encrypted" if "encrypted" in str(error) else "it is damaged in the zip"
            raise ImageError(f"The file cannot be read: {reason}.") from None
        if len(data) > MAX_FILE_BYTES:
            raise ImageError(f"The file is larger than {MAX_FILE_BYTES // 2**20} MB.")
        return data


def list_source(source: str | Path) -> list[ImageRef]:
    """Every image of SOURCE, sorted by image_id.

    Raises:
        DatasetError: not a folder, zip, .csv or .parquet; an unsafe zip; a listing without a path column.
    """
    path = Path(source)
    if path.is_dir():
        refs = _from_folder(path.resolve())
    elif not path.is_file():
        raise DatasetError(f"There is no folder, zip, CSV or Parquet file at {str(path)!r}.")
    elif path.suffix.lower() in (".csv", ".parquet", ".pq"):
        refs = _from_listing(path.resolve())
    elif zipfile.is_zipfile(path):
        refs = _from_zip(path.resolve())
    else:
        raise DatasetError(f"{path.name} is not a folder, a zip, a .csv or a .parquet listing of images.")
    if not refs:
        raise DatasetError(f"{path.name} holds no images.")
    return sorted(refs, key=lambda r: r.image_id)


def _label(parts: tuple[str, ...]) -> Optional[str]:
    return parts[0] if len(parts) >= 2 else None  # ImageFolder: the class folder


def _from_folder(root: Path) -> list[ImageRef]:
    refs: list[ImageRef] = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        here = Path(directory)
        dirs[:] = sorted(d for d in dirs if not _ignored((d,)) and not (here / d).is_symlink())
        for name in files:
            path = here / name
            parts = path.relative_to(root).parts
            if _ignored(parts):
                continue
            problem = SYMLINK if path.is_symlink() else None
            refs.append(ImageRef("/".join(parts), str(path), None, _label(parts), problem))
    return refs


def _from_zip(path: Path) -> list[ImageRef]:
    import stat

    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError):
        raise DatasetError(f"{path.name} is not a zip file (or it is damaged).") from None
    members = []
    for info in infos:
        parts = _safe_parts(info.filename)  # refuses absolute paths and '..'
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _unsafe(info.filename)
        if not info.is_dir() and parts and not _ignored(parts):
            members.append((parts, info.filename))
    depth = 0  # a zip of the folder "pets/" holding "pets/tabby/1.jpg": strip the shared root
    while members and all(len(p) > depth + 2 for p, _ in members) and len({p[depth] for p, _ in members}) == 1:
        depth += 1
    return [ImageRef("/".join(p[depth:]), str(path), name, _label(p[depth:])) for p, name in members]


def _from_listing(path: Path) -> list[ImageRef]:
    import pyarrow.csv as pv
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path) if path.suffix.lower() != ".csv" else pv.read_csv(
            path, convert_options=pv.ConvertOptions(strings_can_be_null=True))
    except Exception as error:  # pyarrow raises its own types for malformed files
        raise DatasetError(f"{path.name} cannot be read as a listing ({str(error).splitlines()[0]}).") from None
    names = {c.lower(): c for c in table.column_names}
    path_col = next((names[c] for c in PATH_COLUMNS if c in names), None)
    if path_col is None:
        raise DatasetError(f"{path.name} has no column of image paths: name one of {', '.join(PATH_COLUMNS)}.")
    label_col = next((names[c] for c in LABEL_COLUMNS if c in names), None)
    paths = table.column(path_col).to_pylist()
    labels = table.column(label_col).to_pylist() if label_col else [None] * len(paths)
    refs, seen = [], set()
    for written, label in zip(paths, labels):
        if written is None or str(written).strip() == "" or str(written) in seen:
            continue  # blank rows and repeats: one image, one id
        seen.add(str(written))
        target = Path(str(written))
        target = target if target.is_absolute() else path.parent / target
        refs.append(ImageRef(str(written), str(target), None, None if label is None else str(label).strip() or None))
    return refs
