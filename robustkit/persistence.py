"""Saving trained models as ``.npz`` without pickle, and writing any output file atomically.

A file holds the *recipe* (model and defense names with their parameters) as JSON and
the fitted arrays; loading rebuilds the model from installed plugins and restores the
arrays, so no code or pickled object is ever read from the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from . import __version__
from .errors import RobustkitError
from .faults import plugin_call
from .interfaces import Model
from .plugins import create

FORMAT = "robustkit-model"
FORMAT_VERSION = 1
_META_KEY = "__robustkit__"


@dataclass(frozen=True)
class Recipe:
    """How to build a (possibly defended) model from plugins: names plus parameters."""

    model: str
    model_params: dict[str, Any] = field(default_factory=dict)
    defense: str | None = None
    defense_params: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Model:
        """A fresh, unfitted model (wrapped by the defense, if any)."""
        model = create("model", self.model, **self.model_params)
        if self.defense is not None:
            defense = create("defense", self.defense, **self.defense_params)
            with plugin_call("apply", defense):
                model = defense.apply(model)
        return model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path`` and move it into place only on success."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise RobustkitError(f"cannot write {path}: folder {directory} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise RobustkitError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_model(
    path: str | os.PathLike, recipe: Recipe, model: Model, extra: dict | None = None
) -> None:
    """Write ``model``'s fitted arrays and ``recipe`` to ``path`` (``.npz``), atomically."""
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "robustkit_version": __version__,
        "recipe": recipe.to_dict(),
        "extra": extra or {},
    }
    arrays = {f"state/{key}": np.asarray(value) for key, value in model.get_state().items()}
    arrays[_META_KEY] = np.array(json.dumps(meta))
    with atomic_write(path, "wb") as handle:
        np.savez(handle, **arrays)


def read_model_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata and fitted arrays of a saved model; a clear error if it is not ours."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if _META_KEY not in data.files:
                raise RobustkitError(f"{path} is not a robustkit model file (no metadata)")
            meta = json.loads(str(data[_META_KEY]))
            state = {
                key.removeprefix("state/"): data[key]
                for key in data.files
                if key.startswith("state/")
            }
    except FileNotFoundError:
        raise RobustkitError(f"model file {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        if isinstance(exc, RobustkitError):
            raise
        raise RobustkitError(f"{path} is not a robustkit model file ({exc})") from None
    if meta.get("format") != FORMAT:
        raise RobustkitError(f"{path} is not a robustkit model file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise RobustkitError(
            f"{path} has model format version {meta.get('format_version')!r}; "
            f"this robustkit {__version__} reads version {FORMAT_VERSION}"
        )
    return meta, state


def restore_model(
    meta: dict[str, Any], state: dict[str, np.ndarray], path: str | os.PathLike
) -> tuple[Recipe, Model]:
    """Rebuild the model that ``read_model_file`` described from installed plugins."""
    recipe = Recipe(**meta["recipe"])
    model = recipe.build()
    try:
        model.set_state(state)
    except (KeyError, ValueError) as exc:
        raise RobustkitError(f"{path} does not fit model {recipe.model!r}: {exc}") from None
    return recipe, model


def load_model(path: str | os.PathLike) -> tuple[Recipe, Model]:
    """Rebuild a saved model from installed plugins and restore its fitted arrays."""
    return restore_model(*read_model_file(path), path)
