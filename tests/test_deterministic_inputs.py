"""The networks' input pipeline: deterministic PCA, the ``scale`` option, chunked and
fast paths against the plain ones, and BLAS thread counts fixed by the problem's shape."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from robustkit_plugins import _numpy_net
from robustkit_plugins._numpy_net import InputTransform, threads_for_rows, threads_for_step
from robustkit_plugins.hinge import HingeNetwork
from robustkit_plugins.rbf import RBFNetwork
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from robustkit import RobustkitError, features
from robustkit.features import fit_pca, pca_split, project, scaled_mean
from robustkit.interfaces import DataSplit

NETWORKS = [HingeNetwork, RBFNetwork]


def _correlated(rng: np.random.Generator, n: int = 500, d: int = 12) -> np.ndarray:
    """Rows with a spread of variances (distinct eigenvalues) and a non-zero mean."""
    return (rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 5.0).astype(np.float32)


# ------------------------------------------------------------------------------- PCA


def test_fit_pca_spans_sklearns_subspace_with_a_sign_convention():
    X = _correlated(np.random.default_rng(0))
    mean, components = fit_pca(X, 5, low=1.0, scale=0.5)
    reference = PCA(5, svd_solver="full").fit((X.astype(np.float64) - 1.0) * 0.5)
    np.testing.assert_allclose(mean, reference.mean_, rtol=1e-10, atol=1e-10)
    # Each axis equals sklearn's up to its sign, and the largest entry is positive.
    signs = np.sign(np.sum(components * reference.components_, axis=1))
    np.testing.assert_allclose(components, signs[:, None] * reference.components_, atol=1e-8)
    peaks = components[np.arange(5), np.abs(components).argmax(axis=1)]
    assert np.all(peaks > 0)
    np.testing.assert_allclose(components @ components.T, np.eye(5), atol=1e-12)


def test_fit_pca_does_not_depend_on_the_chunk_boundaries(monkeypatch):
    """Summed in float64 chunks: chunking changes the result by rounding only."""
    X = _correlated(np.random.default_rng(1), n=301)
    whole = fit_pca(X, 4)
    monkeypatch.setattr(features, "CHUNK_ROWS", 64)
    chunked = fit_pca(X, 4)
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_scaled_mean_and_project_match_the_plain_float64_formulas(monkeypatch):
    monkeypatch.setattr(features, "CHUNK_ROWS", 7)
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 255, size=(50, 9)).astype(np.float32)
    np.testing.assert_allclose(
        scaled_mean(X, 3.0, 1 / 200), ((X.astype(np.float64) - 3.0) / 200).mean(axis=0), rtol=1e-12
    )
    mean, components = fit_pca(X, 3, scale=1 / 255)
    expected = (X / 255.0 - mean) @ components.T
    projected = project(X, 0.0, 1 / 255, mean, components)
    assert projected.dtype == np.float32
    np.testing.assert_allclose(projected, expected, rtol=1e-6, atol=1e-6)


def test_pca_split_features_are_centred_and_ordered_by_variance():
    digits = load_digits()
    X = digits.data.astype(np.float32)
    split = DataSplit(
        "d", X[:1000], digits.target[:1000], X[1000:], digits.target[1000:], (0.0, 16.0)
    )
    split = pca_split(split, 10)
    np.testing.assert_allclose(split.X_train.mean(axis=0), 0.0, atol=1e-4)
    assert np.all(np.diff(split.X_train.var(axis=0)) <= 1e-6)


DETERMINISM_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, numpy as np
    from sklearn.datasets import load_digits
    from robustkit_plugins.hinge import HingeNetwork
    from robustkit_plugins._numpy_net import threads_for_rows
    X, y = load_digits(return_X_y=True)
    X = np.repeat(X, 3, axis=0).astype(np.float32)  # 5,391 rows: two-thread inference too
    y = np.repeat(y, 3)
    model = HingeNetwork(pca=20, epochs=2, batch_size=64, random_state=0).fit(X, y)
    digest = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
    state = model.get_state()
    assert threads_for_rows(len(X)) == 2
    print(json.dumps({
        "components": digest(state["pca_components"]),
        "weights": digest(np.concatenate([state[k].ravel() for k in ("W1", "b1", "W2", "b2")])),
        "scores": digest(model.decision_function(X)),
    }))
    """
)


def test_pca_training_and_scores_are_bit_identical_for_any_blas_thread_count():
    """Subprocesses started with OPENBLAS_NUM_THREADS=1 and 2 agree to the bit."""
    digests = []
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        done = subprocess.run(
            [sys.executable, "-c", DETERMINISM_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.append(done.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1]


# ----------------------------------------------------------------------------- scale


def _digits(n: int = 600):
    X, y = load_digits(return_X_y=True)
    return X[:n].astype(np.float32), y[:n]


@pytest.mark.parametrize("cls", NETWORKS)
def test_scale_none_only_centres_and_feature_scales_each_column(cls):
    X, y = _digits()
    plain = cls(epochs=1, scale="none", random_state=0).fit(X, y).input_transform_
    assert float(plain.low) == 0.0 and float(plain.span) == 1.0
    np.testing.assert_allclose(plain.transform(X), X - X.mean(axis=0), atol=1e-4)

    per_feature = cls(epochs=1, scale="feature", random_state=0).fit(X, y).input_transform_
    span = X.max(axis=0) - X.min(axis=0)
    np.testing.assert_allclose(per_feature.low, X.min(axis=0))
    np.testing.assert_allclose(per_feature.span, np.where(span > 0, span, 1.0))
    Z = per_feature.transform(X) + per_feature.mean
    assert Z.min() >= -1e-6 and Z.max() <= 1 + 1e-6


@pytest.mark.parametrize("scale", ["global", "feature", "none"])
def test_every_scale_trains_saves_and_restores(scale):
    X, y = _digits()
    # Unscaled pixels 0-16 need a smaller lr than [0, 1] inputs.
    lr = 0.01 if scale == "none" else 0.1
    model = RBFNetwork(epochs=3, lr=lr, pca=16, scale=scale, random_state=0).fit(X, y)
    assert (model.predict(X) == y).mean() > 0.8
    restored = RBFNetwork(pca=16, scale=scale).set_state(model.get_state())
    np.testing.assert_array_equal(restored.decision_function(X), model.decision_function(X))


@pytest.mark.parametrize("scale", ["feature", "none"])
def test_input_gradient_through_each_scale_matches_finite_differences(scale):
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 255, size=(40, 6)) * np.array([1, 2, 0.5, 1, 3, 1])
    y = np.arange(len(X)) % 3
    # rbf: its scores are smooth (GELU, squared distances), so no kink spoils the check.
    model = RBFNetwork(hidden=8, epochs=2, lr=0.01, pca=4, scale=scale, dtype="float64")
    model.set_params(random_state=0).fit(X, y)
    weights = rng.normal(size=(len(X), 3))

    def weighted(points: np.ndarray) -> np.ndarray:
        return np.sum(model.decision_function(points) * weights, axis=1)

    numeric = np.empty_like(X)
    for j in range(X.shape[1]):
        step = np.zeros_like(X)
        step[:, j] = 1e-4
        numeric[:, j] = (weighted(X + step) - weighted(X - step)) / 2e-4
    analytic = model.decision_gradient(X, weights)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_an_unknown_scale_is_a_one_line_error():
    X, y = _digits(100)
    with pytest.raises(RobustkitError, match="scale must be one of global, feature, none"):
        HingeNetwork(scale="minmax").fit(X, y)


# ------------------------------------------------------------------- fast and chunked


@pytest.mark.parametrize("cls", NETWORKS)
def test_the_fast_input_path_gives_the_validated_paths_numbers(cls):
    X, y = _digits()
    model = cls(epochs=2, pca=20, random_state=0).fit(X, y)
    fast = model.decision_function(X)  # float32, C-contiguous: the fast path
    validated = model.decision_function(X.astype(np.float64).tolist())  # a list of lists
    np.testing.assert_array_equal(fast, validated)
    grad = np.ones_like(fast)
    np.testing.assert_array_equal(
        model.decision_gradient(X, grad), model.decision_gradient(X.astype(np.float64), grad)
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_the_fast_path_still_rejects_nan_and_inf(bad):
    X, y = _digits()
    model = HingeNetwork(epochs=1, pca=10, random_state=0).fit(X, y)
    X_bad = X.copy()
    X_bad[3, 5] = bad
    with pytest.raises(RobustkitError, match="X contains NaN or inf"):
        model.predict(X_bad)


def test_chunked_transform_matches_the_whole_array_transform(monkeypatch):
    X, _ = _digits()
    transform = InputTransform.fit(X, 12, "global", np.dtype(np.float32))
    monkeypatch.setattr(features, "CHUNK_ROWS", 50)
    chunked = transform.transform_chunked(X, np.empty((len(X), 12), np.float32))
    np.testing.assert_allclose(chunked, transform.transform(X), rtol=1e-6, atol=1e-5)


def test_models_saved_by_0_1_with_scalar_scaling_still_load():
    X, y = _digits()
    model = HingeNetwork(epochs=1, random_state=0).fit(X, y)
    state = model.get_state()
    state["input_low"], state["input_span"] = np.asarray(0.0), np.asarray(16.0)
    restored = HingeNetwork().set_state(state)
    assert restored.input_transform_.span.shape == ()


# ------------------------------------------------------------------------- threads


def test_thread_counts_come_from_the_shapes_only():
    assert threads_for_rows(10) == 1 and threads_for_rows(_numpy_net.MANY_ROWS) == 2
    assert threads_for_step(128, 128, 150) == 1
    assert threads_for_step(1024, 128, 150) == 2
    assert threads_for_step(1, 784, 150) == 1


@pytest.mark.parametrize("cls", NETWORKS)
def test_one_and_two_blas_threads_train_the_same_weights(cls, monkeypatch):
    """The SGD loop's GEMMs round the same on one and two threads (checked here on this
    machine's BLAS), so the thread choice changes speed, not results."""
    X, y = _digits()
    states = []
    for work in (10**12, 0):  # one thread, then two
        monkeypatch.setattr(_numpy_net, "TWO_THREAD_WORK", work)
        model = cls(epochs=2, batch_size=200, pca=32, random_state=0).fit(X, y)
        states.append(model.weights_)
    for key, weights in states[0].items():
        np.testing.assert_array_equal(weights, states[1][key], err_msg=key)


@pytest.mark.parametrize("cls", NETWORKS)
@pytest.mark.parametrize("pca", [None, 20])
def test_chunked_input_gradients_match_one_pass(cls, pca, monkeypatch):
    """loss_gradient and decision_gradient a chunk of rows at a time: the one-pass numbers
    (up to the GEMMs' rounding, which may change with the number of rows)."""
    X, y = _digits()
    model = cls(epochs=2, pca=pca, random_state=0).fit(X, y)
    weights = np.random.default_rng(0).normal(size=(len(X), 10)).astype(np.float32)
    whole = [*model.loss_gradient(X, y), model.decision_gradient(X, weights)]
    monkeypatch.setattr(_numpy_net, "EVAL_CHUNK", 64)
    chunked = [*model.loss_gradient(X, y), model.decision_gradient(X, weights)]
    for one_pass, by_chunk in zip(whole, chunked, strict=True):
        assert by_chunk.dtype == one_pass.dtype == np.float32
        np.testing.assert_allclose(by_chunk, one_pass, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(by_chunk == 0, one_pass == 0)  # same zero rows


@pytest.mark.parametrize("cls", NETWORKS)
def test_chunked_inference_matches_one_pass(cls, monkeypatch):
    X, y = _digits()
    model = cls(epochs=2, pca=20, reject=True, random_state=0)
    model.fit(np.vstack([X, X[:5] * 0 + 8]), np.concatenate([y, [-1] * 5]))
    whole = [model.decision_function(X), model.reject_score(X), model.predict(X)]
    monkeypatch.setattr(_numpy_net, "EVAL_CHUNK", 64)
    chunked = [model.decision_function(X), model.reject_score(X), model.predict(X)]
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(chunked[1], whole[1], rtol=1e-5, atol=1e-5)
    assert np.mean(chunked[2] == whole[2]) > 0.99
