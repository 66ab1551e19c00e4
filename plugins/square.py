"""Square Attack (Andriushchenko et al., ECCV 2020): score-based random search, L∞ and L2.

It reads class scores only, never gradients, so a model that hides or flattens its
gradients cannot fool it: the check against gradient masking. Each query changes one
random square window of a sample's current best point and keeps the change if the
margin grows (or the sample is broken); broken samples are no longer queried.

- L∞: start from vertical stripes of ±ε (one sign per column and channel); a proposal
  sets a window to x ± ε with one random sign per channel.
- L2: start from a grid of ±ε "pseudo-Gaussian" bumps (nested boxes whose weight decays as
  1/(k+1)² from the centre, two halves of opposite sign); a proposal moves the
  perturbation's mass out of a second window into a new bump in the first one, then
  rescales the whole perturbation to norm ε.
- Window side: √(p·h·w) pixels, with p = ``p_init`` halved at iterations 10, 50, 200, 500,
  1000, 2000, 4000, 6000 and 8000 of 10,000 (the points rescaled to ``n_queries``).

The objective is the margin of ``_losses``: best wrong class minus true class, or, with
``reject_aware=True``, minus max(true score, reject score), so that a win is a wrong
class that is not rejected. A sample counts as broken when the model predicts a wrong
class and does not reject it (or predicts the target, when targeted).

Speed: on models with the ``certifiable`` capability whose layers start with affine
ones, L∞ queries with small windows are scored from each sample's kept first-layer
pre-activation (``_square_incremental``); the model confirms every win. The random
draws, and so the proposals, are the same as when every query goes to the model.
"""

from __future__ import annotations

import bisect
import math
from contextlib import nullcontext
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import threadpool_limits

from robustkit import Attack, AttackResult, Model, RobustkitError, hookimpl
from robustkit.interfaces import LINF, SCORE_ATTACK, check_norm
from robustkit.params import check_int

from ._losses import _best_other, attack_won, margin
from ._square_incremental import RESYNC, IncrementalMargins, WindowChange, window_pixels
from .gradient_attacks import _columns_of

#: Iterations (of a 10,000-query budget) at which the window fraction p is halved.
SCHEDULE_POINTS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
SCHEDULE_BUDGET = 10_000


def window_fraction(p_init: float, iteration: int, n_queries: int) -> float:
    """p at ``iteration``: ``p_init`` halved at every schedule point already passed."""
    scaled = int(iteration / n_queries * SCHEDULE_BUDGET)
    return p_init / 2 ** bisect.bisect_left(SCHEDULE_POINTS, scaled)


def linf_side(p: float, height: int, width: int) -> int:
    """The L∞ window side for fraction ``p``: √(p·h·w) pixels, at least 1, inside the image."""
    return min(max(round(math.sqrt(p * height * width)), 1), height, width)


def image_layout(
    sample_shape: tuple[int, ...], image_shape: tuple[int, ...] | None
) -> tuple[int, int, int]:
    """(height, width, channels) of one input, from ``image_shape`` or the input's own shape."""
    size = math.prod(sample_shape)
    if image_shape is None:
        if len(sample_shape) not in (2, 3):
            raise RobustkitError(
                f"square needs the inputs' image shape: pass image_shape=(height, width[, "
                f"channels]) (the harness passes the data set's) or inputs shaped (n, height, "
                f"width[, channels]); got inputs of shape (n, {', '.join(map(str, sample_shape))})"
            )
        image_shape = sample_shape
    shape = tuple(image_shape)
    valid = (
        len(shape) in (2, 3)
        and all(isinstance(v, int | np.integer) and v >= 1 for v in shape)
        and math.prod(shape) == size
    )
    if not valid:
        raise RobustkitError(
            f"image_shape must be (height, width) or (height, width, channels) with "
            f"{size} values in all, as each input has; got {image_shape!r}"
        )
    height, width = int(shape[0]), int(shape[1])
    return height, width, int(shape[2]) if len(shape) == 3 else 1


def box_rings(rows: int, cols: int) -> np.ndarray:
    """A (rows, cols) bump of unit L2 norm: Σ_{k ≥ r} 1/(k+1)² at Chebyshev distance r."""
    if rows == 0:
        return np.zeros((0, cols))
    centre_row, centre_col = rows // 2, cols // 2
    n_rings = max(centre_row, centre_col) + 1
    distance = np.maximum(
        np.abs(np.arange(rows)[:, None] - centre_row), np.abs(np.arange(cols)[None] - centre_col)
    )
    tail = np.cumsum((1.0 / np.arange(1, n_rings + 1) ** 2)[::-1])[::-1]
    bump = tail[distance]
    return bump / np.linalg.norm(bump)


def split_bump(side: int) -> np.ndarray:
    """The L2 update pattern: two ring bumps of opposite sign stacked, unit norm, (side, side)."""
    half = side // 2
    bump = np.vstack([box_rings(half, side), -box_rings(side - half, side)])
    return bump / np.linalg.norm(bump)


class _MarginQueries:
    """Queries the model's scores: each candidate's margin and whether it broke the sample."""

    def __init__(
        self,
        model: Model,
        sample_shape: tuple[int, ...],
        y_columns: np.ndarray,
        target_columns: np.ndarray | None,
        reject_aware: bool,
    ) -> None:
        self.model = model
        self.sample_shape = sample_shape
        self.y_columns = y_columns
        self.target_columns = target_columns
        self.reject_aware = reject_aware
        self.count = 0

    def __call__(self, images: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Margin (to maximise) and success of ``images``, the candidates for samples ``ids``."""
        X = images.reshape(len(ids), *self.sample_shape)
        scores = np.asarray(self.model.decision_function(X))
        reject = self.model.reject_score(X) if self.reject_aware else None
        value = self.margins(scores, reject, ids)
        targets = None if self.target_columns is None else self.target_columns[ids]
        won = attack_won(scores, self.y_columns[ids], targets, reject)
        if reject is None and won.any():  # a rejected input is no win: ask only for winners
            rows = np.flatnonzero(won)
            won[rows] = self.confirm(images[rows], ids[rows])
        self.count += len(ids)
        return value, won

    def margins(self, scores: np.ndarray, reject: np.ndarray | None, ids: np.ndarray) -> np.ndarray:
        """The margins of samples ``ids`` at these scores (and reject scores, if given)."""
        y = self.y_columns[ids]
        targets = None if self.target_columns is None else self.target_columns[ids]
        return margin(scores, y, targets, reject if self.reject_aware else None).value

    def confirm(self, images: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Where the model itself says ``images`` break samples ``ids`` (wrong, not rejected)."""
        X = images.reshape(len(ids), *self.sample_shape)
        targets = None if self.target_columns is None else self.target_columns[ids]
        return attack_won(
            np.asarray(self.model.decision_function(X)),
            self.y_columns[ids],
            targets,
            np.asarray(self.model.reject_score(X)),
        )


@dataclass
class Budget:
    """One radius's search: its samples' rows in the batch (``ids``), the rows of the
    output that hold their best points (``slots``), the radius (input units) and the
    budget's own random stream."""

    ids: np.ndarray
    slots: np.ndarray
    radius: float
    rng: np.random.Generator


def budget_of(ids: np.ndarray, slots: np.ndarray, radius: float, seed: int) -> Budget:
    """A budget whose stream derives from ``seed`` and the radius only."""
    bits = int(np.float64(radius).view(np.uint64))
    return Budget(ids, slots, radius, np.random.default_rng([seed, bits]))


def grouped(budgets: list[Budget], limit: int) -> list[list[Budget]]:
    """Consecutive budgets in groups of at most ``limit`` samples in all (a larger budget
    alone): one search per group keeps the search state within one batch's worth."""
    groups: list[list[Budget]] = []
    total = limit + 1
    for budget in budgets:
        if total + len(budget.ids) > limit:
            groups.append([])
            total = 0
        groups[-1].append(budget)
        total += len(budget.ids)
    return groups


@dataclass
class _Runs:
    """The (sample, budget) pairs of one search: batch rows, output rows, radius, and the
    margin and success at each one's best point."""

    ids: np.ndarray
    slots: np.ndarray
    radius: np.ndarray
    value: np.ndarray
    won: np.ndarray

    @classmethod
    def of(cls, budgets: list[Budget], dtype: np.dtype) -> _Runs:
        """The budgets' runs, in order, with margins and successes still to fill in."""
        sizes = [len(b.ids) for b in budgets]
        radius = np.repeat([b.radius for b in budgets], sizes).astype(dtype)
        n = sum(sizes)
        ids = np.concatenate([b.ids for b in budgets])
        slots = np.concatenate([b.slots for b in budgets])
        return cls(ids, slots, radius, np.empty(n), np.empty(n, dtype=bool))

    def update(
        self, active: np.ndarray, better: np.ndarray, value: np.ndarray, won: np.ndarray
    ) -> None:
        """Take the new margins and successes of the runs ``active`` where ``better``."""
        keep = active[better]
        self.value[keep] = value[better]
        self.won[keep] = won[better]


@dataclass
class SearchSetup:
    """What the searches on one batch share: its images (n, h, w, c), the model's
    queries, the incremental scorer (or None) and where the clean input already wins."""

    images: np.ndarray
    queries: _MarginQueries
    incremental: IncrementalMargins | None
    clean_won: np.ndarray


class SquareAttack(Attack):
    """Square Attack: random search over square windows on the margin, scores only.

    ``norm`` is ``"linf"`` or ``"l2"``; ``n_queries`` the queries per sample and ε
    (the initial point included); ``p_init`` the initial fraction of pixels a window covers.
    ``targeted`` aims at ``target`` (a class or one per sample; None: each sample's
    highest-scoring wrong class at the clean point). The inputs' image layout comes
    from ``image_shape`` ((h, w) or (h, w, channels), channels last) or from inputs
    already shaped (n, h, w[, c]). See the module doc for the objective.
    """

    writes_inputs = False  # _run only reads X (perturb need not copy it)

    requires = frozenset()
    kind = SCORE_ATTACK

    def __init__(
        self,
        norm: str = LINF,
        n_queries: int = 5000,
        p_init: float = 0.8,
        targeted: bool = False,
        target: int | np.ndarray | None = None,
        reject_aware: bool = False,
    ):
        self.norm = norm
        self.n_queries = n_queries
        self.p_init = p_init
        self.targeted = targeted
        self.target = target
        self.reject_aware = reject_aware

    @property
    def iterative(self) -> bool:
        """True unless ``n_queries`` is 1 (a bad value is reported when the attack runs)."""
        return not (isinstance(self.n_queries, Integral) and self.n_queries <= 1)

    def validate(self) -> None:
        check_norm(self.norm)
        check_int("n_queries", self.n_queries)
        p = self.p_init
        if isinstance(p, bool) or not isinstance(p, Real) or not 0 < p <= 1:
            raise RobustkitError(f"p_init must be a number in (0, 1], got {p!r}")
        if self.target is not None and not self.targeted:
            raise RobustkitError("target is set but targeted=False; set targeted=True")

    def _run(
        self,
        model: Model,
        X: np.ndarray,
        y: np.ndarray,
        radii: np.ndarray,
        bounds: tuple[float, float],
        rng: np.random.Generator,
        *,
        image_shape: tuple[int, ...] | None = None,
    ) -> AttackResult:
        """One random search per radius, each on the samples the clean input does not break."""
        setup = self.setup(model, X, y, image_shape)
        todo = np.flatnonzero(~setup.clean_won)
        adversarials = np.empty((len(radii), *X.shape), dtype=setup.images.dtype)
        adversarials[...] = setup.images.reshape(X.shape)
        seed = int(rng.integers(2**63))
        budgets = [
            budget_of(todo, k * len(X) + todo, float(radius), seed)
            for k, radius in enumerate(radii)
            if radius > 0 and todo.size
        ]
        out = adversarials.reshape(-1, *setup.images.shape[1:])
        for group in grouped(budgets, len(X)):
            self.search(setup, group, bounds, out)
        info: dict[str, Any] = {
            "objective": "reject-aware margin" if self.reject_aware else "margin",
            "queries": setup.queries.count,
        }
        if setup.queries.target_columns is not None:
            info["targets"] = np.asarray(model.classes_)[setup.queries.target_columns]
        return AttackResult(radii, adversarials, np.zeros(len(X), dtype=bool), info)

    def setup(
        self, model: Model, X: np.ndarray, y: np.ndarray, image_shape: tuple[int, ...] | None
    ) -> SearchSetup:
        """What every search on the batch ``(X, y)`` shares; validates the parameters."""
        self.validate()
        layout = image_layout(X.shape[1:], image_shape)
        X = X.astype(np.result_type(X.dtype, np.float32), copy=False)
        classes = np.asarray(model.classes_)
        y_columns = _columns_of(classes, y, "labels y")
        scores = np.asarray(model.decision_function(X))
        target_columns = self._target_columns(classes, scores, y_columns) if self.targeted else None
        queries = _MarginQueries(model, X.shape[1:], y_columns, target_columns, self.reject_aware)
        incremental = None
        if self.norm == LINF:
            incremental = IncrementalMargins.for_model(
                model, queries, math.prod(X.shape[1:]), X.dtype
            )
        clean_won = attack_won(scores, y_columns, target_columns, model.reject_score(X))
        return SearchSetup(X.reshape(len(X), *layout), queries, incremental, clean_won)

    def _target_columns(
        self, classes: np.ndarray, scores: np.ndarray, y_columns: np.ndarray
    ) -> np.ndarray:
        """Score columns of the given target(s), or of each sample's best wrong class."""
        if self.target is None:
            return _best_other(np.asarray(scores, dtype=np.float64), y_columns)
        targets = np.broadcast_to(np.asarray(self.target), y_columns.shape)
        return _columns_of(classes, targets, "target")

    def search(
        self, setup: SearchSetup, budgets: list[Budget], bounds: tuple[float, float], out: Any
    ) -> None:
        """Random searches for every budget at once, each sample's best point kept in its
        row (slot) of ``out`` (rows, h, w, c); the budgets draw from their own streams, so
        each one's result does not depend on the others.

        With an incremental scorer, L∞ queries with windows small enough are scored from
        the kept pre-activations (recomputed exactly every ``RESYNC`` queries), every
        budget in one go; the others go to the model one budget at a time (temporaries of
        at most one batch). The random draws are the same either way.
        """
        budgets = [b for b in budgets if len(b.ids)]
        if not budgets:
            return
        queries, images, incremental = setup.queries, setup.images, setup.incremental
        starts = np.cumsum([0] + [len(b.ids) for b in budgets])
        runs = _Runs.of(budgets, images.dtype)
        linf = self.norm == LINF
        start = self._stripes if linf else self._bump_grid
        for b, begin, end in zip(budgets, starts[:-1], starts[1:], strict=True):
            out[b.slots] = start(images[b.ids], b.radius, bounds, b.rng)
            runs.value[begin:end], runs.won[begin:end] = queries(out[b.slots], b.ids)
        _, height, width, channels = images.shape
        fast = incremental is not None and incremental.reset(len(runs.ids))
        # The incremental scores' own products run on one BLAS thread (the same sums
        # whatever the machine); the model still picks its own threads when queried.
        with threadpool_limits(limits=1, user_api="blas") if fast else nullcontext():
            synced = None  # the iteration of the last exact recomputation, while incremental
            for iteration in range(self.n_queries - 1):
                active = np.flatnonzero(~runs.won)
                if not active.size:
                    break
                p = window_fraction(self.p_init, iteration, self.n_queries)
                counts = np.diff(np.searchsorted(active, starts))
                parts = np.split(active, np.cumsum(counts)[:-1])
                streams = [(b.rng, int(c)) for b, c in zip(budgets, counts, strict=True)]
                if not linf:
                    for b, part in zip(budgets, parts, strict=True):
                        if part.size:
                            self._l2_step(setup, runs, part, b, out, bounds, p)
                    continue
                fast = (
                    incremental is not None
                    and incremental.usable
                    and incremental.worth(linf_side(p, height, width), channels)
                )
                if fast and (synced is None or iteration - synced >= RESYNC):
                    best = out[runs.slots[active]]
                    runs.value[active] = incremental.sync(
                        best, active, runs.ids[active], runs.value[active]
                    )
                    synced, fast = iteration, incremental.usable
                if not fast:
                    synced = None
                if fast:
                    self._linf_step(setup, runs, active, streams, out, bounds, p, fast)
                    continue
                for part, stream in zip(parts, streams, strict=True):
                    if part.size:
                        self._linf_step(setup, runs, part, [stream], out, bounds, p, fast)

    def _linf_step(
        self,
        setup: SearchSetup,
        runs: _Runs,
        active: np.ndarray,
        streams: list[tuple[np.random.Generator, int]],
        out: np.ndarray,
        bounds: tuple[float, float],
        p: float,
        fast: bool,
    ) -> None:
        """One L∞ query for each of the runs ``active``, scored incrementally if ``fast``."""
        rows, at = runs.ids[active], runs.slots[active]
        radius = runs.radius[active, None, None]
        change = self._propose_linf(out, at, setup.images, rows, radius, bounds, p, streams)
        if fast:
            new_value, new_won = setup.incremental.query(change, active, rows, out, at)
        else:
            new_value, new_won = setup.queries(change.applied(out, at), rows)
        better = new_won | (new_value > runs.value[active])  # active ones are not won yet
        change.write(out, at, better)
        if fast:
            setup.incremental.accept(active, better)
        runs.update(active, better, new_value, new_won)

    def _l2_step(
        self,
        setup: SearchSetup,
        runs: _Runs,
        active: np.ndarray,
        budget: Budget,
        out: np.ndarray,
        bounds: tuple[float, float],
        p: float,
    ) -> None:
        """One L2 query for each of the runs ``active``, all of ``budget``."""
        at, rows = runs.slots[active], runs.ids[active]
        candidates = self._propose_l2(
            out[at], setup.images, rows, budget.radius, bounds, p, budget.rng
        )
        new_value, new_won = setup.queries(candidates, rows)
        better = new_won | (new_value > runs.value[active])
        out[at[better]] = candidates[better]
        runs.update(active, better, new_value, new_won)

    # ------------------------------------------------------------------------------ L∞

    @staticmethod
    def _stripes(
        x: np.ndarray, radius: float, bounds: tuple[float, float], rng: np.random.Generator
    ) -> np.ndarray:
        """x ± ε in vertical stripes: one random sign per sample, column and channel."""
        n, _, width, channels = x.shape
        up = rng.integers(0, 2, size=(n, 1, width, channels), dtype=bool)
        return _box_corner(x, up, radius, bounds)

    @staticmethod
    def _propose_linf(
        best: np.ndarray,
        slots: np.ndarray,
        images: np.ndarray,
        ids: np.ndarray,
        radius: Any,
        bounds: tuple[float, float],
        p: float,
        streams: list[tuple[np.random.Generator, int]],
    ) -> WindowChange:
        """One random window per row ``slots`` of ``best`` set to x ± ε (a sign per
        channel); ``ids`` are their rows in ``images``, ``radius`` a number or one per
        row (n, 1, 1). ``best`` is left as it is. ``streams`` lists (generator, count):
        that many consecutive rows draw from that generator.

        Where the drawn signs would leave the window as it is (it already holds them), a
        random non-empty set of its channels is flipped instead, so every query tries a
        new point (with one channel: the other sign).
        """
        n, (_, height, width, channels) = len(slots), best.shape
        side = linf_side(p, height, width)
        draws = [
            (*_corners(rng, count, side, height, width), _signs(rng, count, channels))
            for rng, count in streams
        ]
        tops, lefts, up = (np.concatenate(parts) for parts in zip(*draws, strict=True))
        pixels = window_pixels(tops, lefts, side, (height, width, channels))  # (n, c·s·s)
        shape = (n, channels, side * side)
        size = best[0].size
        x_window = images.reshape(-1).take(ids[:, None] * size + pixels).reshape(shape)
        old = best.reshape(-1).take(slots[:, None] * size + pixels).reshape(shape)
        new = _box_corner(x_window, up, radius, bounds)
        same = (new == old).reshape(n, -1).all(axis=1)
        if same.any():
            offset, parts = 0, []
            for rng, count in streams:
                rows = offset + np.flatnonzero(same[offset : offset + count])
                offset += count
                if rows.size:
                    flip = rng.integers(0, 2, size=(rows.size, channels), dtype=bool)
                    flip[np.arange(rows.size), rng.integers(0, channels, size=rows.size)] = True
                    up[rows, :, 0] ^= flip
                    parts.append(rows)
            rows = np.concatenate(parts)
            row_radius = radius if np.ndim(radius) == 0 else radius[rows]
            new[rows] = _box_corner(x_window[rows], up[rows], row_radius, bounds)
        new, old = new.reshape(n, -1), old.reshape(n, -1)
        return WindowChange(pixels, new, new.astype(np.float64) - old)

    # ------------------------------------------------------------------------------ L2

    @staticmethod
    def _bump_grid(
        x: np.ndarray, radius: float, bounds: tuple[float, float], rng: np.random.Generator
    ) -> np.ndarray:
        """A grid of split bumps (tiles of side min(h, w) // 5) with random signs, norm ε."""
        n, height, width, channels = x.shape
        tile = max(min(height, width) // 5, 1)
        top, left = max((height - 5 * tile) // 2, 0), max((width - 5 * tile) // 2, 0)
        tiles_down, tiles_across = (height - top) // tile, (width - left) // tile
        shape = (n, tiles_down, tiles_across)
        patterns = _random_transposes(split_bump(tile), shape, rng)  # (*shape, t, t)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(*shape, 1, 1, channels))
        grid = (patterns[..., None] * signs).transpose(0, 1, 3, 2, 4, 5)
        delta = np.zeros(x.shape, dtype=x.dtype)
        delta[:, top : top + tiles_down * tile, left : left + tiles_across * tile] = grid.reshape(
            n, tiles_down * tile, tiles_across * tile, channels
        )
        return _on_sphere(x, delta, radius, bounds)

    @staticmethod
    def _propose_l2(
        best: np.ndarray,
        images: np.ndarray,
        ids: np.ndarray,
        radius: float,
        bounds: tuple[float, float],
        p: float,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Move the perturbation out of a second window into a new bump in a first one.

        Per channel, the new first window gets the first window's old direction plus a
        random-sign split bump, scaled to the mass of both windows plus the unused budget;
        the second window is emptied and the whole perturbation rescaled to norm ε.
        """
        n, height, width, channels = best.shape
        x = images[ids]
        delta = np.subtract(best, x, out=best)
        side = max(round(math.sqrt(p * height * width)), 3)
        side = min(side + (side % 2 == 0), height, width)  # odd, and inside the image
        rows = np.arange(n)
        first = (rows, *_corners(rng, n, side, height, width))
        second = (rows, *_corners(rng, n, side, height, width))
        delta_windows = _windows(delta, side)  # (n, ., ., c, side, side) views
        old = delta_windows[first]
        old_norm = np.sqrt(np.sum(old * old, axis=(2, 3), keepdims=True))
        both = np.zeros((n, height, width, 1), dtype=bool)
        both_windows = _windows(both, side)
        both_windows[first] = True
        both_windows[second] = True
        squares = delta * delta
        both_mass = np.sum(squares, axis=(1, 2), where=both)[:, :, None, None]  # (n, c, 1, 1)
        image_mass = np.sum(squares, axis=(1, 2, 3)).reshape(n, 1, 1, 1)
        bumps = _random_transposes(split_bump(side), (n,), rng)[:, None]
        new = bumps * rng.choice(np.array([-1.0, 1.0]), size=(n, channels, 1, 1))
        new += old / (old_norm + 1e-10)
        target_norm = np.sqrt(np.maximum(radius**2 - image_mass, 0.0) / channels + both_mass)
        new *= target_norm / np.sqrt(np.sum(new * new, axis=(2, 3), keepdims=True))
        delta_windows[second] = 0.0
        delta_windows[first] = new
        return _on_sphere(x, delta, radius, bounds)


def _corners(
    rng: np.random.Generator, n: int, side: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top and left corner, (n,) each, of one random side × side window per sample."""
    return rng.integers(0, height - side + 1, size=n), rng.integers(0, width - side + 1, size=n)


def _signs(rng: np.random.Generator, n: int, channels: int) -> np.ndarray:
    """One random sign per sample and channel, True for +ε, shaped (n, channels, 1)."""
    return rng.integers(0, 2, size=(n, channels, 1), dtype=bool)


def _windows(images: np.ndarray, side: int) -> np.ndarray:
    """Writeable views (n, h − side + 1, w − side + 1, c, side, side) of every window.

    Indexing it with (samples, tops, lefts) gathers or sets one window per sample in
    contiguous blocks, much faster than indexing each pixel.
    """
    return sliding_window_view(images, (side, side), axis=(1, 2), writeable=True)


def _random_transposes(
    pattern: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray:
    """``pattern`` or its transpose, chosen at random for each position of ``shape``."""
    both = np.stack([pattern, pattern.T])
    return both[rng.integers(0, 2, size=shape)]


def _box_corner(
    x: np.ndarray, up: np.ndarray, radius: float, bounds: tuple[float, float]
) -> np.ndarray:
    """x + ε where ``up`` else x − ε, within the bounds (ε a number or broadcastable)."""
    radius = np.asarray(radius, dtype=x.dtype)
    high = np.minimum(x + radius, bounds[1])
    low = np.maximum(x - radius, bounds[0])
    return np.where(up, high, low)


def _on_sphere(
    x: np.ndarray, delta: np.ndarray, radius: float, bounds: tuple[float, float]
) -> np.ndarray:
    """x + δ rescaled to L2 norm ε per sample, within the bounds."""
    norm = np.sqrt(np.sum(delta * delta, axis=(1, 2, 3), keepdims=True, dtype=np.float64))
    delta *= (radius / np.maximum(norm, 1e-12)).astype(delta.dtype)
    delta += x
    return np.clip(delta, *bounds, out=delta)


@hookimpl
def register_attacks(register):
    """Register ``square``."""
    register("square", SquareAttack)
