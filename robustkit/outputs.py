"""Writing output files safely, and checking every output path before any work.

A regular file is written to a temporary file beside it, synced and renamed into place,
so a crash or a full disk never leaves a half-written file; its mode follows the umask.
Anything else that already exists (a device such as ``/dev/null``, a FIFO) is written
directly and never replaced, ``-`` means standard output, and a symlink is written
through to its target.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from .errors import RobustkitError

STDOUT = "-"
#: Temporary files older than this (seconds) are left-overs of a killed process.
STALE_SECONDS = 3600.0
_TMP_SUFFIX = ".tmp"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _umask_mode() -> int:
    """The mode a new file gets from the umask (0o666 & ~umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _temp_prefix(target: Path) -> str:
    return f".{target.name}."


def remove_stale_temporaries(
    folder: str | os.PathLike, prefix: str = ".", max_age: float = STALE_SECONDS
) -> int:
    """Delete ``prefix*.tmp`` files in ``folder`` older than ``max_age`` seconds (left by a
    killed process between creating and renaming a temporary file); return how many."""
    removed = 0
    cutoff = time.time() - max_age
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(_TMP_SUFFIX)):
                continue
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
    return removed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open ``path`` for writing so that it holds either its old or its complete new content.

    Any OSError (no space, no permission) becomes a one-line RobustkitError naming the
    path; the existing file is then untouched and no temporary file is left.
    """
    if str(path) == STDOUT:
        stream = sys.stdout.buffer if "b" in mode else sys.stdout
        yield stream
        stream.flush()
        return
    shown = Path(path)
    target = Path(os.path.realpath(shown))  # a symlink is written through to its target
    try:
        info = target.stat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise RobustkitError(f"cannot write {shown}: {_reason(exc)}") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise RobustkitError(f"cannot write {shown}: it is a folder")
    if info is not None and not stat.S_ISREG(info.st_mode):  # device, FIFO, socket
        try:
            with open(target, mode) as handle:
                yield handle
        except OSError as exc:
            raise RobustkitError(f"cannot write {shown}: {_reason(exc)}") from None
        return
    yield from _replace_regular(shown, target, mode, info)


def _replace_regular(
    shown: Path, target: Path, mode: str, info: os.stat_result | None
) -> Iterator[IO]:
    directory = target.parent
    if not directory.is_dir():
        raise RobustkitError(f"cannot write {shown}: folder {shown.parent} does not exist")
    remove_stale_temporaries(directory, _temp_prefix(target))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=_temp_prefix(target), suffix=_TMP_SUFFIX)
        os.fchmod(fd, stat.S_IMODE(info.st_mode) if info is not None else _umask_mode())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        tmp = None
        _sync_folder(directory)
    except OSError as exc:
        raise RobustkitError(f"cannot write {shown}: {_reason(exc)}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _sync_folder(directory: Path) -> None:
    """Make the rename durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _identity(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _check_writable(path: str) -> None:
    """Fail if ``path`` cannot be written; probe the folder with a real temporary file."""
    if path == STDOUT:
        return
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise RobustkitError(f"cannot write {path}: it is a folder")
    if target.exists() and not target.is_file():  # a device or FIFO is written directly
        if not os.access(target, os.W_OK):
            raise RobustkitError(f"cannot write {path}: permission denied")
        return
    folder = target.parent
    if not folder.is_dir():
        raise RobustkitError(f"cannot write {path}: folder {Path(path).parent} does not exist")
    if target.exists() and not os.access(target, os.W_OK):
        raise RobustkitError(f"cannot write {path}: permission denied")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(target), suffix=_TMP_SUFFIX)
    except OSError as exc:
        raise RobustkitError(f"cannot write {path}: {_reason(exc)}") from None
    os.close(fd)
    os.unlink(probe)


def check_outputs(
    outputs: Mapping[str, str | os.PathLike | None],
    inputs: Mapping[str, str | os.PathLike | None] | None = None,
) -> None:
    """Fail before any work if an output cannot be written, two outputs share a path, or
    an output is one of the ``inputs`` (the grid file, a model file): names are options."""
    seen: dict[str, str] = {}
    for option, value in (inputs or {}).items():
        if value is not None and str(value) != STDOUT:
            seen[_identity(str(value))] = option
    input_names = set(seen.values())
    for option, value in outputs.items():
        if value is None:
            continue
        path = str(value)
        _check_writable(path)
        if path == STDOUT:
            continue
        identity = _identity(path)
        if identity in seen:
            other = seen[identity]
            what = "the input" if other in input_names else "the output"
            raise RobustkitError(
                f"{option} {path} is also {what} {other}; give each output its own file"
            )
        seen[identity] = option
