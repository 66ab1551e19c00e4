"""The evaluation harness: train each (model, defense) once, attack it, collect rows.

Training results are cached on disk (see ``robustkit.cache``); training and attack
cells run in parallel with joblib when ``jobs > 1``. Every (model, defense) is measured
on one sample set (``robustkit.samples``): by default the first ``n_samples`` test
samples for all of them; each attack perturbs the samples of the set the model
classifies correctly. With several attacks, a ``worst case`` row per (model, ε) counts
a sample as broken if any attack broke it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from . import __version__
from .cache import ModelCache, data_fingerprint
from .certify import certification_metrics, check_certification, inconclusive
from .errors import DataError
from .faults import plugin_call
from .grid import Grid, PluginSpec
from .interfaces import (
    GRADIENT_ATTACK,
    Attack,
    DataSplit,
    EpochCallback,
    Model,
    accepts_keyword,
    fit_model,
    require_capabilities,
)
from .metrics import attack_metrics, clean_metrics, rate, sample_set_metrics, worst_case
from .parallel import effective_jobs, run_parallel
from .persistence import Recipe
from .plugins import create, registry
from .result import EvaluationResult
from .samples import SampleCell, check_sample_count, select_samples
from .sanity import sanity_warnings

#: The ``attack`` of the per-sample worst case over every attack of the grid.
WORST_CASE = "worst case"

#: ``progress(label, done, total)``, called after each training and attack step.
Progress = Callable[[str, int, int], None]


@dataclass
class Trained:
    """A fitted (model, defense) with its clean results and its samples of the set.

    ``sample_index`` are the test indices of the sample set (the same for every model
    with ``samples="first"``); ``clean_predictions`` its clean predictions there, and
    ``attacked`` marks the samples it classifies correctly, the ones the attacks perturb.
    """

    recipe: Recipe
    model: Model
    train_seconds: float
    cached: bool
    clean: dict[str, float]
    sample_index: np.ndarray
    clean_predictions: np.ndarray
    attacked: np.ndarray


@dataclass
class AttackOutcome:
    """One attack on one model: per ε and attacked sample, predictions and norms."""

    predictions: np.ndarray  # (K, n) adversarial predictions
    linf: np.ndarray  # (K, n) ‖x' − x‖∞ in ε units
    l2: np.ndarray  # (K, n) ‖x' − x‖₂ in ε units
    zero_gradient: np.ndarray  # (n,)
    seconds: float
    adversarials: np.ndarray | None = None  # (K, n, d…) when asked to keep them


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
        # min and max propagate NaN and show inf: no full-size mask of the data.
        smallest, largest = X.min(), X.max()
        if not (np.isfinite(smallest) and np.isfinite(largest)):
            raise DataError(f"data set {split.name!r}: {part} inputs hold NaN or infinite values")
        lo, hi = split.bounds
        if smallest < lo or largest > hi:
            raise DataError(
                f"data set {split.name!r}: {part} inputs lie outside the declared bounds "
                f"[{lo:g}, {hi:g}]"
            )


def _fit(
    model: Model,
    X: np.ndarray,
    y: np.ndarray,
    bounds: tuple[float, float] | None = None,
    callback: EpochCallback | None = None,
) -> tuple[Model, float]:
    start = time.perf_counter()
    extra = {"callback": callback} if callback and accepts_keyword(model.fit, "callback") else {}
    with plugin_call("fit", model):
        fit_model(model, X, y, bounds=bounds, **extra)
    return model, time.perf_counter() - start


def one_blas_thread() -> Any:
    """Inference and attacks run with one BLAS thread: a float sum then adds up in the
    same order whatever the machine, ``OPENBLAS_NUM_THREADS`` or ``--jobs`` (joblib
    workers get fewer threads than the main process), so an argmax never flips."""
    return threadpool_limits(limits=1, user_api="blas")


def _predict(model: Model, X: np.ndarray) -> np.ndarray:
    with one_blas_thread():
        return np.asarray(model.predict(X))


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
    keep_adversarials: bool = False,
) -> AttackOutcome:
    """Attack with budgets ``eps`` given in ``unit`` (input units per ε unit)."""
    start = time.perf_counter()
    if len(X) == 0:  # the model classifies none of the sample set correctly
        empty = np.zeros((len(eps), 0))
        return AttackOutcome(empty.astype(y.dtype), empty, empty, np.zeros(0, bool), 0.0)
    span = bounds[1] - bounds[0]
    fractions = [e * unit / span for e in eps]
    with one_blas_thread():
        with plugin_call("perturb", attack):
            result = attack.perturb(
                model, X, y, fractions, bounds=bounds, random_state=seed, image_shape=image_shape
            )
        with plugin_call("predict", model):
            predictions = np.stack([np.asarray(model.predict(adv)) for adv in result.adversarials])
    seconds = time.perf_counter() - start
    linf, l2 = _norms(result.adversarials, X, unit)
    return AttackOutcome(
        predictions=predictions,
        linf=linf,
        l2=l2,
        zero_gradient=np.asarray(result.zero_gradient, dtype=bool),
        seconds=seconds,
        adversarials=result.adversarials if keep_adversarials else None,
    )


def _norms(adversarials: np.ndarray, X: np.ndarray, unit: float) -> tuple[np.ndarray, np.ndarray]:
    """(K, n) ‖x' − x‖∞ and ‖x' − x‖₂ in ε units, one budget at a time (one batch of
    temporary memory), summed in float64 without BLAS."""
    linf = np.empty((len(adversarials), len(X)))
    l2 = np.empty_like(linf)
    for k, adv in enumerate(adversarials):
        delta = (adv - X).reshape(len(X), -1)
        linf[k] = np.abs(delta).max(axis=1, initial=0.0)
        l2[k] = np.sqrt(np.einsum("ij,ij->i", delta, delta, dtype=np.float64))
    return linf / unit, l2 / unit


def _stable_seed(*parts: Any) -> int:
    text = json.dumps(parts, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def resolved_params(kind: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
    """A plugin's parameters with every default filled in (what the run really uses)."""
    return create(kind, name, **params).get_params(deep=False)


def cell_seed(grid_seed: int, recipe: Recipe, attack_name: str, attack: Attack) -> int:
    """The seed of one (model, defense, attack) cell, from the *resolved* parameters: a
    spelling of the same run (``pgd`` or ``pgd:steps=10``) gets the same seed."""
    model = resolved_params("model", recipe.model, recipe.model_params)
    defense = (
        resolved_params("defense", recipe.defense, recipe.defense_params) if recipe.defense else {}
    )
    return _stable_seed(
        grid_seed,
        {"model": recipe.model, "params": model},
        {"defense": recipe.defense, "params": defense},
        {"attack": attack_name, "params": attack.get_params(deep=False)},
    )


def _lam_of(model: Model) -> float | None:
    params = model.get_params(deep=True)
    lam = params.get("model__lam", params.get("lam"))
    return None if lam is None else float(lam)


def _epochs_of(model: Model) -> int:
    """Training epochs of ``model`` (1 if it has none), for the progress bar."""
    params = model.get_params(deep=True)
    epochs = params.get("epochs", params.get("model__epochs"))
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > 0 else 1


def _label(name: str, params: dict[str, Any], hidden: Iterable[str] = ()) -> str:
    shown = {k: v for k, v in params.items() if k not in hidden}
    return PluginSpec(name, shown).label


def _recipe_key(recipe: Recipe) -> str:
    return json.dumps(recipe.to_dict(), sort_keys=True, default=str)


def _recipe_labels(recipes: list[Recipe]) -> dict[str, tuple[str, str]]:
    """Table labels (model, defense) of each recipe: ``random_state`` is hidden unless
    two recipes would otherwise look the same (e.g. ``rbf:random_state=1`` and ``=2``)."""

    def labels(recipe: Recipe, seed: tuple[str, ...]) -> tuple[str, str, Any]:
        lam = recipe.model_params.get("lam", recipe.defense_params.get("lam"))
        return (
            _label(recipe.model, recipe.model_params, seed),
            _label(recipe.defense or "none", recipe.defense_params, (*seed, "lam")),
            lam,
        )

    short = [labels(recipe, ("random_state",)) for recipe in recipes]
    counts = Counter(map(str, short))
    return {
        _recipe_key(recipe): (labels(recipe, ()) if counts[str(brief)] > 1 else brief)[:2]
        for recipe, brief in zip(recipes, short, strict=True)
    }


def _span(split: DataSplit) -> float:
    return split.bounds[1] - split.bounds[0]


def _add_certificate(row: dict[str, Any], certificate: dict[str, Any] | None) -> None:
    """With ``--certify``: the row's certified columns and whether its bracket is wide."""
    if certificate is not None:
        row.update(certificate)
        row["certification_inconclusive"] = inconclusive(row)


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if np.size(values) else float("nan")


class Harness:
    """Evaluates one ``Grid`` on one data set; ``run()`` returns an EvaluationResult.

    ``keep_adversarials`` keeps every adversarial input in the result's sample cells
    (for ``EvaluationResult.write_samples``); the other per-sample arrays are always kept.
    """

    def __init__(
        self,
        grid: Grid,
        *,
        cache: ModelCache | None = None,
        progress: Progress | None = None,
        keep_adversarials: bool = False,
    ) -> None:
        self.grid = grid
        self.cache = cache
        self.progress = progress or (lambda label, done, total: None)
        self.keep_adversarials = keep_adversarials

    def run(self) -> EvaluationResult:
        """Load the data, train (or reuse) every model, attack it, and report."""
        grid = self.grid
        grid.validate()
        started = time.perf_counter()
        recipes = grid.recipes()
        self._labels = _recipe_labels(recipes)
        attacks = [(spec, create("attack", spec.name, **spec.params)) for spec in grid.attacks]
        unfitted = [recipe.build() for recipe in recipes]
        for model in unfitted:  # every bad value and mismatch is found before anything trains
            with plugin_call("validate", model):
                model.validate()
            for spec, attack in attacks:
                require_capabilities(model, attack.requires, f"attack {spec.name!r}")
        self._total = sum(map(_epochs_of, unfitted)) + len(recipes) * len(attacks)
        self._done = 0
        self.progress(f"loading {grid.dataset.name}", 0, self._total)  # the bar shows at once
        dataset = create("dataset", grid.dataset.name, **grid.dataset.params)
        with plugin_call("load", dataset):
            split = dataset.load(grid.data_dir)
        check_split(split)
        grid.check_budgets(split.bounds)
        check_sample_count(grid.n_samples, len(split.X_test), split.name)
        if grid.certify:
            fractions = [e * self._eps_unit_size(split) / _span(split) for e in grid.epsilons]
            check_certification(unfitted, grid.certify, fractions)
        trained = self._train(split, recipes, unfitted)
        rows, cells = self._attack_all(split, trained, attacks)
        meta = self._meta(split, recipes, trained, time.perf_counter() - started)
        return EvaluationResult(rows=rows, meta=meta, warnings=sanity_warnings(rows), cells=cells)

    def _labels_of(self, recipe: Recipe) -> tuple[str, str]:
        """The (model, defense) labels of ``recipe`` in tables and rows."""
        return self._labels[_recipe_key(recipe)]

    def _step(self, label: str, units: int = 1) -> None:
        self._done += units
        self.progress(label, self._done, self._total)

    def _epoch_progress(self, recipe: Recipe, reported: list[int]) -> EpochCallback:
        """A ``fit`` callback moving the bar by one unit per epoch (jobs=1 only)."""

        def on_epoch(record: dict[str, float]) -> None:
            reported[0] += 1
            self._step(f"training {recipe.model}/{recipe.defense} epoch {reported[0]}")

        return on_epoch

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
            hit = self.cache.load(keys[i], recipe) if self.cache else None
            if hit is not None:
                model, extra = hit
                seconds = extra.get("train_seconds", 0.0)
                seconds = float(seconds) if isinstance(seconds, (int, float)) else 0.0
                models[i] = (model, seconds, True)
                self._step(f"cached {recipe.model}/{recipe.defense}", _epochs_of(unfitted[i]))
            else:
                to_fit.append(i)
        serial = effective_jobs(self.grid.jobs, len(to_fit)) == 1
        reported = {i: [0] for i in to_fit}
        fitted = run_parallel(
            _fit,
            self.grid.jobs,
            (
                (
                    unfitted[i],
                    split.X_train,
                    split.y_train,
                    split.bounds,
                    self._epoch_progress(recipes[i], reported[i]) if serial else None,
                )
                for i in to_fit
            ),
            self.grid.backend,
            self.grid.scheduler,
        )
        for i, (model, seconds) in zip(to_fit, fitted, strict=True):
            models[i] = (model, seconds, False)
            if self.cache:
                extra = {"train_seconds": seconds, "dataset": dataset}
                self.cache.store(keys[i], recipes[i], model, extra)
            remaining = max(_epochs_of(unfitted[i]) - reported[i][0], 0)
            self._step(f"trained {recipes[i].model}/{recipes[i].defense}", remaining)
        return [self._clean(split, recipe, *models[i]) for i, recipe in enumerate(recipes)]

    def _clean(
        self, split: DataSplit, recipe: Recipe, model: Model, seconds: float, cached: bool
    ) -> Trained:
        with plugin_call("predict", model):
            predictions = _predict(model, split.X_test)
        index = select_samples(
            self.grid.samples,
            self.grid.n_samples,
            split.y_test,
            predictions,
            f"{recipe.model}/{recipe.defense}",
        )
        on_set = predictions[index]
        return Trained(
            recipe,
            model,
            seconds,
            cached,
            clean_metrics(split.y_test, predictions),
            index,
            on_set,
            on_set == split.y_test[index],
        )

    def _attack_all(
        self, split: DataSplit, trained: list[Trained], attacks: list[tuple[PluginSpec, Attack]]
    ) -> tuple[list[dict[str, Any]], list[SampleCell]]:
        """Every (model, attack) cell, then a worst-case row per (model, ε) over the attacks."""
        cells = [(t, spec, attack) for t in trained for spec, attack in attacks]
        eps = self.grid.epsilons
        unit = self._eps_unit_size(split)
        seeds = [
            cell_seed(self.grid.seed, t.recipe, spec.name, attack) for t, spec, attack in cells
        ]
        jobs = (
            (
                t.model,
                attack,
                split.X_test[t.sample_index[t.attacked]],
                split.y_test[t.sample_index[t.attacked]],
                eps,
                split.bounds,
                seed,
                unit,
                split.image_shape,
                self.keep_adversarials,
            )
            for (t, spec, attack), seed in zip(cells, seeds, strict=True)
        )
        rows: dict[int, list[dict[str, Any]]] = {id(t): [] for t in trained}
        sample_cells: list[SampleCell] = []
        per_model: dict[int, list[tuple[SampleCell, AttackOutcome]]] = {}
        certified = self._certify(split, trained)
        outcomes = run_parallel(
            _attack, self.grid.jobs, jobs, self.grid.backend, self.grid.scheduler
        )
        for (t, spec, attack), seed, outcome in zip(cells, seeds, outcomes, strict=True):
            cell = self._sample_cell(split, t, spec.label, seed, outcome)
            sample_cells.append(cell)
            per_model.setdefault(id(t), []).append((cell, outcome))
            for k, epsilon in enumerate(eps):
                metrics = {
                    **sample_set_metrics(cell.outcomes[k]),
                    **attack_metrics(
                        cell.labels[cell.attacked],
                        outcome.predictions[k],
                        outcome.linf[k],
                        outcome.zero_gradient,
                    ),
                    "mean_l2": _mean(outcome.l2[k]),
                }
                rows[id(t)].append(
                    self._row(split, t, spec.label, epsilon, outcome.seconds, metrics)
                    | {
                        "params": self._params(t, attack),
                        "attack_kind": attack.kind,
                        "gradient_based": attack.kind == GRADIENT_ATTACK,
                        "iterative": attack.iterative,
                        "worst_case": False,
                        "seed": seed,
                    }
                )
                _add_certificate(rows[id(t)][-1], certified.get((id(t), k)))
            self._step(f"attacked {t.recipe.model}/{t.recipe.defense} with {spec.name}")
        if len(attacks) > 1:
            for t in trained:
                worst = self._worst_case_rows(split, t, attacks, per_model[id(t)])
                for k, row in enumerate(worst):
                    _add_certificate(row, certified.get((id(t), k)))
                rows[id(t)] += worst
        return [row for t in trained for row in rows[id(t)]], sample_cells

    def _sample_cell(
        self, split: DataSplit, t: Trained, attack: str, seed: int, outcome: AttackOutcome
    ) -> SampleCell:
        """Per-sample arrays over the whole set: clean errors keep their clean prediction
        (they are not attacked: never robust), norms 0."""
        n_eps, n = len(self.grid.epsilons), len(t.sample_index)
        predictions = np.repeat(t.clean_predictions[None], n_eps, axis=0)
        predictions[:, t.attacked] = outcome.predictions
        linf, l2 = np.zeros((n_eps, n)), np.zeros((n_eps, n))
        linf[:, t.attacked], l2[:, t.attacked] = outcome.linf, outcome.l2
        adversarials = None
        if outcome.adversarials is not None:
            clean = split.X_test[t.sample_index]
            adversarials = np.repeat(clean[None], n_eps, axis=0)
            adversarials[:, t.attacked] = outcome.adversarials
        return SampleCell(
            model=self._labels_of(t.recipe)[0],
            defense=self._labels_of(t.recipe)[1],
            lam=_lam_of(t.model),
            attack=attack,
            seed=seed,
            eps=list(self.grid.epsilons),
            indices=t.sample_index,
            labels=split.y_test[t.sample_index],
            clean_predictions=t.clean_predictions,
            attacked=t.attacked,
            predictions=predictions,
            linf=linf,
            l2=l2,
            adversarials=adversarials,
        )

    def _worst_case_rows(
        self,
        split: DataSplit,
        t: Trained,
        attacks: list[tuple[PluginSpec, Attack]],
        results: list[tuple[SampleCell, AttackOutcome]],
    ) -> list[dict[str, Any]]:
        """Per ε, each sample's worst outcome over every attack (AutoAttack's report): a
        sample is robust only if no attack broke it; evaded beats rejected beats correct."""
        rows = []
        stacked = np.stack([cell.outcomes for cell, _ in results])  # (attacks, K, n)
        y = results[0][0].labels[t.attacked]
        chosen = np.arange(int(t.attacked.sum()))
        for k, epsilon in enumerate(self.grid.epsilons):
            outcome, pick = worst_case(stacked[:, k])
            pick = pick[t.attacked]
            predictions = np.stack([o.predictions[k] for _, o in results])[pick, chosen]
            linf = np.stack([o.linf[k] for _, o in results])[pick, chosen]
            l2 = np.stack([o.l2[k] for _, o in results])[pick, chosen]
            metrics = {
                **sample_set_metrics(outcome),
                **attack_metrics(y, predictions, linf, None),
                "mean_l2": _mean(l2),
            }
            seconds = sum(o.seconds for _, o in results)
            rows.append(
                self._row(split, t, WORST_CASE, epsilon, seconds, metrics)
                | {
                    "params": {
                        **self._params(t, None),
                        "attacks": [spec.label for spec, _ in attacks],
                    },
                    "attack_kind": None,
                    "gradient_based": False,
                    "iterative": any(attack.iterative for _, attack in attacks),
                    "worst_case": True,
                    "seed": None,
                }
            )
        return rows

    def _certify(self, split: DataSplit, trained: list[Trained]) -> dict[tuple[int, int], Any]:
        """With ``certify``: the certificate columns per (model, ε index), over the sample
        set (a clean error is never certified); empty without it."""
        method, unit = self.grid.certify, self._eps_unit_size(split)
        if not method:
            return {}
        return {
            (id(t), k): certification_metrics(
                t.model,
                split.X_test[t.sample_index],
                split.y_test[t.sample_index],
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

    @staticmethod
    def _params(t: Trained, attack: Attack | None) -> dict[str, Any]:
        recipe = t.recipe
        params = {"model": recipe.model_params, "defense": recipe.defense_params}
        return params | ({"attack": attack.get_params(deep=False)} if attack else {})

    def _row(
        self,
        split: DataSplit,
        t: Trained,
        attack: str,
        epsilon: float,
        seconds: float,
        metrics: dict[str, float],
    ) -> dict[str, Any]:
        model_label, defense_label = self._labels_of(t.recipe)
        return {
            "model": model_label,
            "defense": defense_label,
            "attack": attack,
            "dataset": split.name,
            "eps": float(epsilon),
            "eps_unit": self.grid.eps_unit,
            "eps_fraction": epsilon
            * self._eps_unit_size(split)
            / (split.bounds[1] - split.bounds[0]),
            "lam": _lam_of(t.model),
            "samples": self.grid.samples,
            **t.clean,
            **rate("sample_accuracy", int(t.attacked.sum()), len(t.attacked)),
            **metrics,
            "rejects": bool(np.isfinite(t.model.reject_score(split.X_test[:1])).all()),
            "seconds": seconds,
            "train_seconds": t.train_seconds,
            "cached": t.cached,
        }

    def _meta(
        self, split: DataSplit, recipes: list[Recipe], trained: list[Trained], seconds: float
    ) -> dict[str, Any]:
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
            "samples": self._samples_meta(trained),
            "worst_case": "row" if len(self.grid.attacks) > 1 else "the only attack",
            "grid": self.grid.describe(),
            "plugins": plugins,
            "seconds": seconds,
        }

    def _samples_meta(self, trained: list[Trained]) -> dict[str, Any]:
        """The sample set: one index list (``first``), or one per model (``correct``)."""
        meta: dict[str, Any] = {"set": self.grid.samples, "n": self.grid.n_samples}
        if self.grid.samples == "first":
            return meta | {"indices": trained[0].sample_index.tolist()}
        return meta | {
            "per_model": [
                {
                    "model": self._labels_of(t.recipe)[0],
                    "defense": self._labels_of(t.recipe)[1],
                    "lam": _lam_of(t.model),
                    "indices": t.sample_index.tolist(),
                }
                for t in trained
            ]
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
    samples: str = "first",
    seed: int = 0,
    jobs: int = 1,
    backend: str = "local",
    scheduler: str | None = None,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
    keep_adversarials: bool = False,
    certify: str | None = None,
) -> EvaluationResult:
    """Evaluate models × defenses × attacks × ε (× λ) and return the rows and tables.

    Each of ``model``, ``attack``, ``defense`` takes a name (``"rbf"``), a spec with
    parameters (``"rbf:lr=0.05,epochs=10"``), a ``(name, params)`` pair, or a list of
    these. ``samples`` is ``"first"`` (the first ``n_samples`` test samples, the same for
    every model) or ``"correct"`` (the first ``n_samples`` each model classifies
    correctly, the study's choice). ``cache_dir`` enables the on-disk model cache;
    ``keep_adversarials`` keeps the adversarial inputs for ``result.write_samples``.
    ``backend="dask"`` runs the training and attack cells on the Dask cluster at
    ``scheduler`` (else a local one of ``jobs`` workers); the rows are the same as on
    this machine.
    ``certify`` (``"ibp"`` or ``"crown"``) adds certified accuracy to every row.
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
        samples=samples,
        seed=seed,
        jobs=jobs,
        backend=backend,
        scheduler=scheduler,
        data_dir=data_dir,
        certify=certify,
    )
    cache = ModelCache(cache_dir) if cache_dir is not None else None
    return Harness(grid, cache=cache, progress=progress, keep_adversarials=keep_adversarials).run()
