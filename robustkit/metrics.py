"""Clean and adversarial metrics, rejection-aware: an attack succeeds against a defense
only if the input ends up wrong *and* not rejected (Carlini et al.).

Two families of figures, both with a Wilson 95 % interval (``<rate>_low``/``<rate>_high``):

- over the grid's fixed **sample set** (RobustBench style): ``robust_accuracy``
  (correct and not rejected under the attack; a clean error counts as not robust),
  ``correct_or_reject`` and ``evasion_rate`` (wrong and not rejected);
- over the samples of the set the model classifies correctly, the ones attacked (the
  study's columns): ``attack_success_rate``, ``correct_rejects``, ``percent_rejected``.
"""

from __future__ import annotations

import math

import numpy as np

from .interfaces import REJECT

#: The normal quantile of a two-sided 95 % interval.
Z_95 = 1.959963984540054

#: How bad an adversarial outcome is: still correct < rejected < wrong and not rejected.
CORRECT, REJECTED, EVADED = 0, 1, 2


def safe_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is zero (shown as '-' and null)."""
    return float(numerator) / float(denominator) if denominator else float("nan")


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval for ``k`` successes in ``n`` trials; (NaN, NaN) for n = 0.

    Centre (k + z²/2)/(n + z²), half-width z·√(k(n − k)/n + z²/4)/(n + z²): unlike the
    normal approximation it stays inside [0, 1] and is not empty at k = 0 or k = n.
    """
    if n <= 0:
        return float("nan"), float("nan")
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n = {n}, got {k}")
    z2 = z * z
    centre = (k + z2 / 2) / (n + z2)
    half = z * math.sqrt(k * (n - k) / n + z2 / 4) / (n + z2)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(name: str, k: int, n: int) -> dict[str, float]:
    """``{name: k/n, name_low: …, name_high: …}`` with the Wilson interval."""
    low, high = wilson_interval(int(k), int(n))
    return {name: safe_ratio(k, n), f"{name}_low": low, f"{name}_high": high}


def clean_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and reject rate of clean predictions over a whole test set."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = len(y_true)
    return {
        **rate("clean_accuracy", int(np.sum(y_pred == y_true)), n),
        **rate("clean_reject_rate", int(np.sum(y_pred == REJECT)), n),
    }


def outcomes(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per sample CORRECT, REJECTED or EVADED (wrong and not rejected)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return np.where(y_pred == y_true, CORRECT, np.where(y_pred == REJECT, REJECTED, EVADED))


def attack_metrics(
    y_true: np.ndarray,
    y_adv_pred: np.ndarray,
    linf: np.ndarray,
    zero_gradient: np.ndarray | None,
) -> dict[str, float]:
    """The study's counts and rates for one attacked batch of correctly classified samples.

    ``flipped``: no longer the true label (a reject counts); ``rejected``: predicted
    REJECT; ``evaded``: wrong and not rejected. ``attack_success_rate`` is the study's
    "attack accuracy", ``percent_rejected`` its "percent rejected" (rejected / flipped).
    ``linf`` holds each sample's ‖x' − x‖∞ in ε units; ``zero_gradient`` None (for the
    worst case over attacks) leaves the zero-gradient rate undefined.
    """
    y_true, y_adv_pred = np.asarray(y_true), np.asarray(y_adv_pred)
    n = len(y_true)
    flipped = int(np.sum(y_adv_pred != y_true))
    rejected = int(np.sum(y_adv_pred == REJECT))
    return {
        "n_attacked": n,
        "flipped": flipped,
        "rejected": rejected,
        "evaded": flipped - rejected,
        **rate("attack_success_rate", flipped, n),
        "correct_rejects": rejected,
        **rate("percent_rejected", rejected, flipped),
        **rate(
            "zero_gradient_rate",
            0 if zero_gradient is None else int(np.sum(zero_gradient)),
            0 if zero_gradient is None else n,
        ),
        "mean_linf": float(np.mean(linf)) if n else float("nan"),
    }


def sample_set_metrics(outcome: np.ndarray) -> dict[str, float]:
    """Figures over the whole sample set from each sample's final outcome.

    ``outcome`` holds CORRECT, REJECTED or EVADED per sample of the set, where a clean
    error keeps its clean outcome (it is never robust). ``robust_accuracy`` +
    rejected share + ``evasion_rate`` = 1; for a model that cannot reject,
    ``correct_or_reject`` equals ``robust_accuracy``.
    """
    outcome = np.asarray(outcome)
    n = len(outcome)
    robust = int(np.sum(outcome == CORRECT))
    evaded = int(np.sum(outcome == EVADED))
    return {
        "n_samples": n,
        "robust": robust,
        **rate("robust_accuracy", robust, n),
        **rate("correct_or_reject", n - evaded, n),
        **rate("evasion_rate", evaded, n),
    }


def worst_case(outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, the worst outcome over attacks (axis 0) and the first attack reaching it:
    a sample is robust only if every attack left it correct, and evades if any attack made
    it evade (AutoAttack's per-sample worst case, extended to rejects)."""
    outcome = np.asarray(outcome)
    chosen = outcome.argmax(axis=0)
    return np.take_along_axis(outcome, chosen[None], axis=0)[0], chosen
