"""Training runs of questions 1-5: one ``robustkit.train`` call per table row.

Each question script lists its runs as ``TrainRun`` objects (a model spec and the study
row it reproduces); ``run_training`` trains one and returns the study's columns plus the
per-epoch history. ``--quick`` (used by the tests) trains on a few hundred samples for
one epoch at batch size 1 instead.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import robustkit
from robustkit import PluginSpec

#: The data set every run reads (raw pixels; PCA, where used, is part of the model).
DATASET = "fashion-mnist"
#: Quick mode: the first samples of each split (of 60,000 and 10,000), at most this many
#: epochs, and one epoch at batch size 1. Fewer samples leave the RBF network on the
#: (scaled) PCA features untrained, rejecting every input once it has a noise class.
QUICK_DATA = {"n_train": 10_000, "n_test": 1_000}
FULL_TRAIN = 60_000
QUICK_EPOCHS = 10
#: The seed of every run (the model's random_state: initialisation, shuffling, noise).
SEED = 0


@dataclass(frozen=True)
class TrainRun:
    """One table row: a model spec and the index of the study row it reproduces.

    ``study_row`` is None for a robustkit-only comparison row (e.g. the same recipe on
    PCA features in question 4). ``label`` names the row in the report. ``fallback``,
    a (model, dataset) pair, is trained instead if the recipe diverges; the report says so.
    """

    model: str
    label: str
    study_row: int | None = None
    dataset: str = DATASET
    fallback: tuple[str, str] | None = None

    @property
    def spec(self) -> PluginSpec:
        """The model spec as a PluginSpec (name and parameters)."""
        return PluginSpec.coerce(self.model, "model")

    @property
    def input_name(self) -> str:
        """What the network sees: 128 PCA features (scaled, if the data set made them)
        or the 784 raw pixels."""
        pca = self.spec.params.get("pca")
        data_pca = PluginSpec.coerce(self.dataset, "dataset").params.get("pca")
        if data_pca:
            return f"PCA {data_pca}, scaled"
        return f"PCA {pca}" if pca else "784 pixels"

    def fallback_run(self) -> TrainRun:
        """The fallback recipe as a run of its own."""
        model, dataset = self.fallback
        return TrainRun(model, self.label, self.study_row, dataset)


def quick_model(spec: PluginSpec) -> PluginSpec:
    """The same recipe with at most QUICK_EPOCHS epochs (one at batch size 1)."""
    params = dict(spec.params)
    cap = 1 if params.get("batch_size") == 1 else QUICK_EPOCHS
    params["epochs"] = min(int(params.get("epochs", cap)), cap)
    return PluginSpec(spec.name, params)


def quick_dataset(spec: PluginSpec) -> PluginSpec:
    """The same data set restricted to its first QUICK_DATA samples."""
    return PluginSpec(spec.name, {**spec.params, **QUICK_DATA})


def run_training(run: TrainRun, data_dir: str | Path, *, quick: bool = False) -> dict[str, Any]:
    """Train one row and return the study's columns, the history and wall seconds.

    ``seconds`` is the fit alone (as in the study's "training duration"), ``wall_seconds``
    adds reading the data. If training diverges and the run has a fallback, the fallback
    is trained and ``diverged`` holds the first recipe's error.
    """
    model, dataset = run.spec, PluginSpec.coerce(run.dataset, "dataset")
    if quick:
        model, dataset = quick_model(model), quick_dataset(dataset)
    start = time.perf_counter()
    try:
        result = robustkit.train(
            (model.name, model.params), (dataset.name, dataset.params), data_dir=data_dir, seed=SEED
        )
    except robustkit.RobustkitError as error:
        if run.fallback is None or "diverged" not in str(error):
            raise
        row = run_training(run.fallback_run(), data_dir, quick=quick)
        row["diverged"] = {"model": run.model, "dataset": run.dataset, "error": str(error)}
        row["wall_seconds"] = time.perf_counter() - start
        return row
    summary = result.summary()
    return {
        "model": run.model,
        "dataset": run.dataset,
        "input": run.input_name,
        "label": run.label,
        "epochs": summary["epochs"],
        "batch_size": summary["batch_size"],
        "lr": summary["lr"],
        "train_accuracy": summary["train_accuracy"],
        "test_accuracy": summary["test_accuracy"],
        "seconds": summary["seconds"],
        "wall_seconds": time.perf_counter() - start,
        "history": summary["history"],
    }


def main(question: int, runs: list[TrainRun], description: str | None) -> None:
    """Command line of a question script: train its runs and print one line per run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data-dir", required=True, help="folder holding fashion-mnist/")
    parser.add_argument("--quick", action="store_true", help="few samples and epochs")
    args = parser.parse_args()
    print(f"question {question}: {len(runs)} runs, seed {SEED}")
    for run in runs:
        row = run_training(run, args.data_dir, quick=args.quick)
        if "diverged" in row:
            print(f"{run.model}: {row['diverged']['error']}; fallback on {row['dataset']}:")
        print(
            f"{row['model']:55s} train {100 * row['train_accuracy']:5.1f}%  "
            f"test {100 * row['test_accuracy']:5.1f}%  {row['seconds']:7.1f} s"
        )
