"""Certified bounds and adversarial training for the scikit-learn models."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import load_digits

import robustkit
from robustkit import REJECT, CapabilityError, RobustkitError
from robustkit.certify import certify_model, output_bounds
from robustkit.cli import cli
from robustkit.interfaces import BATCH_TRANSFORM, CERTIFIABLE, capabilities_of

BOUNDS = (0.0, 16.0)
CERTIFIABLE_CONFIGS = [
    ("sk-logreg", {}),
    ("sk-logreg", {"scaler": "minmax", "pca": 12}),
    ("sk-linear-svc", {"scaler": "none"}),
    ("sk-mlp", {"hidden": (16, 8), "epochs": 40, "pca": 20}),
    ("sk-mlp", {"hidden": (12,), "activation": "identity", "epochs": 40}),
]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X, y


def _fitted(name, digits, classes=None, reject=False, **params):
    X, y = digits
    X_train, y_train = X[:1200], y[:1200]
    if classes is not None:
        keep = np.isin(y_train, classes)
        X_train, y_train = X_train[keep], y_train[keep]
    if reject:  # uniform noise as the REJECT class
        noise = np.random.default_rng(0).uniform(*BOUNDS, (200, X.shape[1]))
        X_train = np.vstack([X_train, noise])
        y_train = np.concatenate([y_train, np.full(200, REJECT)])
    model = robustkit.create("model", name, random_state=0, reject=reject, **params)
    return model.fit(X_train, y_train)


def _test_points(digits, classes=None):
    X, y = digits
    X_test, y_test = X[1200:1400], y[1200:1400]
    if classes is not None:
        keep = np.isin(y_test, classes)
        X_test, y_test = X_test[keep], y_test[keep]
    return X_test, y_test


CASES = [
    *[(name, params, None, False) for name, params in CERTIFIABLE_CONFIGS],
    ("sk-logreg", {}, [3, 8], False),  # binary: one decision column
    ("sk-linear-svc", {}, [1, 7], False),
    ("sk-mlp", {"hidden": (10,), "epochs": 40}, [0, 6], False),
    ("sk-mlp", {"hidden": (16,), "epochs": 40}, None, True),  # with a noise class
    ("sk-logreg", {}, None, True),
]


@pytest.mark.parametrize("name, params, classes, reject", CASES)
def test_bounds_reproduce_the_model_and_contain_sampled_outputs(
    digits, name, params, classes, reject
):
    model = _fitted(name, digits, classes, reject, **params)
    assert CERTIFIABLE in capabilities_of(model)
    layers = model.certification_layers()
    X, _ = _test_points(digits, classes)
    X = X[:40]
    scores, reject_score = model.decision_function(X), model.reject_score(X)
    lower, upper, r_lo, r_hi = output_bounds(layers, X, 0.0, BOUNDS, "crown")
    np.testing.assert_allclose(lower, scores, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(upper, scores, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(r_lo, reject_score, rtol=1e-9, atol=1e-9)
    rng = np.random.default_rng(0)
    radius = 0.05 * 16
    widths = {}
    for method in ("ibp", "crown"):
        lower, upper, r_lo, r_hi = output_bounds(layers, X, radius, BOUNDS, method)
        widths[method] = upper - lower
        low, high = np.maximum(X - radius, 0), np.minimum(X + radius, 16)
        for _ in range(20):
            for point in (rng.uniform(low, high), np.where(rng.random(X.shape) < 0.5, low, high)):
                s, r = model.decision_function(point), model.reject_score(point)
                assert (s >= lower - 1e-9).all() and (s <= upper + 1e-9).all()
                if reject:
                    assert (r >= r_lo - 1e-9).all() and (r <= r_hi + 1e-9).all()
    assert (widths["crown"] <= widths["ibp"] + 1e-9).all()


@pytest.mark.parametrize(
    "name, params, classes",
    [
        ("sk-logreg", {}, None),
        ("sk-logreg", {}, [3, 8]),
        ("sk-linear-svc", {"pca": 20, "scaler": "minmax"}, None),
        ("sk-mlp", {"hidden": (16,), "epochs": 40, "scaler": "minmax"}, None),
    ],
)
def test_no_certified_sample_is_broken_by_pgd(digits, name, params, classes):
    model = _fitted(name, digits, classes, **params)
    X, y = _test_points(digits, classes)
    radius = 0.03 * 16
    certified = certify_model(model, X, y, radius, bounds=BOUNDS, method="crown").correct
    assert certified.sum() >= 10  # enough certified samples for the test to bite
    ever_broken = np.zeros(len(y), dtype=bool)
    for spec in ({"loss": "margin"}, {}):
        attack = robustkit.create("attack", "pgd", steps=40, restarts=2, **spec)
        adversarial = attack.perturb(
            model, X, y, radius / 16, bounds=BOUNDS, random_state=1
        ).adversarials[0]
        broken = model.predict(adversarial) != y
        assert not (broken & certified).any()
        ever_broken |= broken
    assert ever_broken.any()  # the attacks are strong enough to break the others


@pytest.mark.parametrize("activation", ["tanh", "logistic"])
def test_smooth_activations_are_not_certifiable(digits, activation):
    unfitted = robustkit.create("model", "sk-mlp", activation=activation)
    assert CERTIFIABLE not in capabilities_of(unfitted)
    model = _fitted("sk-mlp", digits, hidden=(6,), epochs=5, activation=activation)
    assert CERTIFIABLE not in capabilities_of(model)
    with pytest.raises(CapabilityError, match="needs certifiable"):
        certify_model(model, *_test_points(digits), 0.1, bounds=BOUNDS)
    with pytest.raises(RobustkitError, match=f"activation='{activation}' cannot be certified"):
        model.certification_layers()


@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_eval_certifies_sk_logreg_end_to_end(tmp_path, method):
    out = tmp_path / "rows.json"
    args = ["eval", "--dataset", "digits", "--model", "sk-logreg", "--attack", "pgd"]
    args += ["--eps", "0.02", "--eps", "0.1", "--n-samples", "60", "--certify", method]
    result = CliRunner().invoke(cli, [*args, "--no-cache", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "Certified bounds" in result.output
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 2
    for row in rows:
        assert row["certify_method"] == method
        assert 0 <= row["certified_accuracy"] <= row["robust_accuracy"]
    assert rows[0]["certified_accuracy"] > 0.5  # ε = 0.02 certifies most of the set


# ----------------------------------------------------------------- adversarial training


def test_sk_mlp_trains_on_transformed_batches_with_its_current_weights(digits):
    X, y = digits
    X, y = X[:300], y[:300]
    calls = []

    def transform(model, X_batch, y_batch):
        calls.append((len(X_batch), model.decision_function(X_batch[:1]).copy()))
        return np.clip(X_batch + 1.0, *BOUNDS)

    model = robustkit.create("model", "sk-mlp", hidden=(8,), epochs=3, batch_size=64)
    assert BATCH_TRANSFORM in capabilities_of(model)
    model.set_params(random_state=0).fit(X, y, batch_transform=transform)
    assert len(calls) == 3 * 5 - 1  # every minibatch but the very first (no weights yet)
    assert [n for n, _ in calls[:4]] == [64, 64, 64, 44]
    # the weights moved between calls: the transform saw the model of that step
    assert not np.allclose(calls[0][1], calls[1][1])
    assert [r["epoch"] for r in model.history_] == [1, 2, 3]
    # the same seed gives the same model; the transform's output is what it trained on
    again = robustkit.create("model", "sk-mlp", hidden=(8,), epochs=3, batch_size=64)
    again.set_params(random_state=0).fit(X, y, batch_transform=transform)
    np.testing.assert_array_equal(again.decision_function(X), model.decision_function(X))
    clean = robustkit.create("model", "sk-mlp", hidden=(8,), epochs=3, batch_size=64)
    clean.set_params(random_state=0).fit(X, y, batch_transform=lambda m, a, b: a)
    assert not np.allclose(clean.decision_function(X), model.decision_function(X))


def test_a_batch_transform_of_the_wrong_shape_is_a_clear_error(digits):
    model = robustkit.create("model", "sk-mlp", hidden=(4,), epochs=1, batch_size=50)
    with pytest.raises(RobustkitError, match=r"batch_transform must return the batch's shape"):
        model.fit(*digits, batch_transform=lambda m, X, y: X[:, :3])


def test_adversarial_training_makes_sk_mlp_more_robust(digits):
    X, y = digits
    params = {"hidden": (32,), "epochs": 8, "batch_size": 64, "scaler": "minmax"}
    params["random_state"] = 0
    plain = robustkit.create("model", "sk-mlp", **params).fit(X[:1200], y[:1200])
    defense = robustkit.create("defense", "adversarial-training", eps=0.1, steps=5, random_state=0)
    trained = defense.apply(robustkit.create("model", "sk-mlp", **params))
    trained.fit(X[:1200], y[:1200], bounds=BOUNDS)
    X_test, y_test = X[1200:1500], y[1200:1500]
    attack = robustkit.create("attack", "pgd", steps=20)

    def robust(model):
        adv = attack.perturb(model, X_test, y_test, 0.1, bounds=BOUNDS, random_state=0)
        return np.mean(model.predict(adv.adversarials[0]) == y_test)

    assert robust(trained) > robust(plain) + 0.25  # measured: 0.44 against 0.06
    assert trained.score(X_test, y_test) > 0.6


@pytest.mark.parametrize("name", ["sk-logreg", "sk-linear-svc"])
def test_linear_sklearn_models_cannot_be_adversarially_trained(name):
    with pytest.raises(CapabilityError, match="needs batch_transform"):
        robustkit.create("defense", "adversarial-training").apply(robustkit.create("model", name))
