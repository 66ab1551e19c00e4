"""``WrappedModel``: the base of defended models, delegating everything to an inner model.

A defense returns a wrapper around a fresh clone of the user's model. The wrapper owns
that inner model (``model``, a nested estimator, so ``get_params(deep=True)`` lists
``model__…``), fits it in place, exposes its capabilities and saves its state under
``model/…`` keys. Subclasses override only what their defense changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .interfaces import CERTIFIABLE, EpochCallback, Model

STATE_PREFIX = "model/"


def fit_inner(
    model: Model,
    X: np.ndarray,
    y: np.ndarray,
    eval_set: tuple[np.ndarray, np.ndarray] | None,
    callback: EpochCallback | None,
    **hooks: Any,
) -> None:
    """``model.fit``, passing on the training hooks that are set (``batch_transform=``,
    ``ibp=``) and only those, so models without the matching capability keep working."""
    hooks = {name: hook for name, hook in hooks.items() if hook is not None}
    model.fit(X, y, eval_set=eval_set, callback=callback, **hooks)


class WrappedModel(Model):
    """A Model that delegates to the inner ``model``; the base class of defended models."""

    def __init__(self, model: Model | None = None):
        self.model = model

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        """The inner model's capabilities: a wrapper can do what its model can, except being
        certified when it changes the scores without describing its own layers."""
        have = frozenset(getattr(self.model, "capabilities", ()))
        cls = type(self)
        same_scores = all(
            getattr(cls, name) is getattr(WrappedModel, name)
            for name in ("decision_function", "reject_score", "predict")
        )
        if not same_scores and cls.certification_layers is WrappedModel.certification_layers:
            have -= {CERTIFIABLE}
        return have

    @property
    def classes_(self) -> np.ndarray:
        """The inner model's classes (AttributeError while it is unfitted)."""
        return self.model.classes_

    @property
    def history_(self) -> Any:
        """The inner model's per-epoch training history."""
        return self.model.history_

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callback: EpochCallback | None = None,
        **hooks: Any,
    ) -> WrappedModel:
        """Train the inner model on ``(X, y)``, passing on training ``hooks``; return self."""
        fit_inner(self.model, X, y, eval_set, callback, **hooks)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The inner model's class scores."""
        return self.model.decision_function(X)

    def reject_score(self, X: np.ndarray) -> np.ndarray:
        """The inner model's reject score."""
        return self.model.reject_score(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The inner model's predictions (a wrapper that changes the scores must override)."""
        return self.model.predict(X)

    def loss_gradient(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The inner model's training loss and its input gradient."""
        return self.model.loss_gradient(X, y)

    def decision_gradient(
        self,
        X: np.ndarray,
        grad_scores: np.ndarray,
        grad_reject: np.ndarray | None = None,
    ) -> np.ndarray:
        """The inner model's vector-Jacobian product of scores and reject score."""
        return self.model.decision_gradient(X, grad_scores, grad_reject)

    def certification_layers(self) -> list[Any]:
        """The inner model's certification layers (a wrapper that changes scores must override)."""
        return self.model.certification_layers()

    def get_state(self) -> dict[str, np.ndarray]:
        """The inner model's fitted arrays under ``model/`` keys; subclasses add their own."""
        return {STATE_PREFIX + key: value for key, value in self.model.get_state().items()}

    def set_state(self, state: dict[str, np.ndarray]) -> WrappedModel:
        """Restore the inner model from the ``model/`` keys of ``state``; return self."""
        inner = {
            key.removeprefix(STATE_PREFIX): value
            for key, value in state.items()
            if key.startswith(STATE_PREFIX)
        }
        self.model.set_state(inner)
        return self
