"""The ``hinge`` model: input → ReLU hidden layer → linear scores, multiclass hinge loss.

The study's question 1 network (128 PCA inputs, 150 hidden units, 10 scores) trained by
minibatch SGD on L = Σ_{i≠y} max(0, s_i − s_y + 1). With ``reject=True`` the noise
class (``REJECT`` labels) is one extra output unit, trained as an ordinary class; its
score is ``reject_score``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustkit import hookimpl
from robustkit.certify import Affine, LinearHead, ReLU
from robustkit.interfaces import IBP_TRAINING, TRADES_TRAINING

from . import _blocked as blocked
from . import _numpy_net
from ._numpy_net import (
    FlatParameters,
    NumpyNetwork,
    Step,
    constants,
    he_normal,
    outer_product,
)


def hinge_loss(scores: np.ndarray, y_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample multiclass hinge loss Σ_{i≠y} max(0, s_i − s_y + 1) and dL/ds."""
    rows = np.arange(len(scores))
    margins = scores - scores[rows, y_index][:, None] + 1.0
    margins[rows, y_index] = 0.0
    loss = np.maximum(margins, 0.0).sum(axis=1)
    grad = (margins > 0).astype(scores.dtype)
    grad[rows, y_index] = -grad.sum(axis=1)
    return loss, grad


def hinge_ibp_loss(
    w: dict[str, np.ndarray],
    Z: np.ndarray,
    centre: np.ndarray,
    spread: np.ndarray,
    onehot: np.ndarray,
    kappa: float,
) -> tuple[float, dict[str, np.ndarray]]:
    """Mean of κ·hinge(clean) + (1 − κ)·Σ_{j≠y} max(0, 1 − m_j) and its weight gradients.

    m_j is the IBP lower bound of s_y − s_j over the box ``centre ± spread`` (network
    inputs), with the last layer folded into the margins (as ``robustkit.certify`` does).
    """
    W1, b1, W2, b2 = w["W1"], w["b1"], w["W2"], w["b2"]
    n = len(Z)
    y = onehot.argmax(axis=1)
    # clean part: the ordinary hinge loss
    pre = Z @ W1 + b1
    act = np.maximum(pre, 0.0)
    clean_loss, grad_scores = hinge_loss(act @ W2 + b2, y)
    grad_scores *= kappa
    # worst case: intervals through the hidden layer, margins folded into the last layer
    mu, rho = centre @ W1 + b1, spread @ np.abs(W1)
    low, high = mu - rho, mu + rho
    h_low, h_high = np.maximum(low, 0.0), np.maximum(high, 0.0)
    h_mid, h_half = (h_high + h_low) / 2, (h_high - h_low) / 2
    D = W2.T[y][:, None, :] - W2.T[None, :, :]  # (n, outputs, hidden)
    margins = (
        (D @ h_mid[:, :, None])[..., 0]
        + (b2[y][:, None] - b2)
        - (np.abs(D) @ h_half[:, :, None])[..., 0]
    )
    violated = (1.0 - margins > 0) & (onehot == 0)
    robust_loss = np.where(violated, 1.0 - margins, 0.0).sum(axis=1)
    g = -(1.0 - kappa) * violated  # dL/dm
    grad_mid = np.einsum("bo,boh->bh", g, D)
    grad_half = -np.einsum("bo,boh->bh", g, np.abs(D))
    grad_D = g[:, :, None] * (h_mid[:, None, :] - np.sign(D) * h_half[:, None, :])
    grad_W2 = -grad_D.sum(axis=0).T + (onehot.T @ grad_D.sum(axis=1)).T
    grad_b2 = -g.sum(axis=0) + onehot.T @ g.sum(axis=1)
    grad_high = (grad_mid + grad_half) / 2 * (high > 0)
    grad_low = (grad_mid - grad_half) / 2 * (low > 0)
    grad_mu, grad_rho = grad_high + grad_low, grad_high - grad_low
    grad_W1 = centre.T @ grad_mu + np.sign(W1) * (spread.T @ grad_rho)
    grad_b1 = grad_mu.sum(axis=0)
    # clean backward
    grad_W2 += act.T @ grad_scores
    grad_b2 += grad_scores.sum(axis=0)
    grad_hidden = (grad_scores @ W2.T) * (pre > 0)
    grad_W1 += Z.T @ grad_hidden
    grad_b1 += grad_hidden.sum(axis=0)
    loss = float(kappa * clean_loss.sum() + (1.0 - kappa) * robust_loss.sum()) / n
    grads = {"W1": grad_W1, "b1": grad_b1, "W2": grad_W2, "b2": grad_b2}
    return loss, {name: grad / n for name, grad in grads.items()}


class HingeNetwork(NumpyNetwork):
    """One-hidden-layer ReLU network with a multiclass hinge loss (the study's question 1).

    Raw inputs are scaled to [0, 1] by the training data's global min/max (``scale``:
    ``"global"``; ``"feature"`` per feature; ``"none"`` keeps them, e.g. for PCA features),
    centred and optionally reduced by a deterministic PCA (``pca`` components) inside the
    model, so input gradients reach the raw pixels. ``noise_std`` adds Gaussian noise (in
    [0, 1] units) to training inputs. It can also train on IBP worst-case margins
    (``fit(..., ibp=IBPTraining(...))``) and with a TRADES term (``fit(..., trades=...)``).
    """

    capabilities = NumpyNetwork.capabilities | {IBP_TRAINING, TRADES_TRAINING}

    def __init__(
        self,
        hidden: int = 150,
        lr: float = 0.1,
        epochs: int = 15,
        batch_size: int = 128,
        pca: int | None = None,
        noise_std: float = 0.0,
        reject: bool = False,
        random_state: Any = None,
        dtype: str = "float32",
        scale: str = "global",
    ) -> None:
        self.hidden = hidden
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.pca = pca
        self.noise_std = noise_std
        self.reject = reject
        self.random_state = random_state
        self.dtype = dtype
        self.scale = scale

    def _n_outputs(self, n_classes: int) -> int:
        return n_classes + 1 if self.reject else n_classes

    def _shapes(self, n_inputs: int, n_outputs: int) -> dict[str, tuple[int, ...]]:
        hidden = self.hidden
        return {
            "W1": (n_inputs, hidden),
            "b1": (hidden,),
            "W2": (hidden, n_outputs),
            "b2": (n_outputs,),
        }

    def _initialise(
        self, w: dict[str, np.ndarray], rng: np.random.Generator, Z: np.ndarray, y: np.ndarray
    ) -> None:
        """He-normal weights (ReLU hidden layer and linear scores), zero biases."""
        (n_inputs, hidden), n_outputs = w["W1"].shape, w["W2"].shape[1]
        w["W1"][...] = he_normal(rng, n_inputs, hidden, w["W1"].dtype)
        w["W2"][...] = he_normal(rng, hidden, n_outputs, w["W2"].dtype)

    def _forward(self, w: dict[str, np.ndarray], Z: np.ndarray) -> tuple[np.ndarray, Any]:
        pre = blocked.matmul(Z, w["W1"])
        pre += w["b1"]
        hidden = np.maximum(pre, 0.0)
        scores = hidden @ w["W2"]
        scores += w["b2"]
        return scores, pre

    def _output_loss(self, out: np.ndarray, y_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return hinge_loss(out, y_index)

    def _backward_input(
        self, w: dict[str, np.ndarray], cache: Any, grad_out: np.ndarray
    ) -> np.ndarray:
        grad_hidden = grad_out @ w["W2"].T
        grad_hidden *= cache > 0
        return blocked.matmul(grad_hidden, w["W1"].T)

    def _weight_gradients(
        self, w: dict[str, np.ndarray], Z: np.ndarray, cache: Any, grad_out: np.ndarray
    ) -> dict[str, np.ndarray]:
        """d(Σ grad_out·scores)/d(W1, b1, W2, b2) (``cache``: the hidden pre-activations)."""
        active = cache > 0
        grad_hidden = (grad_out @ w["W2"].T) * active
        return {
            "W1": Z.T @ grad_hidden,
            "b1": grad_hidden.sum(axis=0),
            "W2": (cache * active).T @ grad_out,
            "b2": grad_out.sum(axis=0),
        }

    def _targets(self, y_index: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """One-hot rows over every output unit (the noise unit included)."""
        return np.eye(self._n_outputs(len(self.classes_)), dtype=dtype)[y_index]

    def _predicted_index(self, out: np.ndarray) -> np.ndarray:
        return np.argmax(out, axis=1)

    def _class_scores(self, out: np.ndarray) -> np.ndarray:
        return out[:, : len(self.classes_)]

    def _reject_scores(self, out: np.ndarray) -> np.ndarray | None:
        return out[:, len(self.classes_)].copy() if self.reject else None

    def _output_grad(self, grad_scores: np.ndarray, grad_reject: np.ndarray | None) -> np.ndarray:
        if not self.reject:
            return grad_scores
        reject_column = np.zeros((len(grad_scores), 1), dtype=grad_scores.dtype)
        if grad_reject is not None:
            reject_column[:, 0] = grad_reject
        return np.hstack([grad_scores, reject_column])

    def _certification_layers(self, w: dict[str, np.ndarray]) -> list[Any]:
        return [
            Affine(w["W1"], w["b1"]),
            ReLU(),
            Affine(w["W2"], w["b2"]),
            LinearHead(reject=bool(self.reject)),
        ]

    def _make_ibp_step(self, params: FlatParameters, lr: float, kappa: float) -> Step:
        """An SGD step on ``hinge_ibp_loss`` (IBP training, Gowal et al. 2018)."""

        def step(batch: tuple[np.ndarray, np.ndarray, np.ndarray], onehot: np.ndarray) -> None:
            _, grads = hinge_ibp_loss(params.w, *batch, onehot, kappa)
            for name, grad in grads.items():
                params.w[name] -= (lr * grad).astype(params.w[name].dtype)

        return step

    def _make_step(self, params: FlatParameters, batch: int, lr: float) -> Step:
        """One SGD step on a batch of one-hot targets, with every temporary preallocated.

        Inputs and hidden units carry a trailing 1, so each layer with its bias is one
        GEMM forwards and one backwards. The ReLU mask is computed once and serves both
        the forward (act = pre · mask, faster than ``maximum``) and the backward pass.
        Gradients are pre-scaled by −lr/batch where they start (dL/ds), so the update of
        all parameters is a single ``values += grads``. Rows with a satisfied hinge loss
        have no gradient: once at most ``SPARSE_ROWS`` of the batch has one (most of
        training: 20–32 % of the rows at the end), only those rows go through the
        backward GEMMs, and a batch without one leaves the weights as they are.
        """
        W1b, gW1b = params.with_bias("W1", "b1")
        W2b, gW2b = params.with_bias("W2", "b2")
        values, grads = params.values, params.grads
        dtype = values.dtype
        hidden, n_outputs = params.w["W2"].shape
        pre = np.empty((batch, hidden), dtype)
        active = np.empty((batch, hidden), dtype)
        act_ones = np.ones((batch, hidden + 1), dtype)
        act = act_ones[:, :hidden]
        grad_hidden = np.empty((batch, hidden), dtype)
        scores = np.empty((batch, n_outputs), dtype)
        margins = np.empty((batch, n_outputs), dtype)
        grad_scores = np.empty((batch, n_outputs), dtype)
        correct = np.empty(batch, dtype)
        correct_col = correct.reshape(batch, 1)
        count = np.empty((batch, 1), dtype)
        count_row, ones = count.reshape(batch), np.ones(n_outputs, dtype)
        live = np.empty(batch, bool)
        # the live rows, gathered (the ones column of act_ones comes along)
        live_x = np.empty((batch, W1b.shape[0]), dtype)
        live_act, live_active = np.empty((batch, hidden + 1), dtype), np.empty_like(active)
        live_scores = np.empty_like(grad_scores)
        sparse_rows = _numpy_net.SPARSE_ROWS * batch
        W2_T = params.w["W2"].T
        scale, zero, minus_one, one = constants(dtype, -lr / batch, 0, -1, 1)
        matmul, subtract, multiply = np.matmul, np.subtract, np.multiply
        greater, vecdot, add, take = np.greater, np.vecdot, np.add, np.take
        flatnonzero = np.flatnonzero
        outer = outer_product(batch)

        def backward(x, act_ones, active, grad_scores, grad_hidden) -> None:
            outer(act_ones.T, grad_scores, gW2b)
            matmul(grad_scores, W2_T, grad_hidden)
            multiply(grad_hidden, active, grad_hidden)
            outer(x.T, grad_hidden, gW1b)
            add(values, grads, values)

        def step(x: np.ndarray, onehot: np.ndarray) -> None:
            # forward: pre = [x 1] W1b, act = relu(pre), scores = [act 1] W2b
            matmul(x, W1b, pre)
            greater(pre, zero, active)
            multiply(pre, active, act)
            matmul(act_ones, W2b, scores)
            # dL/ds: 1 where s_i − s_y + 1 > 0 (i ≠ y), minus their count at y
            vecdot(scores, onehot, correct)
            subtract(scores, correct_col, margins)
            greater(margins, minus_one, grad_scores)  # also 1 at y itself (margin 0)
            matmul(grad_scores, ones, count_row)  # row sums (a GEMV: 3x add.reduce's speed)
            multiply(onehot, count, margins)
            subtract(grad_scores, margins, grad_scores)
            multiply(grad_scores, scale, grad_scores)
            greater(count_row, one, live)  # a margin violated: the row has a gradient
            rows = flatnonzero(live)
            n_live = len(rows)
            if n_live > sparse_rows:
                backward(x, act_ones, active, grad_scores, grad_hidden)
            elif n_live:
                backward(
                    take(x, rows, 0, live_x[:n_live], "clip"),
                    take(act_ones, rows, 0, live_act[:n_live], "clip"),
                    take(active, rows, 0, live_active[:n_live], "clip"),
                    take(grad_scores, rows, 0, live_scores[:n_live], "clip"),
                    grad_hidden[:n_live],
                )

        return step


@hookimpl
def register_models(register):
    """Register the ``hinge`` model."""
    register("hinge", HingeNetwork)
