"""Finite-difference checks of every analytic gradient of the numpy networks (float64).

The SGD step's weight, bias and centre gradients are read off one real step: with
learning rate ``lr`` the step moves the flat parameters by −lr·∇(mean batch loss).
Input gradients (``loss_gradient``, ``decision_gradient``) are checked w.r.t. the raw
input, through the PCA projection and the [0, 1] scaling, with and without rejection.
Test points are checked to lie away from the hinge, ReLU and λ kinks.
"""

import numpy as np
import pytest
from robustkit_plugins import _numpy_net, rbf
from robustkit_plugins._numpy_net import FlatParameters
from robustkit_plugins.hinge import HingeNetwork
from robustkit_plugins.rbf import RBFNetwork, gelu, gelu_derivative

from robustkit import REJECT

N_CLASSES = 3
KINK_MARGIN = 1e-3  # minimal distance of every kink argument from its kink


def central_difference(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """∂f/∂x by central differences, for a scalar function of a flat vector."""
    grad = np.empty_like(x)
    for i in range(x.size):
        step = np.zeros_like(x)
        step[i] = h
        grad[i] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


def per_sample_difference(f, X: np.ndarray, h: float) -> np.ndarray:
    """∂f_i/∂X_i for a per-sample function f: (n, d) → (n,), one column at a time."""
    grad = np.empty_like(X)
    for j in range(X.shape[1]):
        step = np.zeros_like(X)
        step[:, j] = h
        grad[:, j] = (f(X + step) - f(X - step)) / (2 * h)
    return grad


def kink_distance(model, w: dict, Z: np.ndarray, y_index: np.ndarray) -> float:
    """How far the batch is from any kink of the loss (ReLU, hinge margin, λ)."""
    out, cache = model._forward(w, Z)
    if isinstance(model, HingeNetwork):
        rows = np.arange(len(out))
        margins = out - out[rows, y_index][:, None] + 1.0
        margins[rows, y_index] = np.inf
        return float(min(np.abs(cache).min(), np.abs(margins).min()))
    return float(np.abs(out - model.lam).min())


# ------------------------------------------------------------------------------ GELU


def test_gelu_derivative_matches_finite_differences():
    """GELU's analytic derivative agrees with central differences over a wide range."""
    x = np.linspace(-6.0, 6.0, 241)
    numeric = (gelu(x + 1e-6) - gelu(x - 1e-6)) / 2e-6
    np.testing.assert_allclose(gelu_derivative(x), numeric, rtol=1e-7, atol=1e-9)


# -------------------------------------------------------------------- the SGD step


def _network(kind: str, reject: bool):
    if kind == "hinge":
        model = HingeNetwork(hidden=7, reject=reject, dtype="float64")
    else:
        model = RBFNetwork(hidden=7, lam=4.0, reject=reject, dtype="float64")
    model.classes_ = np.arange(N_CLASSES)
    return model


@pytest.mark.parametrize("kind", ["hinge", "rbf"])
@pytest.mark.parametrize("reject", [False, True])
@pytest.mark.parametrize("batch", [1, 6])
def test_sgd_step_moves_along_the_mean_loss_gradient(kind, reject, batch):
    """One SGD step changes W1, b1, W2/b2 or the centres by −lr · ∇ mean batch loss."""
    model = _network(kind, reject)
    rng = np.random.default_rng(batch + 10 * reject)
    n_inputs = 5
    Z = rng.normal(size=(batch, n_inputs))
    y_index = rng.integers(0, N_CLASSES, size=batch)
    if reject:
        y_index[0] = N_CLASSES  # a REJECT sample
    flat = FlatParameters(model._shapes(n_inputs, model._n_outputs(N_CLASSES)), np.dtype("f8"))
    flat.values[:] = rng.normal(scale=0.7, size=flat.values.size)
    assert kink_distance(model, flat.w, Z, y_index) > KINK_MARGIN

    theta = flat.values.copy()
    lr = 1e-3
    Z_ones = np.hstack([Z, np.ones((batch, 1))])  # the step's inputs carry a trailing 1
    model._make_step(flat, batch, lr)(Z_ones, model._targets(y_index, np.dtype("f8")))
    analytic = (theta - flat.values) / lr

    def mean_loss(values: np.ndarray) -> float:
        flat.values[:] = values
        out, _ = model._forward(flat.w, Z)
        return float(model._output_loss(out, y_index)[0].mean())

    numeric = central_difference(mean_loss, theta)
    flat.values[:] = theta
    for name, view in flat.w.items():  # every parameter block, named in a failure
        start = view.ctypes.data - flat.values.ctypes.data
        part = slice(start // 8, start // 8 + view.size)
        np.testing.assert_allclose(
            analytic[part], numeric[part], rtol=1e-5, atol=1e-7, err_msg=f"gradient of {name}"
        )


def _hinge_batch_with_satisfied_rows(batch: int, satisfied: int):
    """A hinge network, its parameters and a batch whose first ``satisfied`` rows have a
    zero loss (labelled with their top class, margins > 1) and the rest a positive one."""
    model = _network("hinge", False)
    rng = np.random.default_rng(3)
    flat = FlatParameters(model._shapes(5, N_CLASSES), np.dtype("f8"))
    flat.values[:] = rng.normal(scale=2.0, size=flat.values.size)
    pool = rng.normal(size=(200, 5))
    scores = np.sort(model._forward(flat.w, pool)[0], axis=1)
    wide = scores[:, -1] - scores[:, -2] > 1.01  # its top class wins by a margin > 1
    Z = np.vstack([pool[wide][:satisfied], pool[~wide][: batch - satisfied]])
    scores = model._forward(flat.w, Z)[0]
    ranked = np.argsort(-scores, axis=1)
    y_index = ranked[:, -1].copy()  # the lowest score: a violated margin
    y_index[:satisfied] = ranked[:satisfied, 0]
    loss = model._output_loss(scores, y_index)[0]
    assert np.all(loss[:satisfied] == 0) and np.all(loss[satisfied:] > 0)
    assert kink_distance(model, flat.w, Z, y_index) > KINK_MARGIN
    return model, flat, Z, y_index


@pytest.mark.parametrize("satisfied", [0, 5, 8])
def test_hinge_step_on_the_live_rows_gives_the_dense_step(satisfied, monkeypatch):
    """Rows with a satisfied hinge loss skip the backward GEMMs: the step still moves by
    −lr · ∇ mean batch loss (finite differences), to within 1e-12 of the dense step,
    and a batch without a live row leaves the weights as they were."""
    model, flat, Z, y_index = _hinge_batch_with_satisfied_rows(8, satisfied)
    theta, lr = flat.values.copy(), 1e-3
    Z_ones = np.hstack([Z, np.ones((8, 1))])
    targets = model._targets(y_index, np.dtype("f8"))
    stepped = {}
    for name, sparse_rows in (("dense", -1.0), ("sparse", 1.0)):
        monkeypatch.setattr(_numpy_net, "SPARSE_ROWS", sparse_rows)
        flat.values[:] = theta
        model._make_step(flat, 8, lr)(Z_ones, targets)
        stepped[name] = flat.values.copy()
    np.testing.assert_allclose(stepped["sparse"], stepped["dense"], rtol=1e-12, atol=1e-15)

    def mean_loss(values: np.ndarray) -> float:
        flat.values[:] = values
        out, _ = model._forward(flat.w, Z)
        return float(model._output_loss(out, y_index)[0].mean())

    numeric = central_difference(mean_loss, theta)
    np.testing.assert_allclose((theta - stepped["sparse"]) / lr, numeric, rtol=1e-5, atol=1e-7)
    if satisfied == 8:
        np.testing.assert_array_equal(stepped["sparse"], theta)


def test_rbf_step_on_row_blocks_gives_the_one_block_numbers(monkeypatch):
    """The rbf step's elementwise passes on row blocks (here 3 blocks of 2 rows, 1 of 1)
    change speed, not one bit of the weights."""
    model = _network("rbf", False)
    rng = np.random.default_rng(5)
    Z_ones = np.hstack([rng.normal(size=(7, 5)), np.ones((7, 1))])
    targets = model._targets(rng.integers(0, N_CLASSES, size=7), np.dtype("f8"))
    shapes = model._shapes(5, N_CLASSES)
    start = rng.normal(scale=0.7, size=sum(int(np.prod(s)) for s in shapes.values()))
    stepped = []
    for rows in (10**6, 2):
        monkeypatch.setattr(rbf, "BLOCK_ROWS", rows)
        flat = FlatParameters(shapes, np.dtype("f8"))
        flat.values[:] = start
        model._make_step(flat, 7, 0.1)(Z_ones, targets)
        stepped.append(flat.values.copy())
    np.testing.assert_array_equal(stepped[0], stepped[1])
    assert not np.array_equal(stepped[0], start)


# ------------------------------------------------------------------ input gradients


def _raw_data(rng: np.random.Generator, n: int = 40, d: int = 6):
    """Raw inputs on a 0–255 scale with labels from a linear rule."""
    X = rng.uniform(0.0, 255.0, size=(n, d))
    y = np.argmax(X[:, :N_CLASSES] + rng.normal(scale=30.0, size=(n, N_CLASSES)), axis=1)
    return X, y


def _fitted(kind: str, reject: bool, pca):
    rng = np.random.default_rng(3)
    X, y = _raw_data(rng)
    if reject:
        noise = rng.uniform(0.0, 255.0, size=(8, X.shape[1]))
        X, y = np.vstack([X, noise]), np.concatenate([y, np.full(8, REJECT)])
    cls = HingeNetwork if kind == "hinge" else RBFNetwork
    params = {"lam": 4.0} if kind == "rbf" else {}
    model = cls(
        hidden=9,
        epochs=3,
        batch_size=8,
        pca=pca,
        reject=reject,
        dtype="float64",
        random_state=0,
        **params,
    )
    return model.fit(X, y), X, y


def _far_from_kinks(model, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows of X whose loss has no kink within KINK_MARGIN."""
    Z = model.input_transform_.transform(X)
    keep = [
        i
        for i in range(len(X))
        if kink_distance(
            model, model.weights_, Z[i : i + 1], model._encode(y[i : i + 1], model.reject)
        )
        > KINK_MARGIN
    ]
    assert len(keep) >= 5, "too few test points away from kinks"
    return np.array(keep)


@pytest.mark.parametrize("kind", ["hinge", "rbf"])
@pytest.mark.parametrize("reject", [False, True])
@pytest.mark.parametrize("pca", [None, 4])
def test_loss_gradient_reaches_the_raw_input(kind, reject, pca):
    """loss_gradient's gradient w.r.t. raw pixels matches finite differences."""
    model, X, y = _fitted(kind, reject, pca)
    rows = _far_from_kinks(model, X, y)
    if reject:
        assert np.any(y[rows] == REJECT), "a REJECT-labelled sample must be checked"
    X, y = X[rows], y[rows]
    loss, grad = model.loss_gradient(X, y)
    assert loss.shape == (len(X),) and grad.shape == X.shape
    numeric = per_sample_difference(lambda V: model.loss_gradient(V, y)[0], X, h=1e-4)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-9)
    assert np.abs(grad).max() > 1e-6  # the check is not vacuous


@pytest.mark.parametrize("kind", ["hinge", "rbf"])
@pytest.mark.parametrize("reject", [False, True])
@pytest.mark.parametrize("pca", [None, 4])
def test_decision_gradient_is_the_vjp_of_scores_and_reject_score(kind, reject, pca):
    """decision_gradient = d(Σ g·scores + g_r·reject_score)/dX, through PCA and scaling."""
    model, X, y = _fitted(kind, reject, pca)
    X = X[_far_from_kinks(model, X, y)]
    rng = np.random.default_rng(7)
    weights = rng.normal(size=(len(X), N_CLASSES))
    reject_weights = rng.normal(size=len(X)) if reject else None

    def weighted(V: np.ndarray) -> np.ndarray:
        value = (model.decision_function(V) * weights).sum(axis=1)
        if reject:
            value = value + model.reject_score(V) * reject_weights
        return value

    analytic = model.decision_gradient(X, weights, reject_weights)
    numeric = per_sample_difference(weighted, X, h=1e-4)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-9)
    assert np.abs(analytic).max() > 1e-6


def test_hinge_reject_gradient_changes_with_grad_reject():
    """For hinge, grad_reject weights the noise unit's score: it changes the VJP."""
    model, X, y = _fitted("hinge", True, None)
    X = X[_far_from_kinks(model, X, y)]
    weights = np.zeros((len(X), N_CLASSES))
    only_reject = model.decision_gradient(X, weights, np.ones(len(X)))
    numeric = per_sample_difference(model.reject_score, X, h=1e-4)
    np.testing.assert_allclose(only_reject, numeric, rtol=1e-5, atol=1e-9)
    assert np.abs(only_reject).max() > 0


@pytest.mark.parametrize("kind", ["hinge", "rbf"])
def test_sparse_input_backward_matches_finite_differences_and_the_dense_pass(kind, monkeypatch):
    """Rows with a zero gradient skip the PCA GEMM back to the raw input: the rows that
    have one still match finite differences, the others are exactly zero, and the
    result is the dense pass's."""
    model, X, y = _fitted(kind, False, 4)
    rows = _far_from_kinks(model, X, y)
    X, y = X[rows], y[rows]
    monkeypatch.setattr(_numpy_net, "SPARSE_ROWS", -1.0)  # always the dense pass
    dense = model.loss_gradient(X, y)[1]
    monkeypatch.setattr(_numpy_net, "SPARSE_ROWS", 1.0)  # always the row-sparse pass
    loss, sparse = model.loss_gradient(X, y)
    np.testing.assert_allclose(sparse, dense, rtol=1e-12, atol=0)
    numeric = per_sample_difference(lambda V: model.loss_gradient(V, y)[0], X, h=1e-4)
    np.testing.assert_allclose(sparse, numeric, rtol=1e-5, atol=1e-9)
    if kind == "hinge":  # a satisfied hinge loss: zero rows, and at least one live row
        assert np.any(loss == 0) and np.any(loss > 0)
        np.testing.assert_array_equal(sparse[loss == 0], 0.0)


def test_sparse_input_backward_of_all_zero_and_mixed_rows():
    transform = _numpy_net.InputTransform(
        np.zeros(()), np.ones(()), np.zeros(5), np.linalg.qr(np.ones((5, 3)) + np.eye(5, 3))[0].T
    )
    grad = np.zeros((8, 3))
    np.testing.assert_array_equal(transform.backward(grad), np.zeros((8, 5)))
    grad[[1, 6]] = [[1.0, -2.0, 0.5], [0.0, 3.0, 0.0]]
    expected = grad @ transform.affine()[0].T
    np.testing.assert_allclose(transform.backward(grad), expected, rtol=1e-12)
