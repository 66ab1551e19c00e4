"""Gradient attacks: PGD, and FGSM as its one-step special case (one code path).

Both ascend an objective J by x ← P(x + step·d), P the projection to the ε-ball and the
valid range. With ``norm="linf"`` d = sign(∇ₓJ); with ``norm="l2"`` d = ∇ₓJ/‖∇ₓJ‖₂ and
the ball is Euclidean (its radius ε·range, in the same units as L∞). J is chosen by
``loss``, ``targeted`` and ``reject_aware``:

- ``loss="model"``: the model's own training loss L(x, y) (the study's FGSM), or −L(x, t)
  when targeted. A zero hinge loss has a zero gradient, which leaves nothing to follow.
- ``loss="margin"``: s_t − s_y with t the best wrong class (re-chosen at each step), or
  s_t − max_{j≠t} s_j when targeted.
- ``reject_aware=True`` (adaptive, like SecML's PGD-LS): the margin against the reject
  option too, s_t − max(s_y, reject_score), so the attack aims at a wrong class that is
  NOT rejected. It always uses this margin; ``loss`` then does not apply.

A targeted attack with ``target=None`` aims at each sample's highest-scoring wrong class
at the clean point (the easiest target), fixed for the whole run.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np

from robustkit import REJECT, Attack, AttackResult, Model, RobustkitError, hookimpl
from robustkit.interfaces import LINF, cache_blocks, check_norm, project
from robustkit.params import check_int

from ._losses import attack_won, margin

LOSSES = ("model", "margin")


class _Objective:
    """The quantity an attack ascends, with its input gradient and the success test."""

    def __init__(self, model: Model, y: np.ndarray, targets: np.ndarray | None, kind: str):
        self.model = model
        self.y = y
        self.targets = targets
        self.kind = kind  # "loss", "margin" or "reject-aware margin"
        self.evaluations = 0
        classes = np.asarray(model.classes_)
        # The model's own loss also takes labels that are no class (REJECT).
        known = kind != "loss" or bool(np.isin(y, classes).all())
        self.y_columns = _columns_of(classes, y, "labels y") if known else None
        self.target_columns = None if targets is None else _columns_of(classes, targets, "target")

    def __call__(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample objective (n,) and its gradient w.r.t. X."""
        self.evaluations += 1
        if self.kind == "loss":
            if self.targets is None:
                return self.model.loss_gradient(X, self.y)
            loss, grad = self.model.loss_gradient(X, self.targets)
            return -np.asarray(loss), -np.asarray(grad)
        value, grad_scores, grad_reject = self._margin(X)
        return value, self.model.decision_gradient(X, grad_scores, grad_reject)

    def evaluate(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The objective (n,), its gradient w.r.t. X and the success test at X. On a model
        with ``loss_gradient_and_scores`` (the loss) or ``decision_and_gradient`` (a
        margin), one forward pass, its scores giving the success test by
        ``Model.predict``'s rule; else a gradient call and a prediction."""
        if self.kind == "loss":
            fused_loss = getattr(self.model, "loss_gradient_and_scores", None)
            if fused_loss is None or self.y_columns is None:
                value, grad = self(X)
                return value, grad, self.success(X)
            self.evaluations += 1
            labels = self.y if self.targets is None else self.targets
            loss, grad, scores, reject = fused_loss(X, labels)
            success = attack_won(scores, self.y_columns, self.target_columns, reject)
            if self.targets is None:
                return loss, grad, success
            return -np.asarray(loss), -np.asarray(grad), success
        fused = getattr(self.model, "decision_and_gradient", None)
        if fused is None:
            value, grad = self(X)
            return value, grad, self.success(X)
        self.evaluations += 1
        found: dict[str, np.ndarray] = {}

        def weights(scores: np.ndarray, reject: np.ndarray) -> tuple[np.ndarray, Any]:
            aware = reject if self.kind == "reject-aware margin" else None
            loss = margin(scores, self.y_columns, self.target_columns, aware)
            found["value"] = loss.value
            found["success"] = attack_won(scores, self.y_columns, self.target_columns, reject)
            return loss.grad_scores, loss.grad_reject

        grad = fused(X, weights)[2]
        return found["value"], grad, found["success"]

    def value_and_success(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The objective and the success test at X (a run's last point): the loss comes
        with its gradient anyway, so through ``evaluate``'s single pass; a margin needs
        no gradient."""
        if self.kind == "loss":
            value, _, success = self.evaluate(X)
            return value, success
        return self._margin(X)[0], self.success(X)

    def _margin(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The margin (n,) and the weights of its gradient on scores and reject score."""
        scores = self.model.decision_function(X)
        reject = self.model.reject_score(X) if self.kind == "reject-aware margin" else None
        loss = margin(scores, self.y_columns, self.target_columns, reject)
        return loss.value, loss.grad_scores, loss.grad_reject

    def success(self, X: np.ndarray) -> np.ndarray:
        """Wrong and not rejected (untargeted), or predicted as the target (targeted)."""
        predicted = np.asarray(self.model.predict(X))
        if self.targets is not None:
            return predicted == self.targets
        return (predicted != self.y) & (predicted != REJECT)


class _BestPoints:
    """Per sample, the best point offered so far: a successful one first, then the highest value."""

    def __init__(self) -> None:
        self.points: np.ndarray | None = None

    def offer(self, Z: np.ndarray, value: np.ndarray, success: np.ndarray) -> None:
        value = np.asarray(value, dtype=np.float64)
        if self.points is None:
            self.points, self.value, self.success = Z.copy(), value, success
            return
        better = (success & ~self.success) | ((success == self.success) & (value > self.value))
        self.points[better] = Z[better]
        self.value = np.where(better, value, self.value)
        self.success = self.success | success


def _columns_of(classes: np.ndarray, labels: np.ndarray, what: str) -> np.ndarray:
    """Score column of each label; unknown labels are a clear error."""
    columns = np.searchsorted(classes, labels).clip(0, len(classes) - 1)
    unknown = classes[columns] != labels
    if unknown.any():
        raise RobustkitError(
            f"{what} {np.unique(labels[unknown]).tolist()} are not classes of the model "
            f"(classes: {classes.tolist()})"
        )
    return columns


def steepest_direction(grad: np.ndarray, norm: str, out: np.ndarray | None = None) -> np.ndarray:
    """The unit steepest-ascent direction: sign(∇) for L∞, ∇/‖∇‖₂ for L2 (into ``out``,
    which may be ``grad`` itself, else a new array)."""
    if norm == LINF:
        return np.sign(grad, out=out)
    length = np.linalg.norm(grad.reshape(len(grad), -1), axis=1)
    return np.multiply(grad, per_sample(1.0 / np.maximum(length, 1e-12), grad), out=out)


def _reusable(grad: np.ndarray, dtype: np.dtype) -> np.ndarray | None:
    """``grad`` itself where its direction may overwrite it (the gradient a model returns
    is the caller's), else None."""
    return grad if grad.dtype == dtype and grad.flags.writeable else None


def per_sample(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Per-sample values (n,) shaped to broadcast over a batch like ``like``, in its dtype."""
    return np.asarray(values).astype(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def unit_noise(shape: tuple[int, ...], norm: str, rng: np.random.Generator, dtype) -> np.ndarray:
    """Random offsets in the unit ball: uniform in the L∞ box, or on the unit L2 sphere."""
    if norm == LINF:
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    noise = rng.standard_normal(shape).astype(dtype)
    length = np.linalg.norm(noise.reshape(shape[0], -1), axis=1)
    return noise * per_sample(1.0 / np.maximum(length, 1e-12), noise)


def _into_l2_balls(
    Z: np.ndarray, X: np.ndarray, radii: np.ndarray, bounds: tuple[float, float]
) -> np.ndarray:
    """``Z`` moved into the L2 ball of each row's own radius around ``X``, then ``bounds``."""
    delta = (Z - X).reshape(len(X), -1)
    length = np.linalg.norm(delta, axis=1)
    shrink = np.minimum(1.0, radii / np.maximum(length, 1e-12)).astype(Z.dtype)
    return np.clip(X + (delta * shrink[:, None]).reshape(X.shape), *bounds)


def sign_steps(
    grad: np.ndarray, X: np.ndarray, steps: list[float], out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``X + step·sign(grad)`` for each step (K, n, ...), and which rows have a zero
    gradient, in one pass over the rows a cache block at a time (the sign never takes a
    full-size array: on 784 pixels each extra pass over the batch costs a few ms).
    ``out`` (K, n, ...) may be ``grad`` itself: each block's sign is taken first."""
    adversarials = np.empty((len(steps), *X.shape), X.dtype) if out is None else out
    zero_gradient = np.empty(len(X), dtype=bool)
    steps = [X.dtype.type(step) for step in steps]
    blocks = cache_blocks(X)
    scratch = np.empty((blocks[0].stop if blocks else 0, *X.shape[1:]), dtype=X.dtype)
    for rows in blocks:
        sign = np.sign(grad[rows], out=scratch[: rows.stop - rows.start], casting="same_kind")
        flat = sign.reshape(len(sign), -1)
        np.equal(np.vecdot(flat, flat), 0, out=zero_gradient[rows])  # NaN rows: not zero
        for adversarial, step in zip(adversarials, steps, strict=True):
            block = adversarial[rows]
            if step == 0:
                block[...] = X[rows]
            else:
                np.multiply(sign, step, out=block)
                block += X[rows]
    return adversarials, zero_gradient


def linf_box(
    X: np.ndarray, radius: float, bounds: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The box ``[max(X − r, low), min(X + r, high)]`` in X's dtype, computed in float64
    and rounded a cache block at a time: clipping an iterate of X's dtype to it gives
    the same numbers as clipping it to the float64 box, with no float64 array."""
    low, high = np.empty_like(X), np.empty_like(X)
    for rows in cache_blocks(X):
        block = X[rows].astype(np.float64)
        np.maximum(block - radius, bounds[0], out=low[rows], casting="same_kind")
        np.minimum(block + radius, bounds[1], out=high[rows], casting="same_kind")
    return low, high


class PGD(Attack):
    """Projected gradient descent: ``steps`` steepest-ascent steps within ε, with restarts.

    ``norm`` is ``"linf"`` (sign steps, box) or ``"l2"`` (normalised steps, L2 ball).

    ``step_size`` is each step as a fraction of ε (None → 2.5/steps, so a step is
    2.5·ε/steps). ``random_start`` begins uniformly inside the ε-ball; ``restarts`` > 1
    (only meaningful with a random start) runs again from new random points. Each sample
    keeps its best iterate over all steps and restarts: one that succeeds (wrong and not
    rejected, or the target), else the one with the highest objective. See the module
    doc for ``loss``, ``targeted``, ``target`` and ``reject_aware``.
    """

    writes_inputs = False  # _run only reads X (perturb need not copy it)

    def __init__(
        self,
        steps: int = 10,
        step_size: float | None = None,
        random_start: bool = True,
        restarts: int = 1,
        targeted: bool = False,
        target: int | np.ndarray | None = None,
        loss: str = "model",
        reject_aware: bool = False,
        norm: str = "linf",
    ):
        self.steps = steps
        self.step_size = step_size
        self.random_start = random_start
        self.restarts = restarts
        self.targeted = targeted
        self.target = target
        self.loss = loss
        self.reject_aware = reject_aware
        self.norm = norm

    def validate(self) -> None:
        """Check norm, steps, restarts, loss, step_size and target."""
        check_norm(self.norm)
        check_int("steps", self.steps)
        check_int("restarts", self.restarts)
        if self.loss not in LOSSES:
            raise RobustkitError(f"loss must be one of {', '.join(LOSSES)}; got {self.loss!r}")
        if self.step_size is not None and not (
            isinstance(self.step_size, Real) and np.isfinite(self.step_size) and self.step_size > 0
        ):
            raise RobustkitError(
                f"step_size must be a number > 0 (a fraction of ε) or None, got {self.step_size!r}"
            )
        if self.target is not None and not self.targeted:
            raise RobustkitError("target is set but targeted=False; set targeted=True")

    def _objective(self, model: Model, X: np.ndarray, y: np.ndarray) -> _Objective:
        if self.reject_aware:
            kind = "reject-aware margin"
        else:
            kind = "loss" if self.loss == "model" else "margin"
        targets = self._targets(model, X, y) if self.targeted else None
        return _Objective(model, y, targets, kind)

    def _targets(self, model: Model, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The given target(s), or each sample's highest-scoring wrong class."""
        classes = np.asarray(model.classes_)
        if self.target is not None:
            targets = np.broadcast_to(np.asarray(self.target), y.shape)
            _columns_of(classes, targets, "target")
            return targets.copy()
        scores = np.array(model.decision_function(X), dtype=np.float64)
        rows = np.arange(len(scores))
        scores[rows, _columns_of(classes, y, "labels y")] = -np.inf
        return classes[scores.argmax(axis=1)]

    def _run(
        self,
        model: Model,
        X: np.ndarray,
        y: np.ndarray,
        radii: np.ndarray,
        bounds: tuple[float, float],
        rng: np.random.Generator,
    ) -> AttackResult:
        """One PGD run per radius; the clean gradient is computed once and shared."""
        self.validate()
        dtype = np.result_type(X.dtype, np.float32)
        X = X.astype(dtype, copy=False)
        objective = self._objective(model, X, y)
        clean_grad = np.asarray(objective(X)[1]).reshape(X.shape)
        # One random start per restart, scaled to each radius, so a budget's result does
        # not depend on which other budgets are in the list.
        n_starts = self.restarts if self.random_start else 0
        starts = [unit_noise(X.shape, self.norm, rng, dtype) for _ in range(n_starts)]
        if self.steps == 1 and not starts and self.norm == LINF:  # FGSM; perturb projects
            steps = [self._step(radius) for radius in radii]
            # one budget: its adversarials overwrite the gradient (no new array)
            reusable = _reusable(clean_grad, dtype) if len(radii) == 1 else None
            out = None if reusable is None else reusable.reshape(1, *X.shape)
            adversarials, zero_gradient = sign_steps(clean_grad, X, steps, out=out)
        else:
            zero_gradient = ~clean_grad.reshape(len(X), -1).any(axis=1)
            clean_direction = steepest_direction(
                clean_grad, self.norm, out=_reusable(clean_grad, dtype)
            ).astype(dtype, copy=False)
            adversarials = np.empty((len(radii), *X.shape), dtype=dtype)
            for k, radius in enumerate(radii):
                if radius == 0:
                    adversarials[k] = X
                elif self.steps == 1 and not starts:  # FGSM under L2; perturb projects
                    step = dtype.type(self._step(radius))
                    for rows in cache_blocks(X):  # both passes on a block while in cache
                        block = np.multiply(clean_direction[rows], step, out=adversarials[k][rows])
                        block += X[rows]
                else:
                    adversarials[k] = self._search(
                        objective, X, radius, bounds, starts, clean_direction
                    )
        info: dict[str, Any] = {
            "objective": objective.kind,
            "gradient_evaluations": objective.evaluations,
        }
        if objective.targets is not None:
            info["targets"] = objective.targets
        return AttackResult(radii, adversarials, zero_gradient, info)

    def training_adversarials(
        self,
        model: Model,
        X: np.ndarray,
        y: np.ndarray,
        radius: float | np.ndarray,
        bounds: tuple[float, float],
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Adversarials to train on (Madry et al.): the last iterate of one run at ``radius``
        (input units; a number or one per sample), within the ball and ``bounds``.

        Unlike ``perturb`` it keeps no best point and tests no success: each step is one
        fused forward and backward pass (``decision_and_gradient`` where the model has
        it; ``loss_gradient`` for ``loss="model"``). ``restarts`` does not apply. The
        caller (adversarial training) has validated the attack and the batch.
        """
        dtype = np.result_type(X.dtype, np.float32)
        X = X.astype(dtype, copy=False)
        radii = np.broadcast_to(np.asarray(radius, dtype=dtype), (len(X),))
        radius = per_sample(radii, X)
        step = (2.5 / self.steps if self.step_size is None else self.step_size) * radius
        gradient = self._training_gradient(model, X, y)
        Z = X.copy()
        if self.random_start:
            Z += radius * unit_noise(X.shape, self.norm, rng, dtype)
        if self.norm == LINF:
            low = np.maximum(X - radius, dtype.type(bounds[0]))
            high = np.minimum(X + radius, dtype.type(bounds[1]))
            maximum, minimum, sign = np.maximum, np.minimum, np.sign
            maximum(minimum(Z, high, out=Z), low, out=Z)
            for _ in range(self.steps):
                Z += step * sign(gradient(Z))
                maximum(minimum(Z, high, out=Z), low, out=Z)  # 5x faster than np.clip here
            return Z
        Z = _into_l2_balls(Z, X, radii, bounds)
        for _ in range(self.steps):
            Z += step * steepest_direction(gradient(Z), self.norm)
            Z = _into_l2_balls(Z, X, radii, bounds)
        return Z

    def _training_gradient(self, model: Model, X: np.ndarray, y: np.ndarray):
        """``f(Z)``: the input gradient of the objective at ``Z``, one pass where possible."""
        if not self.reject_aware and self.loss == "model":
            targets = self._targets(model, X, y) if self.targeted else None
            if targets is None:
                return lambda Z: model.loss_gradient(Z, y)[1]
            return lambda Z: -np.asarray(model.loss_gradient(Z, targets)[1])
        classes = np.asarray(model.classes_)
        y_cols = _columns_of(classes, y, "labels y")
        target_cols = (
            _columns_of(classes, self._targets(model, X, y), "target") if self.targeted else None
        )

        def weights(scores: np.ndarray, reject: np.ndarray | None):
            loss = margin(scores, y_cols, target_cols, reject if self.reject_aware else None)
            return loss.grad_scores, loss.grad_reject

        fused = getattr(model, "decision_and_gradient", None)
        if fused is not None:
            return lambda Z: fused(Z, weights)[2]

        def gradient(Z: np.ndarray) -> np.ndarray:
            reject = model.reject_score(Z) if self.reject_aware else None
            grad_scores, grad_reject = weights(model.decision_function(Z), reject)
            return model.decision_gradient(Z, grad_scores, grad_reject)

        return gradient

    def _step(self, radius: float) -> float:
        """The step size in input units for one radius."""
        relative = 2.5 / self.steps if self.step_size is None else float(self.step_size)
        return relative * float(radius)

    def _search(
        self,
        objective: _Objective,
        X: np.ndarray,
        radius: float,
        bounds: tuple[float, float],
        starts: list[np.ndarray],
        clean_direction: np.ndarray,
    ) -> np.ndarray:
        """PGD within one radius: each sample's best iterate over all steps and restarts."""
        if self.norm == LINF:  # the box ∩ bounds: a projection is one clip
            low, high = linf_box(X, radius, bounds)

            def ball(Z: np.ndarray) -> None:
                np.maximum(np.minimum(Z, high, out=Z), low, out=Z)  # 5x faster than np.clip
        else:

            def ball(Z: np.ndarray) -> None:
                project(Z, X, radius, bounds, self.norm)

        step = X.dtype.type(self._step(radius))
        work = np.empty_like(X)  # each step's move
        best = _BestPoints()
        for start in starts or [None]:  # without a random start all restarts would agree
            Z = X.copy()
            if start is not None:
                Z += X.dtype.type(radius) * start
                ball(Z)
            for index in range(self.steps):
                if index == 0 and start is None:
                    direction = clean_direction  # the clean gradient, shared by every radius
                else:
                    value, grad, success = objective.evaluate(Z)
                    best.offer(Z, value, success)
                    grad = np.asarray(grad).reshape(X.shape)
                    direction = steepest_direction(grad, self.norm, out=_reusable(grad, X.dtype))
                Z += np.multiply(direction.astype(X.dtype, copy=False), step, out=work)
                ball(Z)
            best.offer(Z, *objective.value_and_success(Z))
        return best.points


class FGSM(PGD):
    """Fast gradient sign method: x' = clip(x + ε·sign(∇ₓJ)); one gradient for every ε.

    PGD with one step of size ε from the clean point; ``norm="l2"`` steps ε·∇/‖∇‖₂.
    See the module doc for ``loss``, ``targeted``, ``target`` and ``reject_aware``.
    """

    # Fixed, not parameters: FGSM is PGD's one-step special case.
    steps = 1
    step_size = 1.0
    random_start = False
    restarts = 1

    def __init__(
        self,
        targeted: bool = False,
        target: int | np.ndarray | None = None,
        loss: str = "model",
        reject_aware: bool = False,
        norm: str = "linf",
    ):
        self.targeted = targeted
        self.target = target
        self.loss = loss
        self.reject_aware = reject_aware
        self.norm = norm


@hookimpl
def register_attacks(register):
    """Register ``fgsm`` and ``pgd``."""
    register("fgsm", FGSM)
    register("pgd", PGD)
