"""Score-level attack objectives shared by every attack: margin, cross-entropy and DLR.

Each loss takes the class scores z (n, C), the true columns y, optional target columns t
and optional reject scores r, and returns a ``ScoreLoss``: the per-sample value the
attack *maximises* and its gradient weights on the scores and on the reject score, so
``model.decision_gradient(X, loss.grad_scores, loss.grad_reject)`` is the input gradient.

Reject-aware (``reject`` given): the true score z_y is replaced by max(z_y, r) before the
loss is computed, so the attack has to beat both the true class and the reject option.
The gradient of that column then flows to z_y or to r, whichever is larger.

- ``margin``: max_{j≠y} z_j − z_y (untargeted), z_t − max_{j≠t} z_j (targeted).
- ``ce``: cross-entropy of softmax(z) at y (untargeted), log softmax(z)_t (targeted).
- ``dlr`` (Croce & Hein 2020): −(z_y − max_{j≠y} z_j) / (z_π1 − z_π3 + 1e-12)
  (untargeted), −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2 + 1e-12) (targeted), z_π1 ≥ z_π2
  ≥ … the sorted scores. Invariant to shifting and scaling the scores. Needs 3 classes;
  with 3 classes the targeted form uses z_π3 for z_π4.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robustkit import RobustkitError

#: Loss names, as the attacks' ``loss`` parameter spells them.
LOSS_NAMES = ("ce", "dlr", "margin")
#: The DLR denominators' guard against a zero spread of the top scores.
DLR_EPSILON = 1e-12


@dataclass
class ScoreLoss:
    """A per-sample objective (n,) and its gradient on the scores (n, C) and reject score (n,)."""

    value: np.ndarray
    grad_scores: np.ndarray
    grad_reject: np.ndarray | None


def _with_reject(
    scores: np.ndarray, y_cols: np.ndarray, reject: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """float64 scores with z_y replaced by max(z_y, r), and where r was the larger."""
    z = np.array(scores, dtype=np.float64)
    if reject is None:
        return z, None
    rows = np.arange(len(z))
    reject = np.asarray(reject, dtype=np.float64)
    uses_reject = reject > z[rows, y_cols]
    z[rows, y_cols] = np.where(uses_reject, reject, z[rows, y_cols])
    return z, uses_reject


def _route(
    value: np.ndarray, grad: np.ndarray, y_cols: np.ndarray, uses_reject: np.ndarray | None
) -> ScoreLoss:
    """Send the gradient of the (replaced) true column to z_y or to r."""
    if uses_reject is None:
        return ScoreLoss(value, grad, None)
    rows = np.arange(len(grad))
    true_grad = grad[rows, y_cols]
    grad[rows, y_cols] = np.where(uses_reject, 0.0, true_grad)
    return ScoreLoss(value, grad, np.where(uses_reject, true_grad, 0.0))


def _best_other(z: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Per row, the column of the highest score other than ``columns``."""
    masked = z.copy()
    masked[np.arange(len(z)), columns] = -np.inf
    return masked.argmax(axis=1)


def margin(
    scores: np.ndarray,
    y_cols: np.ndarray,
    target_cols: np.ndarray | None = None,
    reject: np.ndarray | None = None,
) -> ScoreLoss:
    """max_{j≠y} z_j − z_y, or z_t − max_{j≠t} z_j when targeted (> 0: the attack won)."""
    z, uses_reject = _with_reject(scores, y_cols, reject)
    rows = np.arange(len(z))
    if target_cols is None:
        aim, rival = _best_other(z, y_cols), y_cols
    else:
        aim, rival = target_cols, _best_other(z, target_cols)
    grad = np.zeros_like(z)
    grad[rows, aim] = 1.0
    grad[rows, rival] -= 1.0
    return _route(z[rows, aim] - z[rows, rival], grad, y_cols, uses_reject)


def cross_entropy(
    scores: np.ndarray,
    y_cols: np.ndarray,
    target_cols: np.ndarray | None = None,
    reject: np.ndarray | None = None,
) -> ScoreLoss:
    """−log softmax(z)_y, or log softmax(z)_t when targeted."""
    z, uses_reject = _with_reject(scores, y_cols, reject)
    rows = np.arange(len(z))
    shifted = z - z.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1)
    softmax = exp / total[:, None]
    log_total = np.log(total)
    if target_cols is None:
        value = log_total - shifted[rows, y_cols]
        grad = softmax
        grad[rows, y_cols] -= 1.0
    else:
        value = shifted[rows, target_cols] - log_total
        grad = -softmax
        grad[rows, target_cols] += 1.0
    return _route(value, grad, y_cols, uses_reject)


def dlr(
    scores: np.ndarray,
    y_cols: np.ndarray,
    target_cols: np.ndarray | None = None,
    reject: np.ndarray | None = None,
) -> ScoreLoss:
    """The difference-of-logits ratio, untargeted or targeted (see the module doc)."""
    n_classes = np.shape(scores)[1]
    if n_classes < 3:
        raise RobustkitError(
            f"loss 'dlr' needs at least 3 classes, the model has {n_classes}; use 'ce' or 'margin'"
        )
    z, uses_reject = _with_reject(scores, y_cols, reject)
    rows = np.arange(len(z))
    order = np.argsort(z, axis=1)
    first, third = order[:, -1], order[:, -3]
    rival = _best_other(z, y_cols) if target_cols is None else target_cols
    difference = z[rows, y_cols] - z[rows, rival]
    if target_cols is None:
        spread = z[rows, first] - z[rows, third] + DLR_EPSILON
        low_parts = ((third, 1.0),)
    else:
        fourth = order[:, -min(4, n_classes)]
        spread = z[rows, first] - (z[rows, third] + z[rows, fourth]) / 2 + DLR_EPSILON
        low_parts = ((third, 0.5), (fourth, 0.5))
    value = -difference / spread
    grad = np.zeros_like(z)
    grad[rows, y_cols] -= 1.0 / spread
    grad[rows, rival] += 1.0 / spread
    ratio = difference / spread**2  # d value / d spread
    grad[rows, first] += ratio
    for column, weight in low_parts:
        grad[rows, column] -= weight * ratio
    return _route(value, grad, y_cols, uses_reject)


LOSSES: dict[str, Callable[..., ScoreLoss]] = {"ce": cross_entropy, "dlr": dlr, "margin": margin}


def check_loss(name: object) -> str:
    """``name`` if it is a known loss, else a one-line RobustkitError listing them."""
    if name not in LOSSES:
        raise RobustkitError(f"loss must be one of {', '.join(LOSS_NAMES)}; got {name!r}")
    return str(name)


def score_loss(
    name: str,
    scores: np.ndarray,
    y_cols: np.ndarray,
    target_cols: np.ndarray | None = None,
    reject: np.ndarray | None = None,
) -> ScoreLoss:
    """The loss ``name`` (``ce``, ``dlr`` or ``margin``) at ``scores``."""
    return LOSSES[check_loss(name)](scores, y_cols, target_cols, reject)


def attack_won(
    scores: np.ndarray,
    y_cols: np.ndarray,
    target_cols: np.ndarray | None = None,
    reject: np.ndarray | None = None,
) -> np.ndarray:
    """Where the prediction these scores give is wrong and not rejected (or is the target).

    The same rule as ``Model.predict``: the best class, rejected where r beats every score.
    """
    predicted = np.argmax(scores, axis=1)
    hit = predicted != y_cols if target_cols is None else predicted == target_cols
    if reject is not None:
        hit &= ~(np.asarray(reject) > np.max(scores, axis=1))
    return hit
