"""IBP training: the loss and its gradients, the schedule, the defense, bad input."""

import numpy as np
import pytest
from robustkit_plugins.defenses import IBPTrainingDefense
from robustkit_plugins.hinge import HingeNetwork, hinge_ibp_loss, hinge_loss
from robustkit_plugins.rbf import RBFNetwork, gelu, rbf_ibp_loss, rbf_loss, squared_distances
from sklearn.datasets import load_digits

from robustkit import CapabilityError, RobustkitError
from robustkit.certify import GELU_ARGMIN, certify_model
from robustkit.interfaces import IBP_TRAINING, IBPTraining
from robustkit.testing import LinearModel, check_defense


def _problem(seed, n=6, d=4, hidden=5, outputs=3):
    rng = np.random.default_rng(seed)
    w = {
        "W1": rng.normal(size=(d, hidden)),
        "b1": rng.normal(size=hidden),
        "W2": rng.normal(size=(hidden, outputs)),
        "b2": rng.normal(size=outputs),
    }
    Z = rng.normal(size=(n, d))
    centre = Z + 0.05 * rng.normal(size=(n, d))
    spread = rng.uniform(0, 0.3, (n, d))
    onehot = np.eye(outputs)[rng.integers(0, outputs, n)]
    return w, Z, centre, spread, onehot


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kappa", [0.0, 0.3, 1.0])
def test_ibp_loss_gradients_match_finite_differences(seed, kappa):
    w, *batch = _problem(seed)
    _, grads = hinge_ibp_loss(w, *batch, kappa)
    for name, weight in w.items():
        for index in np.ndindex(weight.shape):
            plus = {k: v.copy() for k, v in w.items()}
            minus = {k: v.copy() for k, v in w.items()}
            plus[name][index] += 1e-6
            minus[name][index] -= 1e-6
            numeric = (
                hinge_ibp_loss(plus, *batch, kappa)[0] - hinge_ibp_loss(minus, *batch, kappa)[0]
            ) / 2e-6
            assert grads[name][index] == pytest.approx(numeric, abs=1e-6)


def test_a_point_box_gives_the_clean_hinge_loss():
    w, Z, _, _, onehot = _problem(0)
    scores = np.maximum(Z @ w["W1"] + w["b1"], 0) @ w["W2"] + w["b2"]
    expected = hinge_loss(scores, onehot.argmax(1))[0].mean()
    for kappa in (0.0, 0.5, 1.0):
        loss, _ = hinge_ibp_loss(w, Z, Z, np.zeros_like(Z), onehot, kappa)
        assert loss == pytest.approx(expected)
    # a real box can only make the worst case worse
    w, Z, _, spread, onehot = _problem(1)
    assert (
        hinge_ibp_loss(w, Z, Z, spread, onehot, 0.0)[0]
        >= hinge_ibp_loss(w, Z, Z, np.zeros_like(Z), onehot, 0.0)[0]
    )


def test_the_schedule_ramps_radius_up_and_kappa_down():
    spec = IBPTraining(radius=1.0, bounds=(0, 1), kappa=0.5, ramp=0.5)
    assert [spec.schedule(e, 4) for e in (1, 2, 3)] == [(0.5, 0.75), (1.0, 0.5), (1.0, 0.5)]
    assert IBPTraining(1.0, (0, 1), 0.5, ramp=0.0).schedule(1, 4) == (1.0, 0.5)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y


@pytest.mark.parametrize(
    ("network", "eps", "epochs", "min_score"),
    [(HingeNetwork, 0.05, 10, 0.7), (RBFNetwork, 0.1, 20, 0.8)],  # rbf: 0.59 against 0.04
    ids=["hinge", "rbf"],
)
def test_ibp_training_makes_certificates_non_vacuous(digits, network, eps, epochs, min_score):
    X, y = digits
    X_train, y_train, X_test, y_test = X[:1300], y[:1300], X[1300:], y[1300:]
    params = {"hidden": 32, "epochs": epochs, "random_state": 0}
    plain = network(**params).fit(X_train, y_train)
    trained = IBPTrainingDefense(eps=eps).apply(network(**params)).fit(X_train, y_train)
    radius = eps * 16

    def certified(model):
        return certify_model(model, X_test, y_test, radius, bounds=(0, 16)).correct.mean()

    assert certified(trained) > certified(plain) + 0.3
    assert trained.score(X_test, y_test) > min_score


def test_ibp_training_meets_the_defense_contract():
    check_defense(IBPTrainingDefense(eps=0.05), model=HingeNetwork(epochs=3, random_state=0))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"eps": 0}, r"eps must be a number in \(0, 1\]"),
        ({"kappa": 1.5}, r"kappa must be a number in \[0, 1\]"),
        ({"ramp": -0.1}, r"ramp must be a number in \[0, 1\]"),
    ],
)
def test_bad_ibp_training_parameters_fail_at_apply(params, message):
    with pytest.raises(RobustkitError, match=message):
        IBPTrainingDefense(**params).apply(HingeNetwork())


def test_models_that_cannot_train_on_bounds_are_refused(digits):
    with pytest.raises(CapabilityError, match="needs ibp_training"):
        IBPTrainingDefense().apply(LinearModel())

    class NoBounds(HingeNetwork):
        capabilities = HingeNetwork.capabilities - {IBP_TRAINING}

    with pytest.raises(RobustkitError, match="cannot train on IBP bounds"):
        NoBounds(epochs=1).fit(*digits, ibp=IBPTraining(1.0, (0, 16)))


# ----------------------------------------------------------------------------- rbf


def _rbf_problem(seed, n=8, d=4, hidden=6, k=3):
    rng = np.random.default_rng(seed)
    w = {
        "W1": rng.normal(size=(d, hidden)),
        "b1": rng.normal(size=hidden),
        "centres": rng.normal(size=(k, hidden)),
    }
    Z = rng.normal(size=(n, d))
    centre = Z + 0.05 * rng.normal(size=(n, d))
    spread = rng.uniform(0, 0.3, (n, d))
    onehot = np.eye(k)[rng.integers(0, k, n)]
    onehot[0] = 0.0  # a REJECT sample: pushed away from every centre
    return w, Z, centre, spread, onehot


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kappa", [0.0, 0.3, 1.0])
def test_rbf_ibp_loss_gradients_match_finite_differences(seed, kappa):
    w, *batch = _rbf_problem(seed)
    lam = 2.0
    _, grads = rbf_ibp_loss(w, *batch, lam, kappa)
    for name, weight in w.items():
        for index in np.ndindex(weight.shape):
            plus = {k: v.copy() for k, v in w.items()}
            minus = {k: v.copy() for k, v in w.items()}
            plus[name][index] += 1e-6
            minus[name][index] -= 1e-6
            numeric = (
                rbf_ibp_loss(plus, *batch, lam, kappa)[0]
                - rbf_ibp_loss(minus, *batch, lam, kappa)[0]
            ) / 2e-6
            assert grads[name][index] == pytest.approx(numeric, abs=1e-6)


def test_the_rbf_problems_reach_every_branch_of_the_gelu_interval():
    """The finite-difference problems hold boxes left of, across and right of GELU's
    minimum, and distances on both sides of λ, so every branch of the gradient is checked."""
    contains, left, right, beyond, within = 0, 0, 0, 0, 0
    for seed in range(4):
        w, Z, centre, spread, _ = _rbf_problem(seed)
        mu, rho = centre @ w["W1"] + w["b1"], spread @ np.abs(w["W1"])
        low, high = mu - rho, mu + rho
        contains += np.count_nonzero((low <= GELU_ARGMIN) & (high >= GELU_ARGMIN))
        left += np.count_nonzero(high < GELU_ARGMIN)
        right += np.count_nonzero(low > GELU_ARGMIN)
        dist = squared_distances(gelu(Z @ w["W1"] + w["b1"]), w["centres"])
        beyond, within = (
            beyond + np.count_nonzero(dist > 2.0),
            within + np.count_nonzero(dist < 2.0),
        )
    assert min(contains, left, right, beyond, within) > 0


def test_a_point_box_gives_the_clean_rbf_loss_and_a_real_box_a_worse_one():
    w, Z, _, spread, onehot = _rbf_problem(0)
    lam = 2.0
    y_index = np.where(onehot.any(axis=1), onehot.argmax(axis=1), onehot.shape[1])
    dist = squared_distances(gelu(Z @ w["W1"] + w["b1"]), w["centres"])
    expected = rbf_loss(dist, y_index, lam)[0].mean()
    for kappa in (0.0, 0.5, 1.0):
        loss, _ = rbf_ibp_loss(w, Z, Z, np.zeros_like(Z), onehot, lam, kappa)
        assert loss == pytest.approx(expected)
    assert rbf_ibp_loss(w, Z, Z, spread, onehot, lam, 0.0)[0] > expected


def test_rbf_ibp_training_meets_the_defense_contract():
    check_defense(IBPTrainingDefense(eps=0.05), model=RBFNetwork(epochs=3, random_state=0))
