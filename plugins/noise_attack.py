"""Random sign noise within the budget: the baseline that a gradient attack must beat."""

from __future__ import annotations

import numpy as np

from robustkit import Attack, AttackResult, Model, hookimpl
from robustkit.interfaces import BASELINE_ATTACK


class NoiseAttack(Attack):
    """Random ±ε sign noise on every input coordinate, seeded by ``random_state``.

    One sign pattern is drawn per call and scaled to each ε, so a sweep over ε moves along
    the same random directions. It needs no model capabilities and follows no gradient.
    """

    writes_inputs = False  # _run only reads X (perturb need not copy it)

    requires = frozenset()
    kind = BASELINE_ATTACK

    def _run(
        self,
        model: Model,
        X: np.ndarray,
        y: np.ndarray,
        radii: np.ndarray,
        bounds: tuple[float, float],
        rng: np.random.Generator,
    ) -> AttackResult:
        """x' = x + r·s for each radius r, with s uniform in {−1, +1}."""
        dtype = np.result_type(X.dtype, np.float32)
        signs = (2 * rng.integers(0, 2, size=X.shape) - 1).astype(dtype)
        scale = radii.astype(dtype).reshape(-1, *([1] * X.ndim))
        adversarials = X.astype(dtype)[None] + scale * signs[None]
        zero_gradient = np.zeros(len(X), dtype=bool)
        return AttackResult(radii, adversarials, zero_gradient, {"objective": "random signs"})


@hookimpl
def register_attacks(register):
    """Register ``noise``."""
    register("noise", NoiseAttack)
