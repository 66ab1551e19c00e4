"""On-disk cache of trained models, keyed by recipe, data, plugin code and version, so a
second run with other attacks trains nothing.

The key covers the distribution and version of every plugin that builds the model and,
for plugins not installed from a wheel (editable installs, in-tree or in-process code),
a hash of their source files, so editing ``fit`` retrains. Each entry records its key and
recipe; an entry that is malformed in any way is reported in one warning and retrained.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import site
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import RobustkitError
from .interfaces import DataSplit, Model
from .outputs import remove_stale_temporaries
from .persistence import FORMAT_VERSION, Recipe, read_model_file, restore_model, save_model
from .plugins import registry


class CacheWarning(UserWarning):
    """A cache entry was unusable (and is retrained) or the cache cannot be written."""


def data_fingerprint(split: DataSplit) -> str:
    """A hash of the training data and its bounds: any change in the data changes it."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (split.X_train, split.y_train):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    digest.update(repr(tuple(map(float, split.bounds))).encode())
    return digest.hexdigest()


def _installed_roots() -> list[Path]:
    roots = [*site.getsitepackages(), site.getusersitepackages()]
    return [Path(root).resolve() for root in roots]


def _is_editable(distribution: str) -> bool:
    """True when pip recorded an editable install (PEP 610 ``direct_url.json``)."""
    try:
        text = importlib.metadata.distribution(distribution).read_text("direct_url.json")
        return bool(text and json.loads(text).get("dir_info", {}).get("editable"))
    except (importlib.metadata.PackageNotFoundError, ValueError, AttributeError):
        return False


@functools.cache
def _source_hash(module_name: str) -> str | None:
    """A hash of the source files of the package that holds ``module_name`` (its whole
    top-level package, so shared helpers count too); None if they cannot be found."""
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if not file:
        return None
    top = sys.modules.get(module_name.partition(".")[0])
    folder = Path(getattr(top, "__file__", file)).parent
    files = sorted(folder.rglob("*.py")) if getattr(top, "__path__", None) else [Path(file)]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _from_wheel(module_name: str, distribution: str) -> bool:
    """True if the module's file lies in site-packages and the install is not editable."""
    file = getattr(sys.modules.get(module_name), "__file__", None)
    if not file or _is_editable(distribution):
        return False
    resolved = Path(file).resolve()
    return any(resolved.is_relative_to(root) for root in _installed_roots())


def plugin_identity(kind: str, name: str) -> dict[str, Any]:
    """Distribution, version and (when not installed from a wheel) source hash of a plugin."""
    entry = registry(kind).get(name)
    module = entry.cls.__module__
    identity: dict[str, Any] = {
        "distribution": entry.source.distribution,
        "version": entry.source.version,
    }
    if not _from_wheel(module, entry.source.distribution):
        identity["source"] = _source_hash(module)
    return identity


def recipe_plugins(recipe: Recipe) -> dict[str, Any]:
    """The identity of every plugin that builds ``recipe``'s model."""
    used = {f"model:{recipe.model}": plugin_identity("model", recipe.model)}
    if recipe.defense is not None:
        used[f"defense:{recipe.defense}"] = plugin_identity("defense", recipe.defense)
    return used


@dataclass(frozen=True)
class CacheEntry:
    """One cached model file, for ``robustkit cache list``."""

    key: str
    path: Path
    size: int
    model: str
    defense: str | None
    dataset: str
    error: str | None = None


def default_folder() -> Path:
    """Where ``eval`` caches models unless told otherwise: ``<user cache>/models``."""
    from .download import cache_dir

    return cache_dir() / "models"


class ModelCache:
    """Trained models as ``.npz`` files in ``folder``, one per cache key."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._warned_unwritable = False
        remove_stale_temporaries(self.folder)

    def key(self, recipe: Recipe, dataset: dict, fingerprint: str) -> str:
        """Stable key of everything that determines the trained weights."""
        payload = {
            "recipe": recipe.to_dict(),
            "dataset": dataset,
            "data": fingerprint,
            "robustkit": __version__,
            "format": FORMAT_VERSION,
            "plugins": recipe_plugins(recipe),
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def load(self, key: str, recipe: Recipe | None = None) -> tuple[Model, dict] | None:
        """The cached model and its extra metadata, or None when there is none; a malformed
        entry (or one recorded for another key or recipe) is reported and gives None."""
        path = self.path(key)
        if not path.exists():
            return None
        try:
            meta, state = read_model_file(path)
            recorded = meta["extra"].get("cache_key")
            if recorded != key:
                raise RobustkitError(f"{path} is recorded under key {recorded!r}, not {key!r}")
            if recipe is not None and meta["recipe"] != recipe.to_dict():
                raise RobustkitError(f"{path} holds a model of another recipe")
            _, model = restore_model(meta, state, path)
        except RobustkitError as exc:
            warnings.warn(f"cache entry unusable, retraining: {exc}", CacheWarning, stacklevel=2)
            return None
        return model, meta["extra"]

    def store(self, key: str, recipe: Recipe, model: Model, extra: dict) -> bool:
        """Save ``model``; False (with one warning per cache) if the folder is not writable."""
        try:
            model.get_state()
        except NotImplementedError:
            return False  # a model that cannot be saved is simply not cached
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            save_model(self.path(key), recipe, model, {**extra, "cache_key": key})
        except (RobustkitError, OSError) as exc:
            if not self._warned_unwritable:
                self._warned_unwritable = True
                reason = getattr(exc, "strerror", None) or exc
                warnings.warn(
                    f"cannot write the model cache {self.folder} ({reason}); "
                    "models are trained anew next time",
                    CacheWarning,
                    stacklevel=2,
                )
            return False
        return True

    def entries(self) -> list[CacheEntry]:
        """Every ``.npz`` file in the cache, with what it holds (or why it is unusable)."""
        out = []
        for path in sorted(self.folder.glob("*.npz")):
            size = path.stat().st_size
            try:
                meta, _ = read_model_file(path)
            except RobustkitError as exc:
                out.append(CacheEntry(path.stem, path, size, "?", None, "?", str(exc)))
                continue
            recipe, extra = meta["recipe"], meta["extra"]
            dataset = extra.get("dataset", {})
            name = dataset.get("name", "?") if isinstance(dataset, dict) else str(dataset)
            out.append(CacheEntry(path.stem, path, size, recipe["model"], recipe["defense"], name))
        return out

    def clear(self) -> int:
        """Delete every cached model and left-over temporary file; return how many."""
        removed = 0
        for path in [*self.folder.glob("*.npz"), *self.folder.glob(".*.tmp")]:
            path.unlink(missing_ok=True)
            removed += 1
        return removed
