"""One training run: build a model from plugins, fit it on a data set, record the study's
columns (epochs, batch size, learning rate, train and test accuracy, seconds)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .faults import plugin_call
from .grid import PluginSpec
from .harness import check_split
from .interfaces import EpochCallback, Model, fit_model
from .persistence import Recipe
from .plugins import create


@dataclass
class TrainingRun:
    """A fitted model with its recipe, data set name, accuracies, seconds and history."""

    recipe: Recipe
    model: Model
    dataset: str
    train_accuracy: float
    test_accuracy: float
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The study's columns plus parameters and per-epoch history, ready for JSON."""
        params = self.model.get_params()
        return {
            "model": self.recipe.model,
            "dataset": self.dataset,
            "params": params,
            "epochs": params.get("epochs"),
            "batch_size": params.get("batch_size"),
            "lr": params.get("lr"),
            "train_accuracy": self.train_accuracy,
            "test_accuracy": self.test_accuracy,
            "seconds": self.seconds,
            "history": getattr(self.model, "history_", []),
            "robustkit_version": __version__,
        }


def train(
    model: Any = "hinge",
    dataset: Any = "digits",
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    callback: EpochCallback | None = None,
    on_start: Callable[[Model], None] | None = None,
) -> TrainingRun:
    """Train ``model`` (a name, ``"name:key=value"`` spec or ``(name, params)``) on ``dataset``.

    ``seed`` becomes the model's ``random_state`` unless the spec sets one; ``callback``
    receives each epoch's history record, ``on_start`` the unfitted model.
    """
    spec = PluginSpec.coerce(model, "model")
    params = dict(spec.params)
    params.setdefault("random_state", seed)
    recipe = Recipe(spec.name, params)
    estimator = recipe.build()
    data = PluginSpec.coerce(dataset, "dataset")
    split = create("dataset", data.name, **data.params).load(
        Path(data_dir) if data_dir is not None else None
    )
    check_split(split)
    with plugin_call("validate", estimator):
        estimator.validate()
    if on_start is not None:
        on_start(estimator)
    start = time.perf_counter()
    with plugin_call("fit", estimator):
        fit_model(
            estimator,
            split.X_train,
            split.y_train,
            eval_set=(split.X_test, split.y_test),
            callback=callback,
            bounds=split.bounds,
        )
    seconds = time.perf_counter() - start
    return TrainingRun(
        recipe,
        estimator,
        split.name,
        float(estimator.score(split.X_train, split.y_train)),
        float(estimator.score(split.X_test, split.y_test)),
        seconds,
    )
