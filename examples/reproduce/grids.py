"""Evaluation grids of questions 6-8 (``q*.toml``): load, shrink for quick mode, run.

The grids use the public ``Grid``/``Harness`` API. Within one run of ``run_all.py``
grids that share a trained model (question 7's λ = 400 is one of question 8's λ, and the
stronger attacks reuse both) go through one model cache, in a temporary folder.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from trainruns import quick_dataset, quick_model

from robustkit import EvaluationResult, Grid, Harness, PluginSpec
from robustkit.cache import ModelCache

HERE = Path(__file__).resolve().parent
#: Attacked samples per (model, defense) in quick mode (the small models classify few).
QUICK_SAMPLES = 20


def load_grid(name: str, data_dir: str | Path, *, quick: bool = False) -> Grid:
    """The grid of ``HERE/<name>.toml`` reading ``data_dir``; ``quick`` shrinks it."""
    grid = Grid.from_toml(HERE / f"{name}.toml", data_dir=data_dir)
    return shrink(grid) if quick else grid


def shrink(grid: Grid) -> Grid:
    """The same grid on a few hundred samples, one or two epochs and 20 attacked samples."""
    return dataclasses.replace(
        grid,
        dataset=quick_dataset(grid.dataset),
        models=[quick_model(spec) for spec in grid.models],
        n_samples=min(grid.n_samples, QUICK_SAMPLES),
    )


def with_attacks(grid: Grid, attacks: list[str], eps: list[float] | None = None) -> Grid:
    """The same models and defenses under other attacks (and optionally other ε)."""
    return dataclasses.replace(
        grid,
        attacks=[PluginSpec.coerce(attack, "attack") for attack in attacks],
        epsilons=list(eps) if eps is not None else list(grid.epsilons),
    )


def run_grid(grid: Grid, cache_dir: str | Path | None = None) -> tuple[EvaluationResult, float]:
    """Evaluate ``grid`` (reusing models from ``cache_dir``); the result and wall seconds."""
    start = time.perf_counter()
    cache = ModelCache(cache_dir) if cache_dir is not None else None
    result = Harness(grid, cache=cache).run()
    return result, time.perf_counter() - start
