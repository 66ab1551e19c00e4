"""Read IDX files (the MNIST format), raw or gzip-compressed, with strict validation.

An IDX file is a 4-byte magic number (two zero bytes, a data type code, the number of
dimensions), one big-endian uint32 per dimension, then the values in C order, big-endian.
Every problem raises ``DataError`` with one line naming the file, so third-party data set
plugins can reuse ``read_idx`` and get the same messages.
"""

from __future__ import annotations

import gzip
import math
import zlib
from os import PathLike
from pathlib import Path

import numpy as np

from .errors import DataError

#: IDX type code → (big-endian numpy dtype, name used in messages).
IDX_DTYPES: dict[int, tuple[str, str]] = {
    0x08: (">u1", "ubyte"),
    0x09: (">i1", "byte"),
    0x0B: (">i2", "short"),
    0x0C: (">i4", "int"),
    0x0D: (">f4", "float"),
    0x0E: (">f8", "double"),
}

_GZIP_MAGIC = b"\x1f\x8b"
_KNOWN_CODES = ", ".join(f"0x{code:02X} {name}" for code, (_, name) in IDX_DTYPES.items())


def read_idx(path: str | PathLike[str]) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into a native-byte-order array of its declared shape.

    The file is read once and decoded with one ``np.frombuffer``; the header must match the
    payload size exactly. Raises ``DataError`` naming the file and the problem.
    """
    path = Path(path)
    data = _read_payload(path)
    dtype, shape, offset = _parse_header(data, path)
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - offset
    if found < expected:
        raise DataError(f"{path}: truncated: header says {expected} bytes of data, found {found}")
    if found > expected:
        raise DataError(
            f"{path}: {found - expected} trailing bytes: header says {expected} bytes "
            f"of data, found {found}"
        )
    values = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=offset)
    # One copy into native byte order: the result is writable and fast to compute with.
    return values.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def _read_payload(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is named ``.gz`` or starts with the gzip magic."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not data:
        raise DataError(f"{path}: empty file; expected an IDX file")
    if path.suffix == ".gz" or data.startswith(_GZIP_MAGIC):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: not a valid gzip file ({exc})") from None
        if not data:
            raise DataError(f"{path}: empty file once decompressed; expected an IDX file")
    return data


def _parse_header(data: bytes, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """Validate the magic number and dimensions; return (dtype, shape, payload offset)."""
    if len(data) < 4:
        raise DataError(
            f"{path}: truncated: {len(data)} bytes is shorter than the 4-byte IDX magic number"
        )
    zero, code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00":
        raise DataError(
            f"{path}: wrong magic number 0x{data[:4].hex().upper()}; expected an IDX file "
            "(0x0000, then a type code such as 08 for ubyte, then the number of dimensions)"
        )
    if code not in IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX data type code 0x{code:02X}; known: {_KNOWN_CODES}")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions; expected at least 1")
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(
            f"{path}: truncated: header declares {ndim} dimensions ({offset} header bytes), "
            f"found {len(data)} bytes"
        )
    shape = tuple(int(n) for n in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return np.dtype(IDX_DTYPES[code][0]), shape, offset
