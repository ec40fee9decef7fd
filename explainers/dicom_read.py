"""Parsing a DICOM file with pydicom, bounded and quiet.

Two things pydicom does not do for a shared server: it inflates a Deflated transfer syntax
file with one unbounded ``zlib.decompress`` before any size check (a 2 MB file took 4 GB),
and it warns and logs header values it finds malformed (e.g. the SpecificCharacterSet,
which is a header value). Here the dataset is inflated with a cap first, and pydicom's
warnings and log records are dropped while a file is read.
"""
from __future__ import annotations

import contextlib
import io
import logging
import struct
import warnings
import zlib

from .errors import ImageError
from .image_limits import WARNINGS_LOCK as _QUIET_LOCK

MAX_INFLATED_MB = 256  # a deflated dataset may inflate to this much; more is refused
DAMAGED = "The DICOM file is truncated or damaged."



def _silence_pydicom_log() -> None:
    """pydicom's log records quote header values (e.g. the SpecificCharacterSet): none may reach a log.

    Its modules log to "pydicom" and its children; a level above CRITICAL on the parent drops
    them all. Set after pydicom is imported: its config sets the level to WARNING on import.
    """
    logging.getLogger("pydicom").setLevel(logging.CRITICAL + 1)


def read_dataset(data: bytes):
    """The pydicom Dataset of a Part 10 file; a deflated one is inflated up to MAX_INFLATED_MB first."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    _silence_pydicom_log()
    with quiet():
        try:
            ds = pydicom.dcmread(_inflated(data))
        except ImageError:
            raise
        except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, AttributeError,
                IndexError, struct.error, zlib.error):
            raise ImageError(DAMAGED) from None
    return ds


@contextlib.contextmanager
def quiet():
    """Drop warnings meanwhile: pydicom's quote header values, and it decodes values lazily (on access),
    so the whole reading of a file runs inside this."""
    with _QUIET_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _inflated(data: bytes) -> io.BytesIO:
    """The file as pydicom should read it: as is, or with its deflated dataset inflated (capped)."""
    from pydicom.filereader import _read_file_meta_info
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    source = io.BytesIO(data)
    source.seek(132)
    meta = _read_file_meta_info(source)
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return io.BytesIO(data)
    start = source.tell()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian  # what the dataset is, once inflated
    out = io.BytesIO()
    out.write(data[:132])
    write_file_meta_info(out, meta, enforce_standard=False)
    cap, inflater = int(MAX_INFLATED_MB * 2**20), zlib.decompressobj(-zlib.MAX_WBITS)
    view, written, step = memoryview(data)[start:], 0, 1 << 20  # 1 MiB in, at most 1 MiB out per call
    for at in range(0, len(view), step):
        chunk = inflater.decompress(view[at:at + step], min(step, cap + 1 - written))
        while True:
            written += len(chunk)
            if written > cap:
                raise ImageError(f"This DICOM file is deflated and its data inflates to more than "
                                 f"{MAX_INFLATED_MB} MB: CAMscope refuses it before reading further.")
            out.write(chunk)
            if not inflater.unconsumed_tail:
                break
            chunk = inflater.decompress(inflater.unconsumed_tail, min(step, cap + 1 - written))
        if inflater.eof:
            break
    out.seek(0)
    return out
