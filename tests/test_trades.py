"""TRADES: the KL term and its gradients, the trades_training hook, the defense, bad input."""

import numpy as np
import pytest
from click.testing import CliRunner
from robustkit_plugins.hinge import HingeNetwork
from robustkit_plugins.rbf import RBFNetwork
from robustkit_plugins.trades import TradesDefense, TradesTerm, kl_divergence
from sklearn.datasets import load_digits

from robustkit import CapabilityError, RobustkitError, create, harness
from robustkit.cli import cli
from robustkit.interfaces import TRADES_TRAINING, RobustnessTerm
from robustkit.testing import LinearModel


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y


def test_kl_divergence_on_a_hand_computed_case():
    # p = softmax(0, log 3) = (1/4, 3/4), q = softmax(0, 0) = (1/2, 1/2)
    value, _, grad_adv = kl_divergence(np.array([[0.0, np.log(3)]]), np.zeros((1, 2)))
    expected = 0.25 * np.log(0.5) + 0.75 * np.log(1.5)
    assert value[0] == pytest.approx(expected)
    np.testing.assert_allclose(grad_adv, [[0.25, -0.25]])
    # equal scores (up to a shift): no divergence, no gradient
    value, grad_clean, grad_adv = kl_divergence(np.array([[1.0, 2.0, 3.0]]), [[5.0, 6.0, 7.0]])
    assert value[0] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(grad_clean, 0, atol=1e-12)
    np.testing.assert_allclose(grad_adv, 0, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_kl_gradients_match_finite_differences(seed):
    rng = np.random.default_rng(seed)
    clean, adv = rng.normal(0, 2, (4, 5)), rng.normal(0, 2, (4, 5))
    _, grad_clean, grad_adv = kl_divergence(clean, adv)
    h = 1e-6
    for which, grad in ((0, grad_clean), (1, grad_adv)):
        for index in np.ndindex(clean.shape):
            plus, minus = [clean.copy(), adv.copy()], [clean.copy(), adv.copy()]
            plus[which][index] += h
            minus[which][index] -= h
            numeric = (kl_divergence(*plus)[0].sum() - kl_divergence(*minus)[0].sum()) / (2 * h)
            assert grad[index] == pytest.approx(numeric, abs=1e-6)


def _fitted(network, reject=False):
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (60, 6))
    y = np.arange(60) % 3
    if reject:
        y[-6:] = -1
    model = network(hidden=5, epochs=1, reject=reject, dtype="float64", random_state=0).fit(X, y)
    Z = model.input_transform_.transform(X[:8])
    Z_adv = model.input_transform_.transform(np.clip(X[:8] + rng.normal(0, 0.1, (8, 6)), 0, 1))
    return model, Z, Z_adv, model._encode(y[:8], reject)


@pytest.mark.parametrize("network", [HingeNetwork, RBFNetwork])
@pytest.mark.parametrize("reject", [False, True])
def test_the_trades_loss_gradients_match_finite_differences(network, reject):
    model, Z, Z_adv, y_index = _fitted(network, reject)
    term = TradesTerm(2.5, 0.1, (0, 1), 1, 0.1, 0.0, np.random.default_rng(0))
    w = {name: value.copy() for name, value in model.weights_.items()}
    _, grads = model._trades_loss(w, Z, Z_adv, y_index, term)
    h = 1e-6
    for name, weight in w.items():
        for index in list(np.ndindex(weight.shape))[:40]:
            plus = {k: v.copy() for k, v in w.items()}
            minus = {k: v.copy() for k, v in w.items()}
            plus[name][index] += h
            minus[name][index] -= h
            numeric = (
                model._trades_loss(plus, Z, Z_adv, y_index, term)[0]
                - model._trades_loss(minus, Z, Z_adv, y_index, term)[0]
            ) / (2 * h)
            assert grads[name][index] == pytest.approx(numeric, abs=1e-5), (name, index)


def test_the_penalty_is_beta_times_kl_on_top_of_the_own_loss():
    model, Z, Z_adv, y_index = _fitted(HingeNetwork)
    w = model.weights_
    rng = np.random.default_rng(0)
    own = model._trades_loss(w, Z, Z_adv, y_index, TradesTerm(0.0, 0.1, (0, 1), 1, 0.1, 0, rng))
    beta = model._trades_loss(w, Z, Z_adv, y_index, TradesTerm(3.0, 0.1, (0, 1), 1, 0.1, 0, rng))
    out, _ = model._forward(w, Z)
    assert own[0] == pytest.approx(model._output_loss(out, y_index)[0].mean())
    kl = kl_divergence(model._forward(w, Z)[0], model._forward(w, Z_adv)[0])[0].mean()
    assert beta[0] == pytest.approx(own[0] + 3.0 * kl)


def test_the_adversarial_point_stays_in_the_ball_and_raises_the_divergence(digits):
    X, y = digits[0][:200], digits[1][:200]
    model = HingeNetwork(hidden=16, epochs=3, random_state=0).fit(X, y)
    term = TradesTerm(1.0, 1.6, (0.0, 16.0), 10, 0.4, 0.016, np.random.default_rng(0))
    assert isinstance(term, RobustnessTerm)
    X_adv = term.adversarial(model, X, y)
    assert np.abs(X_adv - X).max() <= 1.6 + 1e-5
    assert X_adv.min() >= 0 and X_adv.max() <= 16
    clean = model.decision_function(X)
    noisy = np.clip(X + np.random.default_rng(1).uniform(-1.6, 1.6, X.shape), 0, 16)
    found = kl_divergence(clean, model.decision_function(X_adv))[0]
    random = kl_divergence(clean, model.decision_function(noisy.astype(np.float32)))[0]
    assert found.mean() > 3 * random.mean()


class RecordingTradesModel(LinearModel):
    """A third-party model following the trades_training contract: it asks the term for
    the adversarial points and the penalty gradients of one batch (the whole set)."""

    capabilities = LinearModel.capabilities | {TRADES_TRAINING}

    def fit(self, X, y, *, eval_set=None, callback=None, trades=None):
        super().fit(X, y)
        if trades is not None:
            X_adv = trades.adversarial(self, X, y)
            value, grad_clean, grad_adv = trades.penalty(
                self.decision_function(X), self.decision_function(X_adv)
            )
            self.seen_ = (X_adv, value, grad_clean, grad_adv)
        return self


def test_a_third_party_model_gets_the_term_it_declares_it_takes():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, (40, 3))
    y = (X[:, 0] > 5).astype(int)
    model = TradesDefense(beta=2.0, eps=0.1, random_state=0).apply(
        RecordingTradesModel(random_state=0)
    )
    model.fit(X, y)
    X_adv, value, grad_clean, grad_adv = model.model.seen_
    span = X.max() - X.min()
    assert np.abs(X_adv - X).max() <= 0.1 * span + 1e-9 and np.abs(X_adv - X).max() > 0
    assert value.shape == (40,) and (value >= 0).all() and grad_adv.shape == grad_clean.shape


def test_models_without_the_capability_are_refused():
    with pytest.raises(CapabilityError, match="needs trades_training"):
        TradesDefense().apply(LinearModel())


@pytest.mark.parametrize(
    "params, message",
    [
        ({"beta": -1}, r"beta must be a number >= 0"),
        ({"eps": 0}, r"eps must be a number in \(0, 1\]"),
        ({"eps": 1.5}, r"eps must be a number in \(0, 1\]"),
        ({"steps": 0}, "steps"),
        ({"step_size": 0}, "step_size must be a number > 0"),
    ],
)
def test_bad_trades_parameters_fail_at_apply(params, message):
    with pytest.raises(RobustkitError, match=message):
        TradesDefense(**params).apply(HingeNetwork())


def test_cli_refuses_a_bad_beta_before_training(monkeypatch):
    monkeypatch.setattr(harness, "_fit", lambda *a: pytest.fail("trained"))
    result = CliRunner().invoke(
        cli, ["eval", "--model", "hinge", "--defense", "trades:beta=-2", "--no-cache"]
    )
    assert result.exit_code == 2
    assert "beta must be a number >= 0" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("network", [HingeNetwork, RBFNetwork])
def test_trades_training_is_reproducible(digits, network):
    X, y = digits[0][:300], digits[1][:300]

    def trained(seed):
        defense = TradesDefense(eps=0.1, steps=3, random_state=seed)
        return defense.apply(network(hidden=8, epochs=2, random_state=0)).fit(X, y)

    first, second, other = trained(0), trained(0), trained(1)
    for name, weight in first.model.weights_.items():
        np.testing.assert_array_equal(weight, second.model.weights_[name])
    assert any(
        not np.array_equal(weight, other.model.weights_[name])
        for name, weight in first.model.weights_.items()
    )


def test_trades_makes_the_hinge_network_more_robust(digits):
    X, y = digits
    X_train, y_train, X_test, y_test = X[:1300], y[:1300], X[1300:], y[1300:]
    params = {"hidden": 32, "epochs": 8, "random_state": 0}
    plain = HingeNetwork(**params).fit(X_train, y_train)
    trained = create("defense", "trades", beta=6.0, eps=0.1, random_state=0).apply(
        HingeNetwork(**params)
    )
    trained.fit(X_train, y_train)
    attack = create("attack", "pgd", loss="margin", steps=20)

    def robust(model):
        adv = attack.perturb(model, X_test, y_test, 0.1, bounds=(0, 16), random_state=0)
        return np.mean(model.predict(adv.adversarials[0]) == y_test)

    assert robust(trained) > robust(plain) + 0.05
    assert np.mean(trained.predict(X_test) == y_test) > 0.8
