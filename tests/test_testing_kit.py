"""The plugin authors' test kit: LinearModel is exact, and the checks catch broken plugins."""

import numpy as np
import pytest
from robustkit_plugins.defenses import RejectDefense
from robustkit_plugins.gradient_attacks import FGSM

from robustkit import REJECT, AttackResult, Defense, Model, PluginError, create, hookimpl
from robustkit.testing import (
    LinearModel,
    check_attack,
    check_defense,
    check_model,
    multiclass_hinge,
    temporary_plugin,
    toy_data,
)
from robustkit.wrapping import WrappedModel

# --------------------------------------------------------------------------- LinearModel


def test_multiclass_hinge_on_a_hand_computed_case():
    scores = np.array([[3.0, 1.0, 2.5], [0.0, 0.0, 0.0]])
    loss, grad = multiclass_hinge(scores, np.array([0, 2]))
    # Sample 0 (true 0): max(0, 1−3+1) + max(0, 2.5−3+1) = 0 + 0.5.
    # Sample 1 (true 2): two terms of max(0, 0−0+1) = 1 each.
    np.testing.assert_allclose(loss, [0.5, 2.0])
    np.testing.assert_allclose(grad, [[-1, 0, 1], [1, 1, -2]])


def test_linear_model_scores_and_noise_class_by_hand():
    model = LinearModel.from_weights([[1, 0, 2], [0, 1, 0]], [0, 0, -1], reject=True)
    X = np.array([[0.2, 0.6], [2.0, 0.0]])
    np.testing.assert_allclose(model.decision_function(X), [[0.2, 0.6], [2.0, 0.0]])
    np.testing.assert_allclose(model.reject_score(X), [-0.6, 3.0])
    np.testing.assert_array_equal(model.predict(X), [1, REJECT])
    # Noise-labelled sample 1: terms s0 − r + 1 = 0 and s1 − r + 1 = −2, so no loss
    # and, the zero term being inactive, no gradient.
    loss, grad = model.loss_gradient(X, np.array([1, REJECT]))
    np.testing.assert_allclose(loss, [0.6, 0.0])  # (0.2−0.6+1) + max(0, −0.6−0.6+1)
    np.testing.assert_allclose(grad[1], [0.0, 0.0])


def test_linear_model_learns_and_reports_history():
    X, y, _ = toy_data(n_samples=150)
    records = []
    model = LinearModel(epochs=40, random_state=0).fit(
        X, y, eval_set=(X, y), callback=records.append
    )
    assert len(records) == 40 and records == model.history_
    assert records[-1]["loss"] < records[0]["loss"]
    assert np.mean(model.predict(X) == y) > 0.8


def test_linear_model_errors_are_clear():
    X, y, _ = toy_data()
    with pytest.raises(ValueError, match="reject=True"):
        LinearModel().fit(X, np.where(y == 0, REJECT, y))
    model = LinearModel().fit(X, y)
    with pytest.raises(ValueError, match="not model classes"):
        model.loss_gradient(X[:2], np.array([0, 9]))
    with pytest.raises(ValueError, match="do not match"):
        LinearModel(reject=True).set_state(model.get_state())


def test_checks_pass_on_linear_model():
    check_model(LinearModel())
    check_model(LinearModel(reject=True, epochs=5))
    check_attack(FGSM(), model=LinearModel(random_state=1))
    check_defense(RejectDefense(n_noise=10), model=LinearModel())


# --------------------------------------------------------------------------- check_model


class ScaledGradient(LinearModel):
    def loss_gradient(self, X, y):
        loss, grad = super().loss_gradient(X, y)
        return loss, 1.5 * grad


class RejectGradientIgnored(LinearModel):
    def decision_gradient(self, X, grad_scores, grad_reject=None):
        return super().decision_gradient(X, grad_scores, None)


class FitReturnsNone(LinearModel):
    def fit(self, X, y, **kwargs):
        super().fit(X, y, **kwargs)


class ForgetfulState(LinearModel):
    def set_state(self, state):
        super().set_state(state)
        self.intercept_ = np.zeros_like(self.intercept_)
        return self


class Unseeded(LinearModel):
    def fit(self, X, y, **kwargs):
        super().fit(X, y, **kwargs)
        self.coef_ = self.coef_ + np.random.default_rng().normal(size=self.coef_.shape)
        return self


class StrayLabels(LinearModel):
    def predict(self, X):
        return super().predict(X) + 10


class WrongScoreShape(LinearModel):
    def decision_function(self, X):
        return super().decision_function(X)[:, :2]


class RejectionWithoutParameter(Model):
    capabilities = frozenset({"noise_class"})

    def fit(self, X, y, **kwargs):
        self.classes_ = np.unique(y)
        return self

    def decision_function(self, X):
        return np.zeros((len(X), len(self.classes_)))

    def get_state(self):
        return {"classes": self.classes_}

    def set_state(self, state):
        self.classes_ = state["classes"]
        return self


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (ScaledGradient(), "loss_gradient disagrees with finite differences"),
        (RejectGradientIgnored(), r"\(reject=True\)\.decision_gradient disagrees"),
        (FitReturnsNone(), "fit must return self"),
        (ForgetfulState(), "set_state"),
        (Unseeded(), "random_state=0 differ"),
        (StrayLabels(), "outside classes_"),
        (WrongScoreShape(), "decision_function shape"),
        (RejectionWithoutParameter(), "no 'reject' parameter"),
    ],
)
def test_check_model_catches_broken_models(model, message):
    with pytest.raises(AssertionError, match=message):
        check_model(model)


def test_check_model_catches_a_sign_flipped_decision_gradient():
    class Flipped(LinearModel):
        def decision_gradient(self, X, grad_scores, grad_reject=None):
            return -super().decision_gradient(X, grad_scores, grad_reject)

    with pytest.raises(AssertionError, match="decision_gradient disagrees"):
        check_model(Flipped())


# --------------------------------------------------------------------------- check_attack


class OverBudget(FGSM):
    """Skips the projection and moves by twice the budget."""

    def perturb(self, model, X, y, epsilons, *, bounds=(0.0, 1.0), random_state=None):
        eps = np.atleast_1d(np.asarray(epsilons, dtype=float))
        span = bounds[1] - bounds[0]
        adv = np.stack([X + 2 * e * span for e in eps])
        return AttackResult(eps, adv, np.zeros(len(X), bool))


class MovesAtZero(FGSM):
    def perturb(self, model, X, y, epsilons, **kwargs):
        result = super().perturb(model, X, y, epsilons, **kwargs)
        result.adversarials[0] = np.clip(X + 1e-3, *kwargs["bounds"])
        return result


class OutOfBounds(FGSM):
    def perturb(self, model, X, y, epsilons, **kwargs):
        result = super().perturb(model, X, y, epsilons, **kwargs)
        highest = np.unravel_index(np.argmax(X), X.shape)  # a point on the upper bound
        result.adversarials[(-1, *highest)] = kwargs["bounds"][1] + 0.01
        return result


class RandomAttack(FGSM):
    """Ignores the rng it is given."""

    def _run(self, model, X, y, radii, bounds, rng):
        result = super()._run(model, X, y, radii, bounds, rng)
        noise = np.random.default_rng().uniform(-1, 1, size=result.adversarials.shape)
        result.adversarials = result.adversarials + noise * radii[:, None, None]
        return result


class IntZeroGradient(FGSM):
    def _run(self, model, X, y, radii, bounds, rng):
        result = super()._run(model, X, y, radii, bounds, rng)
        result.zero_gradient = result.zero_gradient.astype(int)
        return result


class InPlace(FGSM):
    def perturb(self, model, X, y, epsilons, **kwargs):
        result = super().perturb(model, X, y, epsilons, **kwargs)
        X += 0.0001
        return result


class DoesNothing(FGSM):
    def _run(self, model, X, y, radii, bounds, rng):
        result = super()._run(model, X, y, radii, bounds, rng)
        result.adversarials = np.broadcast_to(X, result.adversarials.shape).copy()
        return result


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        (OverBudget(), "ε·range"),
        (MovesAtZero(), "epsilon 0"),
        (OutOfBounds(), "left bounds"),
        (RandomAttack(), "not deterministic"),
        (IntZeroGradient(), "zero_gradient must be a bool array"),
        (InPlace(), "modified its input"),
        (DoesNothing(), "changed nothing"),
    ],
)
def test_check_attack_catches_broken_attacks(attack, message):
    with pytest.raises(AssertionError, match=message):
        check_attack(attack)


# --------------------------------------------------------------------------- check_defense


class ReturnsTheModel(Defense):
    def _apply(self, model):
        return model


class MutatesTheModel(Defense):
    def _apply(self, model):
        model.set_params(reject=True)
        return WrappedModel(model=model)


class ReturnsFitted(Defense):
    def _apply(self, model):
        X, y, _ = toy_data()
        return LinearModel().fit(X, y)


class LosesCapabilities(Defense):
    def _apply(self, model):
        class Plain(WrappedModel):
            capabilities = frozenset()

        return Plain(model=model)


class ForgetsItsState(RejectDefense):
    def _apply(self, model):
        defended = super()._apply(model)
        defended.get_state = lambda: {
            k: v for k, v in type(defended).get_state(defended).items() if k != "model/intercept"
        }
        return defended


@pytest.mark.parametrize(
    ("defense", "message"),
    [
        (ReturnsTheModel(), "must not return the model itself"),
        (MutatesTheModel(), "changed the parameters"),
        (ReturnsFitted(), "returned a fitted model"),
        (LosesCapabilities(), "lost the model's capabilities"),
        (ForgetsItsState(target_reject_rate=0.1), "intercept"),
    ],
)
def test_check_defense_catches_broken_defenses(defense, message):
    with pytest.raises(AssertionError, match=message):
        check_defense(defense)


# --------------------------------------------------------------------------- temporary_plugin


class ExamplePlugin:
    @hookimpl
    def register_models(self, register):
        register("kit-linear", LinearModel)


def test_temporary_plugin_registers_and_unregisters():
    with temporary_plugin(ExamplePlugin(), "kit-example") as name:
        assert name == "kit-example"
        model = create("model", "kit-linear", epochs=3)
        assert isinstance(model, LinearModel) and model.epochs == 3
    with pytest.raises(PluginError, match="kit-linear"):
        create("model", "kit-linear")


def test_temporary_plugin_unregisters_after_an_error():
    with pytest.raises(RuntimeError), temporary_plugin(ExamplePlugin(), "kit-example"):
        raise RuntimeError("boom")
    with temporary_plugin(ExamplePlugin(), "kit-example"):  # the name is free again
        pass
