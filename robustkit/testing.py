"""A test kit for plugin authors: a tiny exact reference model and contract checks.

``check_model``, ``check_attack`` and ``check_defense`` work like scikit-learn's
``check_estimator``: each runs a plugin through the interface contract on small data
and raises ``AssertionError`` with a clear message at the first broken promise.
``LinearModel`` is a small, exact model with every capability (handy as a fixture), and
``temporary_plugin`` registers an in-process plugin for the duration of a test.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.datasets import make_blobs

from .errors import RobustkitError
from .interfaces import (
    INPUT_GRADIENT,
    NOISE_CLASS,
    REJECT,
    REJECTION,
    STRAIGHT_THROUGH,
    Attack,
    AttackResult,
    Defense,
    EpochCallback,
    Model,
    capabilities_of,
    with_rejects,
)
from .plugins import register_plugin, unregister_plugin

__all__ = [
    "LinearModel",
    "check_attack",
    "check_defense",
    "check_model",
    "multiclass_hinge",
    "temporary_plugin",
    "toy_data",
]


# --------------------------------------------------------------------------- reference model


def multiclass_hinge(scores: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample Σ_{i≠y} max(0, s_i − s_y + 1) and its (sub)gradient w.r.t. the scores.

    A term contributes gradient only where it is strictly positive, so a zero loss has a
    zero gradient (the study's observation about FGSM on the hinge network).
    """
    rows = np.arange(len(scores))
    margins = scores - scores[rows, columns][:, None] + 1.0
    margins[rows, columns] = 0.0
    active = margins > 0
    loss = np.where(active, margins, 0.0).sum(axis=1)
    grad = active.astype(np.float64)
    grad[rows, columns] = -active.sum(axis=1)
    return loss, grad


class LinearModel(Model):
    """Reference model: linear scores W·x + b, multiclass hinge loss, optional noise class.

    With ``reject=True`` it has one extra output, the noise class, whose score is
    ``reject_score`` and which ``REJECT``-labelled samples train. It trains with
    ``epochs`` steps of full-batch subgradient descent at learning rate ``lr``.
    """

    capabilities = frozenset({INPUT_GRADIENT, REJECTION, NOISE_CLASS})

    def __init__(self, epochs: int = 30, lr: float = 0.1, reject: bool = False, random_state=None):
        self.epochs = epochs
        self.lr = lr
        self.reject = reject
        self.random_state = random_state

    @classmethod
    def from_weights(
        cls,
        coef: np.ndarray,
        intercept: np.ndarray,
        classes: np.ndarray | None = None,
        *,
        reject: bool = False,
    ) -> LinearModel:
        """A fitted model from ``coef`` (d, k; the last column is the noise class) and biases."""
        coef = np.asarray(coef, dtype=np.float64)
        n_classes = coef.shape[1] - int(reject)
        classes = np.arange(n_classes) if classes is None else np.asarray(classes)
        state = {"coef": coef, "intercept": np.asarray(intercept, dtype=np.float64)}
        return cls(reject=reject).set_state({**state, "classes": classes})

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callback: EpochCallback | None = None,
    ) -> LinearModel:
        """Train by full-batch subgradient descent on the mean hinge loss; return self."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise RobustkitError(f"X must be (n, d) with one label each; got {X.shape}, {y.shape}")
        noise = y == REJECT
        if noise.any() and not self.reject:
            raise RobustkitError("LinearModel got REJECT-labelled samples; set reject=True")
        self.classes_ = np.unique(y[~noise])
        n_outputs = len(self.classes_) + int(bool(self.reject))
        if n_outputs < 2:
            raise RobustkitError("LinearModel needs at least two classes (or one plus noise)")
        columns = self._columns(y)
        rng = np.random.default_rng(self.random_state)
        self.coef_ = rng.normal(0.0, 0.01, size=(X.shape[1], n_outputs))
        self.intercept_ = np.zeros(n_outputs)
        self.history_: list[dict[str, float]] = []
        for epoch in range(self.epochs):
            loss, grad = multiclass_hinge(self._all_scores(X), columns)
            self.coef_ -= self.lr * (X.T @ grad) / len(X)
            self.intercept_ -= self.lr * grad.mean(axis=0)
            record = {"epoch": float(epoch + 1), "loss": float(loss.mean())}
            if eval_set is not None:
                X_val, y_val = eval_set
                record["val_accuracy"] = float(np.mean(self.predict(X_val) == y_val))
            self.history_.append(record)
            if callback is not None:
                callback(record)
        return self

    def _all_scores(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_

    def _columns(self, y: np.ndarray) -> np.ndarray:
        """Output column of each label; ``REJECT`` is the noise column."""
        y = np.asarray(y)
        columns = np.searchsorted(self.classes_, y).clip(0, len(self.classes_) - 1)
        known = self.classes_[columns] == y
        if self.reject:
            columns = np.where(y == REJECT, len(self.classes_), columns)
            known |= y == REJECT
        if not known.all():
            raise RobustkitError(f"labels {np.unique(y[~known]).tolist()} are not model classes")
        return columns

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Class scores W·x + b, shape (n, n_classes)."""
        return self._all_scores(X)[:, : len(self.classes_)]

    def reject_score(self, X: np.ndarray) -> np.ndarray:
        """The noise-class score with ``reject=True``; −inf otherwise."""
        if not self.reject:
            return super().reject_score(X)
        return self._all_scores(X)[:, len(self.classes_)]

    def loss_gradient(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample hinge loss and its input gradient (zero where the loss is zero)."""
        loss, grad_scores = multiclass_hinge(self._all_scores(X), self._columns(y))
        return loss, grad_scores @ self.coef_.T

    def decision_gradient(
        self,
        X: np.ndarray,
        grad_scores: np.ndarray,
        grad_reject: np.ndarray | None = None,
    ) -> np.ndarray:
        """d(Σ grad_scores·scores + grad_reject·reject_score)/dX for linear scores."""
        n_classes = len(self.classes_)
        grad = np.asarray(grad_scores, dtype=np.float64) @ self.coef_[:, :n_classes].T
        if grad_reject is not None and self.reject:
            grad += np.asarray(grad_reject, dtype=np.float64)[:, None] * self.coef_[:, n_classes]
        return grad

    def get_state(self) -> dict[str, np.ndarray]:
        """Weights, biases and classes."""
        return {"coef": self.coef_, "intercept": self.intercept_, "classes": self.classes_}

    def set_state(self, state: dict[str, np.ndarray]) -> LinearModel:
        """Restore weights, biases and classes; the output count must match ``reject``."""
        coef, intercept, classes = state["coef"], state["intercept"], state["classes"]
        expected = len(classes) + int(bool(self.reject))
        if coef.ndim != 2 or coef.shape[1] != expected or intercept.shape != (expected,):
            raise ValueError(
                f"coef {coef.shape} and intercept {intercept.shape} do not match "
                f"{len(classes)} classes with reject={self.reject}"
            )
        self.coef_ = np.array(coef, dtype=np.float64)
        self.intercept_ = np.array(intercept, dtype=np.float64)
        self.classes_ = np.array(classes)
        return self


def toy_data(
    n_samples: int = 90, n_features: int = 4, n_classes: int = 3, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Overlapping float32 blobs scaled to span exactly the returned bounds (-1, 3)."""
    X, y = make_blobs(
        n_samples=n_samples,
        n_features=n_features,
        centers=n_classes,
        cluster_std=2.5,
        random_state=random_state,
    )
    lo, hi = -1.0, 3.0
    X = lo + (X - X.min()) / (X.max() - X.min()) * (hi - lo)
    return np.clip(X, lo, hi).astype(np.float32), y, (lo, hi)


# --------------------------------------------------------------------------- helpers


def _require(condition: Any, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _with_seed(estimator: Any, seed: int) -> Any:
    """An unfitted clone with ``random_state`` fixed, where the estimator has one."""
    fresh = clone(estimator)
    if "random_state" in fresh.get_params(deep=False):
        fresh.set_params(random_state=seed)
    return fresh


def _through_npz(state: dict[str, np.ndarray], who: str) -> dict[str, np.ndarray]:
    """Save ``state`` to an in-memory .npz (no pickle) and read it back, as persistence does."""
    _require(isinstance(state, dict), f"{who}.get_state must return a dict, got {type(state)}")
    for key, value in state.items():
        _require(isinstance(key, str), f"{who}.get_state key {key!r} is not a string")
        array = np.asarray(value)
        _require(array.dtype != object, f"{who}.get_state[{key!r}] is an object array")
    buffer = io.BytesIO()
    np.savez(buffer, **{key: np.asarray(value) for key, value in state.items()})
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _check_outputs(model: Model, X: np.ndarray, y: np.ndarray, who: str) -> None:
    """Classes, scores, reject scores and predictions have the promised shapes and values."""
    n = len(X)
    classes = np.asarray(model.classes_)
    expected = np.unique(np.asarray(y)[np.asarray(y) != REJECT])
    _require(
        np.array_equal(classes, expected),
        f"{who}.classes_ is {classes.tolist()}, expected the labels {expected.tolist()}",
    )
    scores = np.asarray(model.decision_function(X))
    _require(
        scores.shape == (n, len(classes)),
        f"{who}.decision_function shape {scores.shape}, expected {(n, len(classes))}",
    )
    _require(np.isfinite(scores).all(), f"{who}.decision_function returned non-finite scores")
    reject = np.asarray(model.reject_score(X))
    _require(reject.shape == (n,), f"{who}.reject_score shape {reject.shape}, expected {(n,)}")
    predicted = np.asarray(model.predict(X))
    _require(predicted.shape == (n,), f"{who}.predict shape {predicted.shape}, expected {(n,)}")
    allowed = set(classes.tolist()) | {REJECT}
    stray = sorted(set(predicted.tolist()) - allowed)
    _require(not stray, f"{who}.predict returned labels {stray} outside classes_ and REJECT")


def _check_predict_follows_scores(model: Model, X: np.ndarray, who: str) -> None:
    """``predict`` is the best class, or REJECT where ``reject_score`` beats every score."""
    scores = np.asarray(model.decision_function(X))
    reject = np.asarray(model.reject_score(X))
    expected = with_rejects(
        np.asarray(model.classes_)[np.argmax(scores, axis=1)], reject > scores.max(axis=1)
    )
    predicted = np.asarray(model.predict(X))
    disagree = np.flatnonzero(predicted.astype(object) != expected.astype(object))
    if len(disagree):
        i = int(disagree[0])
        raise AssertionError(
            f"{who}.predict disagrees with its decision_function and reject_score on "
            f"{len(disagree)} of {len(X)} inputs (sample {i}: predict {predicted[i]!r}, "
            f"scores and reject_score give {expected[i]!r})"
        )


def _restore(fresh: Model, fitted: Model, who: str) -> Model:
    """``fresh.set_state(fitted.get_state())`` through .npz, as an assertion on failure."""
    try:
        returned = fresh.set_state(_through_npz(fitted.get_state(), who))
    except (KeyError, ValueError, TypeError) as exc:
        raise AssertionError(f"{who}: set_state(get_state()) failed: {exc!r}") from exc
    _require(returned is fresh, f"{who}.set_state must return self")
    return fresh


def _assert_same_outputs(a: Model, b: Model, X: np.ndarray, what: str) -> None:
    same = (
        np.array_equal(a.decision_function(X), b.decision_function(X))
        and np.array_equal(a.reject_score(X), b.reject_score(X))
        and np.array_equal(a.predict(X), b.predict(X))
    )
    _require(same, what)


def _check_gradient(
    f: Callable[[np.ndarray], np.ndarray],
    analytic: np.ndarray,
    X: np.ndarray,
    who: str,
    rng: np.random.Generator,
) -> None:
    """Compare ``analytic`` (n, d) with central differences of the per-sample ``f``.

    A few samples and coordinates are checked: each sample's two largest gradient entries
    and two random ones. Entries where the forward and backward differences disagree sit
    on a kink (ReLU, hinge) and are skipped; at least one entry must be checked.
    """
    X = np.asarray(X, dtype=np.float64)
    rows = np.arange(min(5, len(X)))
    n_features = X.shape[1]
    _require(
        analytic.shape == X.shape, f"{who} gradient shape {analytic.shape}, expected {X.shape}"
    )
    _require(np.isfinite(analytic).all(), f"{who} gradient has non-finite values")
    grad = analytic[rows]
    largest = np.argsort(-np.abs(grad), axis=1)[:, :2]
    random = rng.integers(0, n_features, size=(len(rows), 2))
    coords = np.concatenate([largest, random], axis=1)
    h = 1e-3 * max(float(np.ptp(X)), 1e-6)
    base = np.asarray(f(X[rows]), dtype=np.float64)
    scale = float(np.abs(grad).max())
    checked = 0
    for slot in range(coords.shape[1]):
        cols = coords[:, slot]
        plus, minus = X[rows].copy(), X[rows].copy()
        plus[rows, cols] += h
        minus[rows, cols] -= h
        f_plus = np.asarray(f(plus), dtype=np.float64)
        f_minus = np.asarray(f(minus), dtype=np.float64)
        forward, backward = (f_plus - base) / h, (base - f_minus) / h
        central = (f_plus - f_minus) / (2 * h)
        rounding = 1e-6 * (np.abs(base) + 1.0) / h  # float32 models round f at ~1e-7
        tol = 1e-2 * np.maximum(np.abs(central), np.abs(grad[rows, cols]))
        tol += 1e-3 * scale + rounding
        smooth = np.abs(forward - backward) <= tol
        checked += int(smooth.sum())
        bad = smooth & (np.abs(central - grad[rows, cols]) > tol)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise AssertionError(
                f"{who} disagrees with finite differences at sample {rows[i]}, feature "
                f"{cols[i]}: analytic {grad[i, cols[i]]:.6g}, numeric {central[i]:.6g}"
            )
    _require(checked > 0, f"{who}: every checked point sits on a kink; use other data")


def _check_input_gradients(model: Model, X: np.ndarray, y: np.ndarray, who: str) -> None:
    """loss_gradient and decision_gradient match finite differences of loss and scores.

    With STRAIGHT_THROUGH only their shapes and finiteness are checked (the gradients are
    approximations by design), and a warning says that the comparison was skipped.
    """
    rng = np.random.default_rng(0)
    X = np.asarray(X, dtype=np.float64)
    loss, grad = model.loss_gradient(X, y)
    loss = np.asarray(loss)
    _require(loss.shape == (len(X),), f"{who}.loss_gradient loss shape {loss.shape}")
    if STRAIGHT_THROUGH in capabilities_of(model):
        n_classes = len(model.classes_)
        vjp = np.asarray(model.decision_gradient(X, np.ones((len(X), n_classes))))
        for name, array in (("loss_gradient", np.asarray(grad)), ("decision_gradient", vjp)):
            _require(
                array.shape == X.shape, f"{who}.{name} shape {array.shape}, expected {X.shape}"
            )
            _require(np.isfinite(array).all(), f"{who}.{name} has non-finite values")
        warnings.warn(
            f"{who} declares straight_through gradients: the finite-difference check of "
            "its input gradients was skipped (shapes and finiteness were checked)",
            UserWarning,
            stacklevel=3,
        )
        return
    _check_gradient(
        lambda Z: model.loss_gradient(Z, y[: len(Z)])[0],
        np.asarray(grad),
        X,
        f"{who}.loss_gradient",
        rng,
    )
    n_classes = len(model.classes_)
    weights = rng.normal(size=(len(X), n_classes))
    reject_weights = rng.normal(size=len(X))
    with_reject = bool(np.isfinite(model.reject_score(X)).all())

    def weighted_scores(Z: np.ndarray) -> np.ndarray:
        value = (model.decision_function(Z) * weights[: len(Z)]).sum(axis=1)
        if with_reject:
            value = value + model.reject_score(Z) * reject_weights[: len(Z)]
        return value

    vjp = model.decision_gradient(X, weights, reject_weights if with_reject else None)
    _check_gradient(weighted_scores, np.asarray(vjp), X, f"{who}.decision_gradient", rng)


# --------------------------------------------------------------------------- check_model


def check_model(model: Model, X: np.ndarray | None = None, y: np.ndarray | None = None) -> None:
    """Run an (unfitted) model through the Model contract on ``(X, y)`` (default: toy data).

    Checks fit returns self, output shapes and labels, that predict follows
    decision_function and reject_score, input gradients against finite differences (with
    INPUT_GRADIENT; skipped with STRAIGHT_THROUGH), training on a noise class (with
    NOISE_CLASS), the state round trip through .npz, and that the same seed gives the
    same scores. Works on defended models (``defense.apply(model)``) too.
    """
    if X is None or y is None:
        X, y, _ = toy_data()
    y = np.asarray(y)
    who = type(model).__name__
    capabilities = capabilities_of(model)
    fitted = _with_seed(model, 0)
    records: list[Any] = []
    returned = fitted.fit(X, y, eval_set=(X, y), callback=records.append)
    _require(returned is fitted, f"{who}.fit must return self, got {type(returned).__name__}")
    _require(all(isinstance(r, dict) for r in records), f"{who}.fit callback got non-dict records")
    _check_outputs(fitted, X, y, who)
    _check_predict_follows_scores(fitted, X, who)
    if INPUT_GRADIENT in capabilities:
        _check_input_gradients(fitted, X, y, who)

    restored = _restore(_with_seed(model, 0), fitted, who)
    _assert_same_outputs(fitted, restored, X, f"{who}: set_state(get_state()) changed outputs")

    again = _with_seed(model, 0).fit(X, y)
    _assert_same_outputs(fitted, again, X, f"{who}: two fits with random_state=0 differ")

    if NOISE_CLASS in capabilities:
        _check_noise_class(model, X, y, who)


def _check_noise_class(model: Model, X: np.ndarray, y: np.ndarray, who: str) -> None:
    """NOISE_CLASS promises a ``reject`` parameter and training on REJECT-labelled noise."""
    _require(
        "reject" in model.get_params(deep=False),
        f"{who} declares {NOISE_CLASS} but has no 'reject' parameter",
    )
    rng = np.random.default_rng(0)
    noise = rng.uniform(np.min(X), np.max(X), size=(max(10, len(X) // 5), X.shape[1]))
    X_all = np.concatenate([X, noise.astype(np.asarray(X).dtype)])
    y_all = np.concatenate([y, np.full(len(noise), REJECT)])
    rejecting = _with_seed(model, 0).set_params(reject=True).fit(X_all, y_all)
    _check_outputs(rejecting, X_all, y_all, f"{who}(reject=True)")
    _check_predict_follows_scores(rejecting, X_all, f"{who}(reject=True)")
    scores = np.asarray(rejecting.reject_score(X_all))
    _require(np.isfinite(scores).all(), f"{who}(reject=True).reject_score is not finite")
    if INPUT_GRADIENT in capabilities_of(model):
        _check_input_gradients(rejecting, X_all, y_all, f"{who}(reject=True)")


# --------------------------------------------------------------------------- check_attack


def check_attack(
    attack: Attack,
    model: Model | None = None,
    X: np.ndarray | None = None,
    y: np.ndarray | None = None,
    bounds: tuple[float, float] | None = None,
    *,
    image_shape: tuple[int, ...] | None = None,
) -> None:
    """Run an attack through the Attack contract on a fitted ``model`` (default: LinearModel).

    An unfitted ``model`` is fitted on the toy data; ``image_shape`` is passed to every
    ``perturb`` (the toy data's 4 features make a (2, 2) image, for attacks that need one).
    Checks: output shape (K, n, d), ε = 0 changes nothing, every result within ε·range of
    x and within bounds, the input is not modified, a fixed seed gives the same result,
    zero_gradient is an (n,) bool array and a single ε works as well as a list.
    """
    who = type(attack).__name__
    if X is None or y is None:
        X, y, toy_bounds = toy_data()
        bounds = bounds or toy_bounds
    bounds = bounds or (float(np.min(X)), float(np.max(X)))
    default_model = model is None
    if model is None:
        model = LinearModel(random_state=0)
    if not hasattr(model, "classes_"):
        model = model.fit(X, y)
    _require(repr(clone(attack)) == repr(attack), f"{who} does not survive sklearn clone")
    lo, hi = bounds
    span = hi - lo
    epsilons = [0.0, 0.03, 0.3]
    X_before = np.array(X, copy=True)
    # Only when given: attacks that override 0.1's perturb(..., bounds, random_state) work.
    layout = {} if image_shape is None else {"image_shape": image_shape}
    result = attack.perturb(model, X, y, epsilons, bounds=bounds, random_state=0, **layout)
    _require(np.array_equal(X, X_before), f"{who} modified its input X in place")
    _require(isinstance(result, AttackResult), f"{who}.perturb must return an AttackResult")
    adv = np.asarray(result.adversarials)
    expected_shape = (len(epsilons), *np.shape(X))
    _require(
        adv.shape == expected_shape, f"{who} adversarials {adv.shape}, expected {expected_shape}"
    )
    _require(np.allclose(result.epsilons, epsilons), f"{who} returned epsilons {result.epsilons}")
    _require(np.array_equal(adv[0], X), f"{who} changed inputs at epsilon 0")
    slack = 1e-6 * span  # float32 rounding of x ± ε·range
    for eps, batch in zip(epsilons, adv, strict=True):
        moved = float(np.max(np.abs(batch.astype(np.float64) - X)))
        _require(moved <= eps * span + slack, f"{who} moved {moved:.6g} > ε·range at ε={eps}")
        _require(batch.min() >= lo and batch.max() <= hi, f"{who} left bounds {bounds} at ε={eps}")
    zero = np.asarray(result.zero_gradient)
    _require(
        zero.shape == (len(X),) and zero.dtype == bool,
        f"{who}.zero_gradient must be a bool array of shape {(len(X),)}, got "
        f"{zero.dtype} {zero.shape}",
    )
    _require(isinstance(result.info, dict), f"{who}.info must be a dict")
    repeat = attack.perturb(model, X, y, epsilons, bounds=bounds, random_state=0, **layout)
    _require(
        np.array_equal(repeat.adversarials, adv)
        and np.array_equal(repeat.zero_gradient, result.zero_gradient),
        f"{who} is not deterministic for a fixed random_state",
    )
    single = attack.perturb(model, X, y, 0.3, bounds=bounds, random_state=0, **layout)
    _require(
        np.shape(single.adversarials) == (1, *np.shape(X)),
        f"{who} with a single epsilon gave shape {np.shape(single.adversarials)}",
    )
    if default_model:
        _require(not np.array_equal(adv[-1], X), f"{who} changed nothing at ε=0.3")


# --------------------------------------------------------------------------- check_defense


def check_defense(
    defense: Defense,
    model: Model | None = None,
    X: np.ndarray | None = None,
    y: np.ndarray | None = None,
) -> None:
    """Run a defense through the Defense contract on ``model`` (default: LinearModel).

    Checks that apply returns a new, unfitted Model with at least the inner model's
    capabilities (NOISE_CLASS aside: the defense decides what its inner model trains on)
    and leaves the given model alone; that fit works and predict follows the defended
    model's own decision_function and reject_score; its input gradients (finite
    differences, unless STRAIGHT_THROUGH); that the fitted state round-trips; and that
    a fixed seed gives the same defended model.
    """
    who = type(defense).__name__
    if X is None or y is None:
        X, y, _ = toy_data()
    y = np.asarray(y)
    if model is None:
        model = LinearModel(random_state=0)
    params_before = repr(model.get_params(deep=True))
    defended = defense.apply(model)
    _require(isinstance(defended, Model), f"{who}.apply must return a robustkit Model")
    _require(defended is not model, f"{who}.apply must not return the model itself")
    _require(
        repr(model.get_params(deep=True)) == params_before,
        f"{who}.apply changed the parameters of the model it was given",
    )
    _require(not hasattr(defended, "classes_"), f"{who}.apply returned a fitted model")
    inner = capabilities_of(model) - {NOISE_CLASS}
    missing = sorted(inner - capabilities_of(defended))
    _require(not missing, f"{who}.apply lost the model's capabilities {missing}")

    seeded, base = _with_seed(defense, 0), _with_seed(model, 0)
    fitted = seeded.apply(base)
    returned = fitted.fit(X, y)
    _require(returned is fitted, f"{who}: the defended model's fit must return self")
    defended_who = f"{who}-defended {type(model).__name__}"
    _check_outputs(fitted, X, y, defended_who)
    _check_predict_follows_scores(fitted, X, defended_who)
    if INPUT_GRADIENT in capabilities_of(fitted):
        _check_input_gradients(fitted, X, y, defended_who)

    restored = _restore(seeded.apply(base), fitted, who)
    _assert_same_outputs(fitted, restored, X, f"{who}: set_state(get_state()) changed outputs")
    again = seeded.apply(base).fit(X, y)
    _assert_same_outputs(fitted, again, X, f"{who}: two fits with random_state=0 differ")


# --------------------------------------------------------------------------- plugins


@contextlib.contextmanager
def temporary_plugin(plugin: Any, name: str | None = None) -> Iterator[str]:
    """Register an in-process plugin (an object with ``@hookimpl`` methods) for a ``with`` block."""
    registered = register_plugin(plugin, name)
    try:
        yield registered
    finally:
        unregister_plugin(registered)
