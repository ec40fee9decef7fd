"""Matching a labelled set's class folders to a model's classes: by name, or through a mapping.

Example:
    >>> map_folders(["Egyptian_cat", "kitty"], model.categories, {"kitty": "tabby"})
    {'Egyptian_cat': 285, 'kitty': 281}
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

from .dataset import DatasetError


def normalize_name(name: str) -> str:
    """Case, underscores, hyphens and spacing do not matter when a folder is matched to a class name."""
    return " ".join(re.sub(r"[_\-]+", " ", str(name)).casefold().split())


def _class_index(value: object, categories: Sequence[str], by_name: Mapping[str, list[int]], folder: str) -> int:
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        index = int(value)
    else:
        text = str(value).strip()
        matches = by_name.get(normalize_name(text), [])
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise DatasetError(f"Folder {folder!r} is mapped to {text!r}, a name shared by classes "
                               f"{', '.join(map(str, matches))}; map it to one class index.")
        if not text.isdigit():
            raise DatasetError(f"Folder {folder!r} is mapped to {text!r}, which is not a class of this model.")
        index = int(text)
    if not 0 <= index < len(categories):
        raise DatasetError(f"Folder {folder!r} is mapped to class {index}, but this model has classes "
                           f"0 to {len(categories) - 1}.")
    return index


def map_folders(folders: Sequence[str], categories: Sequence[str],
                mapping: Mapping[str, object] | None = None) -> dict[str, int]:
    """Match class folders to the model's classes.

    Args:
        folders: the dataset's class folder names.
        categories: the model's class names, in index order.
        mapping: optional {folder: class index or class name}; folders not in it are matched
            by name (case-insensitive; underscores, hyphens and spaces alike).

    Returns:
        {folder: class index} for every folder.

    Raises:
        DatasetError: listing the folders that match no class (or several), or mapping keys that are no folder.
    """
    mapping = dict(mapping or {})
    unknown = [k for k in mapping if k not in folders]
    if unknown:
        raise DatasetError(f"The mapping names folders the dataset does not have: {', '.join(map(repr, unknown))}.")
    by_name: dict[str, list[int]] = {}
    for i, category in enumerate(categories):
        by_name.setdefault(normalize_name(category), []).append(i)
    labels: dict[str, int] = {}
    unmatched: list[str] = []
    for folder in folders:
        if folder in mapping and mapping[folder] not in (None, ""):
            labels[folder] = _class_index(mapping[folder], categories, by_name, folder)
            continue
        matches = by_name.get(normalize_name(folder), [])
        if len(matches) == 1:
            labels[folder] = matches[0]
        else:
            unmatched.append(folder + (f" (classes {', '.join(map(str, matches))} share this name)" if matches else ""))
    if unmatched:
        raise DatasetError(f"These folders match no class of the model by name: {', '.join(unmatched)}. "
                           "Rename each one to a class name, or map it to a class (its index or its name).")
    return labels
