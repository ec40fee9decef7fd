"""Hostile and odd inputs for the three readers (images, dataset zips, checkpoints), built in code.

Each case names the reader it goes through, what must come out (an image, possibly with a
note, or a refusal naming the cause), and bounds on the peak memory above the process's
baseline and on the time; tests/test_corpus.py runs each one in a subprocess
(tests/hostile_probe.py) that measures both. Files are made in memory, in seconds, with no
download: large inflations are zlib streams of zeros fed in chunks.
"""
from __future__ import annotations

import io
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from PIL import Image

from tests.corpus import dicom

MB = 2**20


@dataclass(frozen=True)
class Hostile:
    """One hostile input and what reading it must give."""

    name: str
    reader: str  # "image" (load_image), "dataset" (read_dataset) or "checkpoint" (load_checkpoint)
    make: Callable[[], bytes] = field(repr=False)
    error: Optional[str] = None  # a piece of the refusal; None: the read succeeds
    note: Optional[str] = None  # a piece of the note the loaded image must carry
    max_mb: float = 1024.0  # peak RSS above the baseline, MiB
    max_s: float = 20.0  # wall time of the read, seconds (generous: the machine is shared)
    app: bool = False  # also uploaded in AppTest (small files only)


def _deflate_zeros(prefix: bytes, zeros: int, suffix: bytes = b"") -> bytes:
    """A raw deflate stream of prefix + `zeros` zero bytes + suffix, made in 16 MiB chunks."""
    packer, chunk, out = zlib.compressobj(9, zlib.DEFLATED, -15), bytes(16 * MB), [b""]
    out.append(packer.compress(prefix))
    for start in range(0, zeros, len(chunk)):
        out.append(packer.compress(chunk[: min(len(chunk), zeros - start)]))
    out.append(packer.compress(suffix))
    out.append(packer.flush())
    return b"".join(out)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def big_png(side: int, bit_depth: int, color_type: int, channels: int) -> bytes:
    """A side x side PNG of zeros (hand-made so the test process never holds the pixels)."""
    row = 1 + side * channels * bit_depth // 8  # filter byte + samples
    packer, blank, idat = zlib.compressobj(9), bytes(row), []
    for _ in range(side):
        idat.append(packer.compress(blank))
    idat.append(packer.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(idat))
            + _png_chunk(b"IEND", b""))


def tiny_webp() -> bytes:
    """A lossless WebP of 7000 x 7000 white pixels: about a hundred bytes on disk."""
    buffer = io.BytesIO()
    Image.new("L", (7000, 7000), 255).convert("RGB").save(buffer, "WEBP", lossless=True, quality=0, method=0)
    return buffer.getvalue()


def tiff(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "TIFF")
    return buffer.getvalue()


def float64_tiff() -> bytes:
    """A 2 x 1 uncompressed float64 TIFF (values 0.25, 0.75), hand-made: Pillow cannot write one."""
    pixels = np.array([0.25, 0.75], "<f8").tobytes()
    entries = [(256, 3, 1, 2), (257, 3, 1, 1), (258, 3, 1, 64), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 0), (277, 3, 1, 1), (278, 3, 1, 1), (279, 4, 1, len(pixels)), (339, 3, 1, 3)]
    ifd_at = 8 + len(pixels)
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        value = 8 if tag == 273 else value
        ifd += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3
                                                        else struct.pack("<I", value))
    return b"II*\x00" + struct.pack("<I", ifd_at) + pixels + ifd + struct.pack("<I", 0)


def deflated_dicom_bomb(inflated: int = 1536 * MB) -> bytes:
    """A Deflated Explicit VR Little Endian DICOM whose dataset inflates to `inflated` bytes."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    small = dicom(np.zeros((2, 2)), syntax=DeflatedExplicitVRLittleEndian)  # for pydicom's own file meta
    rows = struct.pack("<HH2sHH", 0x0028, 0x0010, b"US", 2, 1) + struct.pack("<HH2sHH", 0x0028, 0x0011, b"US", 2, 1)
    element = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, inflated)  # PixelData, OB, huge length
    return small[:_meta_end(small)] + _deflate_zeros(rows + element, inflated)


def _meta_end(data: bytes) -> int:
    """Where the file meta group (0002,xxxx) ends in a Part 10 file."""
    at = 132
    while data[at:at + 2] == b"\x02\x00":
        vr = data[at + 4:at + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            at += 12 + struct.unpack("<I", data[at + 8:at + 12])[0]
        else:
            at += 8 + struct.unpack("<H", data[at + 6:at + 8])[0]
    return at


def dicom_with(**values) -> bytes:
    """A small CT DICOM (0, 100, 200, 300) with header values set raw, unvalidated (text where numbers belong)."""
    import pydicom
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    ds = pydicom.dcmread(io.BytesIO(dicom(np.array([[0, 100], [200, 300]]), rescale=(1, 0), window=(150, 300))))
    for keyword, (vr, value) in values.items():
        raw = value.encode() + b" " * (len(value) % 2)  # even length, as DICOM wants
        tag = Tag(keyword)
        ds[tag] = RawDataElement(tag, vr, len(raw), raw, 0, False, True)  # written as is, never parsed
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def palette_dicom() -> bytes:
    """PALETTE COLOR, 8 bits, values 0 and 1 mapped by the LUTs to red and blue."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(dicom(np.array([[0, 1], [1, 0]]), bits_stored=8, photometric="PALETTE COLOR")))
    for color, data in (("Red", [65535, 0]), ("Green", [0, 0]), ("Blue", [0, 65535])):
        ds.add_new(f"{color}PaletteColorLookupTableDescriptor", "US", [2, 0, 16])
        ds.add_new(f"{color}PaletteColorLookupTableData", "OW", np.array(data, np.uint16).tobytes())
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def png_with_dicm() -> bytes:
    """A valid 100 x 1 PNG whose byte 128 happens to start 'DICM' (inside a text chunk)."""
    base = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100, 1, 8, 0, 0, 0, 0))
    pad = 128 - 8 - len(base) - 8  # the text chunk's data starts at 8 + len(base) + 8
    text = _png_chunk(b"tEXt", b"k" * (pad - 1) + b"\x00" + b"DICM")
    data = b"\x89PNG\r\n\x1a\n" + base + text + _png_chunk(b"IDAT", zlib.compress(b"\x00" + bytes(range(100)))) \
        + _png_chunk(b"IEND", b"")
    assert data[128:132] == b"DICM"
    return data


def rle_dicom(side: int = 7000) -> bytes:
    """A side x side 12-bit CT frame of zeros, RLE-compressed by pydicom into about 1.5 MB."""
    import pydicom
    from pydicom.uid import RLELossless

    ds = pydicom.dcmread(io.BytesIO(dicom(np.zeros((side, side)), bits_stored=12, rescale=(1, -1024),
                                          window=(40, 400))))
    ds.compress(RLELossless, encoding_plugin="pydicom")
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def jpeg12_dicom() -> bytes:
    from pydicom.data import get_testdata_file

    return open(get_testdata_file("JPEG-lossy.dcm", download=False), "rb").read()


# --- zips --------------------------------------------------------------------------------------------

def lying_zip(inflated: int = 1024 * MB, declared: int = 300) -> bytes:
    """A zip whose one member declares `declared` bytes but inflates to `inflated` (sizes patched)."""
    payload = _deflate_zeros(b"", inflated)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("cat/1.png", b"x" * 8)  # a placeholder member, replaced below
        archive.writestr("dog/1.png", b"y" * 8)
    data = buffer.getvalue()
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("cat/1.png")
    start = info.header_offset
    name_len, extra_len = struct.unpack("<HH", data[start + 26:start + 30])
    body = start + 30 + name_len + extra_len
    local = bytearray(data[start:body])
    struct.pack_into("<III", local, 14, 0, len(payload), declared)  # crc, compressed, uncompressed
    rest = data[body + info.compress_size:]
    shift = len(payload) - info.compress_size
    out = bytearray(data[:start] + bytes(local) + payload + rest)
    # central directory: patch this entry's sizes and every later offset
    end = out.rfind(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack("<II", out[end + 12:end + 20])
    cd_offset += shift
    struct.pack_into("<I", out, end + 16, cd_offset)
    at = cd_offset
    while out[at:at + 4] == b"PK\x01\x02":
        n, e, c = struct.unpack("<HHH", out[at + 28:at + 34])
        name = bytes(out[at + 46:at + 46 + n])
        if name == b"cat/1.png":
            struct.pack_into("<III", out, at + 16, 0, len(payload), declared)
        else:
            offset = struct.unpack("<I", out[at + 42:at + 46])[0]
            if offset > start:
                struct.pack_into("<I", out, at + 42, offset + shift)
        at += 46 + n + e + c
    return bytes(out)


def bad_utf8_zip() -> bytes:
    """A zip whose entry name is not UTF-8 though its UTF-8 flag (bit 11) is set."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("cat/\u00e9.png", b"x")  # non-ASCII: zipfile sets the UTF-8 flag itself
    return buffer.getvalue().replace("\u00e9".encode(), b"\xff\xfe")


# --- checkpoints -------------------------------------------------------------------------------------

def _torch_zip(members: dict[str, bytes], deflate: set[str] = frozenset()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/version", b"3\n")
        archive.writestr("archive/byteorder", b"little")
        for name, data in members.items():
            method = zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED
            archive.writestr(f"archive/{name}", data, compress_type=method, compresslevel=9)
    return buffer.getvalue()


def pickle_opcode_bomb(size: int = 64 * MB) -> bytes:
    """data.pkl deflated: `size` bytes of "append 1 to a list", which the weights-only unpickler
    accepts and walks in pure Python (about a second per megabyte)."""
    body = b"\x80\x02]" + b"K\x01a" * ((size - 4) // 3) + b"."
    return _torch_zip({"data.pkl": body}, deflate={"data.pkl"})


def storage_bomb(size: int = 2048 * MB) -> bytes:
    """A state_dict whose one float storage is `size` bytes of zeros, deflated into a few MB."""
    import pickle

    import torch

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(4)}, buffer)
    real = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    pkl_name = next(n for n in real.namelist() if n.endswith("data.pkl"))
    pkl = real.read(pkl_name)
    # the pickled tensor's storage size (4 elements) becomes `size / 4` floats
    pkl = pkl.replace(pickle.dumps(4, protocol=2)[2:-1], pickle.dumps(size // 4, protocol=2)[2:-1], 1)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in real.namelist():
            if name.endswith("data.pkl"):
                archive.writestr(name, pkl)
            elif name.endswith("data/0"):
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w", force_zip64=True) as member:
                    chunk = bytes(16 * MB)
                    for _ in range(size // len(chunk)):
                        member.write(chunk)
            else:
                archive.writestr(name, real.read(name))
    return out.getvalue()


def random_bytes() -> bytes:
    return np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()


def build() -> list[Hostile]:
    """Every hostile case, in a fixed order."""
    nan = np.array([[0.0, 0.5], [1.0, math.nan]], np.float32)
    inf = np.array([[0.0, 0.5], [1.0, math.inf]], np.float32)
    negative = np.array([[-4.0, -3.0], [-2.0, -1.0]], np.float32)
    signed = np.array([[-1000, 0], [1000, 3000]], np.int16)
    flat = np.full((4, 4), 7.5, np.float32)
    return [
        # 1. bounded decompression
        Hostile("deflated-bomb.dcm", "image", deflated_dicom_bomb, error="inflates to more than", max_mb=400),
        Hostile("lying-sizes.zip", "dataset", lying_zip, note="more than its zip entry says", max_mb=300),
        Hostile("pickle-opcodes.pth", "checkpoint", pickle_opcode_bomb, error="data.pkl", max_mb=200, max_s=10),
        Hostile("storage-2gib.pth", "checkpoint", storage_bomb, error="unpacks to", max_mb=200, max_s=10),
        Hostile("7000x7000.png", "image", lambda: big_png(7000, 8, 0, 1), max_mb=1024),
        Hostile("7000x7000-rgba16.png", "image", lambda: big_png(7000, 16, 6, 4), max_mb=1024),
        Hostile("7000x7000.webp", "image", tiny_webp, note="same colour", max_mb=1024),
        Hostile("7000x7000-rle.dcm", "image", rle_dicom, note="same colour", max_mb=800),
        # 2. never silently wrong pixels
        Hostile("nan.tif", "image", lambda: tiff(nan), note="not a number", app=True),
        Hostile("inf.tif", "image", lambda: tiff(inf), note="infinite", app=True),
        Hostile("negative.tif", "image", lambda: tiff(negative), note="scaled from", app=True),
        Hostile("signed16.tif", "image", lambda: tiff(signed), note="scaled from", app=True),
        Hostile("flat.tif", "image", lambda: tiff(flat), note="same colour", app=True),
        Hostile("window-nan.dcm", "image",
                lambda: dicom_with(WindowCenter=("DS", "NaN"), WindowWidth=("DS", "NaN")),
                note="window", app=True),
        Hostile("window-inf.dcm", "image",
                lambda: dicom_with(WindowCenter=("DS", "40"), WindowWidth=("DS", "inf")), note="window", app=True),
        # 3 and 5. plain sentences naming the cause
        Hostile("window-text.dcm", "image", lambda: dicom_with(WindowCenter=("DS", "abc")),
                note="window", app=True),
        Hostile("slope-text.dcm", "image", lambda: dicom_with(RescaleSlope=("DS", "abc")),
                error="RescaleSlope", app=True),
        Hostile("slope-nan.dcm", "image", lambda: dicom_with(RescaleSlope=("DS", "NaN")),
                error="RescaleSlope", app=True),
        Hostile("bad-utf8-name.zip", "dataset", bad_utf8_zip, error="not valid UTF-8"),
        Hostile("jpeg12.dcm", "image", jpeg12_dicom, error="pylibjpeg", app=True),
        Hostile("palette.dcm", "image", palette_dicom, app=True),
        Hostile("frames-minus-one.dcm", "image", lambda: dicom_with(NumberOfFrames=("IS", "-1")),
                error="number of frames", app=True),
        Hostile("float64.tif", "image", float64_tiff, error="64-bit", app=True),
        Hostile("random.pt", "checkpoint", random_bytes, error="not a readable PyTorch checkpoint"),
        Hostile("dicm-at-128.png", "image", png_with_dicm, app=True),
        Hostile("10000x1.dcm", "image", lambda: dicom(np.zeros((1, 10000)), bits_stored=8), error="too narrow",
                app=True),
    ]
