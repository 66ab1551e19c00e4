"""The ``rbf`` model: input → GELU hidden layer → squared distances to learned centres.

The study's question 2 network: d_i = ‖h − c_i‖², loss d_y + Σ_{i≠y} max(0, λ − d_i),
prediction argmin d. With ``reject=True``, ``REJECT``-labelled noise samples are trained
with Σ_j max(0, λ − d_j) (pushed away from every centre) and an input is rejected when
every distance exceeds ``reject_threshold`` (λ by default).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from robustkit import hookimpl
from robustkit.certify import GELU, GELU_ARGMIN, Affine, RBFHead
from robustkit.interfaces import IBP_TRAINING, TRADES_TRAINING

from . import _blocked as blocked
from ._numpy_net import (
    FlatParameters,
    NumpyNetwork,
    Step,
    check_real,
    constants,
    he_normal,
    outer_product,
)

#: Rows per block of the SGD step's elementwise passes (300 kB of float32 at 150 hidden
#: units, so a block's passes stay in the L2 cache: ~15 % faster at batch 1024).
BLOCK_ROWS = 512
#: √(2/π) and the cubic coefficient of GELU's tanh approximation.
GELU_C = math.sqrt(2.0 / math.pi)
GELU_K = 0.044715


def _gelu_gate(x: np.ndarray) -> np.ndarray:
    """S = (1 + tanh(√(2/π)(x + 0.044715 x³))) / 2, in place on one new array.

    Written with products rather than ``x**3``: numpy's float32 power is ~100× slower.
    """
    gate = x * x
    gate *= GELU_K
    gate += 1.0
    gate *= x
    gate *= GELU_C
    np.tanh(gate, out=gate)
    gate += 1.0
    gate *= 0.5
    return gate


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))."""
    out = _gelu_gate(x)
    out *= x
    return out


def gelu_derivative(x: np.ndarray, gate: np.ndarray | None = None) -> np.ndarray:
    """d gelu / dx = S + x S (1 − S) 2√(2/π)(1 + 3·0.044715 x²), S = (1 + tanh(u)) / 2
    (``gate``: S where the forward pass kept it, which saves its tanh)."""
    s = _gelu_gate(x) if gate is None else gate
    slope = x * x
    slope *= 3.0 * GELU_K
    slope += 1.0
    slope *= x
    slope *= 2.0 * GELU_C
    slope *= s
    slope *= 1.0 - s
    slope += s
    return slope


def squared_distances(hidden: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """‖h − c_i‖² for every row and centre, as ‖h‖² − 2 h·cᵀ + ‖c‖² (one matmul)."""
    dist = hidden @ centres.T
    dist *= -2.0
    dist += np.vecdot(hidden, hidden)[:, None]
    dist += np.vecdot(centres, centres)
    return dist


def rbf_loss(dist: np.ndarray, y_index: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample loss d_y + Σ_{i≠y} max(0, λ − d_i) and dL/dd.

    ``y_index == n_centres`` marks a REJECT sample, whose loss is Σ_j max(0, λ − d_j).
    """
    k = dist.shape[1]
    onehot = np.eye(k + 1, dtype=dist.dtype)[y_index, :k]
    others = 1.0 - onehot
    loss = (dist * onehot).sum(axis=1) + (np.maximum(lam - dist, 0.0) * others).sum(axis=1)
    grad = onehot - (dist < lam) * others
    return loss, grad


def rbf_ibp_loss(
    w: dict[str, np.ndarray],
    Z: np.ndarray,
    centre: np.ndarray,
    spread: np.ndarray,
    onehot: np.ndarray,
    lam: float,
    kappa: float,
) -> tuple[float, dict[str, np.ndarray]]:
    """Mean of κ·(clean rbf loss) + (1 − κ)·(the loss on the IBP worst-case distances)
    and its weight gradients (IBP training, Gowal et al. 2018).

    The worst case of d_y + Σ_{i≠y} max(0, λ − d_i) over the box ``centre ± spread``
    (network inputs) takes the upper bound of d_y and the lower bounds of the d_i, from
    the hidden layer's sound GELU interval, as ``robustkit.certify`` bounds them. A row of
    ``onehot`` that is all zeros is a REJECT sample (every distance pushed beyond λ).
    """
    W1, b1, C = w["W1"], w["b1"], w["centres"]
    n = len(Z)
    others = 1.0 - onehot
    # clean part: the ordinary rbf loss
    pre = Z @ W1 + b1
    act = gelu(pre)
    dist = squared_distances(act, C)
    clean_loss = (dist * onehot).sum(axis=1) + (np.maximum(lam - dist, 0.0) * others).sum(axis=1)
    grad_dist = kappa * (onehot - (dist < lam) * others)
    # worst case: the hidden layer's interval [h_low, h_high] through the sound GELU bounds
    mu, rho = centre @ W1 + b1, spread @ np.abs(W1)
    low, high = mu - rho, mu + rho
    at_low, at_high = gelu(low), gelu(high)
    contains_min = (low <= GELU_ARGMIN) & (high >= GELU_ARGMIN)
    low_is_min = at_low <= at_high
    h_low = np.where(
        contains_min, gelu(np.full(1, GELU_ARGMIN, Z.dtype))[0], np.minimum(at_low, at_high)
    )
    h_high = np.maximum(at_low, at_high)
    # per coordinate, (h − c)² over the box mid ± half: |mid − c| ∓ half is the distance
    # to its nearest (clipped at 0) and farthest point
    mid, half = (h_high + h_low) / 2, (h_high - h_low) / 2
    diff = mid[:, None, :] - C[None]  # (n, k, hidden)
    side = np.sign(diff)
    gap = np.abs(diff)
    far = gap + half[:, None, :]
    near = np.maximum(gap - half[:, None, :], 0.0)
    d_high, d_low = np.vecdot(far, far), np.vecdot(near, near)
    robust_loss = (d_high * onehot).sum(axis=1) + (np.maximum(lam - d_low, 0.0) * others).sum(
        axis=1
    )
    g_high = (1.0 - kappa) * onehot  # dL/d d_high
    g_low = -(1.0 - kappa) * others * (d_low < lam)  # dL/d d_low
    # d d/d mid = 2 (far or near)·sign(mid − c); d d/d half = 2 far or −2 near
    far *= g_high[..., None]
    near *= g_low[..., None]
    to_half = (far - near).sum(axis=1)
    far += near
    far *= side
    grad_C = -2.0 * far.sum(axis=0)
    to_mid = far.sum(axis=1)
    grad_h_low, grad_h_high = to_mid - to_half, to_mid + to_half  # (2 d/d mid ± 2 d/d half)/2
    grad_h_low = np.where(contains_min, 0.0, grad_h_low)
    grad_low = gelu_derivative(low) * np.where(low_is_min, grad_h_low, grad_h_high)
    grad_high = gelu_derivative(high) * np.where(low_is_min, grad_h_high, grad_h_low)
    grad_mu, grad_rho = grad_low + grad_high, grad_high - grad_low
    grad_W1 = centre.T @ grad_mu + np.sign(W1) * (spread.T @ grad_rho)
    grad_b1 = grad_mu.sum(axis=0)
    # clean backward: d d_i / d h = 2 (h − c_i), d d_i / d c_i = −2 (h − c_i)
    grad_act = 2.0 * (act * grad_dist.sum(axis=1, keepdims=True) - grad_dist @ C)
    grad_C += 2.0 * (C * grad_dist.sum(axis=0)[:, None] - grad_dist.T @ act)
    grad_pre = grad_act * gelu_derivative(pre)
    grad_W1 += Z.T @ grad_pre
    grad_b1 += grad_pre.sum(axis=0)
    loss = float(kappa * clean_loss.sum() + (1.0 - kappa) * robust_loss.sum()) / n
    grads = {"W1": grad_W1, "b1": grad_b1, "centres": grad_C}
    return loss, {name: grad / n for name, grad in grads.items()}


class RBFNetwork(NumpyNetwork):
    """One-hidden-layer GELU network with an RBF head of learned centres (question 2).

    Raw inputs are scaled to [0, 1] by the training data's global min/max (``scale``:
    ``"global"``; ``"feature"`` per feature; ``"none"`` keeps them, e.g. for PCA features),
    centred and optionally reduced by a deterministic PCA (``pca``) inside the model.
    ``lam`` is the margin λ of the loss;
    ``reject_threshold`` (default λ) the distance beyond which ``reject=True`` rejects.
    λ = 30 by default: best on digits (30-60); on Fashion-MNIST any λ from 1 to 100 gave
    the same accuracy, as the network rescales its hidden layer to match λ. It can also
    train on IBP worst-case distances (``fit(..., ibp=IBPTraining(...))``).
    """

    capabilities = NumpyNetwork.capabilities | {IBP_TRAINING, TRADES_TRAINING}

    def __init__(
        self,
        hidden: int = 150,
        lr: float = 0.1,
        epochs: int = 10,
        batch_size: int = 128,
        pca: int | None = None,
        noise_std: float = 0.0,
        lam: float = 30.0,
        reject: bool = False,
        reject_threshold: float | None = None,
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
        self.lam = lam
        self.reject = reject
        self.reject_threshold = reject_threshold
        self.random_state = random_state
        self.dtype = dtype
        self.scale = scale

    def _check_head_params(self) -> dict[str, Any]:
        params = {"lam": check_real("lam", self.lam, positive=True)}
        if self.reject_threshold is not None:
            params["reject_threshold"] = check_real(
                "reject_threshold", self.reject_threshold, positive=False
            )
        return params

    @property
    def _threshold(self) -> float:
        return float(self.lam if self.reject_threshold is None else self.reject_threshold)

    def _n_outputs(self, n_classes: int) -> int:
        return n_classes

    def _shapes(self, n_inputs: int, n_outputs: int) -> dict[str, tuple[int, ...]]:
        hidden = self.hidden
        return {"W1": (n_inputs, hidden), "b1": (hidden,), "centres": (n_outputs, hidden)}

    def _initialise(
        self, w: dict[str, np.ndarray], rng: np.random.Generator, Z: np.ndarray, y: np.ndarray
    ) -> None:
        """He-normal W1, zero b1, centres at the class means of the initial hidden layer."""
        n_inputs, hidden = w["W1"].shape
        w["W1"][...] = he_normal(rng, n_inputs, hidden, w["W1"].dtype)
        act = gelu(Z @ w["W1"])
        for i in range(len(w["centres"])):
            members = act[y == i]
            w["centres"][i] = members.mean(axis=0) if len(members) else act[rng.integers(len(act))]

    def _forward(self, w: dict[str, np.ndarray], Z: np.ndarray) -> tuple[np.ndarray, Any]:
        pre = blocked.matmul(Z, w["W1"])
        pre += w["b1"]
        gate = _gelu_gate(pre)
        act = np.multiply(gate, pre)  # gelu(pre), keeping the gate for the backward pass
        return squared_distances(act, w["centres"]), (pre, act, gate)

    def _output_loss(self, out: np.ndarray, y_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return rbf_loss(out, y_index, float(self.lam))

    def _backward_input(
        self, w: dict[str, np.ndarray], cache: Any, grad_out: np.ndarray
    ) -> np.ndarray:
        return blocked.matmul(self._pre_activation_grad(w, cache, grad_out), w["W1"].T)

    @staticmethod
    def _pre_activation_grad(
        w: dict[str, np.ndarray], cache: Any, grad_out: np.ndarray
    ) -> np.ndarray:
        """d(Σ grad_out·distances)/d pre = 2 (h Σ_i G_i − G C) · GELU'(pre), d d_i/dh =
        2 (h − c_i); the factor 2 goes on G (exact), which saves a pass."""
        pre, act, gate = cache
        grad_out = grad_out * 2.0
        grad_act = act * grad_out.sum(axis=1, keepdims=True)
        grad_act -= grad_out @ w["centres"]
        grad_act *= gelu_derivative(pre, gate)
        return grad_act

    def _weight_gradients(
        self, w: dict[str, np.ndarray], Z: np.ndarray, cache: Any, grad_out: np.ndarray
    ) -> dict[str, np.ndarray]:
        """d(Σ grad_out·distances)/d(W1, b1, centres): d d_i/dh = 2(h − c_i) = −d d_i/dc_i."""
        grad_act = self._pre_activation_grad(w, cache, grad_out)
        act = cache[1]
        centres = w["centres"] * grad_out.sum(axis=0)[:, None] - grad_out.T @ act
        return {"W1": Z.T @ grad_act, "b1": grad_act.sum(axis=0), "centres": 2.0 * centres}

    def _targets(self, y_index: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """[one-hot | 1 − one-hot] rows; a REJECT sample's one-hot part is all zeros."""
        k = len(self.classes_)
        onehot = np.eye(k + 1, dtype=dtype)[y_index, :k]
        return np.hstack([onehot, 1.0 - onehot])

    def _predicted_index(self, out: np.ndarray) -> np.ndarray:
        index = np.argmin(out, axis=1)
        if self.reject:
            index[out.min(axis=1) > self._threshold] = out.shape[1]
        return index

    def _class_scores(self, out: np.ndarray) -> np.ndarray:
        return -out

    def _reject_scores(self, out: np.ndarray) -> np.ndarray | None:
        return np.full(len(out), -self._threshold, dtype=out.dtype) if self.reject else None

    def _output_grad(self, grad_scores: np.ndarray, grad_reject: np.ndarray | None) -> np.ndarray:
        return -grad_scores  # scores are −d; the reject score is a constant

    def _certification_layers(self, w: dict[str, np.ndarray]) -> list[Any]:
        reject_score = -self._threshold if self.reject else None
        return [Affine(w["W1"], w["b1"]), GELU(), RBFHead(w["centres"], reject_score)]

    def _make_ibp_step(self, params: FlatParameters, lr: float, kappa: float) -> Step:
        """An SGD step on ``rbf_ibp_loss`` (IBP training, Gowal et al. 2018)."""
        k, lam = len(params.w["centres"]), float(self.lam)

        def step(batch: tuple[np.ndarray, np.ndarray, np.ndarray], targets: np.ndarray) -> None:
            _, grads = rbf_ibp_loss(params.w, *batch, targets[:, :k], lam, kappa)
            for name, grad in grads.items():
                params.w[name] -= (lr * grad).astype(params.w[name].dtype)

        return step

    def _make_step(self, params: FlatParameters, batch: int, lr: float) -> Step:
        """One SGD step on [one-hot | 1 − one-hot] targets, every temporary preallocated.

        The step keeps the hidden layer doubled, a = 2h = pre·(1 + tanh u): one pass fewer
        than h = pre·(1 + tanh u)/2, and 2·GELU' = (1 + t) + a(1 − t)(c + 3ck·pre²)
        reuses 1 + t; the loss's kinks compare 4d = ‖a − 2c‖² with 4λ. dL/dd is pre-scaled
        by −lr/batch, so the update of all parameters is a single ``values += grads``.
        Inputs carry a trailing 1, so the first layer with its bias is one GEMM forwards
        and one backwards.
        """
        W1b, gW1b = params.with_bias("W1", "b1")
        centres, gcentres = params.w["centres"], params.g["centres"]
        values, grads = params.values, params.grads
        dtype = values.dtype
        k, hidden = centres.shape
        lam4 = 4.0 * float(self.lam)

        def buffer(*shape: int) -> np.ndarray:
            return np.empty(shape, dtype)

        pre, pre_sq, rise, act2 = (buffer(batch, hidden) for _ in range(4))
        slope, fall, grad_act, pull = (buffer(batch, hidden) for _ in range(4))
        dist, grad_dist = buffer(batch, k), buffer(batch, k)
        act_sq, row_half = buffer(batch), buffer(batch, 1)
        centre_sq, col_twice = buffer(k), buffer(k)
        centre_pull = buffer(k, hidden)
        act_sq_col, col_twice_col = act_sq.reshape(batch, 1), col_twice.reshape(k, 1)
        row_half_row = row_half.reshape(batch)
        halves, twos = np.full(k, 0.5, dtype), np.full(batch, 2.0, dtype)
        centres_neg4, grad_dist_T = buffer(k, hidden), grad_dist.T
        scale, lam4, c, ck, ck3, one, two, minus4 = constants(
            dtype, -lr / batch, lam4, GELU_C, GELU_C * GELU_K, 3.0 * GELU_C * GELU_K, 1, 2, -4
        )
        matmul, add, subtract, multiply = np.matmul, np.add, np.subtract, np.multiply
        tanh, less, vecdot = np.tanh, np.less, np.vecdot
        outer = outer_product(batch)
        # The elementwise passes run on row blocks that stay in the L2 cache.
        blocks = [slice(start, start + BLOCK_ROWS) for start in range(0, batch, BLOCK_ROWS)]
        forward_blocks = [(pre[b], pre_sq[b], rise[b], act2[b]) for b in blocks]
        backward_blocks = [
            (pre_sq[b], rise[b], act2[b], row_half[b], pull[b], slope[b], fall[b], grad_act[b])
            for b in blocks
        ]

        def gelu_forward(
            pre: np.ndarray, pre_sq: np.ndarray, rise: np.ndarray, act2: np.ndarray
        ) -> None:
            # a = 2 GELU(pre) = pre (1 + t), t = tanh(c (pre + k pre³)); rise = 1 + t
            multiply(pre, pre, pre_sq)
            multiply(pre_sq, ck, rise)
            add(rise, c, rise)
            multiply(rise, pre, rise)
            tanh(rise, rise)
            add(rise, one, rise)
            multiply(pre, rise, act2)

        def hidden_backward(*views: np.ndarray) -> None:
            pre_sq, rise, act2, row_half, pull, slope, fall, grad_act = views
            # −lr/batch · dL/dh = a Σ_i G_i / 2 − G C, times 2 GELU'(pre) =
            # (1 + t) + a (1 − t)(c + 3ck pre²), with 1 − t = 2 − rise
            multiply(act2, row_half, grad_act)
            subtract(grad_act, pull, grad_act)
            multiply(pre_sq, ck3, slope)
            add(slope, c, slope)
            subtract(two, rise, fall)
            multiply(fall, act2, fall)
            multiply(slope, fall, slope)
            add(slope, rise, slope)
            multiply(grad_act, slope, grad_act)

        def step(x: np.ndarray, targets: np.ndarray) -> None:
            onehot, others = targets[:, :k], targets[:, k:]
            matmul(x, W1b, pre)
            for views in forward_blocks:
                gelu_forward(*views)
            # 4d = 4‖h − c‖² = ‖a‖² − 4 a·cᵀ + 4‖c‖², compared with 4λ
            multiply(centres, minus4, centres_neg4)
            vecdot(centres, centres_neg4, centre_sq)  # −4‖c‖²
            vecdot(act2, act2, act_sq)
            matmul(act2, centres_neg4.T, dist)
            add(dist, act_sq_col, dist)
            subtract(dist, centre_sq, dist)
            # G = dL/dd = onehot − (d < λ)(1 − onehot), scaled by −lr / batch
            less(dist, lam4, grad_dist)
            multiply(grad_dist, others, grad_dist)
            subtract(onehot, grad_dist, grad_dist)
            multiply(grad_dist, scale, grad_dist)
            # head: −lr/batch · dL/dh = 2 (h Σ_i G_i − G C) = 2 (a Σ_i G_i / 2 − G C), its
            # factor 2 cancelling GELU's 1/2 below; dc_i = 2 c_i Σ_b G_bi − (Gᵀ a)_i
            matmul(grad_dist, halves, row_half_row)
            matmul(grad_dist, centres, pull)
            matmul(twos, grad_dist, col_twice)
            outer(grad_dist_T, act2, centre_pull)
            multiply(centres, col_twice_col, gcentres)
            subtract(gcentres, centre_pull, gcentres)
            for views in backward_blocks:
                hidden_backward(*views)
            outer(x.T, grad_act, gW1b)
            add(values, grads, values)

        return step


@hookimpl
def register_models(register):
    """Register the ``rbf`` model."""
    register("rbf", RBFNetwork)
