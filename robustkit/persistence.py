"""Saving trained models as ``.npz`` without pickle, and loading them back with checks.

A file holds the *recipe* (model and defense names with their parameters) as JSON and
the fitted arrays; loading rebuilds the model from installed plugins and restores the
arrays, so no code or pickled object is ever read from the file. A malformed file of any
kind is a one-line RobustkitError. (``atomic_write`` lives in ``robustkit.outputs``.)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import RobustkitError
from .faults import plugin_call
from .interfaces import Model
from .npz import NpzError, json_header, read_npz
from .outputs import atomic_write
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
    """The checked metadata and fitted arrays of a saved model; a one-line error on any
    file that is not a well-formed robustkit model (see ``robustkit.npz``)."""
    path = Path(path)
    try:
        arrays = read_npz(path)
    except FileNotFoundError:
        raise RobustkitError(f"model file {path} does not exist") from None
    except NpzError as exc:
        raise RobustkitError(f"{path} is not a robustkit model file ({exc})") from None
    meta = json_header(arrays.pop(_META_KEY, None), path, "model file", FORMAT, FORMAT_VERSION)
    _check_meta(meta, path)
    unknown = sorted(key for key in arrays if not key.startswith("state/"))
    if unknown:
        raise RobustkitError(f"{path} holds unexpected arrays: {', '.join(unknown)}")
    state = {key.removeprefix("state/"): value for key, value in arrays.items()}
    return meta, state


_META_TYPES = {"robustkit_version": str, "recipe": dict, "extra": dict}
_RECIPE_TYPES = {
    "model": str,
    "model_params": dict,
    "defense": (str, type(None)),
    "defense_params": dict,
}


def _check_meta(meta: dict[str, Any], path: Path) -> None:
    """Every metadata field present with the right type (an edited file fails here)."""
    for fields, where in ((_META_TYPES, meta), (_RECIPE_TYPES, meta.get("recipe"))):
        if not isinstance(where, dict):
            raise RobustkitError(f"{path}: broken metadata: 'recipe' is not a table")
        for key, kind in fields.items():
            if key not in where:
                raise RobustkitError(f"{path}: broken metadata: no {key!r}")
            if not isinstance(where[key], kind):
                raise RobustkitError(
                    f"{path}: broken metadata: {key!r} is {type(where[key]).__name__}"
                )
    extra_keys = sorted(set(meta["recipe"]) - set(_RECIPE_TYPES))
    if extra_keys:
        raise RobustkitError(f"{path}: broken metadata: unknown recipe key {extra_keys[0]!r}")


def _check_state(state: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Numbers in a fitted state must be finite: NaN weights are no model."""
    for key, value in state.items():
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            raise RobustkitError(f"{path}: state array {key!r} holds NaN or infinite values")
        if value.dtype.kind not in "biufcUS":
            raise RobustkitError(f"{path}: state array {key!r} has unsupported type {value.dtype}")


def _check_classes(model: Model, path: str | os.PathLike) -> None:
    """``classes_`` must be unique and sorted, as scikit-learn estimators keep them."""
    classes = np.asarray(getattr(model, "classes_", []))
    if classes.ndim != 1 or len(classes) < 1 or not np.array_equal(np.unique(classes), classes):
        raise RobustkitError(f"{path}: the model's classes are not unique and sorted")


def restore_model(
    meta: dict[str, Any], state: dict[str, np.ndarray], path: str | os.PathLike
) -> tuple[Recipe, Model]:
    """Rebuild the model that ``read_model_file`` described from installed plugins."""
    recipe = Recipe(**meta["recipe"])
    _check_state(state, path)
    try:
        model = recipe.build()
    except (RobustkitError, TypeError, ValueError) as exc:  # e.g. a plugin not installed
        raise RobustkitError(f"{path}: cannot rebuild its model: {exc}") from None
    try:
        model.set_state(state)
    except RobustkitError as exc:
        raise RobustkitError(f"{path} does not fit model {recipe.model!r}: {exc}") from None
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise RobustkitError(f"{path} does not fit model {recipe.model!r}: {exc}") from None
    _check_classes(model, path)
    return recipe, model


def load_model(path: str | os.PathLike) -> tuple[Recipe, Model]:
    """Rebuild a saved model from installed plugins and restore its fitted arrays."""
    return restore_model(*read_model_file(path), path)
