"""Auto-PGD (Croce & Hein, ICML 2020): projected gradient ascent without a step-size knob.

The step size starts at 2ε and is halved at checkpoints when progress stalls (the loss
rose in at most ρ of the steps since the last checkpoint, or the step was not halved
last time and the best loss has not improved); a halving restarts the iterate from the
best point found. Steps use momentum α = 0.75. L∞ steps along sign(∇), L2 steps along
∇/‖∇‖₂. Losses ``ce``, ``dlr`` and ``margin`` (``plugins/_losses.py``); ``targeted``
runs targeted DLR (or the chosen loss) towards each of the ``n_target_classes``
highest-scoring wrong classes in turn. As in AutoAttack, a sample counts as broken when
it is classified wrong and not rejected, whatever the target.

Speed: each sample leaves the search as soon as it is broken (the active set shrinks
every iteration), the scores of an iterate serve both the success test and the loss, and
no gradient is computed for a sample once it is broken. The targets and restarts of the
samples left run side by side in one search (``RUN_ROWS``), each from its own start.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from robustkit import Attack, AttackResult, Model, RobustkitError, hookimpl
from robustkit.interfaces import LINF, check_norm, project
from robustkit.params import check_int

from . import _blocked as blocked
from ._losses import attack_won, check_loss, score_loss
from .gradient_attacks import _columns_of, per_sample, steepest_direction, unit_noise

#: Momentum weight of the new step (1 − α goes to the previous step).
ALPHA = 0.75
#: From this many (sample, run) rows on, the step's element-wise update and the best-point
#: copies run on blocks of ``UPDATE_ROWS`` rows on the cores the process may use (the
#: same numbers: each value's arithmetic does not depend on the cut; ``auto:version=fast``
#: 5–11 % faster on two cores); fewer rows are one pass.
PARALLEL_ROWS = 1024
UPDATE_ROWS = 256
#: Samples per APGD run: a bounded working set whatever the batch size.
CHUNK = 1024
#: Rows of one search: the runs (targets, restarts) of a chunk's samples go in together,
#: up to this many (sample, run) rows and ``RUN_VALUES`` input values (about 100 MB of
#: search state), so that the numpy networks' products are large enough to share out
#: over the cores (``_blocked``), and below the size from which their other products
#: take every BLAS thread (slower on a busy machine). At least one run goes in.
RUN_ROWS = 3 * CHUNK
RUN_VALUES = RUN_ROWS * 784
#: Checkpoint schedule as fractions of the budget: first interval, shrink, floor.
FIRST_INTERVAL, INTERVAL_SHRINK, MIN_INTERVAL = 0.22, 0.03, 0.06


def checkpoints(steps: int) -> list[int]:
    """Iterations (1-based counts) at which the step size may be halved.

    p₀ = 0, p₁ = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06), in whole steps.
    """
    interval = max(int(FIRST_INTERVAL * steps), 1)
    shrink = max(int(INTERVAL_SHRINK * steps), 1)
    floor = max(int(MIN_INTERVAL * steps), 1)
    points, at = [], interval
    while at <= steps:
        points.append(at)
        interval = max(interval - shrink, floor)
        at += interval
    return points


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool, else a one-line RobustkitError."""
    if not isinstance(value, bool | np.bool_):
        raise RobustkitError(f"{name} must be True or False; got {value!r}")
    return bool(value)


@dataclass
class Scorer:
    """Success tests, losses and input gradients on one batch, counting model calls.

    ``rejects`` is False when the model's reject score is −inf on every clean input (a
    model without a reject option), which saves a forward pass per iterate. Models with
    a ``decision_and_gradient`` method (the numpy networks) give scores and gradient in
    one forward pass.
    """

    model: Model
    y_cols: np.ndarray
    rejects: bool
    reject_aware: bool
    dtype: np.dtype
    forward_calls: int = 0
    gradient_calls: int = 0

    @classmethod
    def for_batch(cls, model: Model, X: np.ndarray, y: np.ndarray, reject_aware: bool) -> Scorer:
        """A scorer for ``(X, y)``; finds out whether the model can reject here."""
        y_cols = _columns_of(np.asarray(model.classes_), y, "labels y")
        rejects = not np.isneginf(np.asarray(model.reject_score(X), dtype=np.float64)).all()
        return cls(model, y_cols, rejects, reject_aware, np.dtype(X.dtype))

    def scores(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Class scores (n, C) and, if the model can reject, reject scores (n,)."""
        self.forward_calls += 1
        scores = np.asarray(self.model.decision_function(Z))
        reject = np.asarray(self.model.reject_score(Z)) if self.rejects else None
        return scores, reject

    def won(self, scores, reject, rows: np.ndarray) -> np.ndarray:
        """Where the iterate is classified wrong and not rejected."""
        return attack_won(scores, self.y_cols[rows], None, reject if self.rejects else None)

    def evaluate(
        self,
        loss: str,
        Z: np.ndarray,
        rows: np.ndarray,
        target_cols: np.ndarray | None = None,
        *,
        every_gradient: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broken mask (n,), and loss and input gradient at ``Z`` where not broken.

        ``rows`` are the samples' indices in the batch; ``every_gradient`` gives the loss
        and gradient of every sample, broken or not.
        """
        y_cols = self.y_cols[rows]
        fused = getattr(self.model, "decision_and_gradient", None)
        self.forward_calls += 1
        if fused is not None:
            found: dict[str, np.ndarray] = {}

            def weights(scores, reject):
                found["won"] = self.won(scores, reject, rows)
                aware = reject if self.reject_aware else None
                objective = score_loss(loss, scores, y_cols, target_cols, aware)
                found["value"] = objective.value
                return objective.grad_scores, objective.grad_reject

            self.gradient_calls += 1
            grad = np.asarray(fused(Z, weights)[2], dtype=self.dtype).reshape(Z.shape)
            won, value = found["won"], found["value"]
            if every_gradient or not won.any():
                return won, value, grad
            return won, value[~won], grad[~won]
        scores, reject = self.model.decision_function(Z), None
        if self.rejects:
            reject = np.asarray(self.model.reject_score(Z))
        won = self.won(scores, reject, rows)
        alive = np.ones(len(Z), dtype=bool) if every_gradient else ~won
        if not alive.any():
            return won, np.empty(0), np.empty((0, *Z.shape[1:]), dtype=self.dtype)
        aware = reject[alive] if self.reject_aware and reject is not None else None
        target = None if target_cols is None else target_cols[alive]
        objective = score_loss(loss, np.asarray(scores)[alive], y_cols[alive], target, aware)
        self.gradient_calls += 1
        grad = self.model.decision_gradient(Z[alive], objective.grad_scores, objective.grad_reject)
        return won, objective.value, np.asarray(grad, dtype=self.dtype).reshape(Z[alive].shape)


class _Search:
    """The per-sample state of one APGD run; samples leave it when broken."""

    def __init__(self, X, rows, radius, bounds, norm):
        origin = X[rows]
        self.rows, self.radius, self.bounds, self.norm = rows, radius, bounds, norm
        self.s: dict[str, np.ndarray] = {"pos": np.arange(len(rows))}
        if norm == LINF:  # the box ∩ bounds, so that a projection is one clip
            self.s["low"] = np.maximum(origin - origin.dtype.type(radius), bounds[0])
            self.s["high"] = np.minimum(origin + origin.dtype.type(radius), bounds[1])
        else:
            self.s["origin"] = origin

    def project(self, Z: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
        """Project ``Z`` (the active samples, or their ``rows``) in place into the ball
        and the bounds."""
        if self.norm == LINF:  # two in-place passes: much faster than np.clip with arrays
            np.maximum(Z, self.s["low"][rows], out=Z)
            return np.minimum(Z, self.s["high"][rows], out=Z)
        return project(Z, self.s["origin"][rows], self.radius, self.bounds, self.norm)

    def keep(self, mask: np.ndarray) -> None:
        """Drop the samples where ``mask`` is False."""
        for name, array in self.s.items():
            self.s[name] = array[mask]

    @property
    def batch_rows(self) -> np.ndarray:
        """The active samples' indices in the whole batch."""
        return self.rows[self.s["pos"]]


def apgd_search(
    scorer: Scorer,
    loss: str,
    X: np.ndarray,
    rows: np.ndarray,
    start: np.ndarray,
    radius: float,
    bounds: tuple[float, float],
    norm: str,
    steps: int,
    rho: float,
    out: np.ndarray,
    target_cols: np.ndarray | None = None,
) -> np.ndarray:
    """One APGD run on the samples ``rows`` of ``X`` from ``start`` (their rows).

    ``rows`` may repeat a sample (several targets or restarts at once, one per row of
    ``start``); a sample leaves with all its runs as soon as one breaks it. Writes each
    broken sample's first successful point, and each surviving sample's highest-loss
    point (of its last run), into ``out``; returns the mask (over ``rows``) of the runs
    that broke their sample.
    """
    broken = np.zeros(len(rows), dtype=bool)
    search = _Search(X, rows, radius, bounds, norm)
    s = search.s
    s["x"] = search.project(np.array(start, dtype=X.dtype))
    if target_cols is not None:
        s["target"] = target_cols

    repeated = len(np.unique(rows)) < len(rows)

    def evaluate() -> tuple[np.ndarray, np.ndarray]:
        """Loss and gradient at the iterate; broken samples leave the search first (with
        every other run on the same sample, where ``rows`` repeat)."""
        won, value, grad = scorer.evaluate(loss, s["x"], search.batch_rows, s.get("target"))
        if won.any():
            s.pop("spare", None)  # scratch: not worth compacting
            batch_rows = search.batch_rows
            out[batch_rows[won]] = s["x"][won]
            broken[s["pos"][won]] = True
            leave = won
            if repeated:
                leave = np.isin(batch_rows, batch_rows[won])
                stay = ~leave[~won]
                value, grad = value[stay], grad[stay]
            search.keep(~leave)
        return value, grad

    value, grad = evaluate()
    n = len(s["pos"])
    if not n:
        return broken
    s.update(
        previous=s["x"].copy(),
        grad=grad,
        value=value,
        best=s["x"].copy(),
        best_value=value.copy(),
        best_grad=grad.copy(),
        step=np.full(n, 2.0 * radius),
        rises=np.zeros(n, dtype=np.int64),
        reduced=np.zeros(n, dtype=bool),
        best_at_checkpoint=value.copy(),
    )

    def update(z, x, previous, step, momentum: bool, rows: slice) -> None:
        """On ``rows``: z ← P(x + η·dir(grad)), then with momentum z ← P(x + α(z − x) +
        (1 − α)(x − x_prev)) = P(α z + (1 − α)(2x − x_prev)); ``previous`` is scratch."""
        zr, xr, pr = z[rows], x[rows], previous[rows]
        if norm == LINF:
            np.sign(s["grad"][rows], out=zr)
        else:
            zr[...] = steepest_direction(s["grad"][rows], norm)
        zr *= step[rows]
        zr += xr
        search.project(zr, rows)
        if momentum:
            np.subtract(xr, pr, out=pr)
            pr += xr
            pr *= 1.0 - ALPHA
            zr *= ALPHA
            zr += pr
            search.project(zr, rows)

    marks = set(checkpoints(steps))
    last_mark = 0
    for iteration in range(1, steps + 1):
        # Three buffers take turns (x, x_prev, the new point): no allocation per step.
        x, previous, z = s["x"], s["previous"], s.pop("spare", None)
        if z is None:
            z = np.empty_like(x)
        step = per_sample(s["step"], z)
        on_rows(functools.partial(update, z, x, previous, step, iteration > 1), len(z))
        s["spare"], s["previous"], s["x"] = previous, x, z
        value, grad = evaluate()
        if not len(s["pos"]):
            break
        s["rises"] += value > s["value"]
        s["value"], s["grad"] = value, grad
        improved = value > s["best_value"]
        if improved.any():
            copy_rows(s["best"], s["x"], improved)
            copy_rows(s["best_grad"], grad, improved)
            np.copyto(s["best_value"], value, where=improved)
        if iteration in marks:
            stalled = s["rises"] <= rho * (iteration - last_mark)
            stuck = ~s["reduced"] & (s["best_at_checkpoint"] >= s["best_value"])
            halve = stalled | stuck
            s["reduced"] = halve
            s["best_at_checkpoint"] = s["best_value"].copy()
            s["rises"][:] = 0
            if halve.any():  # halve the step and restart from the best point, no momentum
                s["step"][halve] /= 2.0
                copy_rows(s["x"], s["best"], halve)
                copy_rows(s["previous"], s["best"], halve)
                copy_rows(s["grad"], s["best_grad"], halve)
            last_mark = iteration
    if len(s["pos"]):
        out[search.batch_rows] = s["best"]
    return broken


def on_rows(function: Any, n_rows: int) -> None:
    """``function(rows)`` over all ``n_rows`` rows: by blocks of ``UPDATE_ROWS`` on the
    process's cores from ``PARALLEL_ROWS`` rows on, else one call on every row."""
    if n_rows >= PARALLEL_ROWS:
        blocked.for_row_blocks(function, n_rows, UPDATE_ROWS)
    else:
        function(slice(None))


def copy_rows(destination: np.ndarray, source: np.ndarray, where: np.ndarray) -> None:
    """``destination[where] = source[where]`` in place, without gathering the rows, for
    rows of any shape."""
    mask = where.reshape(-1, *([1] * (destination.ndim - 1)))

    def copy(rows: slice) -> None:
        np.copyto(destination[rows], source[rows], where=mask[rows])

    on_rows(copy, len(destination))


def top_wrong_classes(scores: np.ndarray, y_cols: np.ndarray, k: int) -> np.ndarray:
    """Columns (n, k) of the k highest-scoring wrong classes per sample, best first."""
    masked = np.array(scores, dtype=np.float64)
    masked[np.arange(len(masked)), y_cols] = -np.inf
    return np.argsort(-masked, axis=1, kind="stable")[:, :k]


def _check_rho(rho: Any) -> float:
    if not (isinstance(rho, Real) and not isinstance(rho, bool) and 0 < rho <= 1):
        raise RobustkitError(f"rho must be a number in (0, 1]; got {rho!r}")
    return float(rho)


class APGD(Attack):
    """Auto-PGD with L∞ or L2 budgets and the ce, dlr or margin loss, optionally targeted.

    ``steps`` iterations per run, ``restarts`` runs from new random points (each only on
    the samples not broken yet), ``targeted`` runs each of the ``n_target_classes``
    highest-scoring wrong classes (at the clean point) as a target; ``rho`` is the
    checkpoint threshold; ``reject_aware`` aims at a wrong class that is not rejected.
    ``random_start=False`` starts the first run at the clean point.
    """

    writes_inputs = False  # _run only reads X (perturb need not copy it)

    def __init__(
        self,
        norm: str = "linf",
        loss: str = "ce",
        steps: int = 100,
        restarts: int = 1,
        targeted: bool = False,
        n_target_classes: int = 9,
        rho: float = 0.75,
        reject_aware: bool = False,
        random_start: bool = True,
    ):
        self.norm = norm
        self.loss = loss
        self.steps = steps
        self.restarts = restarts
        self.targeted = targeted
        self.n_target_classes = n_target_classes
        self.rho = rho
        self.reject_aware = reject_aware
        self.random_start = random_start

    def validate(self, n_classes: int | None = None) -> None:
        """One-line errors for bad parameters (and, given the model's classes, bad targets)."""
        check_norm(self.norm)
        check_loss(self.loss)
        check_int("steps", self.steps)
        check_int("restarts", self.restarts)
        check_int("n_target_classes", self.n_target_classes)
        _check_rho(self.rho)
        for name in ("targeted", "reject_aware", "random_start"):
            check_bool(name, getattr(self, name))
        if n_classes is None:
            return
        if self.targeted and self.n_target_classes > n_classes - 1:
            raise RobustkitError(
                f"n_target_classes={self.n_target_classes} but the model has {n_classes} "
                f"classes, so at most {n_classes - 1} wrong classes to target"
            )
        if self.loss == "dlr" and n_classes < 3:
            raise RobustkitError(
                f"loss 'dlr' needs at least 3 classes, the model has {n_classes}; "
                "use 'ce' or 'margin'"
            )

    def _run(
        self,
        model: Model,
        X: np.ndarray,
        y: np.ndarray,
        radii: np.ndarray,
        bounds: tuple[float, float],
        rng: np.random.Generator,
    ) -> AttackResult:
        """APGD for each radius on the samples still correctly classified."""
        self.validate(len(model.classes_))
        X = X.astype(np.result_type(X.dtype, np.float32), copy=False)
        scorer = Scorer.for_batch(model, X, y, self.reject_aware)
        runner = ApgdRunner.from_attack(self, scorer, X, rng)
        adversarials = np.empty((len(radii), *X.shape), dtype=X.dtype)
        for k, radius in enumerate(radii):
            adversarials[k] = X
            if radius > 0:
                runner.run(
                    adversarials[k], float(radius), bounds, np.flatnonzero(~runner.clean_won)
                )
        info: dict[str, Any] = {
            "objective": f"{'targeted ' if self.targeted else ''}{self.loss}"
            + (" (reject-aware)" if self.reject_aware else ""),
            "gradient_evaluations": scorer.gradient_calls,
            "forward_evaluations": scorer.forward_calls,
        }
        if self.targeted:
            info["targets"] = np.asarray(model.classes_)[runner.targets]
        return AttackResult(radii, adversarials, runner.zero_gradient, info)


@dataclass
class ApgdRunner:
    """APGD on one batch, shared by every radius (and by the ``auto`` ensemble)."""

    scorer: Scorer
    X: np.ndarray
    loss: str
    norm: str
    steps: int
    restarts: int
    rho: float
    random_start: bool
    seed: int
    clean_won: np.ndarray
    zero_gradient: np.ndarray
    targets: np.ndarray | None = None  # (n, k) target columns, best first

    @classmethod
    def from_attack(
        cls, attack: APGD, scorer: Scorer, X: np.ndarray, rng: np.random.Generator
    ) -> ApgdRunner:
        """Evaluate the clean batch once: who is already wrong, zero gradients, targets."""
        rows = np.arange(len(X))
        targets = None
        if attack.targeted:
            scores, _ = scorer.scores(X)
            targets = top_wrong_classes(scores, scorer.y_cols, attack.n_target_classes)
        first_target = None if targets is None else targets[:, 0]
        won, _, grad = scorer.evaluate(attack.loss, X, rows, first_target, every_gradient=True)
        zero_gradient = ~grad.reshape(len(X), -1).any(axis=1)
        return cls(
            scorer,
            X,
            attack.loss,
            attack.norm,
            attack.steps,
            attack.restarts,
            attack.rho,
            attack.random_start,
            int(rng.integers(2**63 - 1)),
            won,
            zero_gradient,
            targets,
        )

    def run(
        self, out: np.ndarray, radius: float, bounds: tuple[float, float], rows: np.ndarray
    ) -> np.ndarray:
        """Attack ``rows`` within ``radius``, writing into ``out``; return the broken mask.

        The runs (each target, each restart) go in groups of at most ``RUN_ROWS`` rows
        and ``RUN_VALUES`` input values, each group on the samples the earlier ones left
        robust. The random starts depend on the seed, the run and the samples attacked
        only, so a budget's result does not depend on the other budgets.
        """
        broken = np.zeros(len(self.X), dtype=bool)
        n_targets = 1 if self.targets is None else self.targets.shape[1]
        runs = [(t, r) for t in range(n_targets) for r in range(self.restarts)]  # (target, restart)
        n_chunks = -(-len(rows) // CHUNK)
        group_rows = min(RUN_ROWS, RUN_VALUES // max(self.X[0].size, 1))
        for chunk, chunk_rows in enumerate(np.array_split(rows, max(n_chunks, 1))):
            done = 0
            while done < len(runs):
                active = chunk_rows[~broken[chunk_rows]]
                if not len(active):
                    break
                group = runs[done : done + max(group_rows // len(active), 1)]
                done += len(group)
                run_rows = np.tile(active, len(group))
                starts = np.concatenate(
                    [self._starts(active, radius, (chunk, *run)) for run in group]
                )
                targets = None
                if self.targets is not None:
                    targets = np.concatenate([self.targets[active, target] for target, _ in group])
                won = apgd_search(
                    self.scorer,
                    self.loss,
                    self.X,
                    run_rows,
                    starts,
                    radius,
                    bounds,
                    self.norm,
                    self.steps,
                    self.rho,
                    out,
                    targets,
                )
                broken[run_rows[won]] = True
        return broken

    def _starts(self, rows: np.ndarray, radius: float, run: tuple[int, int, int]) -> np.ndarray:
        """Starting points of one run (chunk, target, restart) for ``rows``."""
        origin = self.X[rows]
        if not self.random_start and run[1:] == (0, 0):
            return origin
        rng = np.random.default_rng([self.seed, *run])
        noise = unit_noise(origin.shape, self.norm, rng, self.X.dtype)
        return origin + noise * origin.dtype.type(radius)


@hookimpl
def register_attacks(register):
    """Register ``apgd``."""
    register("apgd", APGD)
