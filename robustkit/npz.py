"""Reading ``.npz`` files that may be corrupt or hostile, without pickle and within limits.

Every member is checked from the zip's own central directory before anything is read:
a known compression method, no encryption, a declared size below ``MAX_BYTES`` (and no
implausible compression ratio), and an ``.npy`` header whose shape and dtype account for
exactly the declared size. Reading then stops at the declared size, and zipfile verifies
each member's CRC, so a truncated, bit-flipped or oversized file gives one clear error.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import RobustkitError

#: Largest total uncompressed size accepted (the built-in models need a few MB).
MAX_BYTES = 512 * 2**20
#: A member this many times larger than its compressed size (and over 16 MB) is a bomb.
MAX_RATIO = 1000
_BOMB_FLOOR = 16 * 2**20
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}


class NpzError(RobustkitError):
    """The file is not a well-formed ``.npz`` within the limits."""


def read_npz(path: str | os.PathLike, max_bytes: int = MAX_BYTES) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` by name; NpzError on anything malformed."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = _checked_members(archive, max_bytes)
            return {name.removesuffix(".npy"): _read_member(archive, i) for name, i in members}
    except NpzError:
        raise
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise NpzError("it is a folder") from None
    except MemoryError:
        raise NpzError("not enough memory to read it") from None
    except Exception as exc:  # any parser failure on an untrusted file is "malformed"
        raise NpzError(_describe(exc)) from None


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _checked_members(archive: zipfile.ZipFile, max_bytes: int) -> list[tuple[str, zipfile.ZipInfo]]:
    infos = archive.infolist()
    if not infos:
        raise NpzError("empty archive")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise NpzError("the archive lists a member twice")
    total = 0
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise NpzError(f"member {info.filename!r} is not an .npy array")
        if info.flag_bits & 0x1:
            raise NpzError(f"member {info.filename!r} is encrypted")
        if info.compress_type not in _METHODS:
            raise NpzError(
                f"member {info.filename!r} uses zip method {info.compress_type}; "
                f"accepted: {', '.join(_METHODS.values())}"
            )
        total += info.file_size
        if total > max_bytes:
            raise NpzError(f"its arrays declare {total} bytes, more than the {max_bytes} accepted")
        if info.file_size > _BOMB_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise NpzError(
                f"member {info.filename!r} declares {info.file_size} bytes from "
                f"{info.compress_size} compressed bytes (a decompression bomb?)"
            )
    return list(zip(names, infos, strict=True))


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One array, reading at most its declared size; its header must match that size."""
    with archive.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise NpzError(f"member {info.filename!r} has .npy version {version}")
        if dtype.hasobject:
            raise NpzError(f"member {info.filename!r} holds Python objects (never unpickled)")
        count = math.prod(shape)
        expected = stream.tell() + count * dtype.itemsize
        if expected != info.file_size:
            raise NpzError(
                f"member {info.filename!r}: its header declares shape {shape} of {dtype} "
                f"({expected} bytes), the zip declares {info.file_size} bytes"
            )
        array = np.empty(count, dtype=dtype)
        buffer = memoryview(array.view(np.uint8) if count else np.empty(0, np.uint8))
        filled = 0
        while filled < len(buffer):
            got = stream.readinto(buffer[filled:])
            if not got:
                raise NpzError(f"member {info.filename!r} is truncated")
            filled += got
        if stream.read(1):  # also makes zipfile check the CRC at the end
            raise NpzError(f"member {info.filename!r} is longer than declared")
    return array.reshape(shape, order="F" if fortran else "C")


def json_header(
    array: np.ndarray | None, path: Path, what: str, form: str, version: int
) -> dict[str, Any]:
    """The JSON metadata array of a robustkit ``.npz`` (a model or sample file), checked:
    text, a JSON object of format ``form`` at ``version``; one line naming ``what`` if not."""
    if array is None:
        raise RobustkitError(f"{path} is not a robustkit {what} (no metadata)")
    if array.shape != () or array.dtype.kind != "U":
        raise RobustkitError(f"{path} is not a robustkit {what} (metadata is not text)")
    try:
        header = json.loads(str(array))
    except json.JSONDecodeError as exc:
        raise RobustkitError(f"{path} is not a robustkit {what} ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != form:
        raise RobustkitError(f"{path} is not a robustkit {what}")
    if header.get("format_version") != version:
        raise RobustkitError(
            f"{path} has {what.removesuffix(' file')} format version "
            f"{header.get('format_version')!r}; this robustkit {__version__} reads version "
            f"{version}"
        )
    return header
