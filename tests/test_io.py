"""Image loading: formats, orientation, transparency, bit depth, and every way a file can be bad."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from explainers.errors import ImageError
from explainers.io import DAMAGED, EMPTY, NOT_AN_IMAGE, image_sha256, load_image


def _gradient(w=40, h=30) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float64)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float64)[:, None, None]
    return np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)),
                           np.full((h, w, 1), 77.0)], axis=2).astype(np.uint8)


def test_png_from_path_bytes_and_file(tmp_path):
    pixels = _gradient()
    path = tmp_path / "a.png"
    Image.fromarray(pixels).save(path)
    for source in (path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes())):
        image = load_image(source)
        assert image.mode == "RGB" and image.size == (40, 30)
        np.testing.assert_array_equal(np.asarray(image), pixels)


def test_file_object_read_before_is_rewound(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(_gradient()).save(buffer, format="PNG")
    buffer.read()  # e.g. a preview consumed it
    assert load_image(buffer).size == (40, 30)


def test_jpeg_exif_orientation_6_is_rotated(tmp_path):
    pixels = np.zeros((30, 40, 3), np.uint8)
    pixels[:, :20] = 255  # left half white, right half black (as stored)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rot.jpg"
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), quality=95)
    image = load_image(path)
    assert image.size == (30, 40)  # width and height swapped
    array = np.asarray(image).astype(int)
    # after a clockwise turn, the stored left half is on top
    assert array[:15].mean() > 200 and array[25:].mean() < 50


def test_rgba_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = [255, 0, 0, 255]  # opaque red
    rgba[0, 1] = [0, 0, 0, 0]  # fully transparent black -> white
    rgba[1, 0] = [0, 0, 0, 128]  # half black over white -> 255 * (1 - 128/255) = 127
    rgba[1, 1] = [0, 0, 255, 51]  # 20% blue: R = G = 255 * (1 - 0.2) = 204, B = 255
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    array = np.asarray(load_image(buffer.getvalue()))
    assert array[0, 0].tolist() == [255, 0, 0]
    assert array[0, 1].tolist() == [255, 255, 255]
    assert array[1, 0].tolist() == [127, 127, 127]
    assert array[1, 1].tolist() == [204, 204, 255]


def test_palette_with_transparency_and_la(tmp_path):
    palette_image = Image.new("P", (2, 1))
    palette_image.putpalette([0, 255, 0, 10, 20, 30] + [0] * 762)
    palette_image.putpixel((0, 0), 0)
    palette_image.putpixel((1, 0), 1)
    path = tmp_path / "p.png"
    palette_image.save(path, transparency=0)  # index 0 transparent
    array = np.asarray(load_image(path))
    assert array[0, 0].tolist() == [255, 255, 255]
    assert array[0, 1].tolist() == [10, 20, 30]
    la = Image.fromarray(np.array([[[0, 0], [100, 255]]], np.uint8), mode="LA")
    buffer = io.BytesIO()
    la.save(buffer, format="PNG")
    array = np.asarray(load_image(buffer))
    assert array[0, 0].tolist() == [255, 255, 255] and array[0, 1].tolist() == [100, 100, 100]


def test_16bit_png_is_scaled_by_its_max(tmp_path):
    values = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)  # max 4000, far below 65535
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    array = np.asarray(load_image(path))
    assert array.shape == (2, 2, 3)
    # value * 255 / 4000: 0, 63.75 -> 64, 127.5 -> 128 (round half even), 255
    assert array[..., 0].tolist() == [[0, 64], [128, 255]]
    assert (array[..., 0] == array[..., 2]).all()


def test_float_tiff_in_unit_range(tmp_path):
    values = np.array([[0.0, 0.5], [0.25, 1.0]], dtype=np.float32)
    path = tmp_path / "f.tif"
    Image.fromarray(values).save(path)
    array = np.asarray(load_image(path))[..., 0]
    assert array.tolist() == [[0, 128], [64, 255]]  # 127.5 -> 128, 63.75 -> 64


def test_cmyk_and_grayscale_become_rgb(tmp_path):
    cmyk = Image.new("CMYK", (3, 2), (0, 255, 255, 0))  # pure red in CMYK
    path = tmp_path / "c.tif"
    cmyk.save(path)
    image = load_image(path)
    assert image.mode == "RGB" and np.asarray(image)[0, 0].tolist() == [255, 0, 0]
    gray = tmp_path / "g.bmp"
    Image.new("L", (3, 2), 90).save(gray)
    assert np.asarray(load_image(gray))[1, 2].tolist() == [90, 90, 90]


def test_animated_gif_keeps_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), color) for color in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 2
    assert np.asarray(load_image(path))[0, 0].tolist() == [255, 0, 0]


def test_webp_reads(tmp_path):
    path = tmp_path / "a.webp"
    Image.fromarray(_gradient()).save(path, lossless=True)
    np.testing.assert_array_equal(np.asarray(load_image(path)), _gradient())


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    for source in (path, b"", io.BytesIO()):
        with pytest.raises(ImageError) as info:
            load_image(source)
        assert str(info.value) == EMPTY


def test_truncated_jpeg(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        buffer, format="JPEG")
    data = buffer.getvalue()
    with pytest.raises(ImageError) as info:
        load_image(data[: len(data) // 2])
    assert str(info.value) == DAMAGED


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(info.value) == NOT_AN_IMAGE


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="There is no file at"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is not a file"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="Cannot read an image from a int"):
        load_image(3)  # type: ignore[arg-type]


def test_pixel_limit_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (100, 50)).save(path)
    monkeypatch.setenv("CAMSCOPE_MAX_PIXELS", "4999")
    with pytest.raises(ImageError, match=r"too large \(100 x 50 pixels\).*4,999 pixels"):
        load_image(path)
    monkeypatch.setenv("CAMSCOPE_MAX_PIXELS", "5000")
    assert load_image(path).size == (100, 50)
    monkeypatch.setenv("CAMSCOPE_MAX_PIXELS", "lots")
    with pytest.raises(ImageError, match="must be a number"):
        load_image(path)


def test_pil_decompression_bomb_becomes_image_error(tmp_path, monkeypatch):
    """Pillow's own bomb check runs at CAMSCOPE_MAX_PIXELS (not at its 89.5 MP default) and never escapes."""
    path = tmp_path / "bomb.png"
    Image.new("L", (100, 100)).save(path)
    monkeypatch.setenv("CAMSCOPE_MAX_PIXELS", "1000")  # Pillow: warning above 1000, error above 2000
    with pytest.raises(ImageError, match="too large: CAMscope reads images up to 1,000 pixels"):
        load_image(path)
    Image.new("L", (40, 40)).save(path)  # 1600: only Pillow's warning; refused by CAMscope's own check
    with pytest.raises(ImageError, match=r"too large \(40 x 40 pixels\).*1,000 pixels"):
        load_image(path)
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's setting is restored for everyone else


def test_image_sha256_depends_on_pixels_only():
    a = Image.fromarray(_gradient())
    b = Image.fromarray(_gradient())
    assert image_sha256(a) == image_sha256(b) and len(image_sha256(a)) == 64
    changed = _gradient()
    changed[0, 0, 0] ^= 1
    assert image_sha256(Image.fromarray(changed)) != image_sha256(a)
    # same bytes, different shape -> different hash
    flat = Image.frombytes("RGB", (30, 40), a.tobytes())
    assert image_sha256(flat) != image_sha256(a)
