"""Download files into robustkit's user cache, verified by md5 and moved into place atomically.

A download goes to a temporary file beside its destination and is renamed only once its
md5 matches, so a failed, interrupted or corrupt download never leaves a file behind.
``ROBUSTKIT_OFFLINE=1`` forbids every download. Data set plugins reuse ``fetch``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

from .errors import DataError, RobustkitError
from .outputs import atomic_write

#: Seconds to wait for a mirror to answer (and between received chunks).
TIMEOUT = 60.0
_CHUNK = 1 << 20


def cache_dir() -> Path:
    """The user cache folder for downloads and trained models.

    $ROBUSTKIT_CACHE_DIR, else $XDG_CACHE_HOME/robustkit, else ~/.cache/robustkit; with
    no home folder (HOME unset and no passwd entry, a container's usual case) a folder in
    the temporary directory, with a warning.
    """
    if os.environ.get("ROBUSTKIT_CACHE_DIR"):
        return Path(os.environ["ROBUSTKIT_CACHE_DIR"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "robustkit"
    try:
        return Path.home() / ".cache" / "robustkit"
    except (KeyError, RuntimeError, OSError):  # no HOME and no passwd entry for the uid
        return _temporary_cache_dir()


@functools.cache
def _temporary_cache_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / f"robustkit-cache-{os.getuid()}"
    warnings.warn(
        f"no home folder (HOME unset, no passwd entry for uid {os.getuid()}); caching in "
        f"{folder}; set ROBUSTKIT_CACHE_DIR to choose another folder",
        UserWarning,
        stacklevel=3,
    )
    return folder


def offline() -> bool:
    """True when ``ROBUSTKIT_OFFLINE`` is set to anything but empty or 0: no downloads."""
    return os.environ.get("ROBUSTKIT_OFFLINE", "") not in ("", "0")


def md5_of(path: str | PathLike[str]) -> str:
    """The hex md5 of a file's bytes, read in chunks."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "md5").hexdigest()


#: The file that remembers verified checksums by file identity (path, size, mtime, inode).
_VERIFIED_FILE = "verified-md5.json"


def _identity(path: Path) -> str:
    info = path.stat()
    return f"{path.resolve()}|{info.st_size}|{info.st_mtime_ns}|{info.st_ino}"


def cached_md5(path: str | PathLike[str]) -> str:
    """``md5_of(path)``, remembered in the user cache while the file's size, mtime and
    inode stay the same, so checking the data on every run costs nothing after the first."""
    path = Path(path)
    identity = _identity(path)
    store = cache_dir() / _VERIFIED_FILE
    try:
        known = json.loads(store.read_text(encoding="utf-8"))
        if not isinstance(known, dict):
            known = {}
    except (OSError, ValueError):
        known = {}
    if isinstance(known.get(identity), str):
        return known[identity]
    digest = md5_of(path)
    known[identity] = digest
    with contextlib.suppress(OSError, RobustkitError):  # an unwritable cache only costs time
        store.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(store) as handle:
            json.dump(known, handle)
    return digest


def fetch(
    url_or_urls: str | Sequence[str],
    dest: str | PathLike[str],
    md5: str,
    *,
    manual_hint: str | None = None,
) -> Path:
    """Download to ``dest``, trying each mirror in order, and return ``dest``.

    The file lands at ``dest`` only if its md5 equals ``md5``. Raises ``DataError`` when
    offline or when every mirror fails; ``manual_hint`` tells how to supply it by hand.
    """
    urls = [url_or_urls] if isinstance(url_or_urls, str) else list(url_or_urls)
    dest = Path(dest)
    hint = manual_hint or f"to supply it by hand, save it as {dest} (md5 {md5})"
    if not urls:
        raise DataError(f"no URL to download {dest.name} from; {hint}")
    if offline():
        raise DataError(f"{dest.name} is needed but ROBUSTKIT_OFFLINE=1 forbids downloads; {hint}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for url in urls:
        try:
            _download_verified(url, dest, md5.lower())
            return dest
        except _DownloadFailed as exc:
            failures.append(f"{url}: {exc}")
    raise DataError(f"download of {dest.name} failed ({'; '.join(failures)}); {hint}")


class _DownloadFailed(Exception):
    """One mirror failed; the message says why."""


def _download_verified(url: str, dest: Path, md5: str) -> None:
    """Stream ``url`` into a temporary file beside ``dest``; rename it there if the md5 matches."""
    import http.client
    import urllib.request  # imported here: it is slow to import and rarely needed

    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                    while chunk := response.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                raise _DownloadFailed(_reason(exc)) from None
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != md5:
            raise _DownloadFailed(f"checksum mismatch: expected md5 {md5}, got {actual}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _reason(exc: BaseException) -> str:
    """A short one-line reason for a failed request."""
    reason = getattr(exc, "reason", None) or exc
    return " ".join(f"{type(exc).__name__}: {reason}".split())
