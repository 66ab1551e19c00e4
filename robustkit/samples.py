"""The grid's sample set, and per-sample results saved as ``.npz`` (no pickle).

A sample set is chosen once per grid: ``first`` takes the first ``n`` test samples
(right or wrong) for every model, so models and defenses are compared on the same
inputs; ``correct`` takes, per model, the first ``n`` it classifies correctly (the
study's choice, conditional on the model).

A sample file (``robustkit eval --save-samples FILE.npz``) holds, for every (model,
defense, λ, attack) cell, the arrays ``cell<i>/<name>``:

- ``indices`` (n,): test-set indices of the sample set; ``labels`` (n,) their labels;
- ``clean_predictions`` (n,); ``attacked`` (n,): classified correctly, so attacked;
- ``predictions`` (K, n): the prediction under the attack at each of the K budgets (a
  sample that was not attacked keeps its clean prediction); ``success`` (K, n): attacked
  and no longer correct (a reject counts, as in ``attack_success_rate``);
- ``linf``, ``l2`` (K, n): ‖x' − x‖∞ and ‖x' − x‖₂ in ε units (0 where not attacked);
- ``adversarials`` (K, n, features…), with ``--save-adversarials`` only;

and a JSON entry ``__robustkit__`` with the format marker, the run's metadata and one
record per cell (labels, seed, ε). The worst case over attacks is the per-sample OR of
the ``success`` flags (or of ``predictions != labels``) of a model's cells.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from . import __version__
from .errors import RobustkitError
from .metrics import outcomes
from .npz import NpzError, json_header, read_npz
from .outputs import atomic_write

#: How the sample set is chosen (``--samples``).
SAMPLE_SETS = ("first", "correct")
FORMAT = "robustkit-samples"
FORMAT_VERSION = 1
_META_KEY = "__robustkit__"
_ARRAYS = ("indices", "labels", "clean_predictions", "attacked", "predictions", "linf", "l2")


def check_sample_set(samples: Any) -> str:
    """``samples`` if it names a sample set, else a one-line error naming the choices."""
    if samples not in SAMPLE_SETS:
        raise RobustkitError(
            f"samples must be one of {', '.join(SAMPLE_SETS)} (first N test samples, or "
            f"the first N each model classifies correctly); got {samples!r}"
        )
    return samples


def check_sample_count(n_samples: int, n_test: int, dataset: str) -> None:
    """A sample set cannot be larger than the test set (checked before any training)."""
    if n_samples > n_test:
        raise RobustkitError(
            f"n_samples is {n_samples}, but data set {dataset!r} has only {n_test} test "
            "samples; use at most that many"
        )


def select_samples(
    samples: str, n: int, y_test: np.ndarray, predictions: np.ndarray, model: str
) -> np.ndarray:
    """Test indices of the sample set for one model (``predictions``: its clean ones)."""
    if check_sample_set(samples) == "first":
        return np.arange(n)
    correct = np.flatnonzero(np.asarray(predictions) == np.asarray(y_test))
    if len(correct) < n:
        raise RobustkitError(
            f"n_samples is {n}, but {model} classifies only {len(correct)} test samples "
            "correctly; use at most that many, or samples=first"
        )
    return correct[:n]


@dataclass
class SampleCell:
    """Per-sample results of one (model, defense, λ, attack) cell over the sample set."""

    model: str
    defense: str
    lam: float | None
    attack: str
    seed: int
    eps: list[float]
    indices: np.ndarray
    labels: np.ndarray
    clean_predictions: np.ndarray
    attacked: np.ndarray
    predictions: np.ndarray
    linf: np.ndarray
    l2: np.ndarray
    adversarials: np.ndarray | None = None

    @property
    def outcomes(self) -> np.ndarray:
        """(K, n) CORRECT, REJECTED or EVADED per budget and sample (``metrics.outcomes``)."""
        return outcomes(self.labels[None], self.predictions)

    @property
    def success(self) -> np.ndarray:
        """(K, n) attacked and no longer correct (a reject counts)."""
        return self.attacked[None] & (self.predictions != self.labels[None])

    def record(self) -> dict[str, Any]:
        """The cell's labels for the file's metadata."""
        return {
            "model": self.model,
            "defense": self.defense,
            "lam": self.lam,
            "attack": self.attack,
            "seed": self.seed,
            "eps": self.eps,
            "n_samples": len(self.indices),
            "has_adversarials": self.adversarials is not None,
        }


def _labels_array(values: np.ndarray) -> np.ndarray:
    """Labels as a pickle-free array (text labels, with REJECT, become strings)."""
    values = np.asarray(values)
    return values.astype(str) if values.dtype == object else values


def write_samples_file(
    path: str | os.PathLike, cells: list[SampleCell], meta: dict[str, Any]
) -> None:
    """Write every cell's per-sample arrays and the metadata to ``path``, atomically."""
    from .result import plain

    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "robustkit_version": __version__,
        "meta": plain({k: v for k, v in meta.items() if k not in ("samples", "plugins")}),
        "cells": plain([cell.record() for cell in cells]),
    }
    arrays: dict[str, np.ndarray] = {_META_KEY: np.array(json.dumps(header))}
    for i, cell in enumerate(cells):
        prefix = f"cell{i}/"
        for name in _ARRAYS:
            arrays[prefix + name] = _labels_array(getattr(cell, name))
        arrays[prefix + "success"] = cell.success
        if cell.adversarials is not None:
            arrays[prefix + "adversarials"] = cell.adversarials
    with atomic_write(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)


def _header(arrays: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    return json_header(arrays.get(_META_KEY), path, "sample file", FORMAT, FORMAT_VERSION)


def _read(path: Path) -> dict[str, np.ndarray]:
    try:
        return read_npz(path)
    except FileNotFoundError:
        raise RobustkitError(f"sample file {path} does not exist") from None
    except NpzError as exc:
        raise RobustkitError(f"{path} is not a robustkit sample file ({exc})") from None


def read_samples_file(path: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and, per cell, its record plus arrays; a clear error if it is not ours.

    Read through ``robustkit.npz``, so a truncated, corrupt or oversized file is one line.
    """
    path = Path(path)
    arrays = _read(path)
    header = _header(arrays, path)
    cells = header.get("cells")
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise RobustkitError(f"{path} is not a robustkit sample file (no cell records)")
    out = []
    for i, record in enumerate(cells):
        prefix = f"cell{i}/"
        cell = {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}
        out.append({**record, **cell})
    return header, out


def is_samples_file(path: str | os.PathLike) -> bool:
    """True if ``path`` is an ``.npz`` whose metadata says it is a sample file."""
    try:
        _header(_read(Path(path)), Path(path))
    except RobustkitError:
        return False
    return True


def describe_samples(path: str | os.PathLike) -> str:
    """What ``robustkit info FILE.npz`` prints for a sample file: run, ε, one line per cell
    with its sample counts and the robust samples at each ε."""
    header, cells = read_samples_file(path)
    meta = header["meta"]
    grid = meta.get("grid", {})
    eps = cells[0]["eps"] if cells else []
    lines = [
        f"sample file: {len(cells)} cells, written by robustkit {header['robustkit_version']}",
        f"dataset:     {meta.get('dataset')} (bounds {meta.get('bounds')}, "
        f"ε unit {meta.get('eps_unit')})",
        f"sample set:  {grid.get('samples')}, n = {grid.get('n_samples')}; seed {meta.get('seed')}",
        f"ε:           {', '.join(f'{e:g}' for e in eps)}",
        "",
    ]
    table = []
    for cell in cells:
        robust = (cell["predictions"] == cell["labels"][None]) & cell["attacked"][None]
        table.append(
            [
                cell["model"],
                cell["defense"],
                "-" if cell["lam"] is None else f"{cell['lam']:g}",
                cell["attack"],
                len(cell["indices"]),
                int(cell["attacked"].sum()),
                *(int(count) for count in robust.sum(axis=1)),
                "yes" if cell["has_adversarials"] else "no",
            ]
        )
    headers = ["model", "defense", "λ", "attack", "samples", "attacked"]
    headers += [f"robust at ε={e:g}" for e in eps] + ["adversarials"]
    lines.append(tabulate(table, headers=headers, disable_numparse=True))
    return "\n".join(lines)
