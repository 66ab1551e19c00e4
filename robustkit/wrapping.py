"""``WrappedModel``: the base of defended models, delegating everything to an inner model,
and ``wrap``: a robustkit Model from an estimator fitted elsewhere.

A defense returns a wrapper around a fresh clone of the user's model. The wrapper owns
that inner model (``model``, a nested estimator, so ``get_params(deep=True)`` lists
``model__…``), fits it in place, exposes its capabilities and saves its state under
``model/…`` keys. Subclasses override only what their defense changes: ``predict``
follows the wrapper's own ``decision_function`` and ``reject_score``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import RobustkitError
from .interfaces import CERTIFIABLE, NOISE_CLASS, EpochCallback, Model, capabilities_of, fit_model

STATE_PREFIX = "model/"


class WrappedModel(Model):
    """A Model that delegates to the inner ``model``; the base class of defended models."""

    def __init__(self, model: Model | None = None):
        self.model = model

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        """The inner model's capabilities, except NOISE_CLASS (the wrapper's own ``fit``
        decides what the inner model trains on, and it has no ``reject`` switch) and except
        CERTIFIABLE when it changes the scores without describing its own layers."""
        have = capabilities_of(self.model) - {NOISE_CLASS}
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

    def validate(self) -> None:
        """Check the inner model's parameters (subclasses add their own)."""
        if self.model is None:
            raise RobustkitError(f"{type(self).__name__} needs a model to wrap")
        self.model.validate()

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callback: EpochCallback | None = None,
        bounds: tuple[float, float] | None = None,
        **hooks: Any,
    ) -> WrappedModel:
        """Train the inner model on ``(X, y)``, passing ``bounds`` and the training
        ``hooks`` (``batch_transform=``, ``ibp=``) on; return self."""
        self.fit_inner(X, y, eval_set=eval_set, callback=callback, bounds=bounds, **hooks)
        return self

    def fit_inner(self, X: np.ndarray, y: np.ndarray, **kwargs: Any) -> Model:
        """``self.model.fit`` with only the keywords that are set (``bounds=`` only if the
        inner ``fit`` takes it), so models without a training hook keep working."""
        kwargs = {name: value for name, value in kwargs.items() if value is not None}
        return fit_model(self.model, X, y, **kwargs)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The inner model's class scores."""
        return self.model.decision_function(X)

    def reject_score(self, X: np.ndarray) -> np.ndarray:
        """The inner model's reject score."""
        return self.model.reject_score(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Labels from this wrapper's ``decision_function`` and ``reject_score``.

        A wrapper that changes neither predicts with the inner model's ``predict`` (one
        forward pass instead of two, same labels).
        """
        own = type(self)
        if (
            own.decision_function is WrappedModel.decision_function
            and own.reject_score is WrappedModel.reject_score
        ):
            return self.model.predict(X)
        return Model.predict(self, X)

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


def wrap(estimator: Any) -> Model:
    """A fitted robustkit Model computing exactly what a fitted ``estimator`` computes.

    Plugins provide the conversions through the ``wrap_estimator`` hook; the built-in
    one takes scikit-learn's LogisticRegression, LinearSVC and MLPClassifier, alone or
    at the end of a Pipeline of StandardScaler, MinMaxScaler, MaxAbsScaler and PCA.
    A robustkit Model is returned as it is.
    """
    from .faults import plugin_call
    from .plugins import get_plugin_manager

    if isinstance(estimator, Model):
        return estimator
    with plugin_call("wrap_estimator"):
        model = get_plugin_manager().hook.wrap_estimator(estimator=estimator)
    if model is None:
        raise RobustkitError(
            f"no installed plugin can wrap a {type(estimator).__name__}; robustkit wraps "
            "scikit-learn LogisticRegression, LinearSVC and MLPClassifier (alone or behind "
            "StandardScaler/MinMaxScaler/MaxAbsScaler/PCA in a Pipeline)"
        )
    return model
