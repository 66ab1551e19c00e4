"""The evaluation harness: train each (model, defense) once, attack it, collect rows.

Training results are cached on disk (see ``robustkit.cache``); training and attack
cells run in parallel with joblib when ``jobs > 1``. Each (model, defense) is attacked
on the first ``n_samples`` test samples it classifies correctly, as the study did.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .cache import ModelCache, data_fingerprint
from .certify import certification_metrics, check_certification, inconclusive
from .errors import DataError, RobustkitError
from .grid import Grid, PluginSpec
from .interfaces import GRADIENT_ATTACK, Attack, DataSplit, Model, require_capabilities
from .metrics import attack_metrics, clean_metrics
from .parallel import run_parallel
from .persistence import Recipe
from .plugins import create, registry
from .result import EvaluationResult
from .sanity import sanity_warnings

#: ``progress(label, done, total)``, called after each training and attack step.
Progress = Callable[[str, int, int], None]


@dataclass
class Trained:
    """A fitted (model, defense) with its clean results and the samples to attack."""

    recipe: Recipe
    model: Model
    train_seconds: float
    cached: bool
    clean: dict[str, float]
    attack_index: np.ndarray


def check_split(split: DataSplit) -> None:
    """Reject data with NaN/inf, mismatched lengths or values outside the bounds."""
    for part, X, y in (
        ("train", split.X_train, split.y_train),
        ("test", split.X_test, split.y_test),
    ):
        if X.ndim < 2 or len(X) != len(y) or len(X) == 0:
            raise DataError(
                f"data set {split.name!r}: {part} inputs {X.shape} and labels {y.shape} "
                "do not match (expected (n, features...) and (n,), n >= 1)"
            )
        if not np.all(np.isfinite(X)):
            raise DataError(f"data set {split.name!r}: {part} inputs hold NaN or infinite values")
        lo, hi = split.bounds
        if X.min() < lo or X.max() > hi:
            raise DataError(
                f"data set {split.name!r}: {part} inputs lie outside the declared bounds "
                f"[{lo:g}, {hi:g}]"
            )


def _fit(model: Model, X: np.ndarray, y: np.ndarray) -> tuple[Model, float]:
    start = time.perf_counter()
    model.fit(X, y)
    return model, time.perf_counter() - start


def _attack(
    model: Model,
    attack: Attack,
    X: np.ndarray,
    y: np.ndarray,
    eps: list[float],
    bounds: tuple[float, float],
    seed: int,
    unit: float,
    image_shape: tuple[int, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Attack with budgets ``eps`` given in ``unit`` (input units per ε unit)."""
    start = time.perf_counter()
    span = bounds[1] - bounds[0]
    fractions = [e * unit / span for e in eps]
    result = attack.perturb(
        model, X, y, fractions, bounds=bounds, random_state=seed, image_shape=image_shape
    )
    predictions = np.stack([model.predict(adv) for adv in result.adversarials])
    seconds = time.perf_counter() - start
    delta = (result.adversarials - X[None]).reshape(len(eps), len(X), -1)
    linf = np.abs(delta).max(axis=2) / unit
    return predictions, linf, result.zero_gradient, seconds


def _stable_seed(*parts: Any) -> int:
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def _lam_of(model: Model) -> float | None:
    params = model.get_params(deep=True)
    lam = params.get("model__lam", params.get("lam"))
    return None if lam is None else float(lam)


def _label(name: str, params: dict[str, Any], hidden: Iterable[str] = ()) -> str:
    shown = {k: v for k, v in params.items() if k not in hidden}
    return PluginSpec(name, shown).label


class Harness:
    """Evaluates one ``Grid`` on one data set; ``run()`` returns an EvaluationResult."""

    def __init__(
        self,
        grid: Grid,
        *,
        cache: ModelCache | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.grid = grid
        self.cache = cache
        self.progress = progress or (lambda label, done, total: None)

    def run(self) -> EvaluationResult:
        """Load the data, train (or reuse) every model, attack it, and report."""
        grid = self.grid
        grid.validate()
        started = time.perf_counter()
        split = create("dataset", grid.dataset.name, **grid.dataset.params).load(grid.data_dir)
        check_split(split)
        recipes = grid.recipes()
        attacks = [(spec, create("attack", spec.name, **spec.params)) for spec in grid.attacks]
        unfitted = [recipe.build() for recipe in recipes]
        for model in unfitted:  # every mismatch is found before anything trains
            for spec, attack in attacks:
                require_capabilities(model, attack.requires, f"attack {spec.name!r}")
        if grid.certify:
            span = split.bounds[1] - split.bounds[0]
            fractions = [e * self._eps_unit_size(split) / span for e in grid.epsilons]
            check_certification(unfitted, grid.certify, fractions)
        self._total = len(recipes) + len(recipes) * len(attacks)
        self._done = 0
        trained = self._train(split, recipes, unfitted)
        rows = self._attack_all(split, trained, attacks)
        meta = self._meta(split, recipes, time.perf_counter() - started)
        return EvaluationResult(rows=rows, meta=meta, warnings=sanity_warnings(rows))

    def _step(self, label: str) -> None:
        self._done += 1
        self.progress(label, self._done, self._total)

    def _train(
        self, split: DataSplit, recipes: list[Recipe], unfitted: list[Model]
    ) -> list[Trained]:
        """Load each recipe's model from the cache, or fit its unfitted model (and cache it)."""
        dataset = {"name": self.grid.dataset.name, "params": self.grid.dataset.params}
        keys: list[str | None] = [None] * len(recipes)
        if self.cache:
            fingerprint = data_fingerprint(split)
            keys = [self.cache.key(recipe, dataset, fingerprint) for recipe in recipes]
        models: dict[int, tuple[Model, float, bool]] = {}
        to_fit = []
        for i, recipe in enumerate(recipes):
            hit = self.cache.load(keys[i]) if self.cache else None
            if hit is not None:
                model, extra = hit
                models[i] = (model, float(extra.get("train_seconds", 0.0)), True)
                self._step(f"cached {recipe.model}/{recipe.defense}")
            else:
                to_fit.append(i)
        fitted = run_parallel(
            _fit,
            self.grid.jobs,
            ((unfitted[i], split.X_train, split.y_train) for i in to_fit),
        )
        for i, (model, seconds) in zip(to_fit, fitted, strict=True):
            models[i] = (model, seconds, False)
            if self.cache:
                self.cache.store(keys[i], recipes[i], model, {"train_seconds": seconds})
            self._step(f"trained {recipes[i].model}/{recipes[i].defense}")
        return [self._clean(split, recipe, *models[i]) for i, recipe in enumerate(recipes)]

    def _clean(
        self, split: DataSplit, recipe: Recipe, model: Model, seconds: float, cached: bool
    ) -> Trained:
        predictions = model.predict(split.X_test)
        correct = np.flatnonzero(predictions == split.y_test)
        if len(correct) < self.grid.n_samples:
            raise RobustkitError(
                f"n_samples is {self.grid.n_samples}, but {recipe.model}/{recipe.defense} "
                f"classifies only {len(correct)} test samples correctly; use at most that many"
            )
        return Trained(
            recipe,
            model,
            seconds,
            cached,
            clean_metrics(split.y_test, predictions),
            correct[: self.grid.n_samples],
        )

    def _attack_all(
        self, split: DataSplit, trained: list[Trained], attacks: list[tuple[PluginSpec, Attack]]
    ) -> list[dict[str, Any]]:
        cells = [(t, spec, attack) for t in trained for spec, attack in attacks]
        eps = self.grid.epsilons
        unit = self._eps_unit_size(split)
        jobs = (
            (
                t.model,
                attack,
                split.X_test[t.attack_index],
                split.y_test[t.attack_index],
                eps,
                split.bounds,
                _stable_seed(self.grid.seed, t.recipe.to_dict(), spec.name, spec.params),
                unit,
                split.image_shape,
            )
            for t, spec, attack in cells
        )
        rows = []
        certified = self._certify(split, trained)
        outcomes = run_parallel(_attack, self.grid.jobs, jobs)
        for (t, spec, attack), (predictions, linf, zero_grad, seconds) in zip(
            cells, outcomes, strict=True
        ):
            y = split.y_test[t.attack_index]
            for k, epsilon in enumerate(eps):
                rows.append(
                    self._row(
                        split,
                        t,
                        spec,
                        attack,
                        epsilon,
                        seconds,
                        attack_metrics(y, predictions[k], linf[k], zero_grad),
                    )
                )
                if certified:
                    rows[-1].update(certified[id(t), k])
                    rows[-1]["certification_inconclusive"] = inconclusive(rows[-1])
            self._step(f"attacked {t.recipe.model}/{t.recipe.defense} with {spec.name}")
        return rows

    def _certify(self, split: DataSplit, trained: list[Trained]) -> dict[tuple[int, int], Any]:
        """With ``certify``: the certificate columns per (model, ε index), over the samples
        each model is attacked on; empty without it."""
        method, unit = self.grid.certify, self._eps_unit_size(split)
        if not method:
            return {}
        return {
            (id(t), k): certification_metrics(
                t.model,
                split.X_test[t.attack_index],
                split.y_test[t.attack_index],
                epsilon * unit,
                bounds=split.bounds,
                method=method,
                rejects=bool(np.isfinite(t.model.reject_score(split.X_test[:1])).all()),
            )
            for t in trained
            for k, epsilon in enumerate(self.grid.epsilons)
        }

    def _eps_unit_size(self, split: DataSplit) -> float:
        """Input units per unit of ε: the input range, or 1 for absolute budgets."""
        return split.bounds[1] - split.bounds[0] if self.grid.eps_unit == "range" else 1.0

    def _row(
        self,
        split: DataSplit,
        t: Trained,
        spec: PluginSpec,
        attack: Attack,
        epsilon: float,
        seconds: float,
        metrics: dict[str, float],
    ) -> dict[str, Any]:
        recipe = t.recipe
        seed_keys = ("random_state",)
        return {
            "model": _label(recipe.model, recipe.model_params, seed_keys),
            "defense": _label(
                recipe.defense or "none", recipe.defense_params, ("random_state", "lam")
            ),
            "attack": spec.label,
            "dataset": split.name,
            "eps": float(epsilon),
            "eps_unit": self.grid.eps_unit,
            "eps_fraction": epsilon
            * self._eps_unit_size(split)
            / (split.bounds[1] - split.bounds[0]),
            "lam": _lam_of(t.model),
            "params": {
                "model": recipe.model_params,
                "defense": recipe.defense_params,
                "attack": attack.get_params(deep=False),
            },
            **t.clean,
            **metrics,
            "rejects": bool(np.isfinite(t.model.reject_score(split.X_test[:1])).all()),
            "attack_kind": attack.kind,
            "gradient_based": attack.kind == GRADIENT_ATTACK,
            "iterative": attack.iterative,
            "seconds": seconds,
            "train_seconds": t.train_seconds,
            "cached": t.cached,
        }

    def _meta(self, split: DataSplit, recipes: list[Recipe], seconds: float) -> dict[str, Any]:
        used = {("dataset", self.grid.dataset.name)}
        used |= {("model", r.model) for r in recipes}
        used |= {("defense", r.defense) for r in recipes if r.defense}
        used |= {("attack", s.name) for s in self.grid.attacks}
        plugins = []
        for kind, name in sorted(used):
            source = registry(kind).get(name).source
            plugins.append(
                {
                    "kind": kind,
                    "name": name,
                    "plugin": source.plugin,
                    "distribution": source.distribution,
                    "version": source.version,
                }
            )
        return {
            "robustkit_version": __version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "seed": self.grid.seed,
            "dataset": split.name,
            "bounds": list(split.bounds),
            "eps_unit": self.grid.eps_unit,
            "n_train": len(split.X_train),
            "n_test": len(split.X_test),
            "grid": self.grid.describe(),
            "plugins": plugins,
            "seconds": seconds,
        }


def evaluate(
    model: Any = "rbf",
    attack: Any = "fgsm",
    defense: Any = "none",
    *,
    dataset: Any = "digits",
    eps: Any = (0.05, 0.1, 0.3),
    lam: Any = None,
    eps_unit: str = "range",
    n_samples: int = 100,
    seed: int = 0,
    jobs: int = 1,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    certify: str | None = None,
) -> EvaluationResult:
    """Evaluate models × defenses × attacks × ε (× λ) and return the rows and tables.

    Each of ``model``, ``attack``, ``defense`` takes a name (``"rbf"``), a spec with
    parameters (``"rbf:lr=0.05,epochs=10"``), a ``(name, params)`` pair, or a list of
    these. ``cache_dir`` enables the on-disk model cache; ``certify`` (``"ibp"`` or
    ``"crown"``) adds certified accuracy to every row.
    """
    grid = Grid.build(
        model=model,
        attack=attack,
        defense=defense,
        dataset=dataset,
        eps=eps,
        lam=lam,
        eps_unit=eps_unit,
        n_samples=n_samples,
        seed=seed,
        jobs=jobs,
        data_dir=data_dir,
        certify=certify,
    )
    cache = ModelCache(cache_dir) if cache_dir is not None else None
    return Harness(grid, cache=cache, progress=progress).run()
