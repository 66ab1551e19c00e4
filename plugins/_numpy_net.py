"""Shared machinery of the from-scratch numpy networks ``hinge`` and ``rbf``.

The input pipeline (scale raw input to [0, 1], optional PCA), parameter and data
validation, label encoding with ``REJECT``, the minibatch SGD loop over preallocated
buffers, the per-epoch history and the flat ``get_state``/``set_state`` dict. Each
network subclass supplies its layers: the parameter layout, initialisation, a forward
pass, the per-sample loss, the input backward pass and an in-place SGD step.
"""

from __future__ import annotations

import functools
import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from robustkit import INPUT_GRADIENT, REJECT, REJECTION, Model, RobustkitError
from robustkit.interfaces import EpochCallback, with_rejects
from robustkit.params import check_int

#: A compiled SGD step: updates the parameters in place from one batch (inputs, targets).
Step = Callable[[np.ndarray, np.ndarray], None]

#: Rows per chunk when evaluating a whole data set (keeps temporaries small).
EVAL_CHUNK = 4096
#: BLAS threads in the SGD loop and in inference (None: no limit). One thread measured as
#: fast as two at batch 128 and ~20 % slower at 1024 on an idle 2-core machine, but 10-20x
#: faster when another process keeps the second core busy (bench_networks.py).
BLAS_THREADS: int | None = 1
#: From this many rows on, inference uses every BLAS thread (measured: 10,000 rows take
#: 0.010 s on two threads, 0.014 s on one, on an idle machine).
MANY_ROWS = 4096
#: Rows of training data used to initialise data-dependent parameters (RBF centres).
INIT_SAMPLE = 2000


@functools.cache
def _thread_controller() -> Any:
    from threadpoolctl import ThreadpoolController  # a scikit-learn dependency

    return ThreadpoolController()


def blas_threads() -> Any:
    """A context limiting BLAS to ``BLAS_THREADS`` (8 µs, vs 200 µs for a fresh scan)."""
    return _thread_controller().limit(limits=BLAS_THREADS, user_api="blas")


def single_blas_thread(method: Callable) -> Callable:
    """Run an inference method on fewer than ``MANY_ROWS`` rows under ``blas_threads()``:
    such matrices are small, and a second BLAS thread slows them 10x when the other core
    is busy (joblib workers, a second process); larger batches gain from both cores."""

    @functools.wraps(method)
    def wrapper(self: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
        if hasattr(X, "__len__") and len(X) >= MANY_ROWS:
            return method(self, X, *args, **kwargs)
        with blas_threads():
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
    if not np.isfinite(X).all():
        raise RobustkitError("X contains NaN or inf; the networks accept finite numbers only")
    return X


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# ------------------------------------------------------------------------ input pipeline


@dataclass
class InputTransform:
    """Raw input → network input: scale to [0, 1], centre, then optionally project by PCA.

    The scaling uses the training data's global min/max (so pixels 0–255 and digits 0–16
    both work); the training mean is then subtracted, as PCA does anyway: uncentred
    inputs make the rbf network's squared-distance loss badly conditioned at lr 0.1.
    The map is affine, so ``backward`` takes a gradient back to the raw input.
    """

    low: float
    span: float
    mean: np.ndarray  # (n_features,) mean of the scaled training data
    components: np.ndarray | None = None  # (n_components, n_features), orthonormal rows

    @classmethod
    def fit(
        cls, X: np.ndarray, n_components: int | None, seed: int, dtype: np.dtype
    ) -> InputTransform:
        """Learn the scaling (global min/max), the mean and, if asked, a seeded PCA."""
        low, high = float(X.min()), float(X.max())
        span = high - low if high > low else 1.0
        scaled = (X - low) * (1.0 / span)
        if n_components is None:
            return cls(low, span, scaled.mean(axis=0, dtype=np.float64).astype(dtype))
        from sklearn.decomposition import PCA  # imported here to keep plugin import cheap

        pca = PCA(n_components=n_components, random_state=seed).fit(scaled)
        return cls(low, span, pca.mean_.astype(dtype), pca.components_.astype(dtype))

    @property
    def n_outputs(self) -> int:
        """Number of network inputs it produces."""
        return len(self.mean) if self.components is None else self.components.shape[0]

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scaled, centred (and projected) input, in ``X``'s dtype."""
        scaled = X - self.low
        scaled *= 1.0 / self.span
        scaled -= self.mean
        return scaled if self.components is None else scaled @ self.components.T

    def backward(self, grad: np.ndarray) -> np.ndarray:
        """Gradient w.r.t. the raw input, given the gradient w.r.t. the network input."""
        if self.components is not None:
            grad = grad @ self.components
        return grad * (1.0 / self.span)

    def get_state(self) -> dict[str, np.ndarray]:
        """The fitted arrays: ``input_low``, ``input_span``, ``input_mean``, ``pca_components``."""
        state = {
            "input_low": np.asarray(self.low),
            "input_span": np.asarray(self.span),
            "input_mean": self.mean,
        }
        if self.components is not None:
            state["pca_components"] = self.components
        return state

    @classmethod
    def from_state(
        cls, state: dict[str, np.ndarray], n_components: int | None, dtype: np.dtype
    ) -> InputTransform:
        """Rebuild from ``get_state``; KeyError/ValueError on missing keys or bad shapes."""
        low = float(_state_array(state, "input_low", ()))
        span = float(_state_array(state, "input_span", ()))
        if not (math.isfinite(low) and math.isfinite(span) and span > 0):
            raise ValueError("input_low/input_span must be finite with input_span > 0")
        mean = _state_array(state, "input_mean", (-1,), dtype)
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
        offset = 0
        for (name, shape), size in zip(shapes.items(), sizes, strict=True):
            self.w[name] = self.values[offset : offset + size].reshape(shape)
            self.g[name] = self.grads[offset : offset + size].reshape(shape)
            offset += size

    def copy_weights(self) -> dict[str, np.ndarray]:
        """Independent copies of the named parameters."""
        return {name: view.copy() for name, view in self.w.items()}


def outer_product(batch: int) -> Callable[..., np.ndarray]:
    """``Aᵀ B`` over a batch as ``f(A.T, B, out)``: a broadcast multiply when the batch is
    one row (numpy's matmul does not use BLAS for an inner dimension of 1, and is ~3× slower).
    """
    return np.multiply if batch == 1 else np.matmul


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

    capabilities: ClassVar[frozenset[str]] = frozenset({INPUT_GRADIENT, REJECTION})

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
        """An in-place SGD step for batches of exactly ``batch`` rows."""
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

    # -------------------------------------------------------------------- validation

    def _checked_params(self) -> dict[str, Any]:
        """All hyperparameters validated, with one-line errors naming what is accepted."""
        params = {
            "hidden": check_int("hidden", self.hidden),
            "lr": check_real("lr", self.lr, positive=True),
            "epochs": check_int("epochs", self.epochs),
            "batch_size": check_int("batch_size", self.batch_size),
            "noise_std": check_real("noise_std", self.noise_std, positive=False),
            "dtype": check_dtype(self.dtype),
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
    ) -> NumpyNetwork:
        """Train by minibatch SGD on raw inputs ``X`` and labels ``y`` (REJECT marks noise)."""
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
        self.input_transform_ = InputTransform.fit(X, pca, int(rng.integers(2**31 - 1)), dtype)
        Z = self.input_transform_.transform(X)
        if eval_data is not None:
            eval_data = (self.input_transform_.transform(eval_data[0]), eval_data[1])

        n_outputs = self._n_outputs(len(self.classes_))
        flat = FlatParameters(self._shapes(Z.shape[1], n_outputs), dtype)
        sample = rng.permutation(len(Z))[:INIT_SAMPLE]
        self._initialise(flat.w, rng, Z[sample], y_index[sample])
        self.history_ = []
        self._train(flat, Z, y_index, eval_data, rng, params, callback)
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
        Z: np.ndarray,
        y_index: np.ndarray,
        eval_data: tuple[np.ndarray, np.ndarray] | None,
        rng: np.random.Generator,
        params: dict[str, Any],
        callback: EpochCallback | None,
    ) -> None:
        """The SGD epochs: shuffle into preallocated buffers, step, evaluate, report."""
        n = len(Z)
        batch = min(params["batch_size"], n)
        n_full, remainder = divmod(n, batch)
        step = self._make_step(flat, batch, params["lr"])
        last_step = self._make_step(flat, remainder, params["lr"]) if remainder else None
        targets = self._targets(y_index, Z.dtype)
        Z_shuffled = np.empty_like(Z)
        targets_shuffled = np.empty_like(targets)
        noise_std = params["noise_std"]
        noise = np.empty(Z.shape, dtype=Z.dtype) if noise_std > 0 else None
        end_full = n_full * batch
        for epoch in range(1, params["epochs"] + 1):
            # Overflow only happens when training diverges, which is reported below.
            with (
                blas_threads(),
                np.errstate(all="ignore"),
            ):
                start = time.perf_counter()
                order = rng.permutation(n)
                np.take(Z, order, axis=0, out=Z_shuffled)
                np.take(targets, order, axis=0, out=targets_shuffled)
                if noise is not None:
                    # Isotropic noise of std noise_std on the [0, 1]-scaled input projects
                    # through PCA's orthonormal rows to isotropic noise of the same std, so
                    # it is drawn directly in network-input space.
                    rng.standard_normal(out=noise, dtype=noise.dtype)
                    noise *= noise_std
                    Z_shuffled += noise
                for i in range(0, end_full, batch):
                    step(Z_shuffled[i : i + batch], targets_shuffled[i : i + batch])
                if last_step is not None:
                    last_step(Z_shuffled[end_full:], targets_shuffled[end_full:])
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

    def _evaluate(
        self, w: dict[str, np.ndarray], Z: np.ndarray, y_index: np.ndarray
    ) -> tuple[float, float]:
        """Mean loss and accuracy (REJECT counts as a label) over a whole data set."""
        total_loss, correct = 0.0, 0
        for start in range(0, len(Z), EVAL_CHUNK):
            out, _ = self._forward(w, Z[start : start + EVAL_CHUNK])
            labels = y_index[start : start + EVAL_CHUNK]
            total_loss += float(self._output_loss(out, labels)[0].sum(dtype=np.float64))
            correct += int(np.count_nonzero(self._predicted_index(out) == labels))
        return total_loss / len(Z), correct / len(Z)

    # ---------------------------------------------------------------------- inference

    def _network_input(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "weights_")
        X = self._check_X(X, check_dtype(self.dtype), reset=False)
        return self.input_transform_.transform(X)

    @single_blas_thread
    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Class scores (n_samples, n_classes); the highest wins."""
        Z = self._network_input(X)
        out, _ = self._forward(self.weights_, Z)
        return self._class_scores(out)

    @single_blas_thread
    def reject_score(self, X: np.ndarray) -> np.ndarray:
        """Score of the reject option: an input is rejected where it beats every class."""
        Z = self._network_input(X)
        out, _ = self._forward(self.weights_, Z)
        scores = self._reject_scores(out)
        return super().reject_score(out) if scores is None else scores

    @single_blas_thread
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels, REJECT (-1) for rejected inputs (one forward pass)."""
        Z = self._network_input(X)
        out, _ = self._forward(self.weights_, Z)
        index = self._predicted_index(out)
        labels = self.classes_[np.minimum(index, len(self.classes_) - 1)]
        return with_rejects(labels, index == len(self.classes_))

    @single_blas_thread
    def loss_gradient(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample training loss (n,) and its gradient w.r.t. the raw input (n, d)."""
        Z = self._network_input(X)
        y_index = self._encode(np.ravel(np.asarray(y)), bool(self.reject))
        if len(y_index) != len(Z):
            raise RobustkitError(f"X has {len(Z)} rows but y has {len(y_index)} labels")
        out, cache = self._forward(self.weights_, Z)
        loss, grad_out = self._output_loss(out, y_index)
        grad_Z = self._backward_input(self.weights_, cache, grad_out)
        return loss, self.input_transform_.backward(grad_Z)

    @single_blas_thread
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
        _, cache = self._forward(self.weights_, Z)
        grad_Z = self._backward_input(
            self.weights_, cache, self._output_grad(grad_scores, grad_reject)
        )
        return self.input_transform_.backward(grad_Z)

    @single_blas_thread
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
        scores = self._class_scores(out)
        reject = self._reject_scores(out)
        if reject is None:
            reject = super().reject_score(out)
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
