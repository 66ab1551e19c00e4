"""Momentum iterative FGSM (MI-FGSM, Dong et al. 2018) as a third-party robustkit attack.

Each step accumulates the L1-normalised loss gradient into a velocity with decay ``mu``
and moves ε/steps along its sign, which escapes poor local maxima better than plain
iterative FGSM.
"""

import numpy as np

from robustkit import INPUT_GRADIENT, Attack, AttackResult, hookimpl


class MomentumIterativeFGSM(Attack):
    """Momentum iterative FGSM: ``steps`` sign steps of ε/steps along a decayed velocity."""

    requires = frozenset({INPUT_GRADIENT})

    def __init__(self, steps: int = 10, mu: float = 1.0) -> None:
        self.steps = steps
        self.mu = mu

    def _run(self, model, X, y, radii, bounds, rng):
        lo, hi = bounds
        flat = X.reshape(len(X), -1)
        _, first = model.loss_gradient(X, y)
        adversarials = []
        for radius in radii:
            step = radius / self.steps
            x_adv, velocity = X.copy(), np.zeros_like(flat)
            gradient = first
            for _ in range(self.steps):
                g = gradient.reshape(len(X), -1)
                norm = np.abs(g).sum(axis=1, keepdims=True)
                velocity = self.mu * velocity + g / np.where(norm > 0, norm, 1)
                x_adv = x_adv + step * np.sign(velocity).reshape(X.shape)
                x_adv = np.clip(np.clip(x_adv, X - radius, X + radius), lo, hi)
                _, gradient = model.loss_gradient(x_adv, y)
            adversarials.append(x_adv)
        zero = ~np.any(first.reshape(len(X), -1) != 0, axis=1)
        return AttackResult(radii, np.stack(adversarials), zero)


@hookimpl
def register_attacks(register):
    register("mifgsm", MomentumIterativeFGSM)
