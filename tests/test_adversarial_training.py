"""The per-batch training hook and the adversarial-training defense."""

import numpy as np
import pytest
from click.testing import CliRunner
from robustkit_plugins.defenses import AdversarialTrainingDefense
from robustkit_plugins.hinge import HingeNetwork
from robustkit_plugins.rbf import RBFNetwork
from sklearn.datasets import load_digits

from robustkit import REJECT, CapabilityError, RobustkitError, create, harness
from robustkit.cli import cli
from robustkit.interfaces import BATCH_TRANSFORM
from robustkit.testing import LinearModel


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y


@pytest.mark.parametrize("network", [HingeNetwork, RBFNetwork])
def test_an_identity_batch_transform_trains_the_same_weights(digits, network):
    X, y = digits[0][:600], digits[1][:600]
    plain = network(hidden=16, epochs=2, batch_size=64, random_state=0).fit(X, y)
    calls = []

    def identity(model, X_batch, y_batch):
        calls.append((len(X_batch), model.decision_function(X[:5]).copy()))
        return X_batch

    hooked = network(hidden=16, epochs=2, batch_size=64, random_state=0)
    hooked.fit(X, y, batch_transform=identity)
    for name, weight in plain.weights_.items():
        np.testing.assert_array_equal(weight, hooked.weights_[name])
    assert [n for n, _ in calls] == ([64] * 9 + [24]) * 2  # every minibatch, in order
    # the model the transform sees predicts with the weights of that moment
    assert not np.allclose(calls[0][1], calls[-1][1])
    assert (
        not isinstance(hooked.weights_["W1"].base, np.ndarray)
        or hooked.weights_["W1"].base.size == hooked.weights_["W1"].size
    )


def test_the_transformed_batch_is_what_the_network_trains_on(digits):
    X, y = digits[0][:256], digits[1][:256]
    plain = HingeNetwork(hidden=16, epochs=5, batch_size=64, random_state=0).fit(X, y)
    blank = HingeNetwork(hidden=16, epochs=5, batch_size=64, random_state=0)
    blank.fit(X, y, batch_transform=lambda model, X_batch, y_batch: np.zeros_like(X_batch))
    # trained on blank images only, it learns nothing about the real ones
    assert plain.score(X, y) > 0.8 and blank.score(X, y) < 0.4
    seen = []

    def record(model, X_batch, y_batch):
        seen.append((X_batch.copy(), y_batch.copy()))
        return X_batch

    HingeNetwork(hidden=8, epochs=1, batch_size=64, random_state=0).fit(
        X, y, batch_transform=record
    )
    rows = np.concatenate([batch for batch, _ in seen])
    labels = np.concatenate([batch_labels for _, batch_labels in seen])

    order = np.lexsort(rows.T[::-1])
    expected = np.lexsort(X.T[::-1])
    np.testing.assert_array_equal(rows[order], X[expected])  # raw inputs, each once
    np.testing.assert_array_equal(labels[order], y[expected])


def test_a_batch_transform_of_the_wrong_shape_is_a_clear_error(digits):
    X, y = digits[0][:128], digits[1][:128]
    with pytest.raises(RobustkitError, match="batch_transform must return the batch's shape"):
        HingeNetwork(epochs=1).fit(X, y, batch_transform=lambda m, Xb, yb: Xb[:, :5])


class RecordingTransformModel(LinearModel):
    """LinearModel whose fit runs one batch_transform over the whole training set."""

    capabilities = LinearModel.capabilities | {BATCH_TRANSFORM}

    def fit(self, X, y, *, eval_set=None, callback=None, batch_transform=None):
        super().fit(X, y)
        if batch_transform is not None:
            self.transformed_ = (np.array(X), batch_transform(self, np.array(X), np.array(y)))
        return self


@pytest.mark.parametrize("ratio", [0.25, 0.5, 1.0])
def test_a_ratio_of_the_real_samples_is_replaced_within_eps(ratio):
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, (80, 4))
    y = np.where(np.arange(80) < 60, np.arange(80) % 2, REJECT)  # 20 noise rows at the end
    defense = AdversarialTrainingDefense(eps=0.1, ratio=ratio, random_state=0)
    model = defense.apply(RecordingTransformModel(reject=True, random_state=0)).fit(X, y)
    before, after = model.model.transformed_
    changed = (before != after).any(axis=1)
    assert changed.sum() == round(ratio * 60)
    assert not changed[60:].any()  # noise samples are left alone
    span = X.max() - X.min()
    assert np.abs(after - before).max() <= 0.1 * span + 1e-9
    assert after.min() >= X.min() and after.max() <= X.max()


def test_adversarial_training_makes_the_network_more_robust(digits):
    X, y = digits
    X_train, y_train, X_test, y_test = X[:1300], y[:1300], X[1300:], y[1300:]
    params = {"hidden": 32, "epochs": 8, "random_state": 0}
    plain = HingeNetwork(**params).fit(X_train, y_train)
    trained = create(
        "defense", "adversarial-training", attack="pgd:loss=margin", eps=0.1, random_state=0
    ).apply(HingeNetwork(**params))
    trained.fit(X_train, y_train)
    attack = create("attack", "pgd", loss="margin", steps=20, restarts=2)

    def robust(model):
        adv = attack.perturb(model, X_test, y_test, 0.1, bounds=(0, 16), random_state=0)
        return np.mean(model.predict(adv.adversarials[0]) == y_test)

    assert robust(trained) > robust(plain) + 0.2
    assert np.mean(trained.predict(X_test) == y_test) > 0.8


@pytest.mark.parametrize(
    "params, message",
    [
        ({"ratio": 0}, "ratio must be a number in (0, 1]"),
        ({"ratio": 1.5}, "ratio must be a number in (0, 1]"),
        ({"eps": 0}, "eps must be a number in (0, 1]"),
        ({"eps": 2.0}, "eps must be a number in (0, 1]"),
        ({"steps": 0}, "steps"),
        ({"step_size": -1}, "step_size must be a number > 0"),
        ({"attack": "nope"}, "unknown attack 'nope'"),
        ({"attack": 3}, "attack must be an attack spec"),
    ],
)
def test_bad_adversarial_training_parameters_fail_at_apply(params, message):
    with pytest.raises(RobustkitError, match=message.replace("(", r"\(").replace("]", r"\]")):
        AdversarialTrainingDefense(**params).apply(HingeNetwork())


def test_models_without_the_hook_are_refused():
    with pytest.raises(CapabilityError, match="needs batch_transform"):
        AdversarialTrainingDefense().apply(LinearModel())


def test_cli_refuses_a_bad_ratio_before_training(monkeypatch):
    monkeypatch.setattr(harness, "_fit", lambda *a: pytest.fail("trained"))
    spec = "adversarial-training:ratio=2"
    result = CliRunner().invoke(cli, ["eval", "--model", "hinge", "--defense", spec, "--no-cache"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "ratio must be a number in (0, 1]" in result.output


# ------------------------------------------------------------------ the fused training PGD


class CountingHinge(HingeNetwork):
    """A hinge network that counts its forward passes (fused ones and the others)."""

    def decision_and_gradient(self, X, weights):
        self.passes = getattr(self, "passes", 0) + 1
        return super().decision_and_gradient(X, weights)

    def decision_function(self, X):
        self.passes = getattr(self, "passes", 0) + 1
        return super().decision_function(X)


def test_training_pgd_takes_one_fused_pass_per_step_and_stays_in_each_ball(digits):
    X, y = digits[0][:200], digits[1][:200]
    model = CountingHinge(hidden=16, epochs=2, random_state=0).fit(X, y)
    model.passes = 0
    attack = create("attack", "pgd", loss="margin", steps=7, step_size=0.25)
    radii = np.linspace(0.5, 3.0, len(X))
    adv = attack.training_adversarials(model, X, y, radii, (0.0, 16.0), np.random.default_rng(0))
    assert model.passes == 7
    assert (np.abs(adv - X).max(axis=1) <= radii + 1e-5).all()
    assert adv.min() >= 0 and adv.max() <= 16
    assert np.mean(model.predict(adv) == y) < np.mean(model.predict(X) == y) - 0.2


def test_one_training_pgd_step_is_the_margin_sign_step(digits):
    X, y = digits[0][:100], digits[1][:100]
    fitted = HingeNetwork(hidden=16, epochs=2, random_state=0).fit(X, y)
    attack = create("attack", "pgd", loss="margin", steps=1, step_size=1.0, random_start=False)
    for model in (fitted, LinearModel(random_state=0).fit(X, y)):  # fused and two-pass
        adv = attack.training_adversarials(model, X, y, 1.6, (0.0, 16.0), None)
        scores = model.decision_function(X)
        rows = np.arange(len(y))
        rival = np.where(np.eye(10, dtype=bool)[y], -np.inf, scores).argmax(axis=1)
        grad_scores = np.zeros_like(scores)
        grad_scores[rows, rival], grad_scores[rows, y] = 1.0, -1.0
        expected = np.clip(X + 1.6 * np.sign(model.decision_gradient(X, grad_scores)), 0, 16)
        np.testing.assert_allclose(adv, expected, atol=1e-5)


@pytest.mark.parametrize("network", [HingeNetwork, RBFNetwork])
def test_adversarial_training_is_reproducible(digits, network):
    X, y = digits[0][:300], digits[1][:300]

    def trained(seed, **params):
        defense = AdversarialTrainingDefense(eps=0.1, steps=3, random_state=seed, **params)
        return defense.apply(network(hidden=8, epochs=2, random_state=0)).fit(X, y)

    for params in ({}, {"eps_reject": 0.3, "ratio": 0.5}):
        first, second, other = trained(0, **params), trained(0, **params), trained(1, **params)
        for name, weight in first.model.weights_.items():
            np.testing.assert_array_equal(weight, second.model.weights_[name])
        assert not np.array_equal(first.model.weights_["W1"], other.model.weights_["W1"])


# ------------------------------------------------------------------ relabelling transforms


def test_a_transform_returning_labels_relabels_the_batch(digits):
    X, y = digits[0][:256], digits[1][:256]
    seen = []

    def all_noise(model, X_batch, y_batch):
        seen.append(len(X_batch))
        return X_batch, np.full(len(y_batch), REJECT)

    model = HingeNetwork(hidden=16, epochs=5, reject=True, random_state=0)
    model.fit(X, y, batch_transform=all_noise)
    assert (model.predict(X) == REJECT).all()  # it learnt only the noise class
    assert list(model.classes_) == list(range(10)) and sum(seen) == 5 * len(X)
    with pytest.raises(RobustkitError, match="batch_transform must return 64 labels"):
        HingeNetwork(epochs=1, batch_size=64, reject=True).fit(
            X, y, batch_transform=lambda m, Xb, yb: (Xb, yb[:3])
        )
    with pytest.raises(RobustkitError, match="REJECT"):  # REJECT needs the noise class
        HingeNetwork(epochs=1).fit(X, y, batch_transform=all_noise)


class RelabellingTransformModel(RecordingTransformModel):
    """A third-party model taking (X', y') from its batch_transform."""

    def fit(self, X, y, *, eval_set=None, callback=None, batch_transform=None):
        super().fit(X, y, batch_transform=batch_transform)
        result = self.transformed_[1]
        self.transformed_ = (
            self.transformed_[0],
            *(result if isinstance(result, tuple) else (result, y)),
        )
        return self


def test_ccat_labels_the_far_adversarials_reject_within_eps_reject():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, (200, 4))
    y = np.arange(200) % 2
    defense = AdversarialTrainingDefense(eps=0.1, eps_reject=0.4, reject_ratio=0.25, random_state=0)
    model = defense.apply(RelabellingTransformModel(random_state=0))
    assert model.model.reject is True  # the noise class is switched on
    model.fit(X, y)
    before, after, labels = model.model.transformed_
    far = labels == REJECT
    assert far.sum() == 50
    distance = np.abs(after - before).max(axis=1)
    span = X.max() - X.min()
    assert (distance[~far] <= 0.1 * span + 1e-9).all()
    assert (distance[far] <= 0.4 * span + 1e-9).all() and distance[far].max() > 0.1 * span
    np.testing.assert_array_equal(labels[~far], y[~far])


def test_ccat_rejects_more_large_eps_adversarials_than_adversarial_training(digits):
    X, y = digits
    X_train, y_train, X_test, y_test = X[:1300], y[:1300], X[1300:], y[1300:]
    attack = create("attack", "pgd", loss="margin", steps=20)

    def trained(**params):
        defense = create(
            "defense", "adversarial-training", attack="pgd:loss=margin", random_state=0, **params
        )
        return defense.apply(HingeNetwork(hidden=32, epochs=8, random_state=0)).fit(
            X_train, y_train
        )

    def outcome(model, eps):
        adv = attack.perturb(model, X_test, y_test, eps, bounds=(0, 16), random_state=0)
        predicted = model.predict(adv.adversarials[0])
        return np.mean(predicted == REJECT), np.mean((predicted != y_test) & (predicted != REJECT))

    plain, ccat = trained(), trained(eps_reject=0.3)
    (plain_rejected, plain_evaded), (ccat_rejected, ccat_evaded) = (
        outcome(plain, 0.3),
        outcome(ccat, 0.3),
    )
    assert ccat_rejected > plain_rejected + 0.2 and ccat_evaded < plain_evaded - 0.2
    clean = ccat.predict(X_test)
    assert np.mean(clean == y_test) > 0.75 and np.mean(clean == REJECT) < 0.1


@pytest.mark.parametrize(
    "params, message",
    [
        ({"eps_reject": 0.1}, r"eps_reject must be a number in \(eps, 1\] = \(0.1, 1\]"),
        ({"eps_reject": 0.05}, r"eps_reject must be a number in \(eps, 1\]"),
        ({"eps_reject": 1.5}, r"eps_reject must be a number in \(eps, 1\]"),
        ({"eps_reject": 0.3, "reject_ratio": 0}, r"reject_ratio must be a number in \(0, 1\]"),
        ({"eps_reject": 0.3, "reject_ratio": 2}, r"reject_ratio must be a number in \(0, 1\]"),
    ],
)
def test_bad_ccat_parameters_fail_at_apply(params, message):
    with pytest.raises(RobustkitError, match=message):
        AdversarialTrainingDefense(**params).apply(HingeNetwork())


def test_ccat_needs_a_noise_class():
    reject_defended = create("defense", "reject").apply(HingeNetwork())  # no NOISE_CLASS left
    with pytest.raises(CapabilityError, match="eps_reject needs noise_class"):
        AdversarialTrainingDefense(eps_reject=0.3).apply(reject_defended)


def test_cli_refuses_eps_reject_below_eps_before_training(monkeypatch):
    monkeypatch.setattr(harness, "_fit", lambda *a: pytest.fail("trained"))
    spec = "adversarial-training:eps=0.2,eps_reject=0.1"
    result = CliRunner().invoke(cli, ["eval", "--model", "rbf", "--defense", spec, "--no-cache"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "eps_reject must be a number in (eps, 1]" in result.output


def test_an_outer_transform_s_labels_reach_the_model():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, (40, 4))
    y = np.arange(40) % 2
    model = AdversarialTrainingDefense(eps=0.1, random_state=0).apply(
        RelabellingTransformModel(reject=True, random_state=0)
    )

    def outer(model, X_batch, y_batch):  # e.g. another defense marking the last rows noise
        return X_batch, np.where(np.arange(len(y_batch)) >= 30, REJECT, y_batch)

    model.fit(X, y, batch_transform=outer)
    before, after, labels = model.model.transformed_
    assert (labels[30:] == REJECT).all() and (labels[:30] == y[:30]).all()
    np.testing.assert_array_equal(after[30:], before[30:])  # noise rows are not attacked
    assert (after[:30] != before[:30]).any()
