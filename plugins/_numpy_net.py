"""Shared machinery of the from-scratch numpy networks ``hinge`` and ``rbf``.

The input pipeline (rescale, centre, optional deterministic PCA, folded into one GEMM),
parameter and data validation, label encoding with ``REJECT``, the minibatch SGD loop
over preallocated buffers with BLAS thread counts fixed by the shapes, the per-epoch
history and the flat ``get_state``/``set_state`` dict. Each
network subclass supplies its layers: the parameter layout, initialisation, a forward
pass, the per-sample loss, the input backward pass and an in-place SGD step.
"""

from __future__ import annotations

import functools
import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from robustkit import INPUT_GRADIENT, REJECT, REJECTION, Model, RobustkitError
from robustkit.certify import Affine
from robustkit.features import fit_pca, row_chunks, scaled_mean
from robustkit.interfaces import (
    BATCH_TRANSFORM,
    CERTIFIABLE,
    IBP_TRAINING,
    NOISE_CLASS,
    TRADES_TRAINING,
    BatchTransform,
    EpochCallback,
    IBPTraining,
    RobustnessTerm,
    with_rejects,
)
from robustkit.params import check_int

from . import _blocked as blocked

#: A compiled SGD step: updates the parameters in place from one batch (inputs, targets).
Step = Callable[[np.ndarray, np.ndarray], None]

#: Rows per chunk when evaluating a whole data set (keeps temporaries small).
EVAL_CHUNK = 4096
#: From this many rows on, inference runs on two BLAS threads, below on one (measured:
#: 10,000 rows take 0.010 s on two threads, 0.014 s on one; small matrices gain nothing
#: from a second thread and lose 10x when another process keeps the other core busy).
MANY_ROWS = blocked.UNBLOCKED_ROWS
#: From this many multiply-adds in a training step's first-layer GEMM (batch × inputs ×
#: hidden) on, the SGD loop runs on two BLAS threads, below on one (bench_networks.py:
#: batch 1024 at 128 × 150 gains ~30 % from a second thread; batch 128 gains 5-10 % on an
#: idle machine but loses several times over when parallel grid workers share the cores).
TWO_THREAD_WORK = 8_000_000
#: The input transform's backward GEMM, and hinge's SGD step's backward GEMMs, skip the
#: rows whose gradient is zero once at most this fraction of rows has one (the hinge
#: loss: 67 % of Fashion-MNIST's test rows have a zero loss after 2 epochs, 77 % after
#: 15; 68–80 % of the training rows at the end of training).
SPARSE_ROWS = 0.75
#: Rows of training data used to initialise data-dependent parameters (RBF centres).
INIT_SAMPLE = 2000


def blas_threads(threads: int) -> Any:
    """A context running BLAS on exactly ``threads`` threads (8 µs, vs 200 µs for a scan).

    The count always comes from the problem's shape (``threads_for_rows``,
    ``threads_for_step``), never from the environment, so a result does not depend on
    OPENBLAS_NUM_THREADS, ``--jobs`` or the machine: some BLAS kernels (e.g. OpenBLAS
    sgemm with 784 inputs) round differently on one and two threads.
    """
    return blocked.thread_controller().limit(limits=threads, user_api="blas")


def threads_for_rows(rows: int) -> int:
    """BLAS threads for inference on ``rows`` rows: 2 from ``MANY_ROWS`` on, else 1."""
    return 2 if rows >= MANY_ROWS else 1


def threads_for_step(batch: int, n_inputs: int, hidden: int) -> int:
    """BLAS threads for the SGD loop: 2 when the first layer's GEMM is large enough."""
    return 2 if batch * n_inputs * hidden >= TWO_THREAD_WORK else 1


def fixed_blas_threads(method: Callable) -> Callable:
    """Run an inference method under ``blas_threads(threads_for_rows(len(X)))``, or, while
    the model trains (a batch transform or TRADES term calling it on a minibatch), on the
    SGD loop's own count (``_training_threads_``, fixed by the shapes too)."""

    @functools.wraps(method)
    def wrapper(self: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
        rows = len(X) if hasattr(X, "__len__") else 1
        threads = getattr(self, "_training_threads_", None) or threads_for_rows(rows)
        with blas_threads(threads):
            return method(self, X, *args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- validation


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_real(name: str, value: Any, *, positive: bool) -> float:
    """``value`` as a finite float (> 0 if ``positive`` else >= 0), or a RobustkitError."""
    bound = "> 0" if positive else ">= 0"
    ok = _is_real(value) and math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        raise RobustkitError(f"{name} must be a finite number {bound}; got {value!r}")
    return float(value)


def check_dtype(value: Any) -> np.dtype:
    """The compute dtype: float32 or float64."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise RobustkitError(f"dtype must be 'float32' or 'float64'; got {value!r}")
    return dtype


def as_generator(random_state: Any) -> np.random.Generator:
    """A numpy Generator from None, an int seed, a Generator or a legacy RandomState."""
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31 - 1))
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError):
        raise RobustkitError(
            f"random_state must be None, an integer >= 0 or a numpy Generator; got {random_state!r}"
        ) from None


def _check_2d(X: Any) -> None:
    """A one-line error for inputs that are not 2-D (before sklearn's multi-line one)."""
    ndim = getattr(X, "ndim", None)
    if ndim is None and isinstance(X, list | tuple):
        ndim = np.ndim(X)
    if ndim is not None and ndim != 2:
        shape = tuple(getattr(X, "shape", None) or np.shape(X))
        raise RobustkitError(
            f"X must be a 2-D array (n_samples, n_features); got shape {shape}. Reshape your "
            "data with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample"
        )


def _check_finite(X: np.ndarray) -> np.ndarray:
    """``X`` if it holds finite numbers only (checked chunk by chunk: no full-size mask)."""
    if not all(np.isfinite(X[rows]).all() for rows in row_chunks(len(X))):
        raise RobustkitError("X contains NaN or inf; the networks accept finite numbers only")
    return X


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# ------------------------------------------------------------------------ input pipeline


#: How raw inputs are rescaled before centring (and PCA): by the training data's global
#: min/max (0.1's behaviour: pixels 0-255 and digits 0-16 both land in [0, 1]), by each
#: feature's own min/max, or not at all (for inputs that are already features, e.g. PCA).
SCALES = ("global", "feature", "none")


def check_scale(value: Any) -> str:
    """``value`` if it is one of ``SCALES``, else a RobustkitError."""
    if not isinstance(value, str) or value not in SCALES:
        raise RobustkitError(f"scale must be one of {', '.join(SCALES)}; got {value!r}")
    return value


@dataclass
class InputTransform:
    """Raw input → network input: rescale, centre, then optionally project by PCA.

    ``low``/``span`` (scalars or one per feature) rescale to [0, 1]; the training mean is
    then subtracted, as PCA does anyway: uncentred inputs make the rbf network's
    squared-distance loss badly conditioned at lr 0.1. The map is affine, so it is
    folded into one GEMM and one add (``X @ weights + bias``) forwards and one GEMM
    backwards, and ``backward`` takes a gradient back to the raw input.
    """

    low: np.ndarray  # () or (n_features,), float64
    span: np.ndarray  # () or (n_features,), float64, > 0
    mean: np.ndarray  # (n_features,) mean of the rescaled training data
    components: np.ndarray | None = None  # (n_components, n_features), orthonormal rows
    _weights: np.ndarray = field(init=False, repr=False)
    _bias: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.low = np.asarray(self.low, dtype=np.float64)
        self.span = np.asarray(self.span, dtype=np.float64)
        inv = 1.0 / self.span
        shift = self.low * inv + self.mean.astype(np.float64)  # (n_features,)
        dtype = self.mean.dtype
        if self.components is None:  # Z = X * inv - shift, elementwise
            self._weights = inv.astype(dtype)
            self._bias = (-shift).astype(dtype)
        else:  # Z = X @ (C * inv)ᵀ - C shift
            components = self.components.astype(np.float64)
            self._weights = np.ascontiguousarray((components * inv).T, dtype=dtype)
            self._bias = (-(components @ shift)).astype(dtype)

    @classmethod
    def fit(
        cls, X: np.ndarray, n_components: int | None, scale: str, dtype: np.dtype
    ) -> InputTransform:
        """Learn the rescaling (``scale``), the mean and, if asked, the deterministic PCA.

        Reads ``X`` chunk by chunk: no rescaled or float64 copy of the data is made.
        """
        if scale == "none":
            low, span = np.zeros(()), np.ones(())
        else:
            axis = 0 if scale == "feature" else None
            low = np.asarray(X.min(axis=axis), dtype=np.float64)
            span = np.asarray(X.max(axis=axis), dtype=np.float64) - low
            span = np.where(span > 0, span, 1.0)
        if n_components is None:
            mean = scaled_mean(X, low, 1.0 / span)
            return cls(low, span, mean.astype(dtype))
        mean, components = fit_pca(X, n_components, low=low, scale=1.0 / span)
        return cls(low, span, mean.astype(dtype), components.astype(dtype))

    @property
    def n_outputs(self) -> int:
        """Number of network inputs it produces."""
        return len(self.mean) if self.components is None else self.components.shape[0]

    def transform(self, X: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Rescaled, centred (and projected) input in the model's dtype (into ``out``)."""
        if self.components is None:
            out = np.multiply(X, self._weights, out=out, dtype=self._weights.dtype)
        else:
            out = blocked.matmul(X, self._weights, out=out, dtype=self._weights.dtype)
        out += self._bias
        return out

    def transform_chunked(self, X: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``transform`` into ``out`` one fixed-size row chunk at a time, on one BLAS
        thread (bounded temporaries; training data in a joblib or Dask worker must not
        oversubscribe the cores)."""
        with blas_threads(1):
            for rows in row_chunks(len(X)):
                self.transform(X[rows], out=out[rows])
        return out

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """The transform as (W, b) in float64, with ``transform(X) = X @ W + b``."""
        inv = np.broadcast_to(1.0 / self.span, self.mean.shape)
        shift = self.low * inv + self.mean.astype(np.float64)
        if self.components is None:
            return np.diag(inv), -shift
        components = self.components.astype(np.float64)
        return (components * inv).T, -(components @ shift)

    def box(
        self, X: np.ndarray, radius: float, bounds: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Centre and per-unit radius, in network inputs, of the L∞ ball around each row
        (``radius`` in input units, clipped to ``bounds``): the interval the map gives."""
        low = np.maximum(X - radius, bounds[0])
        high = np.minimum(X + radius, bounds[1])
        weights, _ = self.affine()
        centre = self.transform(((low + high) * 0.5).astype(X.dtype, copy=False))
        half = (high - low) * 0.5
        if self.components is None:
            return centre, half * np.abs(np.diag(weights))
        return centre, half @ np.abs(weights)

    def backward(self, grad: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Gradient w.r.t. the raw input (into ``out``), given the gradient w.r.t. the
        network input.

        With PCA, once at most ``SPARSE_ROWS`` of the rows have a gradient, only those go
        through the GEMM back to the inputs (the others are zero: a satisfied hinge loss).
        """
        if self.components is None:
            return np.multiply(grad, self._weights, out=out)
        live = grad.any(axis=1)
        n_live = int(np.count_nonzero(live))
        if n_live > SPARSE_ROWS * len(grad):
            return blocked.matmul(grad, self._weights.T, out=out)
        if out is None:
            out = np.zeros((len(grad), len(self._weights)), np.result_type(grad, self._weights))
        else:
            out[~live] = 0.0
        if n_live:
            out[live] = blocked.matmul(grad[live], self._weights.T)
        return out

    def get_state(self) -> dict[str, np.ndarray]:
        """The fitted arrays: ``input_low``, ``input_span``, ``input_mean``, ``pca_components``."""
        state = {"input_low": self.low, "input_span": self.span, "input_mean": self.mean}
        if self.components is not None:
            state["pca_components"] = self.components
        return state

    @classmethod
    def from_state(
        cls, state: dict[str, np.ndarray], n_components: int | None, dtype: np.dtype
    ) -> InputTransform:
        """Rebuild from ``get_state``; KeyError/ValueError on missing keys or bad shapes."""
        mean = _state_array(state, "input_mean", (-1,), dtype)
        scaling = []
        for key in ("input_low", "input_span"):
            array = np.asarray(state[key]) if key in state else None
            shape = () if array is None or array.ndim == 0 else (len(mean),)
            scaling.append(_state_array(state, key, shape, np.float64))
        low, span = scaling
        if not (np.isfinite(low).all() and np.isfinite(span).all() and (span > 0).all()):
            raise ValueError("input_low/input_span must be finite with input_span > 0")
        if n_components is None:
            return cls(low, span, mean)
        components = _state_array(state, "pca_components", (n_components, len(mean)), dtype)
        return cls(low, span, mean, components)


def _state_array(
    state: dict[str, np.ndarray], key: str, shape: tuple[int, ...], dtype: Any = None
) -> np.ndarray:
    """``state[key]`` checked against ``shape`` (-1: any size); KeyError/ValueError if not."""
    if key not in state:
        raise KeyError(f"the state has no {key!r} array")
    array = np.asarray(state[key])
    if array.ndim != len(shape) or any(
        want not in (-1, have) for want, have in zip(shape, array.shape, strict=True)
    ):
        wanted = "(" + ", ".join("any" if s == -1 else str(s) for s in shape) + ")"
        raise ValueError(f"state array {key!r} has shape {array.shape}, expected {wanted}")
    if dtype is not None:
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"state array {key!r} is not numeric ({array.dtype})")
        array = array.astype(dtype)
    return array


# ------------------------------------------------------------------------ parameters


class FlatParameters:
    """Named parameter arrays that are views of one flat vector, with a matching gradient.

    The SGD step writes every (pre-scaled) gradient into ``grads`` and updates all
    parameters with a single ``values += grads``.
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], dtype: np.dtype) -> None:
        sizes = [math.prod(shape) for shape in shapes.values()]
        self.values = np.zeros(sum(sizes), dtype=dtype)
        self.grads = np.zeros(sum(sizes), dtype=dtype)
        self.w: dict[str, np.ndarray] = {}
        self.g: dict[str, np.ndarray] = {}
        self.offsets: dict[str, int] = {}
        offset = 0
        for (name, shape), size in zip(shapes.items(), sizes, strict=True):
            self.offsets[name] = offset
            self.w[name] = self.values[offset : offset + size].reshape(shape)
            self.g[name] = self.grads[offset : offset + size].reshape(shape)
            offset += size

    def with_bias(self, weights: str, bias: str) -> tuple[np.ndarray, np.ndarray]:
        """Views (values, grads) of shape (n_in + 1, n_out) stacking ``weights`` (n_in, n_out)
        over ``bias`` (n_out,), which the layout must declare right after it: a layer's
        affine map is then one GEMM of inputs that carry a trailing ones column."""
        start, (n_in, n_out) = self.offsets[weights], self.w[weights].shape
        if self.offsets[bias] != start + n_in * n_out or self.w[bias].shape != (n_out,):
            raise ValueError(f"{bias!r} must follow {weights!r} in the parameter layout")
        end = start + (n_in + 1) * n_out
        shape = (n_in + 1, n_out)
        return self.values[start:end].reshape(shape), self.grads[start:end].reshape(shape)

    def copy_weights(self) -> dict[str, np.ndarray]:
        """Independent copies of the named parameters."""
        return {name: view.copy() for name, view in self.w.items()}


def outer_product(batch: int) -> Callable[..., np.ndarray]:
    """``Aᵀ B`` over a batch as ``f(A.T, B, out)``: a broadcast multiply when the batch is
    one row (numpy's matmul does not use BLAS for an inner dimension of 1, and is ~3× slower).
    """
    return np.multiply if batch == 1 else np.matmul


def constants(dtype: np.dtype, *values: float) -> tuple[np.ndarray, ...]:
    """``values`` as 0-d arrays of ``dtype``, the same numbers a ufunc makes of Python
    floats, which it takes ~0.3 µs a call faster (an SGD step makes ~40 small calls)."""
    return tuple(np.array(value, dtype) for value in values)


def he_normal(rng: np.random.Generator, fan_in: int, fan_out: int, dtype: np.dtype) -> np.ndarray:
    """He (Kaiming) normal initialisation: std sqrt(2 / fan_in), for ReLU-like units."""
    return (rng.standard_normal((fan_in, fan_out)) * math.sqrt(2.0 / fan_in)).astype(dtype)


# ------------------------------------------------------------------------ the estimator


class NumpyNetwork(Model):
    """Base of the from-scratch numpy networks: input → hidden layer → output head.

    Subclasses define ``_shapes``, ``_initialise``, ``_forward``, ``_output_loss``,
    ``_backward_input``, ``_make_step``, ``_targets``, ``_predicted_index``,
    ``_class_scores`` and ``_reject_scores``; everything else lives here.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset(
        {INPUT_GRADIENT, REJECTION, NOISE_CLASS, CERTIFIABLE, BATCH_TRANSFORM}
    )

    # ----------------------------------------------------------------- hooks to override

    def _check_head_params(self) -> dict[str, Any]:
        """Validate the network-specific hyperparameters; return them checked."""
        return {}

    def _n_outputs(self, n_classes: int) -> int:
        """Output units of the head for ``n_classes`` real classes."""
        raise NotImplementedError

    def _shapes(self, n_inputs: int, n_outputs: int) -> dict[str, tuple[int, ...]]:
        """Layout of the named parameters."""
        raise NotImplementedError

    def _initialise(
        self, w: dict[str, np.ndarray], rng: np.random.Generator, Z: np.ndarray, y: np.ndarray
    ) -> None:
        """Fill the parameter views ``w`` in place (``Z``, ``y``: a sample of the data)."""
        raise NotImplementedError

    def _forward(self, w: dict[str, np.ndarray], Z: np.ndarray) -> tuple[np.ndarray, Any]:
        """Outputs of every unit (n, n_outputs) and a cache for ``_backward_input``."""
        raise NotImplementedError

    def _output_loss(self, out: np.ndarray, y_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample loss (n,) and its gradient w.r.t. the outputs (n, n_outputs)."""
        raise NotImplementedError

    def _backward_input(
        self, w: dict[str, np.ndarray], cache: Any, grad_out: np.ndarray
    ) -> np.ndarray:
        """Gradient w.r.t. the network input, given the gradient w.r.t. the outputs."""
        raise NotImplementedError

    def _targets(self, y_index: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Per-sample target rows the SGD step reads (a one-hot encoding or similar)."""
        raise NotImplementedError

    def _make_step(self, params: FlatParameters, batch: int, lr: float) -> Step:
        """An in-place SGD step for batches of exactly ``batch`` rows; each input row
        carries a trailing 1 (see ``FlatParameters.with_bias``)."""
        raise NotImplementedError

    def _predicted_index(self, out: np.ndarray) -> np.ndarray:
        """Predicted class index per row, ``n_classes`` meaning REJECT."""
        raise NotImplementedError

    def _class_scores(self, out: np.ndarray) -> np.ndarray:
        """``decision_function`` from the outputs."""
        raise NotImplementedError

    def _reject_scores(self, out: np.ndarray) -> np.ndarray | None:
        """``reject_score`` from the outputs (None: the base class's -inf)."""
        raise NotImplementedError

    def _output_grad(self, grad_scores: np.ndarray, grad_reject: np.ndarray | None) -> np.ndarray:
        """Gradient w.r.t. the outputs of Σ grad_scores·scores + grad_reject·reject_score."""
        raise NotImplementedError

    def _certification_layers(self, w: dict[str, np.ndarray]) -> list[Any]:
        """The network after the input transform as ``robustkit.certify`` layer records."""
        raise NotImplementedError

    def _make_ibp_step(self, params: FlatParameters, lr: float, kappa: float) -> Step:
        """With ``ibp_training``: an SGD step on (inputs, box centre, box radius) batches."""
        raise NotImplementedError

    def _weight_gradients(
        self, w: dict[str, np.ndarray], Z: np.ndarray, cache: Any, grad_out: np.ndarray
    ) -> dict[str, np.ndarray]:
        """With ``trades_training``: d(Σ grad_out·outputs)/d(each parameter) at inputs ``Z``
        (``cache`` from ``_forward``)."""
        raise NotImplementedError

    def _trades_loss(
        self,
        w: dict[str, np.ndarray],
        Z: np.ndarray,
        Z_adv: np.ndarray,
        y_index: np.ndarray,
        term: RobustnessTerm,
    ) -> tuple[float, dict[str, np.ndarray]]:
        """TRADES: mean over the batch of the own loss at ``Z`` plus ``term``'s penalty
        between the class scores at ``Z`` and ``Z_adv``, and its parameter gradients."""
        out, cache = self._forward(w, Z)
        out_adv, cache_adv = self._forward(w, Z_adv)
        loss, grad_out = self._output_loss(out, y_index)
        penalty, grad_clean, grad_adv = term.penalty(
            self._class_scores(out), self._class_scores(out_adv)
        )
        grad_out = grad_out + self._output_grad(np.asarray(grad_clean, out.dtype), None)
        grad_out_adv = self._output_grad(np.asarray(grad_adv, out.dtype), None)
        grads = self._weight_gradients(w, Z, cache, grad_out)
        for name, grad in self._weight_gradients(w, Z_adv, cache_adv, grad_out_adv).items():
            grads[name] += grad
        n = len(Z)
        total = float(np.sum(loss, dtype=np.float64) + np.sum(penalty, dtype=np.float64))
        return total / n, {name: grad / n for name, grad in grads.items()}

    # -------------------------------------------------------------------- validation

    def validate(self) -> None:
        """Check every hyperparameter (the harness calls this before any training)."""
        self._checked_params()

    def _checked_params(self) -> dict[str, Any]:
        """All hyperparameters validated, with one-line errors naming what is accepted."""
        params = {
            "hidden": check_int("hidden", self.hidden),
            "lr": check_real("lr", self.lr, positive=True),
            "epochs": check_int("epochs", self.epochs),
            "batch_size": check_int("batch_size", self.batch_size),
            "noise_std": check_real("noise_std", self.noise_std, positive=False),
            "dtype": check_dtype(self.dtype),
            "scale": check_scale(self.scale),
        }
        if self.pca is not None:
            params["pca"] = check_int("pca", self.pca)
        else:
            params["pca"] = None
        if not isinstance(self.reject, bool | np.bool_):
            raise RobustkitError(f"reject must be True or False; got {self.reject!r}")
        params["reject"] = bool(self.reject)
        params.update(self._check_head_params())
        return params

    def _check_X(self, X: Any, dtype: np.dtype, *, reset: bool) -> np.ndarray:
        """Validate inputs the sklearn way (2-D, numeric, finite), with one-line errors.

        A plain array already in the fitted layout and dtype (what attacks pass at every
        step) only has its values checked: sklearn's checks cost ~0.5 ms a call.
        """
        if (
            not reset
            and type(X) is np.ndarray
            and X.dtype == dtype
            and X.ndim == 2
            and len(X) > 0
            and X.shape[1] == getattr(self, "n_features_in_", None)
            and not hasattr(self, "feature_names_in_")
        ):
            return _check_finite(X)
        _check_2d(X)
        try:
            X = validate_data(self, X, reset=reset, dtype=dtype, ensure_all_finite=False)
        except ValueError as exc:
            raise RobustkitError(_first_line(exc)) from None
        return _check_finite(X)

    def _check_Xy(self, X: Any, y: Any, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """Validate training inputs and labels together, with one-line errors."""
        _check_2d(X)
        try:
            X, y = validate_data(self, X, y, dtype=dtype, ensure_all_finite=False)
        except ValueError as exc:
            raise RobustkitError(_first_line(exc)) from None
        return _check_finite(X), y

    def _split_reject(self, y: np.ndarray) -> np.ndarray:
        """Mask of REJECT (-1) labels in ``y``."""
        if y.dtype.kind in "iuf":
            return y == REJECT
        if y.dtype.kind == "O":
            return np.array([type(v) is not str and v == REJECT for v in y], dtype=bool)
        return np.zeros(len(y), dtype=bool)

    def _encode(self, y: Any, reject: bool, what: str = "y") -> np.ndarray:
        """Class indices of labels ``y`` (``n_classes`` for REJECT) using ``classes_``."""
        y = np.asarray(y)
        if y.ndim != 1:
            raise RobustkitError(f"{what} must be a 1-D array of labels; got shape {y.shape}")
        noise = self._split_reject(y)
        if noise.any() and not reject:
            raise RobustkitError(
                f"{what} contains REJECT ({REJECT}) labels but reject=False; "
                "set reject=True to train on noise samples"
            )
        n_classes = len(self.classes_)
        index = np.full(len(y), n_classes, dtype=np.intp)
        labels = y[~noise]
        try:
            position = np.searchsorted(self.classes_, labels)
            position = np.minimum(position, n_classes - 1)
            known = self.classes_[position] == labels
        except TypeError:
            known = np.zeros(len(labels), dtype=bool)
            position = np.zeros(len(labels), dtype=np.intp)
        if not np.all(known):
            unknown = sorted({str(v) for v in labels[~known]})[:5]
            raise RobustkitError(
                f"{what} has labels not seen in fit: {', '.join(unknown)}; "
                f"known: {', '.join(map(str, self.classes_.tolist()))}"
            )
        index[~noise] = position
        return index

    # ----------------------------------------------------------------------- training

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callback: EpochCallback | None = None,
        batch_transform: BatchTransform | None = None,
        ibp: IBPTraining | None = None,
        trades: RobustnessTerm | None = None,
    ) -> NumpyNetwork:
        """Train by minibatch SGD on raw inputs ``X`` and labels ``y`` (REJECT marks noise).

        ``batch_transform(self, X_batch, y_batch)`` replaces each minibatch of raw inputs
        while ``self`` predicts with the current weights (adversarial training). ``ibp``
        (networks with the ``ibp_training`` capability) trains on IBP worst-case margins,
        ``trades`` (``trades_training``) adds a ``RobustnessTerm`` to every batch's loss.
        """
        if ibp is not None and IBP_TRAINING not in self.capabilities:
            raise RobustkitError(f"{type(self).__name__} cannot train on IBP bounds (ibp=...)")
        if trades is not None and TRADES_TRAINING not in self.capabilities:
            raise RobustkitError(f"{type(self).__name__} cannot train with TRADES (trades=...)")
        params = self._checked_params()
        dtype = params["dtype"]
        X, y = self._check_Xy(X, y, dtype)
        noise = self._split_reject(y)
        if noise.any() and not params["reject"]:
            raise RobustkitError(
                f"y contains REJECT ({REJECT}) labels but reject=False; "
                "set reject=True to train on noise samples"
            )
        try:
            check_classification_targets(y[~noise])
        except ValueError as exc:
            raise RobustkitError(_first_line(exc)) from None
        classes = np.unique(y[~noise])
        if len(classes) < 2:
            raise RobustkitError(
                f"y has only one class ({classes.tolist()}); the networks need at least 2 classes"
            )
        if classes.dtype == object:
            classes = np.asarray(classes.tolist())
        self.classes_ = classes
        y_index = self._encode(y, params["reject"])
        pca = params["pca"]
        if pca is not None and pca > min(X.shape):
            raise RobustkitError(
                f"pca must be None or an integer between 1 and min(n_samples, n_features) = "
                f"{min(X.shape)}; got {pca}"
            )
        eval_data = None
        if eval_set is not None:
            eval_data = self._check_eval_set(eval_set, dtype, params["reject"])

        rng = as_generator(self.random_state)
        rng.integers(2**31 - 1)  # 0.1 seeded its PCA here; still drawn, so the stream is kept
        transform = InputTransform.fit(X, pca, params["scale"], dtype)
        self.input_transform_ = transform
        # The network inputs with a trailing ones column: the SGD step folds each bias
        # into its layer's GEMM.
        Z_ones = np.ones((len(X), transform.n_outputs + 1), dtype)
        Z = transform.transform_chunked(X, Z_ones[:, :-1])
        if eval_data is not None:
            X_eval = eval_data[0]
            Z_eval = np.empty((len(X_eval), transform.n_outputs), dtype)
            eval_data = (transform.transform_chunked(X_eval, Z_eval), eval_data[1])

        n_outputs = self._n_outputs(len(self.classes_))
        flat = FlatParameters(self._shapes(Z.shape[1], n_outputs), dtype)
        sample = rng.permutation(len(Z))[:INIT_SAMPLE]
        self._initialise(flat.w, rng, Z[sample], y_index[sample])
        self.history_ = []
        raw = None
        if batch_transform is not None or trades is not None:
            self.weights_ = flat.w  # live views: the transform sees the current weights
        if batch_transform is not None:
            raw = (X, y, batch_transform)
        try:
            self._train(
                flat, Z_ones, y_index, eval_data, rng, params, callback, raw, (X, ibp),
                (X, y, trades),
            )  # fmt: skip
        finally:
            self.__dict__.pop("_training_threads_", None)
        self.weights_ = flat.copy_weights()
        return self

    def _check_eval_set(
        self, eval_set: Any, dtype: np.dtype, reject: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        try:
            X_eval, y_eval = eval_set
        except (TypeError, ValueError):
            raise RobustkitError("eval_set must be a pair (X_test, y_test)") from None
        X_eval = self._check_X(X_eval, dtype, reset=False)
        y_index = self._encode(np.ravel(np.asarray(y_eval)), reject, "eval_set labels")
        if len(y_index) != len(X_eval):
            raise RobustkitError(
                f"eval_set has {len(X_eval)} inputs but {len(y_index)} labels; they must match"
            )
        return X_eval, y_index

    def _train(
        self,
        flat: FlatParameters,
        Z_ones: np.ndarray,
        y_index: np.ndarray,
        eval_data: tuple[np.ndarray, np.ndarray] | None,
        rng: np.random.Generator,
        params: dict[str, Any],
        callback: EpochCallback | None,
        raw: tuple[np.ndarray, np.ndarray, BatchTransform] | None = None,
        ibp: tuple[np.ndarray, IBPTraining | None] = (None, None),
        trades: tuple[np.ndarray, np.ndarray, RobustnessTerm | None] = (None, None, None),
    ) -> None:
        """The SGD epochs: each batch gathered into preallocated buffers, step, evaluate.

        ``Z_ones`` holds the network inputs and a trailing column of ones. Batches are
        gathered one at a time (no shuffled copy of the whole data set). With
        ``raw = (X, y, batch_transform)`` each batch is the transformed raw batch; with
        ``ibp = (X, IBPTraining)`` each step also gets the batch's IBP input boxes; with
        ``trades = (X, y, term)`` each step is one on ``_trades_loss``.
        """
        Z = Z_ones[:, :-1]
        n = len(Z)
        batch = min(params["batch_size"], n)
        remainder = n % batch
        targets = self._targets(y_index, Z.dtype)
        noise_std = params["noise_std"]
        sizes = [batch] + ([remainder] if remainder else [])
        steps = [self._make_step(flat, size, params["lr"]) for size in sizes]
        inputs = [np.ones((size, Z_ones.shape[1]), Z.dtype) for size in sizes]  # ones column
        outputs = [np.empty((size, targets.shape[1]), Z.dtype) for size in sizes]
        noises = [
            np.empty((size, Z.shape[1]), Z.dtype) if noise_std > 0 else None for size in sizes
        ]
        starts = [(start, min(start + batch, n)) for start in range(0, n, batch)]
        take, standard_normal = np.take, rng.standard_normal
        threads = threads_for_step(batch, Z.shape[1], params["hidden"])
        if raw is not None or trades[2] is not None:  # the hooks' inference runs on it too
            self._training_threads_ = threads
        for epoch in range(1, params["epochs"] + 1):
            # Overflow only happens when training diverges, which is reported below.
            with blas_threads(threads), np.errstate(all="ignore"):
                start = time.perf_counter()
                order = rng.permutation(n)
                ibp_step = None
                if ibp[1] is not None:  # IBP training: steps on (inputs, box centre, radius)
                    radius, kappa = ibp[1].schedule(epoch, params["epochs"])
                    centre, spread = self.input_transform_.box(ibp[0], radius, ibp[1].bounds)
                    ibp_step = self._make_ibp_step(flat, params["lr"], kappa)
                for begin, end in starts:
                    last = int(end - begin != batch)
                    x, t, noise = inputs[last], outputs[last], noises[last]
                    rows = order[begin:end]
                    # mode "clip" (the rows are valid): "raise" would buffer the output
                    take(targets, rows, 0, t, "clip")
                    if raw is None:
                        take(Z_ones, rows, 0, x, "clip")
                    else:
                        labels = self._transformed_batch(raw, rows, x[:, :-1])
                        if labels is not None:  # the transform relabelled the batch
                            t[...] = self._targets(labels, t.dtype)
                    if noise is not None:
                        # Isotropic noise of std noise_std on the [0, 1]-scaled input
                        # projects through PCA's orthonormal rows to isotropic noise of
                        # the same std, so it is drawn directly in network-input space.
                        standard_normal(out=noise, dtype=noise.dtype)
                        noise *= noise_std
                        x[:, :-1] += noise
                    if trades[2] is not None:
                        self._trades_step(flat, params["lr"], trades, rows, x[:, :-1], y_index)
                    elif ibp_step is None:
                        steps[last](x, t)
                    else:
                        ibp_step((x[:, :-1], centre[rows], spread[rows]), t)
                seconds = time.perf_counter() - start
            with np.errstate(all="ignore"):
                loss, accuracy = self._evaluate(flat.w, Z, y_index)
            if not (np.all(np.isfinite(flat.values)) and math.isfinite(loss)):
                raise RobustkitError(
                    f"training diverged in epoch {epoch} (the loss or weights overflowed); "
                    f"use a smaller lr than {params['lr']}"
                )
            record = {"epoch": epoch, "loss": loss, "train_accuracy": accuracy}
            if eval_data is not None:
                record["test_accuracy"] = self._evaluate(flat.w, *eval_data)[1]
            record["seconds"] = seconds
            self.history_.append(record)
            if callback is not None:
                callback(dict(record))

    def _trades_step(
        self,
        flat: FlatParameters,
        lr: float,
        trades: tuple[np.ndarray, np.ndarray, RobustnessTerm],
        rows: np.ndarray,
        Z: np.ndarray,
        y_index: np.ndarray,
    ) -> None:
        """One SGD step on ``_trades_loss`` for batch ``rows`` (network inputs ``Z``)."""
        X, y, term = trades
        X_adv = np.asarray(term.adversarial(self, X[rows], y[rows]), dtype=X.dtype)
        if X_adv.shape != (len(rows), X.shape[1]):
            raise RobustkitError(
                f"trades.adversarial must return the batch's shape {(len(rows), X.shape[1])}; "
                f"got {X_adv.shape}"
            )
        Z_adv = self.input_transform_.transform(X_adv)
        _, grads = self._trades_loss(flat.w, Z, Z_adv, y_index[rows], term)
        for name, grad in grads.items():
            flat.w[name] -= (lr * grad).astype(flat.w[name].dtype, copy=False)

    def _transformed_batch(
        self, raw: tuple[np.ndarray, np.ndarray, BatchTransform], rows: np.ndarray, out: np.ndarray
    ) -> np.ndarray | None:
        """Network inputs (into ``out``) of raw batch ``rows`` after ``batch_transform``,
        which sees the weights of the step before (adversarial training); the new label
        indices if it returned ``(X', y')``, else None."""
        X, y, transform = raw
        result = transform(self, X[rows], y[rows])
        labels = None
        if isinstance(result, tuple):
            result, y_new = result
            labels = self._encode(np.ravel(y_new), bool(self.reject), "batch_transform labels")
            if len(labels) != len(rows):
                raise RobustkitError(
                    f"batch_transform must return {len(rows)} labels; got {len(labels)}"
                )
        X_batch = np.asarray(result)
        if X_batch.shape != (len(rows), X.shape[1]):
            raise RobustkitError(
                f"batch_transform must return the batch's shape {(len(rows), X.shape[1])}; "
                f"got {X_batch.shape}"
            )
        self.input_transform_.transform(X_batch.astype(X.dtype, copy=False), out=out)
        return labels

    def _evaluate(
        self, w: dict[str, np.ndarray], Z: np.ndarray, y_index: np.ndarray
    ) -> tuple[float, float]:
        """Mean loss and accuracy (REJECT counts as a label) over a whole data set, on one
        BLAS thread (it runs inside training, perhaps in a worker process)."""
        total_loss, correct = 0.0, 0
        with blas_threads(1):
            for start in range(0, len(Z), EVAL_CHUNK):
                out, _ = self._forward(w, Z[start : start + EVAL_CHUNK])
                labels = y_index[start : start + EVAL_CHUNK]
                total_loss += float(self._output_loss(out, labels)[0].sum(dtype=np.float64))
                correct += int(np.count_nonzero(self._predicted_index(out) == labels))
        return total_loss / len(Z), correct / len(Z)

    # ---------------------------------------------------------------------- inference

    def _network_input(self, X: Any) -> np.ndarray:
        """The network input of ``X``, validated; an attack's iterates (C-contiguous 2-D
        arrays of the model's dtype and width) skip straight to the transform, whose
        output is checked for NaN/inf instead (a NaN or inf in X always reaches it)."""
        check_is_fitted(self, "weights_")
        dtype = check_dtype(self.dtype)
        if (
            type(X) is np.ndarray
            and X.dtype == dtype
            and X.ndim == 2
            and X.flags.c_contiguous
            and len(X) > 0
            and X.shape[1] == self.n_features_in_
        ):
            with np.errstate(invalid="ignore", over="ignore"):
                Z = self.input_transform_.transform(X)
            if np.isfinite(Z).all():
                return Z
        X = self._check_X(X, dtype, reset=False)
        return self.input_transform_.transform(X)

    def _outputs(self, X: Any) -> np.ndarray:
        """Network outputs of ``X``; more than ``EVAL_CHUNK`` rows are run a chunk at a
        time, so the hidden-layer temporaries stay bounded whatever the data's length."""
        check_is_fitted(self, "weights_")
        if not hasattr(X, "__len__") or len(X) <= EVAL_CHUNK:
            return self._forward(self.weights_, self._network_input(X))[0]
        X = self._check_X(X, check_dtype(self.dtype), reset=False)
        return np.concatenate(
            [
                self._forward(self.weights_, self._network_input(X[rows]))[0]
                for rows in row_chunks(len(X), EVAL_CHUNK)
            ]
        )

    @fixed_blas_threads
    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Class scores (n_samples, n_classes); the highest wins."""
        return self._class_scores(self._outputs(X))

    @fixed_blas_threads
    def reject_score(self, X: np.ndarray) -> np.ndarray:
        """Score of the reject option: an input is rejected where it beats every class."""
        return self._reject_scores_of(self._outputs(X))

    def _reject_scores_of(self, out: np.ndarray) -> np.ndarray:
        """The reject scores of network outputs (−inf where the model cannot reject)."""
        scores = self._reject_scores(out)
        return super().reject_score(out) if scores is None else scores

    @fixed_blas_threads
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels, REJECT (-1) for rejected inputs (one forward pass)."""
        index = self._predicted_index(self._outputs(X))
        labels = self.classes_[np.minimum(index, len(self.classes_) - 1)]
        return with_rejects(labels, index == len(self.classes_))

    @fixed_blas_threads
    def loss_gradient(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample training loss (n,) and its gradient w.r.t. the raw input (n, d)."""
        return self._loss_pass(X, y, with_scores=False)[:2]

    @fixed_blas_threads
    def loss_gradient_and_scores(
        self, X: np.ndarray, y: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``loss_gradient``, and the class scores (n, C) and reject scores (n,) of the
        same forward pass: an attack on the loss needs no second pass for its success
        test. The same values as ``loss_gradient``."""
        return self._loss_pass(X, y, with_scores=True)

    def _loss_pass(self, X: Any, y: Any, with_scores: bool) -> tuple[Any, ...]:
        """Loss, input gradient and (``with_scores``) class and reject scores, a chunk of
        ``EVAL_CHUNK`` rows at a time."""
        Z = self._network_input(X)
        y_index = self._encode(np.ravel(np.asarray(y)), bool(self.reject))
        if len(y_index) != len(Z):
            raise RobustkitError(f"X has {len(Z)} rows but y has {len(y_index)} labels")
        loss = np.empty(len(Z), Z.dtype)
        chunks: list[tuple[np.ndarray, np.ndarray]] = []

        def grad_out_of(rows: slice, out: np.ndarray) -> np.ndarray:
            loss[rows], grad_out = self._output_loss(out, y_index[rows])
            if with_scores:
                chunks.append((self._class_scores(out), self._reject_scores_of(out)))
            return grad_out

        grad = self._input_gradient(Z, grad_out_of)
        if not with_scores:
            return loss, grad, None, None
        scores, reject = (np.concatenate(parts) for parts in zip(*chunks, strict=True))
        return loss, grad, scores, reject

    @fixed_blas_threads
    def decision_gradient(
        self,
        X: np.ndarray,
        grad_scores: np.ndarray,
        grad_reject: np.ndarray | None = None,
    ) -> np.ndarray:
        """Vector-Jacobian product: d(Σ grad_scores·scores + grad_reject·reject_score)/dX."""
        Z = self._network_input(X)
        n, k = len(Z), len(self.classes_)
        grad_scores = np.asarray(grad_scores, dtype=Z.dtype)
        if grad_scores.shape != (n, k):
            raise RobustkitError(
                f"grad_scores must have shape (n_samples, n_classes) = {(n, k)}; "
                f"got {grad_scores.shape}"
            )
        if grad_reject is not None:
            grad_reject = np.asarray(grad_reject, dtype=Z.dtype)
            if grad_reject.shape != (n,):
                raise RobustkitError(
                    f"grad_reject must have shape (n_samples,) = {(n,)}; got {grad_reject.shape}"
                )
        grad_out = self._output_grad(grad_scores, grad_reject)
        return self._input_gradient(Z, lambda rows, out: grad_out[rows])

    def _input_gradient(
        self, Z: np.ndarray, grad_out_of: Callable[[slice, np.ndarray], np.ndarray]
    ) -> np.ndarray:
        """Gradient w.r.t. the raw input, ``EVAL_CHUNK`` rows of network inputs ``Z`` at a
        time, as ``decision_function`` chunks its rows: ``grad_out_of(rows, outputs)``
        gives the chunk's output gradient. The hidden-layer temporaries stay bounded
        whatever the number of rows; the result is written straight into one array."""
        grad = None
        for rows in row_chunks(len(Z), EVAL_CHUNK):
            out, cache = self._forward(self.weights_, Z[rows])
            grad_Z = self._backward_input(self.weights_, cache, grad_out_of(rows, out))
            if grad is None:
                n_features = self.n_features_in_
                grad = np.empty((len(Z), n_features), np.result_type(grad_Z, Z.dtype))
            self.input_transform_.backward(grad_Z, out=grad[rows])
        return grad

    def certification_layers(self) -> list[Any]:
        """The fitted network as ``robustkit.certify`` layers, from the raw input on."""
        check_is_fitted(self, "weights_")
        return [Affine(*self.input_transform_.affine()), *self._certification_layers(self.weights_)]

    @fixed_blas_threads
    def decision_and_gradient(
        self,
        X: np.ndarray,
        weights: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores, reject scores and an input gradient chosen from them, in one forward pass.

        ``weights(scores, reject_scores)`` returns ``(grad_scores, grad_reject)`` as for
        ``decision_gradient``. Attacks whose objective depends on the scores at the same
        point (APGD's losses) save the second forward pass that ``decision_function``
        followed by ``decision_gradient`` takes. Same values as those two calls.
        """
        Z = self._network_input(X)
        out, cache = self._forward(self.weights_, Z)
        scores, reject = self._class_scores(out), self._reject_scores_of(out)
        grad_scores, grad_reject = weights(scores, reject)
        grad_scores = np.asarray(grad_scores, dtype=Z.dtype)
        if grad_reject is not None:
            grad_reject = np.asarray(grad_reject, dtype=Z.dtype)
        grad_Z = self._backward_input(
            self.weights_, cache, self._output_grad(grad_scores, grad_reject)
        )
        return scores, reject, self.input_transform_.backward(grad_Z)

    # -------------------------------------------------------------------------- state

    def get_state(self) -> dict[str, np.ndarray]:
        """The fitted arrays as a flat dict: input transform, weights, classes, history."""
        check_is_fitted(self, "weights_")
        state = dict(self.input_transform_.get_state())
        state.update(self.weights_)
        state["classes"] = self.classes_
        for key in ("epoch", "loss", "train_accuracy", "seconds", "test_accuracy"):
            if all(key in record for record in self.history_):
                state[f"history_{key}"] = np.array([r[key] for r in self.history_])
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> NumpyNetwork:
        """Restore ``get_state``'s arrays; KeyError/ValueError on missing keys or bad shapes."""
        params = self._checked_params()
        dtype = params["dtype"]
        transform = InputTransform.from_state(state, params["pca"], dtype)
        classes = _state_array(state, "classes", (-1,))
        if len(classes) < 2:
            raise ValueError("state array 'classes' must hold at least 2 classes")
        n_features, n_inputs = len(transform.mean), transform.n_outputs
        shapes = self._shapes(n_inputs, self._n_outputs(len(classes)))
        weights = {name: _state_array(state, name, shape, dtype) for name, shape in shapes.items()}
        history = self._history_from_state(state)
        self.input_transform_ = transform
        self.classes_ = classes
        self.weights_ = weights
        self.n_features_in_ = int(n_features)
        self.history_ = history
        return self

    @staticmethod
    def _history_from_state(state: dict[str, np.ndarray]) -> list[dict[str, float]]:
        columns = {}
        for key in ("epoch", "loss", "train_accuracy", "seconds", "test_accuracy"):
            name = f"history_{key}"
            if name in state:
                columns[key] = _state_array(state, name, (-1,), np.float64)
            elif key != "test_accuracy":
                raise KeyError(f"the state has no {name!r} array")
        lengths = {len(column) for column in columns.values()}
        if len(lengths) > 1:
            raise ValueError("the history_* state arrays differ in length")
        rows = next(iter(lengths))
        history = []
        for i in range(rows):
            record = {key: float(column[i]) for key, column in columns.items()}
            record["epoch"] = int(record["epoch"])
            history.append(record)
        return history
