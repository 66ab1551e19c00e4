"""Evaluation grids of questions 6-8 (``q*.toml``): load, shrink for quick mode, run.

The grids use the public ``Grid``/``Harness`` API. Within one run of ``run_all.py``
grids that share a trained model (question 7's λ = 400 is one of question 8's λ, and the
stronger attacks reuse both) go through one model cache, in a temporary folder.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from trainruns import FULL_TRAIN, QUICK_DATA, quick_dataset, quick_model

from robustkit import EvaluationResult, Grid, Harness, PluginSpec
from robustkit.cache import ModelCache

HERE = Path(__file__).resolve().parent
#: Quick mode: attacked samples per (model, defense), and at most this many PGD steps.
QUICK_SAMPLES = 20
QUICK_STEPS = 10


def load_grid(name: str, data_dir: str | Path, *, quick: bool = False) -> Grid:
    """The grid of ``HERE/<name>.toml`` reading ``data_dir``; ``quick`` shrinks it."""
    grid = Grid.from_toml(HERE / f"{name}.toml", data_dir=data_dir)
    return shrink(grid) if quick else grid


def shrink(grid: Grid) -> Grid:
    """The same grid on the quick subset and 20 attacked samples; the rejection defense
    keeps the study's ratio of noise to clean training samples (200 to 60,000)."""
    return dataclasses.replace(
        grid,
        dataset=quick_dataset(grid.dataset),
        models=[quick_model(spec) for spec in grid.models],
        defenses=[quick_defense(spec) for spec in grid.defenses],
        attacks=[quick_attack(spec) for spec in grid.attacks],
        n_samples=min(grid.n_samples, QUICK_SAMPLES),
    )


def quick_attack(spec: PluginSpec) -> PluginSpec:
    """An iterative attack with at most QUICK_STEPS steps (``auto``: its fast version)."""
    if spec.name == "auto":
        return PluginSpec(spec.name, {**spec.params, "version": "fast"})
    if "steps" not in spec.params:
        return spec
    return PluginSpec(spec.name, {**spec.params, "steps": min(spec.params["steps"], QUICK_STEPS)})


def quick_defense(spec: PluginSpec) -> PluginSpec:
    """The rejection defense with its noise samples scaled to the quick training set."""
    if spec.name != "reject":
        return spec
    n_noise = spec.params.get("n_noise", 200) * QUICK_DATA["n_train"] / FULL_TRAIN
    return PluginSpec(spec.name, {**spec.params, "n_noise": max(1, round(n_noise))})


def with_attacks(
    grid: Grid, attacks: list[str], eps: list[float] | None = None, *, quick: bool = False
) -> Grid:
    """The same models and defenses under other attacks (and optionally other ε)."""
    specs = [PluginSpec.coerce(attack, "attack") for attack in attacks]
    return dataclasses.replace(
        grid,
        attacks=[quick_attack(spec) for spec in specs] if quick else specs,
        epsilons=list(eps) if eps is not None else list(grid.epsilons),
    )


def run_grid(grid: Grid, cache_dir: str | Path | None = None) -> tuple[EvaluationResult, float]:
    """Evaluate ``grid`` (reusing models from ``cache_dir``); the result and wall seconds."""
    start = time.perf_counter()
    cache = ModelCache(cache_dir) if cache_dir is not None else None
    result = Harness(grid, cache=cache).run()
    return result, time.perf_counter() - start
