"""One count of a labelled set's files, images and skipped files, for every place that shows one.

A file is anything found in the set; it is an image once it has been decoded and predicted, and
skipped otherwise: left out while reading (outside any class folder, a link, unreadable in the zip)
or not decodable as an image. So ``files == images + skipped`` always, per folder and in all.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Optional

from .confusion import DatasetPredictions
from .dataset import Dataset


@dataclass(frozen=True)
class FolderCount:
    """One class folder: its files, and after predicting, its images and skipped files."""

    folder: str
    files: int
    images: Optional[int] = None  # None before the set is predicted

    @property
    def skipped(self) -> Optional[int]:
        return None if self.images is None else self.files - self.images

    @property
    def sentence(self) -> str:
        """E.g. "tabby: 6 files = 5 images + 1 skipped" (after predicting), "tabby: 6 files" before."""
        text = f"{self.folder}: {_count(self.files, 'file')}"
        return text if self.images is None else f"{text} = {_count(self.images, 'image')} + {self.skipped} skipped"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


@dataclass(frozen=True)
class DatasetSummary:
    """The counts of one set (and of its predictions, once there are some)."""

    name: str
    files: int  # every file found: those in class folders plus those left out while reading
    left_out: int  # skipped while reading
    folders: tuple[FolderCount, ...]
    images: Optional[int] = None  # decoded and predicted; None before predicting

    @property
    def in_folders(self) -> int:
        return self.files - self.left_out

    @property
    def skipped(self) -> Optional[int]:
        """Files that are not among the images (left out while reading, or not decodable)."""
        return None if self.images is None else self.files - self.images

    @property
    def sentence(self) -> str:
        """E.g. "pets.zip: 14 files: 12 images predicted, 2 skipped (1 left out while reading, 1 not an image)."."""
        def files(n: int) -> str:
            return _count(n, "file")

        folders = _count(len(self.folders), "class folder")
        if self.images is None:
            out = f" ({self.left_out} outside the class folders or unreadable, left out)" if self.left_out else ""
            return (f"{self.name}: {files(self.files)}, {self.in_folders} of them in {folders}{out}. "
                    "Each one is checked when it is predicted; those that are not images are then skipped.")
        undecodable = self.skipped - self.left_out
        why = [f"{self.left_out} left out while reading"] if self.left_out else []
        why += [f"{undecodable} not {'an image' if undecodable == 1 else 'images'}"] if undecodable else []
        reasons = f" ({', '.join(why)})" if why else ""
        return (f"{self.name}: {files(self.files)} in all: {_count(self.images, 'image')} predicted, "
                f"{self.skipped} skipped{reasons}.")


def summarize(dataset: Dataset, predictions: Optional[DatasetPredictions] = None) -> DatasetSummary:
    """The counts of ``dataset``, and of its ``predictions`` when given."""
    per_folder = Counter(f.folder for f in dataset.files)
    predicted = Counter(r.folder for r in predictions.rows) if predictions is not None else None
    folders = tuple(FolderCount(folder, per_folder[folder], None if predicted is None else predicted[folder])
                    for folder in dataset.folders)
    files = len(dataset.files) + len(dataset.skipped)
    return DatasetSummary(dataset.name, files, len(dataset.skipped), folders,
                          None if predictions is None else len(predictions.rows))
