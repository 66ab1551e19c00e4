"""Behaviour of the numpy networks ``hinge`` and ``rbf``: losses on hand-computed cases,
the reject rule, training, reproducibility, persistence and parameter validation."""

from pathlib import Path

import numpy as np
import pytest
from robustkit_plugins.hinge import HingeNetwork, hinge_loss
from robustkit_plugins.rbf import RBFNetwork, gelu, rbf_loss, squared_distances
from sklearn.datasets import load_digits, make_blobs
from sklearn.model_selection import train_test_split

import robustkit
from robustkit import REJECT, Recipe, RobustkitError, load_model, save_model

NETWORKS = [HingeNetwork, RBFNetwork]
HISTORY_KEYS = ("epoch", "loss", "train_accuracy", "seconds")


def hand_built(cls, classes, weights: dict, **params):
    """A network with given weights over 2 raw inputs used as they are (scale 1, mean 0)."""
    state = {
        "input_low": np.asarray(0.0),
        "input_span": np.asarray(1.0),
        "input_mean": np.zeros(2),
        "classes": np.asarray(classes),
        **{f"history_{key}": np.zeros(0) for key in HISTORY_KEYS},
        **{name: np.asarray(value, dtype=np.float64) for name, value in weights.items()},
    }
    return cls(hidden=2, dtype="float64", **params).set_state(state)


def blobs(n=120, classes=3, seed=0):
    X, y = make_blobs(n_samples=n, centers=classes, n_features=4, random_state=seed)
    return X, y


# --------------------------------------------------------------- losses by hand


def test_hinge_loss_on_hand_computed_scores():
    """Σ_{i≠y} max(0, s_i − s_y + 1) and its gradient, worked out by hand."""
    scores = np.array([[1.0, 2.0, 0.5], [3.0, 0.0, 0.0], [5.0, 0.0, 1.0]])
    loss, grad = hinge_loss(scores, np.array([0, 1, 0]))
    # row 0, y=0: (2−1+1) + (0.5−1+1) = 2 + 0.5; row 1, y=1: (3+1) + (0+1) = 5; row 2: none
    np.testing.assert_allclose(loss, [2.5, 5.0, 0.0])
    np.testing.assert_allclose(grad, [[-2, 1, 1], [1, -2, 1], [0, 0, 0]])


def test_hinge_network_loss_and_input_gradient_by_hand():
    """x=[1,2] → relu → scores [1, 2, 0.5]; the loss per label and dL/dx for y=0."""
    model = hand_built(
        HingeNetwork,
        [0, 1, 2],
        {"W1": np.eye(2), "b1": [0, 0], "W2": [[1, 0, 0.5], [0, 1, 0]], "b2": [0, 0, 0]},
    )
    X = np.array([[1.0, 2.0]] * 3)
    loss, grad = model.loss_gradient(X, np.array([0, 1, 2]))
    # y=1: margins 1−2+1 = 0 and 0.5−2+1 < 0 → 0; y=2: (1−0.5+1) + (2−0.5+1) = 4
    np.testing.assert_allclose(loss, [2.5, 0.0, 4.0])
    # y=0: dL/ds = [−2, 1, 1]; dL/dh = W2·g = [−2 + 0.5, 1] (both units active)
    np.testing.assert_allclose(grad[0], [-1.5, 1.0])
    np.testing.assert_allclose(model.decision_function(X[:1]), [[1.0, 2.0, 0.5]])


def test_rbf_loss_on_hand_computed_distances():
    """d_y + Σ_{i≠y} max(0, λ − d_i); a REJECT row (index 3) gets Σ_j max(0, λ − d_j)."""
    dist = np.array([[1.0, 4.0, 9.0]] * 4)
    loss, grad = rbf_loss(dist, np.array([0, 1, 2, 3]), lam=5.0)
    # y=0: 1 + 1 + 0; y=1: 4 + 4 + 0; y=2: 9 + 4 + 1; REJECT: 4 + 1 + 0
    np.testing.assert_allclose(loss, [2.0, 8.0, 14.0, 5.0])
    np.testing.assert_allclose(grad, [[1, -1, 0], [-1, 1, 0], [-1, -1, 1], [-1, -1, 0]])


def test_squared_distances_and_gelu_by_hand():
    """‖h − c‖² via the one-matmul formula; GELU at 0, 1, −1 and far out."""
    centres = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 2.0]])
    np.testing.assert_allclose(squared_distances(np.array([[1.0, 2.0]]), centres), [[0, 5, 4]])
    # 0.5·(1 + tanh(0.7978846·1.044715)) = 0.5·(1 + 0.682383) = 0.841192; GELU(−x) = GELU(x) − x
    np.testing.assert_allclose(
        gelu(np.array([0.0, 1.0, -1.0, 10.0])), [0.0, 0.841192, -0.158808, 10.0], atol=1e-6
    )


def _rbf_by_hand(**params):
    centres = [[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]]
    return hand_built(
        RBFNetwork,
        [0, 1, 2],
        {"W1": np.eye(2), "b1": [0, 0], "centres": centres},
        lam=5.0,
        **params,
    )


def test_rbf_network_loss_and_input_gradient_by_hand():
    """x=[0,0] → h = GELU(0) = 0 → d = [1, 4, 9]; loss per label, REJECT, and dL/dx."""
    model = _rbf_by_hand(reject=True)
    X = np.zeros((4, 2))
    loss, grad = model.loss_gradient(X, np.array([0, 1, 2, REJECT]))
    np.testing.assert_allclose(loss, [2.0, 8.0, 14.0, 5.0])
    # y=0: dL/dd = [1, −1, 0]; dL/dh = 2(h − c0) − 2(h − c1) = (−2, 0) + (0, 4); GELU'(0) = 1/2
    np.testing.assert_allclose(grad[0], [-1.0, 2.0])
    np.testing.assert_allclose(model.decision_function(X[:1]), [[-1.0, -4.0, -9.0]])


# ----------------------------------------------------------------- reject rule


def test_rbf_rejects_exactly_when_every_distance_exceeds_the_threshold():
    """h ≈ (10, 10) is ≥ 149 from every centre: rejected at λ = 5, kept at threshold 150."""
    X = np.array([[0.0, 0.0], [10.0, 10.0]])
    model = _rbf_by_hand(reject=True)
    np.testing.assert_array_equal(model.predict(X), [0, REJECT])
    np.testing.assert_allclose(model.reject_score(X), [-5.0, -5.0])
    np.testing.assert_array_equal(
        _rbf_by_hand(reject=True, reject_threshold=150.0).predict(X), [0, 2]
    )
    plain = _rbf_by_hand()
    np.testing.assert_array_equal(plain.predict(X), [0, 2])
    assert np.all(plain.reject_score(X) == -np.inf)


def test_hinge_rejects_where_the_noise_unit_wins():
    """The third output is the noise unit: scores [1, .5 | 2] reject, [0, 3 | 0] do not."""
    model = hand_built(
        HingeNetwork,
        ["cat", "dog"],
        {"W1": np.eye(2), "b1": [0, 0], "W2": [[1, 0, 2], [0, 1, 0]], "b2": [0, 0, 0]},
        reject=True,
    )
    X = np.array([[1.0, 0.5], [0.0, 3.0]])
    np.testing.assert_allclose(model.decision_function(X), [[1.0, 0.5], [0.0, 3.0]])
    np.testing.assert_allclose(model.reject_score(X), [2.0, 0.0])
    assert model.predict(X).tolist() == [REJECT, "dog"]


# ---------------------------------------------------------------------- training


@pytest.mark.parametrize("cls", NETWORKS)
def test_batch_size_one_trains(cls):
    """Plain SGD with one sample per step lowers the loss and fits separable blobs."""
    X, y = blobs(n=90)
    model = cls(hidden=16, batch_size=1, epochs=4, lr=0.01, random_state=0).fit(X, y)
    losses = [record["loss"] for record in model.history_]
    assert losses[-1] < losses[0]
    assert model.history_[-1]["train_accuracy"] > 0.95


@pytest.mark.parametrize("cls", NETWORKS)
def test_same_seed_gives_identical_weights(cls):
    """Shuffling, noise and initialisation all come from random_state."""
    X, y = blobs()
    params = {"hidden": 12, "epochs": 3, "batch_size": 16, "noise_std": 0.05, "pca": 3}
    first = cls(random_state=4, **params).fit(X, y).get_state()
    second = cls(random_state=4, **params).fit(X, y).get_state()
    other = cls(random_state=5, **params).fit(X, y).get_state()
    for key in first:
        if key != "history_seconds":
            np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert not np.array_equal(first["W1"], other["W1"])


@pytest.mark.parametrize("cls", NETWORKS)
def test_noise_std_augments_training(cls):
    """noise_std > 0 trains on perturbed inputs, so the weights differ from noise_std=0."""
    X, y = blobs()
    clean = cls(hidden=12, epochs=2, random_state=0).fit(X, y).weights_["W1"]
    noisy = cls(hidden=12, epochs=2, random_state=0, noise_std=0.1).fit(X, y).weights_["W1"]
    assert not np.allclose(clean, noisy)


@pytest.mark.parametrize("cls", NETWORKS)
def test_digits_accuracy_with_default_parameters(cls):
    """The study's recipe (lr 0.1, batch 128, default epochs) on sklearn's digits: ≥ 95 %."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    model = cls(random_state=0).fit(X_train, y_train)
    assert np.mean(model.predict(X_test) == y_test) >= 0.95


@pytest.mark.parametrize("cls", NETWORKS)
def test_multiclass_training_accuracy_and_text_labels(cls):
    """What sklearn's check_classifiers_train/classes test, with (n, n_classes) scores."""
    X, y = make_blobs(n_samples=300, random_state=0)
    names = np.array(["one", "two", "three"])[y]
    model = cls(hidden=16, epochs=20, batch_size=16, random_state=0).fit(X, names)
    assert model.classes_.tolist() == ["one", "three", "two"]
    assert np.mean(model.predict(X) == names) > 0.83
    assert model.decision_function(X).shape == (300, 3)


@pytest.mark.parametrize("cls", NETWORKS)
def test_history_callback_and_eval_set(cls):
    """One record per epoch with the documented keys, passed to the callback too."""
    X, y = blobs()
    records = []
    model = cls(hidden=8, epochs=3, random_state=0).fit(
        X[:90], y[:90], eval_set=(X[90:], y[90:]), callback=records.append
    )
    assert records == model.history_
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert set(records[0]) == {"epoch", "loss", "train_accuracy", "test_accuracy", "seconds"}
    assert all(0.0 <= r["test_accuracy"] <= 1.0 and r["seconds"] > 0 for r in records)
    assert "test_accuracy" not in cls(hidden=8, epochs=1).fit(X, y).history_[0]


@pytest.mark.parametrize("cls", NETWORKS)
def test_reject_training_with_text_labels(cls):
    """REJECT (-1) marks noise; classes_ never contains it, predictions may."""
    X, y = blobs(classes=2)
    rng = np.random.default_rng(0)
    noise = rng.uniform(X.min(), X.max(), size=(40, X.shape[1])) * 3
    labels = np.concatenate([np.array(["a", "b"], dtype=object)[y], [REJECT] * 40])
    model = cls(hidden=16, epochs=30, batch_size=16, reject=True, random_state=0)
    model.fit(np.vstack([X, noise]), labels)
    assert model.classes_.tolist() == ["a", "b"]
    predicted = model.predict(np.vstack([X, noise]))
    assert set(predicted.tolist()) <= {"a", "b", REJECT}
    assert np.mean(predicted[: len(X)] == labels[: len(X)]) > 0.9
    assert np.all(np.isfinite(model.reject_score(X)))


@pytest.mark.parametrize("cls", NETWORKS)
def test_reject_labels_without_reject_are_an_error(cls):
    X, y = blobs()
    y[:3] = REJECT
    with pytest.raises(RobustkitError, match="reject=False"):
        cls(epochs=1).fit(X, y)


# ------------------------------------------------------------------- persistence


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("hinge", {"hidden": 10, "epochs": 2, "pca": 3}),
        ("rbf", {"hidden": 10, "epochs": 2, "reject": True}),
    ],
)
def test_save_load_round_trip(tmp_path: Path, name, params):
    """save_model/load_model restore a model that predicts identically, history included."""
    X, y = blobs()
    recipe = Recipe(name, {**params, "random_state": 0})
    model = recipe.build().fit(X, y)
    save_model(tmp_path / "model.npz", recipe, model)
    loaded_recipe, loaded = load_model(tmp_path / "model.npz")
    assert loaded_recipe == recipe
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.decision_function(X), model.decision_function(X))
    np.testing.assert_array_equal(loaded.reject_score(X), model.reject_score(X))
    assert loaded.history_ == model.history_
    assert loaded.n_features_in_ == X.shape[1]


@pytest.mark.parametrize("cls", NETWORKS)
def test_set_state_rejects_wrong_shapes_and_missing_keys(cls):
    X, y = blobs()
    state = cls(hidden=6, epochs=1, random_state=0).fit(X, y).get_state()
    wrong = {**state, "W1": np.zeros((4, 7))}
    with pytest.raises(ValueError, match="W1"):
        cls(hidden=6).set_state(wrong)
    with pytest.raises(ValueError, match="W1"):
        cls(hidden=7).set_state(state)  # the recipe's hidden size does not match
    missing = {key: value for key, value in state.items() if key != "b1"}
    with pytest.raises(KeyError, match="b1"):
        cls(hidden=6).set_state(missing)


def test_load_model_reports_a_state_that_does_not_fit(tmp_path: Path):
    """A file whose arrays do not fit the recipe gives a one-line RobustkitError."""
    X, y = blobs()
    model = HingeNetwork(hidden=6, epochs=1).fit(X, y)
    state = model.get_state()
    state["W2"] = np.zeros((5, 5))
    model.get_state = lambda: state
    save_model(tmp_path / "bad.npz", Recipe("hinge", {"hidden": 6}), model)
    with pytest.raises(RobustkitError, match=r"does not fit model 'hinge'.*W2"):
        load_model(tmp_path / "bad.npz")


def test_plugins_are_registered():
    assert isinstance(robustkit.create("model", "hinge"), HingeNetwork)
    assert isinstance(robustkit.create("model", "rbf", lam=3.0), RBFNetwork)


# -------------------------------------------------------------------- validation

BAD_PARAMS = [
    ({"lr": "fast"}, "lr must be a finite number > 0"),
    ({"lr": -0.1}, "lr must be"),
    ({"lr": float("nan")}, "lr must be"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"batch_size": -3}, "batch_size must be an integer >= 1"),
    ({"batch_size": "all"}, "batch_size must be an integer"),
    ({"hidden": 0}, "hidden must be an integer >= 1"),
    ({"pca": 0}, "pca must be an integer >= 1"),
    ({"pca": 9}, r"pca must be None or an integer between 1 and min\(n_samples, n_features\)"),
    ({"noise_std": -1.0}, "noise_std must be a finite number >= 0"),
    ({"reject": "yes"}, "reject must be True or False"),
    ({"dtype": "int8"}, "dtype must be 'float32' or 'float64'"),
    ({"random_state": "seed"}, "random_state must be None, an integer"),
]
RBF_BAD_PARAMS = [
    ({"lam": 0.0}, "lam must be a finite number > 0"),
    ({"lam": "big"}, "lam must be"),
    ({"reject_threshold": "x"}, "reject_threshold must be a finite number"),
]


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [(cls, p, m) for cls in NETWORKS for p, m in BAD_PARAMS]
    + [(RBFNetwork, p, m) for p, m in RBF_BAD_PARAMS],
)
def test_bad_parameters_give_one_line_errors(cls, params, message):
    X, y = blobs()
    with pytest.raises(RobustkitError, match=message) as info:
        cls(**params).fit(X, y)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cls", NETWORKS)
@pytest.mark.parametrize(
    ("X_change", "message"),
    [
        (lambda X: X[:, 0], "X must be a 2-D array"),
        (lambda X: X[:, :, None], "X must be a 2-D array"),
        (lambda X: np.where(X > 5, np.nan, X), "X contains NaN or inf"),
        (lambda X: np.where(X > 5, np.inf, X), "X contains NaN or inf"),
    ],
)
def test_bad_inputs_give_one_line_errors(cls, X_change, message):
    X, y = blobs()
    with pytest.raises(RobustkitError, match=message) as info:
        cls(epochs=1).fit(X_change(X), y)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cls", NETWORKS)
def test_bad_inputs_after_fit_give_one_line_errors(cls):
    X, y = blobs()
    model = cls(hidden=6, epochs=1).fit(X, y)
    with pytest.raises(RobustkitError, match=r"X has 3 features, but .* is expecting 4"):
        model.predict(X[:, :3])
    with pytest.raises(RobustkitError, match="X contains NaN or inf"):
        model.decision_function(np.full((2, 4), np.nan))
    with pytest.raises(RobustkitError, match="labels not seen in fit: 7"):
        model.loss_gradient(X[:2], np.array([0, 7]))
    with pytest.raises(RobustkitError, match="grad_scores must have shape"):
        model.decision_gradient(X[:2], np.zeros((2, 5)))
    with pytest.raises(RobustkitError, match="inconsistent numbers of samples"):
        cls(epochs=1).fit(X, y[:-1])


# ------------------------------------------------------------------ Fashion-MNIST


@pytest.mark.slow
def test_fashion_mnist_accuracy_targets(shared_data_dir: Path):
    """The study's settings on PCA-128 Fashion-MNIST: hinge ≥ 87.5 %, rbf ≥ 84 %."""
    split = robustkit.create("dataset", "fashion-mnist").load(shared_data_dir)
    for cls, epochs, target in ((HingeNetwork, 15, 0.875), (RBFNetwork, 10, 0.84)):
        model = cls(pca=128, epochs=epochs, batch_size=128, lr=0.1, random_state=0)
        model.fit(split.X_train, split.y_train)
        accuracy = np.mean(model.predict(split.X_test) == split.y_test)
        assert accuracy >= target, f"{cls.__name__}: {accuracy:.4f} < {target}"
