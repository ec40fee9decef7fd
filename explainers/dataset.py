"""Labelled image sets in ImageFolder layout (``class_name/*.jpg``), from a folder or a zip.

Reading is defensive because the zip comes from a browser upload: nothing is
unpacked to disk (members are read in memory), an entry that points outside the
archive (``../``, an absolute path, a symbolic link) refuses the whole archive, and
limits on the file count and the total uncompressed size refuse zip bombs before
anything is decompressed. Files that are not images are decoded later, one by one,
and become listed skips, never a failure of the whole set.

Example:
    >>> data = read_dataset("pets.zip")
    >>> data.folders, len(data.files), data.skipped
    (['cup', 'tabby'], 40, [Skip(path='tabby/notes.txt', reason='...')])

Folder names become class indices in ``class_names.map_folders``.
"""
from __future__ import annotations

import copy
import io
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Sequence, Union

from .errors import ExplainerError

DatasetSource = Union[str, Path, bytes, bytearray, BinaryIO]
IGNORED_DIRS = {"__MACOSX"}  # macOS archive metadata, not images
IGNORED_FILES = {"Thumbs.db", "desktop.ini"}
OVERLONG = "it unpacks to more than its zip entry says"
MAX_FILES_ENV, MAX_MB_ENV = "CAMSCOPE_DATASET_MAX_FILES", "CAMSCOPE_DATASET_MAX_MB"


class DatasetError(ExplainerError):
    """A dataset cannot be read, is unsafe, too large, or its folders do not match the model's classes."""


@dataclass(frozen=True)
class DatasetLimits:
    """What a dataset may hold at most (checked before anything is decompressed)."""

    max_files: int = 5000
    max_total_bytes: int = 500 * 1024 * 1024  # uncompressed

    @classmethod
    def from_env(cls) -> "DatasetLimits":
        """Defaults, or a deployment's own: CAMSCOPE_DATASET_MAX_FILES and CAMSCOPE_DATASET_MAX_MB."""
        limits = cls()
        try:
            files = int(os.environ.get(MAX_FILES_ENV) or limits.max_files)
            megabytes = float(os.environ.get(MAX_MB_ENV) or limits.max_total_bytes / 2**20)
        except ValueError:
            raise DatasetError(f"{MAX_FILES_ENV} and {MAX_MB_ENV} must be numbers.") from None
        if files < 1 or megabytes <= 0:
            raise DatasetError(f"{MAX_FILES_ENV} and {MAX_MB_ENV} must be positive.")
        return cls(files, int(megabytes * 2**20))


@dataclass(frozen=True)
class DatasetFile:
    """One file of the set, read into memory."""

    path: str  # relative POSIX path inside the set, e.g. "tabby/0001.jpg"
    folder: str  # the class folder, e.g. "tabby"
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Skip:
    """A file left out of the set, with the reason in plain words."""

    path: str
    reason: str


@dataclass
class Dataset:
    """The files of a labelled set, grouped by class folder."""

    name: str
    files: list[DatasetFile]
    skipped: list[Skip] = field(default_factory=list)

    @property
    def folders(self) -> list[str]:
        """The class folders that hold at least one file, sorted (ImageFolder's order)."""
        return sorted({f.folder for f in self.files})


def read_dataset(source: DatasetSource, limits: DatasetLimits = DatasetLimits(), name: str = "",
                 flat: bool = False) -> Dataset:
    """Read a folder or a zip in ImageFolder layout into memory.

    Args:
        source: a folder path, a ``.zip`` path, the zip's bytes, or a binary file object.
        limits: most files and most uncompressed bytes; over either, the set is refused.
        name: a name to show (default: the folder or file name).
        flat: files need no class folder (a multi-label set whose labels come from a CSV); a file's
            ``folder`` is its first folder, or "" at the top.

    Returns:
        A Dataset; files outside any class folder and symbolic links in a folder are in ``skipped``.

    Raises:
        DatasetError: not a folder or zip, an unsafe entry, over the limits, or no files at all.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            return _from_folder(path, limits, name or path.name, flat)
        if not path.is_file():
            raise DatasetError(f"There is no folder or zip file at {str(path)!r}.")
        with open(path, "rb") as handle:
            return _from_zip(handle, limits, name or path.name, flat)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _from_zip(io.BytesIO(bytes(source)), limits, name or "upload.zip", flat)
    if hasattr(source, "read"):
        if hasattr(source, "seek"):
            source.seek(0)
        return _from_zip(source, limits, name or getattr(source, "name", "upload.zip"), flat)
    raise DatasetError(f"Cannot read a dataset from a {type(source).__name__}; give a folder, a zip file or its bytes.")


def _ignored(parts: Sequence[str]) -> bool:
    return any(p in IGNORED_DIRS or p.startswith(".") for p in parts) or parts[-1] in IGNORED_FILES


def _too_many(count: int, limits: DatasetLimits) -> DatasetError:
    return DatasetError(f"The dataset holds {count} files; at most {limits.max_files} are accepted.")


def _too_large(total: int, limits: DatasetLimits) -> DatasetError:
    return DatasetError(f"The dataset unpacks to {total / 2**20:.1f} MB; at most "
                        f"{limits.max_total_bytes / 2**20:.1f} MB are accepted.")


def _unsafe(name: str) -> DatasetError:
    return DatasetError(f"The zip was refused: its entry {name!r} points outside the archive's folder "
                        "(absolute path, '..' or a link).")


def _safe_parts(name: str) -> tuple[str, ...]:
    """A zip entry's path parts; refuses absolute paths, drive letters and '..'."""
    text = name.replace("\\", "/")  # archives made on Windows may use backslashes
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise _unsafe(name)
    parts = tuple(p for p in text.split("/") if p not in ("", "."))
    if any(p == ".." for p in parts):
        raise _unsafe(name)
    return parts


def _from_zip(handle: BinaryIO, limits: DatasetLimits, name: str, flat: bool = False) -> Dataset:
    try:
        archive = zipfile.ZipFile(handle)
    except UnicodeDecodeError:
        raise DatasetError(f"{name} was refused: an entry name in it is not valid UTF-8 although the zip says "
                           "it is (damaged, or made by a faulty tool); re-create the zip.") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise DatasetError(f"{name} is not a zip file (or it is damaged); "
                           "upload a .zip in ImageFolder layout.") from None
    with archive:
        members: list[tuple[tuple[str, ...], zipfile.ZipInfo]] = []
        for info in archive.infolist():
            parts = _safe_parts(info.filename)  # every entry is checked, directories too
            if stat.S_ISLNK(info.external_attr >> 16):
                raise _unsafe(info.filename)
            if info.is_dir() or not parts or _ignored(parts):
                continue
            members.append((parts, info))
        if len(members) > limits.max_files:
            raise _too_many(len(members), limits)
        total = sum(info.file_size for _, info in members)  # declared sizes: nothing decompressed yet
        if total > limits.max_total_bytes:
            raise _too_large(total, limits)
        entries, skipped = [], []
        for parts, info in members:
            try:
                data = _read_member(archive, info)
            except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, ValueError, NotImplementedError) as error:
                reason = ("it is encrypted" if "encrypted" in str(error) else
                          f"it is damaged in the zip ({OVERLONG})" if str(error) == OVERLONG else
                          "it is damaged in the zip")
                skipped.append(Skip("/".join(parts), f"The file cannot be read: {reason}."))
                continue
            entries.append((parts, data))
    return _flat_layout(entries, skipped, name) if flat else _layout(entries, skipped, name)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, chunk: int = 1 << 20) -> bytes:
    """A member's bytes, inflated as a stream that stops one byte past its declared size.

    ``ZipExtFile.read()`` inflates up to 1 GiB per call before cutting to the declared size
    (a 6 MB zip declaring 300 bytes took 2 GB); read in 1 MiB steps, memory stays at the
    declared size plus one step. A member that holds more than it declares is skipped, said so.
    """
    probe = copy.copy(info)
    # zipfile checks the CRC when it reaches the declared size (and inflates at least MIN_READ_SIZE
    # bytes a step), so an overlong member would pass for a damaged one; with this margin it shows
    # itself by its extra byte, while an honest member still ends (and is CRC-checked) at its true end
    probe.file_size = info.file_size + 1 + zipfile.ZipExtFile.MIN_READ_SIZE
    parts, total = [], 0
    with archive.open(probe) as member:
        while total <= info.file_size:
            data = member.read(min(chunk, info.file_size + 1 - total))
            if not data:
                break
            parts.append(data)
            total += len(data)
    if total > info.file_size:
        raise zipfile.BadZipFile(OVERLONG)
    return b"".join(parts)


def _from_folder(root: Path, limits: DatasetLimits, name: str, flat: bool = False) -> Dataset:
    root = root.resolve()
    found: list[tuple[tuple[str, ...], Path]] = []
    skipped: list[Skip] = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        here = Path(directory)
        for d in list(dirs):
            if (here / d).is_symlink():
                dirs.remove(d)  # never followed: it could lead anywhere on the server
                skipped.append(Skip((here / d).relative_to(root).as_posix(), "A symbolic link is not followed."))
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_DIRS and not d.startswith("."))
        for f in sorted(files):
            path = here / f
            parts = path.relative_to(root).parts
            if _ignored(parts):
                continue
            if path.is_symlink() or not path.resolve().is_relative_to(root):
                skipped.append(Skip("/".join(parts), "A symbolic link is not followed."))
                continue
            found.append((parts, path))
            if len(found) > limits.max_files:
                raise _too_many(len(found), limits)
    total = sum(path.stat().st_size for _, path in found)
    if total > limits.max_total_bytes:
        raise _too_large(total, limits)
    entries = []
    for parts, path in found:
        try:
            entries.append((parts, path.read_bytes()))
        except OSError:
            skipped.append(Skip("/".join(parts), "The file cannot be read (permission or disk error)."))
    return _flat_layout(entries, skipped, name) if flat else _layout(entries, skipped, name)


def _layout(entries: list[tuple[tuple[str, ...], bytes]], skipped: list[Skip], name: str) -> Dataset:
    """Find the ImageFolder root: strip folders shared by every file while each file stays inside a class folder."""
    if not entries and skipped:
        raise DatasetError(f"{name} holds no readable files: {len(skipped)} skipped, e.g. {skipped[0].path}: "
                           f"{skipped[0].reason}")
    if not entries:
        raise DatasetError(f"{name} holds no files; expected class folders with images (class_name/image.jpg).")
    depth = 0
    while all(len(p) > depth + 2 for p, _ in entries) and len({p[depth] for p, _ in entries}) == 1:
        depth += 1  # e.g. a zip of the folder "pets/" holding "pets/tabby/1.jpg"
    files = []
    for parts, data in entries:
        inner = parts[depth:]
        if len(inner) < 2:
            skipped.append(Skip("/".join(parts), "The file is not inside a class folder (class_name/image)."))
            continue
        files.append(DatasetFile(str(PurePosixPath(*inner)), inner[0], data))
    if not files:
        raise DatasetError(f"{name} has no class folders: put each image in a folder named after its class.")
    files.sort(key=lambda f: (f.folder, f.path))
    return Dataset(name=name, files=files, skipped=skipped)


def _flat_layout(entries: list[tuple[tuple[str, ...], bytes]], skipped: list[Skip], name: str) -> Dataset:
    """Every file kept, its path relative to the folder shared by all files (e.g. "set/a.png" -> "a.png")."""
    if not entries:
        return _layout(entries, skipped, name)  # its sentences for an empty or unreadable set
    depth = 0
    while all(len(p) > depth + 1 for p, _ in entries) and len({p[depth] for p, _ in entries}) == 1:
        depth += 1
    files = [DatasetFile(str(PurePosixPath(*p[depth:])), p[depth] if len(p) > depth + 1 else "", data)
             for p, data in entries]
    files.sort(key=lambda f: f.path)
    return Dataset(name=name, files=files, skipped=skipped)
