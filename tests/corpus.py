"""A corpus of bad and odd image files, built in memory, each with its expected outcome.

Every case is either an image (size and a few hand-computed pixels) or a refusal
(a piece of the message the user must see). tests/test_corpus.py runs each one
through the engine (load_image) and through the app (an upload in AppTest).
"""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from PIL import Image

from explainers.dicom import DICOMDIR_UID
from explainers.io import DAMAGED, EMPTY, NOT_AN_IMAGE

PATIENT = "Doe^Jane"  # put in every DICOM header; must never reach the screen, the log or a result


@dataclass(frozen=True)
class Case:
    """One file and what reading it must give."""

    name: str  # the upload's file name (often a lie: the bytes decide)
    data: bytes
    size: Optional[tuple[int, int]] = None  # (width, height) when an image is expected
    pixels: dict = field(default_factory=dict)  # {(x, y): (r, g, b)} expected exactly (or within tol)
    tolerance: int = 0
    error: Optional[str] = None  # a piece of the message when a refusal is expected


def _png(array: np.ndarray) -> bytes:
    return _save(Image.fromarray(array), "PNG")  # (h, w, 2) is LA, (h, w, 4) RGBA


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _noise(h: int = 64, w: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header that claims a huge size, with almost no data (hand-made: PIL would need the pixels)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def dicom(pixels: np.ndarray, photometric: str = "MONOCHROME2", bits_stored: int = 16, signed: bool = False,
          rescale: Optional[tuple[float, float]] = None, window: Optional[tuple[float, float]] = None,
          syntax: Optional[str] = None, sop_class: Optional[str] = None, modality: str = "CT",
          pixel_data: Optional[bytes] = None, with_pixels: bool = True) -> bytes:
    """A DICOM Part 10 file built with pydicom. ``pixels``: (rows, cols) or (frames, rows, cols)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class or CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Modality = PATIENT, "ID-31337", modality
    if with_pixels:
        frames = pixels if pixels.ndim == 3 else pixels[None]
        ds.Rows, ds.Columns = frames.shape[1:]
        if pixels.ndim == 3:
            ds.NumberOfFrames = frames.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated = 8 if bits_stored <= 8 else 16
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, int(signed)
        if rescale:
            ds.RescaleSlope, ds.RescaleIntercept = rescale
        if window:
            ds.WindowCenter, ds.WindowWidth = window
        dtype = {(8, False): np.uint8, (16, False): np.uint16, (16, True): np.int16}[(ds.BitsAllocated, signed)]
        ds.PixelData = pixel_data if pixel_data is not None else frames.astype(dtype).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _dicomdir() -> bytes:
    from pydicom.sequence import Sequence

    data = io.BytesIO(dicom(np.zeros((1, 1)), sop_class=DICOMDIR_UID, with_pixels=False))
    import pydicom
    ds = pydicom.dcmread(data)
    ds.DirectoryRecordSequence = Sequence([])
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _jpeg_ls_dicom() -> bytes:
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    return dicom(np.zeros((8, 8)), syntax=JPEGLSLossless, pixel_data=encapsulate([b"\xff\xd8" + b"\x00" * 30]))


def build() -> list[Case]:
    """Every case of the corpus (26), in a fixed order."""
    noise_png = _png(_noise())
    noise_jpg = _save(Image.fromarray(_noise()), "JPEG")
    cases = [
        Case("empty.png", b"", error=EMPTY),
        Case("truncated.png", noise_png[: len(noise_png) // 2], error=DAMAGED),
        Case("truncated.jpg", noise_jpg[: len(noise_jpg) // 2], error=DAMAGED),
        Case("notes.png", b"just some text, not a picture\n" * 5, error=NOT_AN_IMAGE),
        Case("page.png", b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>", error=NOT_AN_IMAGE),
        Case("archive.jpg", _zip(), error=NOT_AN_IMAGE),
        Case("paper.png", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", error=NOT_AN_IMAGE),
        Case("bomb.png", _bomb_png(100_000, 100_000), error="too large"),
    ]
    # 16 bits: 0, 1000, 4000 scaled by the max (4000) to 0, 63.75 -> 64, 255 (not clipped at 255)
    deep = np.array([[0, 1000, 4000]], dtype=np.uint16)
    gray = {(0, 0): (0, 0, 0), (1, 0): (64, 64, 64), (2, 0): (255, 255, 255)}
    cases.append(Case("deep16.png", _save(Image.fromarray(deep), "PNG"), (3, 1), gray))
    cases.append(Case("deep16.tif", _save(Image.fromarray(deep), "TIFF"), (3, 1), gray))
    half = np.zeros((30, 40, 3), np.uint8)
    half[:, :20] = 255  # stored: left white; EXIF 6 turns it clockwise: top white
    exif = Image.Exif()
    exif[0x0112] = 6
    cases.append(Case("rotated.jpg", _save(Image.fromarray(half), "JPEG", exif=exif.tobytes(), quality=95),
                      (30, 40), {(15, 5): (255, 255, 255), (15, 35): (0, 0, 0)}, tolerance=8))
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # no cyan, full magenta + yellow: red
    cases.append(Case("cmyk.jpg", _save(cmyk, "JPEG", quality=95), (16, 16), {(8, 8): (255, 0, 0)}, tolerance=8))
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 255, 10, 200, 30] + [0] * 762)
    palette.putdata([0, 1])
    cases.append(Case("palette.png", _save(palette, "PNG", transparency=0), (2, 1),
                      {(0, 0): (255, 255, 255), (1, 0): (10, 200, 30)}))  # transparent -> the white background
    la = np.array([[[0, 0], [100, 255]]], np.uint8)
    cases.append(Case("la.png", _png(la), (2, 1), {(0, 0): (255, 255, 255), (1, 0): (100, 100, 100)}))
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 0, 0], [0, 0, 0, 128]]], np.uint8)
    cases.append(Case("rgba.png", _png(rgba), (3, 1),
                      {(0, 0): (255, 0, 0), (1, 0): (255, 255, 255), (2, 0): (127, 127, 127)}))
    red, blue = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    cases.append(Case("animated.gif", _save(red, "GIF", save_all=True, append_images=[blue], duration=50, loop=0),
                      (8, 8), {(4, 4): (255, 0, 0)}))
    cases.append(Case("pages.tif", _save(Image.new("RGB", (8, 8), (0, 128, 0)), "TIFF", save_all=True,
                                         append_images=[blue]), (8, 8), {(4, 4): (0, 128, 0)}))
    cases.append(Case("tiny.png", _png(np.array([[[12, 34, 56]]], np.uint8)), (1, 1), {(0, 0): (12, 34, 56)}))
    cases.append(Case("strip.png", _png(np.zeros((2, 3000, 3), np.uint8)), error="too narrow (3000 x 2 pixels)"))
    wide = np.zeros((20, 1000, 3), np.uint8)  # 50:1, within the limit
    wide[:, 500:] = 200
    cases.append(Case("wide.png", _png(wide), (1000, 20), {(0, 0): (0, 0, 0), (999, 19): (200, 200, 200)}))
    cases.append(Case("plain.bmp", _save(Image.new("RGB", (5, 4), (9, 8, 7)), "BMP"), (5, 4), {(4, 3): (9, 8, 7)}))
    # DICOM MONOCHROME1, 8 bits, no window: the data range 0..255, then inverted (low = white)
    cases.append(Case("mono1.dcm", dicom(np.array([[0, 255], [51, 204]]), "MONOCHROME1", bits_stored=8,
                                         modality="CR"), (2, 2),
                      {(0, 0): (255,) * 3, (1, 0): (0,) * 3, (0, 1): (204,) * 3, (1, 1): (51,) * 3}))
    # MONOCHROME2, 12 bits, slope 2, intercept -1024 -> -1024, 0, 1024, 3070 HU; window 0 / 2048 (LINEAR):
    # output range y = 0*2-1024 .. 4095*2-1024 = -1024..7166; 0 HU -> ((0 + 0.5) / 2047 + 0.5) -> 127.56 -> 128
    cases.append(Case("ct.dcm", dicom(np.array([[0, 512], [1024, 2047]]), bits_stored=12, rescale=(2, -1024),
                                      window=(0, 2048)), (2, 2),
                      {(0, 0): (0,) * 3, (1, 0): (128,) * 3, (0, 1): (255,) * 3, (1, 1): (255,) * 3}))
    # 3 frames of 10, 80, 200 with an identity window for 8 bits (center 128, width 256)
    frames = np.stack([np.full((4, 4), v) for v in (10, 80, 200)])
    cases.append(Case("cine.dcm", dicom(frames, bits_stored=8, window=(128, 256), modality="US"), (4, 4),
                      {(0, 0): (10,) * 3}))
    cases.append(Case("jpegls.dcm", _jpeg_ls_dicom(), error="no decoder"))
    cases.append(Case("DICOMDIR.dcm", _dicomdir(), error="DICOMDIR"))
    return cases


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("image.png", _png(_noise(4, 4)))
    return buffer.getvalue()
