"""Clean and adversarial metrics, rejection-aware: an attack succeeds against a defense
only if the input ends up wrong *and* not rejected (Carlini et al.)."""

from __future__ import annotations

import numpy as np

from .interfaces import REJECT


def clean_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and reject rate of clean predictions over a whole test set."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return {
        "clean_accuracy": float(np.mean(y_pred == y_true)),
        "clean_reject_rate": float(np.mean(y_pred == REJECT)),
    }


def safe_ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is zero (shown as '-' and null)."""
    return float(numerator) / float(denominator) if denominator else float("nan")


def attack_metrics(
    y_true: np.ndarray,
    y_adv_pred: np.ndarray,
    linf: np.ndarray,
    zero_gradient: np.ndarray,
) -> dict[str, float]:
    """Counts and rates for one attacked batch of correctly classified samples.

    ``flipped``: no longer the true label (a reject counts); ``rejected``: predicted
    REJECT; ``evaded``: wrong and not rejected. ``attack_success_rate`` is the study's
    "attack accuracy", ``percent_rejected`` its "percent rejected" (rejected / flipped).
    ``linf`` holds each sample's ‖x' − x‖∞ as a fraction of the input range.
    """
    y_true, y_adv_pred = np.asarray(y_true), np.asarray(y_adv_pred)
    n = len(y_true)
    flipped = int(np.sum(y_adv_pred != y_true))
    rejected = int(np.sum(y_adv_pred == REJECT))
    evaded = flipped - rejected
    return {
        "n_attacked": n,
        "flipped": flipped,
        "rejected": rejected,
        "evaded": evaded,
        "attack_success_rate": safe_ratio(flipped, n),
        "evasion_rate": safe_ratio(evaded, n),
        "correct_rejects": rejected,
        "percent_rejected": safe_ratio(rejected, flipped),
        "zero_gradient_rate": float(np.mean(zero_gradient)) if n else float("nan"),
        "mean_linf": float(np.mean(linf)) if n else float("nan"),
    }
