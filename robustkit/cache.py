"""On-disk cache of trained models, keyed by recipe, data set, data content and version,
so a second run with other attacks trains nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from . import __version__
from .errors import RobustkitError
from .interfaces import DataSplit, Model
from .persistence import FORMAT_VERSION, Recipe, read_model_file, restore_model, save_model


def data_fingerprint(split: DataSplit) -> str:
    """A hash of the training data and its bounds: any change in the data changes it."""
    digest = hashlib.blake2b(digest_size=16)
    for array in (split.X_train, split.y_train):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    digest.update(repr(tuple(map(float, split.bounds))).encode())
    return digest.hexdigest()


class ModelCache:
    """Trained models as ``.npz`` files in ``folder``, one per cache key."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def key(self, recipe: Recipe, dataset: dict, fingerprint: str) -> str:
        """Stable key of everything that determines the trained weights."""
        payload = {
            "recipe": recipe.to_dict(),
            "dataset": dataset,
            "data": fingerprint,
            "robustkit": __version__,
            "format": FORMAT_VERSION,
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def load(self, key: str) -> tuple[Model, dict] | None:
        """The cached model and its extra metadata, or None (also for an unreadable file)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            meta, state = read_model_file(path)
            _, model = restore_model(meta, state, path)
        except RobustkitError:
            return None
        return model, meta.get("extra", {})

    def store(self, key: str, recipe: Recipe, model: Model, extra: dict) -> bool:
        """Save ``model``; False if it cannot be saved (no get_state, folder not writable)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            save_model(self.path(key), recipe, model, extra)
        except (NotImplementedError, RobustkitError, OSError):
            return False
        return True
