"""AutoAttack (Croce & Hein, ICML 2020): APGD-CE, APGD-T, APGD-DLR, then Square, worst case.

Each member runs only on the samples the previous ones left robust, and a sample counts
as robust only if it survives all of them (the per-sample worst case). The gradient-free
Square attack is the check that gradient masking cannot fool.

Budgets (``version``):

- ``"standard"`` (the published ensemble, with untargeted APGD-DLR in the place of
  FAB-T): APGD-CE 100 steps, APGD-T (targeted DLR) 100 steps for each of the 9
  highest-scoring wrong classes, APGD-DLR 100 steps with 5 restarts, Square 5,000
  queries with p_init = 0.8. APGD-DLR runs only on the few samples the targeted attack
  left; on the study's rbf network it breaks samples that the reference's FAB-T breaks
  and the other members do not.
- ``"fast"``: APGD-CE 50 steps, APGD-T 30 steps for each of the 9 targets, APGD-DLR 50
  steps once, Square 1,000 queries: about a quarter of the standard cost on robust
  samples. On the study's
  Fashion-MNIST networks 30 targeted steps found what 100 find (the number of targets
  mattered, the steps did not: 3 targets × 100 steps left 0.9 points more robust).

With fewer than 10 classes APGD-T targets every wrong class (at most 9); with fewer
than 3 classes (where DLR is undefined) it is skipped. Square needs an image layout:
without ``image_shape`` a flat input of d features is laid out as the most nearly square
h × w grid (h the largest divisor of d up to √d), e.g. 8 × 16 for 128 PCA features.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from robustkit import Attack, AttackResult, Model, RobustkitError, create, hookimpl
from robustkit.interfaces import GRADIENT_ATTACK, INPUT_GRADIENT, check_norm, project

from . import square as square_search
from .apgd import APGD, CHUNK, ApgdRunner, Scorer, check_bool
from .square import SquareAttack, budget_of, grouped


@dataclass(frozen=True)
class Budget:
    """The members' budgets of one version."""

    ce_steps: int
    target_steps: int
    n_target_classes: int
    square_queries: int
    dlr_restarts: int
    p_init: float = 0.8


VERSIONS = {
    "standard": Budget(
        ce_steps=100, target_steps=100, n_target_classes=9, square_queries=5000, dlr_restarts=5
    ),
    "fast": Budget(
        ce_steps=50, target_steps=30, n_target_classes=9, square_queries=1000, dlr_restarts=1
    ),
}
#: Names of the members, in order, as ``info["broken_by"]`` spells them.
MEMBERS = ("apgd-ce", "apgd-t", "apgd-dlr", "square")
#: ``info["broken_by"]`` of a sample the clean input already breaks.
CLEAN = "clean"
#: Every ``info["broken_by"]`` value ("": robust).
NAMES = ("", CLEAN, *MEMBERS)


def grid_shape(n_features: int) -> tuple[int, int]:
    """The most nearly square (h, w) with h·w = ``n_features`` and h ≤ w."""
    height = max(h for h in range(1, math.isqrt(n_features) + 1) if n_features % h == 0)
    return height, n_features // height


class AutoAttack(Attack):
    """The AutoAttack ensemble (APGD-CE → APGD-T → APGD-DLR → Square), per-sample worst case.

    ``version`` is ``"standard"`` or ``"fast"`` (see the module doc), ``norm`` ``"linf"``
    or ``"l2"``; ``reject_aware`` is passed to every member. ``info["broken_by"]`` (K, n)
    names the member that broke each sample at each ε (``"clean"``: wrong without an
    attack; ``""``: robust), ``broken_counts`` counts them per ε and ``member_seconds``
    times each member.
    """

    writes_inputs = False  # _run only reads X (perturb need not copy it)

    requires: ClassVar[frozenset[str]] = frozenset({INPUT_GRADIENT})
    kind: ClassVar[str] = GRADIENT_ATTACK

    def __init__(self, norm: str = "linf", version: str = "standard", reject_aware: bool = False):
        self.norm = norm
        self.version = version
        self.reject_aware = reject_aware

    @property
    def iterative(self) -> bool:
        """True: every member iterates."""
        return True

    def validate(self) -> Budget:
        """The version's budgets; one-line errors for bad parameters."""
        check_norm(self.norm)
        check_bool("reject_aware", self.reject_aware)
        if self.version not in VERSIONS:
            raise RobustkitError(
                f"version must be one of {', '.join(VERSIONS)}; got {self.version!r}"
            )
        return VERSIONS[self.version]

    def members(self, n_classes: int) -> tuple[list[tuple[str, APGD]], Attack]:
        """The gradient members by name (APGD-T and APGD-DLR only from 3 classes, where
        DLR is defined) and Square, with the version's budgets."""
        budget = self.validate()
        ce = APGD(self.norm, "ce", budget.ce_steps, reject_aware=self.reject_aware)
        gradient = [(MEMBERS[0], ce)]
        if n_classes >= 3:
            n_targets = min(budget.n_target_classes, n_classes - 1)
            targeted = APGD(
                self.norm,
                "dlr",
                budget.target_steps,
                targeted=True,
                n_target_classes=n_targets,
                reject_aware=self.reject_aware,
            )
            dlr = APGD(
                self.norm,
                "dlr",
                budget.ce_steps,
                restarts=budget.dlr_restarts,
                reject_aware=self.reject_aware,
            )
            gradient += [(MEMBERS[1], targeted), (MEMBERS[2], dlr)]
        square = create(
            "attack",
            "square",
            norm=self.norm,
            n_queries=budget.square_queries,
            p_init=budget.p_init,
            reject_aware=self.reject_aware,
        )
        return gradient, square

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
        """The ensemble at each radius, each member on the samples still robust."""
        gradient, square = self.members(len(model.classes_))
        X = X.astype(np.result_type(X.dtype, np.float32), copy=False)
        if image_shape is None and X.ndim == 2:
            image_shape = grid_shape(X.shape[1])
        scorer = Scorer.for_batch(model, X, y, self.reject_aware)
        runners = [(name, ApgdRunner.from_attack(a, scorer, X, rng)) for name, a in gradient]
        ce_runner = runners[0][1]
        square_seed = int(rng.integers(2**63 - 1))
        adversarials = np.empty((len(radii), *X.shape), dtype=X.dtype)
        # Who broke each sample, as a byte per sample and ε until the end (an index into
        # NAMES), so that each extra ε costs little more than its adversarial batch.
        codes = np.zeros((len(radii), len(X)), dtype=np.uint8)
        codes[:, ce_runner.clean_won] = NAMES.index(CLEAN)
        seconds = dict.fromkeys(MEMBERS, 0.0)
        square_masks = []  # (radius index, samples still robust) for Square, after the others
        for k, radius in enumerate(radii):
            out = adversarials[k]
            out[...] = X
            if radius == 0:
                continue
            robust = ~ce_runner.clean_won
            for name, runner in runners:
                if robust.any():
                    start = time.perf_counter()
                    won = runner.run(out, float(radius), bounds, np.flatnonzero(robust))
                    seconds[name] += time.perf_counter() - start
                    codes[k, won] = NAMES.index(name)
                    robust &= ~won
            if robust.any():
                square_masks.append((k, robust))
        if square_masks:
            start = time.perf_counter()
            square_rows = [(k, np.flatnonzero(mask)) for k, mask in square_masks]
            budgets = (radii, square_rows, bounds, square_seed)
            for k, broken in self._square(square, scorer, X, y, budgets, image_shape, adversarials):
                codes[k, broken] = NAMES.index(MEMBERS[3])
            seconds[MEMBERS[3]] += time.perf_counter() - start
        broken_by = np.array(NAMES, dtype=object)[codes]  # Python strings, 8 bytes a sample
        counts = {name: (broken_by == name).sum(axis=1).tolist() for name in (CLEAN, *MEMBERS)}
        info: dict[str, Any] = {
            "objective": f"AutoAttack {self.version}"
            + (" (reject-aware)" if self.reject_aware else ""),
            "broken_by": broken_by,
            "broken_counts": counts,
            "gradient_evaluations": scorer.gradient_calls,
            "member_seconds": seconds,
        }
        return AttackResult(radii, adversarials, ce_runner.zero_gradient, info)

    def _square(
        self,
        square: SquareAttack,
        scorer: Scorer,
        X: np.ndarray,
        y: np.ndarray,
        budgets: tuple[np.ndarray, list[tuple[int, np.ndarray]], tuple[float, float], int],
        image_shape: tuple[int, ...] | None,
        adversarials: np.ndarray,
    ) -> list[tuple[int, np.ndarray]]:
        """Square on the samples each radius left robust, every radius in one search (in
        groups of at most ``CHUNK`` samples), straight into ``adversarials``.

        ``budgets`` is (radii, [(radius index, robust samples)], bounds, seed); returns
        (radius index, the samples Square broke, as the scorer confirms). A sample Square
        does not break keeps Square's best point. Each chunk's result is the one a
        ``square`` call on that chunk alone gives (same radius and random stream).
        """
        radii, rows_per_radius, bounds, seed = budgets
        setup = square.setup(scorer.model, X, y, image_shape)
        rows_per_radius = [(k, rows[~setup.clean_won[rows]]) for k, rows in rows_per_radius]
        out = adversarials.reshape(-1, *setup.images.shape[1:])
        for group in grouped(_square_budgets(rows_per_radius, radii, bounds, len(X), seed), CHUNK):
            square.search(setup, group, bounds, out)
        found = []
        for k, rows in rows_per_radius:
            for part in np.array_split(rows, max(-(-len(rows) // CHUNK), 1)):
                candidates = adversarials[k][part]
                project(candidates, X[part], float(radii[k]), bounds, self.norm)
                adversarials[k][part] = candidates
                found.append((k, part[scorer.won(*scorer.scores(candidates), part)]))
        return found


def _square_budgets(
    rows_per_radius: list[tuple[int, np.ndarray]],
    radii: np.ndarray,
    bounds: tuple[float, float],
    n_samples: int,
    seed: int,
) -> list[square_search.Budget]:
    """Square's budgets: each radius's robust samples in chunks of at most ``CHUNK``, with
    the radius and stream a ``square`` call on that chunk alone would use."""
    span = bounds[1] - bounds[0]
    budgets = []
    for k, rows in rows_per_radius:
        radius = float((np.asarray([radii[k] / span]) * span)[0])  # as ``perturb`` has it
        for chunk, chunk_rows in enumerate(np.array_split(rows, -(-len(rows) // CHUNK))):
            chunk_seed = int(np.random.default_rng([seed, chunk]).integers(2**63))
            budgets.append(budget_of(chunk_rows, k * n_samples + chunk_rows, radius, chunk_seed))
    return budgets


@hookimpl
def register_attacks(register):
    """Register ``auto``."""
    register("auto", AutoAttack)
