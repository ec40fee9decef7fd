"""One count of files, images and skipped files (explainers.dataset_summary), on a zip with bad files."""
from __future__ import annotations

from explainers.confusion import predict_dataset
from explainers.dataset import read_dataset
from explainers.dataset_summary import summarize
from tests.labelled_set import zip_bytes


def test_files_are_images_plus_skipped_in_all_and_per_folder(lite0):
    data = read_dataset(zip_bytes({"cup/broken.jpg": b"\xff\xd8 not a jpeg", "readme.txt": b"hi"}), name="pets.zip")
    before = summarize(data)
    assert (before.files, before.in_folders, before.left_out, before.images, before.skipped) == (14, 13, 1, None, None)
    assert [f.sentence for f in before.folders] == ["Egyptian_cat: 3 files", "cup: 4 files", "espresso: 3 files",
                                                    "tabby: 3 files"]
    result = predict_dataset(lite0, data, {"Egyptian_cat": 285, "cup": 968, "espresso": 967, "tabby": 281})
    after = summarize(data, result)
    assert (after.files, after.images, after.skipped) == (14, 12, 2) and after.skipped == len(result.skipped)
    assert after.sentence == ("pets.zip: 14 files in all: 12 images predicted, 2 skipped "
                              "(1 left out while reading, 1 not an image).")
    cup = next(f for f in after.folders if f.folder == "cup")
    assert (cup.files, cup.images, cup.skipped) == (4, 3, 1) and cup.sentence == "cup: 4 files = 3 images + 1 skipped"
    assert sum(f.files for f in after.folders) + after.left_out == after.files
    assert sum(f.images for f in after.folders) == after.images == len(result.rows)
