"""The ``trades`` defense: TRADES (Zhang et al., ICML 2019) for models with ``trades_training``.

Each minibatch trains on the network's own loss at the clean inputs plus β times
KL(softmax(s(x)) ‖ softmax(s(x'))), s the class scores (minus the squared distances for
``rbf``), x' the point of the ε-ball that maximises that divergence against the weights
of that moment (PGD from a small Gaussian start, as TRADES). The built-in ``hinge`` and
``rbf`` networks support it; a third-party model declares ``TRADES_TRAINING`` and calls
the ``RobustnessTerm`` its ``fit`` receives (see ``robustkit.interfaces``). Registered
with the other defenses by ``defenses.register_defenses``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import clone

from robustkit import Defense, Model, RobustkitError
from robustkit.interfaces import TRADES_TRAINING, EpochCallback
from robustkit.params import check_int
from robustkit.wrapping import WrappedModel

from .defenses import _fraction, _is_number, training_bounds

#: TRADES's random start: Gaussian of this standard deviation, as a fraction of the range.
START_STD = 0.001


def kl_divergence(
    clean_scores: np.ndarray, adversarial_scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample KL(p ‖ q), p = softmax(clean), q = softmax(adversarial), with its
    gradients on both: dKL/ds = p·(log p − log q − KL), dKL/ds' = q − p."""
    log_p = log_softmax(np.asarray(clean_scores, dtype=np.float64), axis=1)
    log_q = log_softmax(np.asarray(adversarial_scores, dtype=np.float64), axis=1)
    p, q = np.exp(log_p), np.exp(log_q)
    log_ratio = log_p - log_q
    value = np.sum(p * log_ratio, axis=1)
    return value, p * (log_ratio - value[:, None]), q - p


@dataclass
class TradesTerm:
    """β·KL between clean and adversarial scores, the adversarial point found by ``steps``
    sign-gradient steps of ``step_size`` (input units) within the L∞ ball of ``radius``
    and ``bounds``, from x plus Gaussian noise of std ``start_std`` (a ``RobustnessTerm``)."""

    beta: float
    radius: float
    bounds: tuple[float, float]
    steps: int
    step_size: float
    start_std: float
    rng: np.random.Generator

    def penalty(
        self, clean_scores: np.ndarray, adversarial_scores: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """β·KL(softmax(clean) ‖ softmax(adversarial)) per sample and its gradients."""
        value, grad_clean, grad_adv = kl_divergence(clean_scores, adversarial_scores)
        return self.beta * value, self.beta * grad_clean, self.beta * grad_adv

    def adversarial(self, model: Model, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The point of each ball that maximises KL(p_clean ‖ q) (PGD, last iterate)."""
        dtype = np.result_type(X.dtype, np.float32)
        X = X.astype(dtype, copy=False)
        p = softmax(np.asarray(model.decision_function(X), dtype=np.float64), axis=1)

        def weights(scores: np.ndarray, reject: np.ndarray | None) -> tuple[np.ndarray, None]:
            return softmax(np.asarray(scores, dtype=np.float64), axis=1) - p, None

        fused = getattr(model, "decision_and_gradient", None)

        def gradient(Z: np.ndarray) -> np.ndarray:
            if fused is not None:
                return fused(Z, weights)[2]
            return model.decision_gradient(Z, weights(model.decision_function(Z), None)[0])

        low = np.maximum(X - self.radius, self.bounds[0]).astype(dtype)
        high = np.minimum(X + self.radius, self.bounds[1]).astype(dtype)
        Z = X + (self.start_std * self.rng.standard_normal(X.shape)).astype(dtype)
        step = dtype.type(self.step_size)
        maximum, minimum = np.maximum, np.minimum
        maximum(minimum(Z, high, out=Z), low, out=Z)
        for _ in range(self.steps):
            Z += step * np.sign(gradient(Z))
            maximum(minimum(Z, high, out=Z), low, out=Z)
        return Z


def check_trades_params(beta: Any, eps: Any, steps: Any, step_size: Any) -> None:
    """One-line errors for TRADES parameters out of range."""
    if not (_is_number(beta) and beta >= 0):
        raise RobustkitError(f"beta must be a number >= 0, got {beta!r}")
    _fraction("eps", eps)
    check_int("steps", steps)
    if not (_is_number(step_size) and step_size > 0):
        raise RobustkitError(
            f"step_size must be a number > 0 (a fraction of eps), got {step_size!r}"
        )


class TradesTrained(WrappedModel):
    """A model trained with TRADES: its own loss plus β·KL(clean ‖ adversarial scores) over
    the L∞ ball of ``eps`` (a fraction of the training data's range, within its bounds),
    the adversarial point by ``steps`` steps of ``step_size``·eps."""

    def __init__(
        self,
        model: Model | None = None,
        beta: float = 6.0,
        eps: float = 0.1,
        steps: int = 10,
        step_size: float = 0.25,
        random_state=None,
    ):
        self.model = model
        self.beta = beta
        self.eps = eps
        self.steps = steps
        self.step_size = step_size
        self.random_state = random_state

    def validate(self) -> None:
        """Check the inner model's parameters, then beta, eps, steps and step_size."""
        super().validate()
        check_trades_params(self.beta, self.eps, self.steps, self.step_size)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callback: EpochCallback | None = None,
        **hooks: Any,
    ) -> TradesTrained:
        """Train the inner model with the TRADES term on every minibatch; return self."""
        check_trades_params(self.beta, self.eps, self.steps, self.step_size)
        X = np.asarray(X)
        lo, hi = training_bounds(X, hooks)
        radius = float(self.eps) * (hi - lo)
        term = TradesTerm(
            beta=float(self.beta),
            radius=radius,
            bounds=(lo, hi),
            steps=int(self.steps),
            step_size=float(self.step_size) * radius,
            start_std=START_STD * (hi - lo),
            rng=np.random.default_rng(self.random_state),
        )
        self.fit_inner(
            X, y, eval_set=eval_set, callback=callback, bounds=(lo, hi), **hooks, trades=term
        )
        return self


class TradesDefense(Defense):
    """TRADES (Zhang et al., ICML 2019) for models with the ``trades_training`` capability
    (the built-in ``hinge`` and ``rbf``): own loss + ``beta``·KL(clean ‖ adversarial
    scores), the adversarial by ``steps`` PGD steps of ``step_size``·eps within ``eps`` (a
    fraction of the data's range)."""

    requires = frozenset({TRADES_TRAINING})

    def __init__(
        self,
        beta: float = 6.0,
        eps: float = 0.1,
        steps: int = 10,
        step_size: float = 0.25,
        random_state=None,
    ):
        self.beta = beta
        self.eps = eps
        self.steps = steps
        self.step_size = step_size
        self.random_state = random_state

    def validate(self) -> None:
        """The checks of the defended model's parameters (before any training)."""
        check_trades_params(self.beta, self.eps, self.steps, self.step_size)

    def _apply(self, model: Model) -> Model:
        self.validate()
        return TradesTrained(model=clone(model), **self.get_params())
