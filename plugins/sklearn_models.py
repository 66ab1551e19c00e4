"""scikit-learn models as robustkit models: ``sk-logreg``, ``sk-linear-svc`` and ``sk-mlp``.

Each trains a scikit-learn Pipeline (optional StandardScaler or MinMaxScaler, optional
PCA, then the classifier) and keeps what the fitted pipeline computes as plain arrays:

- the preprocessing, folded into one affine map ``z = x·W + b`` (``input_weight`` is a
  vector for per-feature scaling, a matrix once PCA projects; ``input_bias``);
- the layers ``layer{i}_weight`` (in, out) and ``layer{i}_bias`` (a linear classifier is
  one layer), the hidden ``activation`` and the ``head`` (its loss);
- ``classes``: the classifier's classes, ``REJECT`` (-1) included with ``reject=True``.

Scores and gradients are computed in numpy from these arrays, so the input gradients
are exact through the whole pipeline, and saving needs no pickle. A binary classifier's
single score s is exposed as the two columns (0, s): its argmax is scikit-learn's
prediction and its softmax is ``predict_proba``. ``wrap_estimator`` turns a pipeline
or classifier fitted elsewhere into the same model (``robustkit.wrap``).

What each model supports beyond scores and exact input gradients:

- ``certifiable`` (``--certify ibp|crown``): ``sk-logreg``, ``sk-linear-svc`` and
  ``sk-mlp`` with ``activation=relu`` or ``identity``; ``tanh`` and ``logistic`` MLPs are
  not certifiable (``robustkit.certify`` bounds only ReLU and GELU activations).
- ``batch_transform`` (``--defense adversarial-training``): ``sk-mlp`` only, trained one
  minibatch at a time with ``MLPClassifier.partial_fit``; LogisticRegression and
  LinearSVC have no per-batch training loop.
- ``ibp_training``: none (scikit-learn's training loops cannot take the IBP loss).
"""

from __future__ import annotations

import time
import warnings
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np

from robustkit import INPUT_GRADIENT, REJECT, REJECTION, Model, RobustkitError, hookimpl
from robustkit.certify import Affine, LinearHead, ReLU
from robustkit.interfaces import (
    BATCH_TRANSFORM,
    CERTIFIABLE,
    NOISE_CLASS,
    BatchTransform,
    EpochCallback,
)
from robustkit.params import check_int

SCALERS = ("standard", "minmax", "none")
ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
#: Per-sample losses: multinomial log-loss, or one-vs-rest logistic/hinge/squared hinge.
HEADS = ("softmax", "ovr-logistic", "ovr-hinge", "ovr-squared-hinge")
SVC_LOSSES = ("hinge", "squared_hinge")
#: Hidden activations ``robustkit.certify`` can bound (identity layers fold into affines).
CERTIFIABLE_ACTIVATIONS = ("identity", "relu")


# --------------------------------------------------------------------------- maths


def _activate(name: str, pre: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    if name == "identity":
        return pre
    if name == "logistic":
        return expit(pre)
    if name == "tanh":
        return np.tanh(pre)
    return np.maximum(pre, 0.0)


def _activation_derivative(name: str, pre: np.ndarray, out: np.ndarray) -> np.ndarray:
    if name == "identity":
        return np.ones_like(pre)
    if name == "logistic":
        return out * (1.0 - out)
    if name == "tanh":
        return 1.0 - out**2
    return (pre > 0).astype(pre.dtype)


def _all_scores(out: np.ndarray) -> np.ndarray:
    """One score per classifier class: a binary classifier's s becomes (0, s)."""
    return np.hstack([np.zeros_like(out), out]) if out.shape[1] == 1 else out


def _scores_grad_to_out(grad_all: np.ndarray, n_out: int) -> np.ndarray:
    return grad_all[:, 1:] if n_out == 1 else grad_all


def head_loss(head: str, out: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample loss (n,) and its gradient w.r.t. the last layer's output (n, m)."""
    from scipy.special import expit, log_softmax

    scores = _all_scores(out)
    rows = np.arange(len(scores))
    if head == "softmax":
        log_p = log_softmax(scores, axis=1)
        grad = np.exp(log_p)
        grad[rows, index] -= 1.0
        return -log_p[rows, index], _scores_grad_to_out(grad, out.shape[1])
    signs = -np.ones_like(scores)
    signs[rows, index] = 1.0
    signs = _scores_grad_to_out(signs, out.shape[1])
    margin = signs * out
    if head == "ovr-logistic":
        return np.logaddexp(0.0, -margin).sum(axis=1), -signs * expit(-margin)
    slack = np.maximum(0.0, 1.0 - margin)
    if head == "ovr-hinge":
        return slack.sum(axis=1), -signs * (slack > 0)
    return (slack**2).sum(axis=1), -2.0 * signs * slack


# --------------------------------------------------------------------------- conversion


def _affine_of_steps(steps: list[Any], n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Fold fitted StandardScaler/MinMaxScaler/MaxAbsScaler/PCA steps into x·W + b."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    weight, bias = np.ones(n_features), np.zeros(n_features)

    def scale(factor: Any, shift: Any) -> None:
        nonlocal weight, bias
        factor = np.ones_like(bias) if factor is None else np.asarray(factor, dtype=np.float64)
        shift = np.zeros_like(bias) if shift is None else np.asarray(shift, dtype=np.float64)
        weight = weight * factor  # a vector scales elementwise, a matrix by columns
        bias = bias * factor + shift

    for step in steps:
        if step is None or step == "passthrough":
            continue
        if isinstance(step, StandardScaler):
            inverse = 1.0 / step.scale_ if step.with_std else None
            shift = -step.mean_ * (1.0 if inverse is None else inverse) if step.with_mean else None
            scale(inverse, shift)
        elif isinstance(step, MinMaxScaler):
            if step.clip:
                raise RobustkitError(
                    "MinMaxScaler(clip=True) is not differentiable; use clip=False"
                )
            scale(step.scale_, step.min_)
        elif isinstance(step, MaxAbsScaler):
            scale(1.0 / step.scale_, None)
        elif isinstance(step, PCA):
            components = np.asarray(step.components_, dtype=np.float64).T
            if step.whiten:
                components = components / np.sqrt(step.explained_variance_)
            matrix = np.diag(weight) if weight.ndim == 1 else weight
            weight = matrix @ components
            bias = (bias - step.mean_) @ components
        else:
            raise RobustkitError(
                f"robustkit.wrap cannot differentiate through a {type(step).__name__} step; "
                "supported: StandardScaler, MinMaxScaler, MaxAbsScaler, PCA"
            )
    return weight, bias


def _layers_of(estimator: Any) -> tuple[list[np.ndarray], list[np.ndarray], str, str]:
    """Weights, biases, hidden activation and head of a fitted supported classifier."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import LinearSVC

    if isinstance(estimator, MLPClassifier):
        weights = [np.asarray(w, dtype=np.float64) for w in estimator.coefs_]
        biases = [np.asarray(b, dtype=np.float64) for b in estimator.intercepts_]
        return weights, biases, estimator.activation, "softmax"
    if isinstance(estimator, LogisticRegression | LinearSVC):
        weights = [np.asarray(estimator.coef_, dtype=np.float64).T]
        biases = [np.broadcast_to(estimator.intercept_, (weights[0].shape[1],)).astype(float)]
        if isinstance(estimator, LogisticRegression):
            return weights, biases, "identity", "softmax"
        if estimator.multi_class != "ovr":
            raise RobustkitError("LinearSVC(multi_class='crammer_singer') is not supported")
        return weights, biases, "identity", "ovr-" + estimator.loss.replace("_", "-")
    raise RobustkitError(
        f"robustkit.wrap cannot use a {type(estimator).__name__} classifier; supported: "
        "LogisticRegression, LinearSVC, MLPClassifier"
    )


# --------------------------------------------------------------------------- the model


def _is_positive(value: Any) -> bool:
    return (
        isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value) and value > 0
    )


class SklearnModel(Model):
    """Base of the scikit-learn models: a pipeline fitted by scikit-learn, run in numpy.

    ``scaler`` is ``standard``, ``minmax`` or ``none``; ``pca`` keeps that many
    components; ``reject=True`` trains ``REJECT``-labelled samples as one more class
    whose score is ``reject_score``. Subclasses build the classifier.
    """

    #: What every scikit-learn model can do; ``capabilities`` adds what depends on it.
    base_capabilities: ClassVar[frozenset[str]] = frozenset(
        {INPUT_GRADIENT, REJECTION, NOISE_CLASS}
    )

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        """The base capabilities, and ``certifiable`` where the hidden activation is one
        that ``robustkit.certify`` bounds (ReLU, or identity: the linear models)."""
        have = self.base_capabilities
        if self._activation_name() in CERTIFIABLE_ACTIVATIONS:
            have |= {CERTIFIABLE}
        return have

    def _activation_name(self) -> str:
        """The hidden activation: the fitted one, else the parameter (linear: identity)."""
        return getattr(self, "activation_", getattr(self, "activation", "identity"))

    def _classifier(self) -> Any:
        raise NotImplementedError

    def _check_classifier_params(self) -> None:
        """Validate the classifier's own parameters."""

    def validate(self) -> None:
        """Check scaler, pca, reject and the classifier's parameters."""
        if self.scaler not in SCALERS:
            raise RobustkitError(f"scaler must be one of {', '.join(SCALERS)}; got {self.scaler!r}")
        check_int("pca", self.pca, allow_none=True)
        if not isinstance(self.reject, bool | np.bool_):
            raise RobustkitError(f"reject must be True or False; got {self.reject!r}")
        self._check_classifier_params()

    def _pipeline(self) -> Any:
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import MinMaxScaler, StandardScaler

        steps: list[Any] = []
        if self.scaler == "standard":
            steps.append(StandardScaler())
        elif self.scaler == "minmax":
            steps.append(MinMaxScaler())
        if self.pca is not None:
            steps.append(PCA(n_components=self.pca, random_state=self.random_state))
        return make_pipeline(*steps, self._classifier())

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callback: EpochCallback | None = None,
    ) -> SklearnModel:
        """Fit the pipeline with scikit-learn, then keep its arrays; return self."""
        from sklearn.exceptions import ConvergenceWarning

        X, y = self._checked_training_data(X, y)
        pipeline = self._pipeline()
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipeline.fit(X, y)
        seconds = time.perf_counter() - start
        self._set_from_pipeline(pipeline)
        epochs = int(np.max(getattr(pipeline[-1], "n_iter_", 1)))
        self.history_ = []
        self._record(epochs, seconds, X, y, eval_set, callback)
        return self

    def _checked_training_data(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Validated parameters, inputs and labels (REJECT only with ``reject=True``)."""
        self.validate()
        X, y = self._check_X(X), np.asarray(y)
        if len(X) != len(y):
            raise RobustkitError(f"X has {len(X)} rows but y has {len(y)} labels")
        noise = (y == REJECT) if y.dtype.kind in "iuf" else np.zeros(len(y), dtype=bool)
        if noise.any() and not self.reject:
            raise RobustkitError(
                f"y contains REJECT ({REJECT}) labels but reject=False; set reject=True"
            )
        if len(np.unique(y[~noise])) < 2:
            raise RobustkitError("y needs at least two classes besides REJECT")
        return X, y

    def _record(
        self,
        epoch: int,
        seconds: float,
        X: np.ndarray,
        y: np.ndarray,
        eval_set: tuple[np.ndarray, np.ndarray] | None,
        callback: EpochCallback | None,
    ) -> None:
        """Append one history record (loss and accuracy on the clean training data)."""
        record: dict[str, float] = {
            "epoch": epoch,
            "loss": float(self.loss_gradient(X, y)[0].mean()),
            "train_accuracy": float(np.mean(self.predict(X) == y)),
            "seconds": seconds,
        }
        if eval_set is not None:
            X_eval, y_eval = eval_set
            record["test_accuracy"] = float(np.mean(self.predict(X_eval) == np.asarray(y_eval)))
        self.history_.append(record)
        if callback is not None:
            callback(dict(record))

    def _set_from_pipeline(self, pipeline: Any) -> None:
        steps = list(pipeline[:-1]) if hasattr(pipeline, "steps") else []
        classifier = pipeline[-1] if hasattr(pipeline, "steps") else pipeline
        n_features = int(getattr(pipeline, "n_features_in_", None) or classifier.n_features_in_)
        weight, bias = _affine_of_steps(steps, n_features)
        weights, biases, activation, head = _layers_of(classifier)
        self._set_arrays(weight, bias, weights, biases, activation, head, classifier.classes_)

    def _set_arrays(self, weight, bias, weights, biases, activation, head, classes) -> None:
        classes = np.asarray(classes)
        self.input_weight_, self.input_bias_ = weight, bias
        self.weights_, self.biases_ = weights, biases
        self.activation_, self.head_ = str(activation), str(head)
        self.all_classes_ = classes
        real = classes != REJECT if classes.dtype.kind in "iuf" else np.ones(len(classes), bool)
        self.classes_ = classes[real]
        self._real_columns = np.flatnonzero(real)
        self._reject_column = np.flatnonzero(~real)
        self.n_features_in_ = len(bias) if weight.ndim == 1 else weight.shape[0]

    # ------------------------------------------------------------------ forward/backward

    def _check_X(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise RobustkitError(f"X must be a 2-D array (n_samples, n_features); got {X.shape}")
        if not np.isfinite(X).all():
            raise RobustkitError("X contains NaN or inf; the models accept finite numbers only")
        if hasattr(self, "n_features_in_") and X.shape[1] != self.n_features_in_:
            raise RobustkitError(
                f"X has {X.shape[1]} features, but the model was fitted on {self.n_features_in_}"
            )
        return X

    def _forward(self, X: Any) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
        """Last layer output (n, m) and each hidden layer's (pre-activation, activation)."""
        if not hasattr(self, "weights_"):
            raise RobustkitError(f"{type(self).__name__} is not fitted yet; call fit first")
        h = self._preprocess(self._check_X(X))
        cache = []
        for weight, bias in zip(self.weights_[:-1], self.biases_[:-1], strict=True):
            pre = h @ weight + bias
            h = _activate(self.activation_, pre)
            cache.append((pre, h))
        return h @ self.weights_[-1] + self.biases_[-1], cache

    def _preprocess(self, X: np.ndarray) -> np.ndarray:
        """The scaler and PCA: the folded affine map x·W + b (W a vector: per feature)."""
        if self.input_weight_.ndim == 1:
            return X * self.input_weight_ + self.input_bias_
        return X @ self.input_weight_ + self.input_bias_

    def _backward(self, cache: list[tuple[np.ndarray, np.ndarray]], grad_out: np.ndarray):
        grad = grad_out @ self.weights_[-1].T
        for (pre, out), weight in zip(reversed(cache), reversed(self.weights_[:-1]), strict=True):
            grad = (grad * _activation_derivative(self.activation_, pre, out)) @ weight.T
        if self.input_weight_.ndim == 1:
            return grad * self.input_weight_
        return grad @ self.input_weight_.T

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Class scores (n_samples, n_classes), columns in the order of ``classes_``."""
        return _all_scores(self._forward(X)[0])[:, self._real_columns]

    def reject_score(self, X: np.ndarray) -> np.ndarray:
        """The REJECT class's score with ``reject=True`` training on noise; −inf otherwise."""
        if not len(self._reject_column):
            return super().reject_score(np.asarray(X))
        return _all_scores(self._forward(X)[0])[:, self._reject_column[0]]

    def _index(self, y: Any) -> np.ndarray:
        y = np.ravel(np.asarray(y))
        index = np.searchsorted(self.all_classes_, y).clip(0, len(self.all_classes_) - 1)
        unknown = self.all_classes_[index] != y
        if unknown.any():
            raise RobustkitError(
                f"labels {np.unique(y[unknown]).tolist()} are not classes of the model "
                f"(classes: {self.all_classes_.tolist()})"
            )
        return index

    def loss_gradient(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample training loss of the classifier and its gradient w.r.t. raw X."""
        out, cache = self._forward(X)
        index = self._index(y)
        if len(index) != len(out):
            raise RobustkitError(f"X has {len(out)} rows but y has {len(index)} labels")
        loss, grad_out = head_loss(self.head_, out, index)
        return loss, self._backward(cache, grad_out)

    def decision_gradient(
        self,
        X: np.ndarray,
        grad_scores: np.ndarray,
        grad_reject: np.ndarray | None = None,
    ) -> np.ndarray:
        """d(Σ grad_scores·scores + grad_reject·reject_score)/dX through the pipeline."""
        out, cache = self._forward(X)
        grad_all = np.zeros((len(out), len(self.all_classes_)))
        grad_all[:, self._real_columns] = grad_scores
        if grad_reject is not None and len(self._reject_column):
            grad_all[:, self._reject_column[0]] += grad_reject
        return self._backward(cache, _scores_grad_to_out(grad_all, out.shape[1]))

    def certification_layers(self) -> list[Any]:
        """The fitted pipeline as ``robustkit.certify`` layers: the preprocessing and each
        layer as ``Affine`` (ReLU between hidden layers), the scores as ``LinearHead``.

        A binary classifier's one decision column s becomes the two scores (0, s), and
        the columns are put in ``classes_`` order with the REJECT score last.
        """
        if not hasattr(self, "weights_"):
            raise RobustkitError(f"{type(self).__name__} is not fitted yet; call fit first")
        if CERTIFIABLE not in self.capabilities:
            raise RobustkitError(
                f"{type(self).__name__} with activation={self.activation_!r} cannot be certified; "
                f"certifiable activations: {', '.join(CERTIFIABLE_ACTIVATIONS)}"
            )
        weight = self.input_weight_
        layers: list[Any] = [
            Affine(np.diag(weight) if weight.ndim == 1 else weight, self.input_bias_)
        ]
        for hidden_weight, hidden_bias in zip(self.weights_[:-1], self.biases_[:-1], strict=True):
            layers.append(Affine(hidden_weight, hidden_bias))
            if self.activation_ == "relu":
                layers.append(ReLU())
        last_weight, last_bias = self.weights_[-1], self.biases_[-1]
        if last_weight.shape[1] == 1:  # binary: scores (0, s)
            last_weight = np.hstack([np.zeros_like(last_weight), last_weight])
            last_bias = np.concatenate([np.zeros(1), last_bias])
        order = np.concatenate([self._real_columns, self._reject_column])
        layers.append(Affine(last_weight[:, order], last_bias[order]))
        return [*layers, LinearHead(reject=bool(len(self._reject_column)))]

    # ----------------------------------------------------------------------- state

    def get_state(self) -> dict[str, np.ndarray]:
        """The pipeline as arrays (see the module doc) plus the history."""
        if not hasattr(self, "weights_"):
            raise RobustkitError(f"{type(self).__name__} is not fitted yet; call fit first")
        state = {
            "input_weight": self.input_weight_,
            "input_bias": self.input_bias_,
            "classes": self.all_classes_,
            "activation": np.asarray(self.activation_),
            "head": np.asarray(self.head_),
        }
        for i, (weight, bias) in enumerate(zip(self.weights_, self.biases_, strict=True)):
            state[f"layer{i}_weight"], state[f"layer{i}_bias"] = weight, bias
        for key in self.history_[0] if getattr(self, "history_", None) else ():
            state[f"history_{key}"] = np.array([r[key] for r in self.history_], dtype=float)
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> SklearnModel:
        """Restore ``get_state``'s arrays; KeyError/ValueError on missing or bad ones."""
        n_layers = sum(1 for key in state if key.startswith("layer") and key.endswith("_weight"))
        if n_layers == 0:
            raise KeyError("the state has no 'layer0_weight' array")
        weights = [np.asarray(state[f"layer{i}_weight"], dtype=np.float64) for i in range(n_layers)]
        biases = [np.asarray(state[f"layer{i}_bias"], dtype=np.float64) for i in range(n_layers)]
        activation, head = str(state["activation"]), str(state["head"])
        if activation not in ACTIVATIONS or head not in HEADS:
            raise ValueError(f"unknown activation {activation!r} or head {head!r}")
        weight = np.asarray(state["input_weight"], dtype=np.float64)
        bias = np.asarray(state["input_bias"], dtype=np.float64)
        inputs = bias.shape[0]
        for w, b in zip(weights, biases, strict=True):
            if w.ndim != 2 or w.shape[0] != inputs or b.shape != (w.shape[1],):
                raise ValueError(f"layer shapes {w.shape}/{b.shape} do not chain")
            inputs = w.shape[1]
        self._set_arrays(weight, bias, weights, biases, activation, head, state["classes"])
        columns = {k.removeprefix("history_"): state[k] for k in state if k.startswith("history_")}
        rows = len(next(iter(columns.values()))) if columns else 0
        self.history_ = [{k: float(v[i]) for k, v in columns.items()} for i in range(rows)]
        return self


class SkLogisticRegression(SklearnModel):
    """scikit-learn LogisticRegression (multinomial log-loss) behind an optional scaler/PCA."""

    def __init__(
        self,
        C: float = 1.0,
        max_iter: int = 1000,
        scaler: str = "standard",
        pca: int | None = None,
        reject: bool = False,
        random_state: Any = None,
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.scaler = scaler
        self.pca = pca
        self.reject = reject
        self.random_state = random_state

    def _check_classifier_params(self) -> None:
        if not _is_positive(self.C):
            raise RobustkitError(f"C must be a finite number > 0; got {self.C!r}")
        check_int("max_iter", self.max_iter)

    def _classifier(self) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)


class SkLinearSVC(SklearnModel):
    """scikit-learn LinearSVC (one-vs-rest hinge or squared hinge) behind an optional scaler/PCA."""

    def __init__(
        self,
        C: float = 1.0,
        loss: str = "squared_hinge",
        max_iter: int = 5000,
        scaler: str = "standard",
        pca: int | None = None,
        reject: bool = False,
        random_state: Any = None,
    ) -> None:
        self.C = C
        self.loss = loss
        self.max_iter = max_iter
        self.scaler = scaler
        self.pca = pca
        self.reject = reject
        self.random_state = random_state

    def _check_classifier_params(self) -> None:
        if not _is_positive(self.C):
            raise RobustkitError(f"C must be a finite number > 0; got {self.C!r}")
        if self.loss not in SVC_LOSSES:
            raise RobustkitError(f"loss must be one of {', '.join(SVC_LOSSES)}; got {self.loss!r}")
        check_int("max_iter", self.max_iter)

    def _classifier(self) -> Any:
        from sklearn.svm import LinearSVC

        return LinearSVC(
            C=self.C, loss=self.loss, max_iter=self.max_iter, random_state=self.random_state
        )


class SkMLP(SklearnModel):
    """scikit-learn MLPClassifier (any activation, log-loss) behind an optional scaler/PCA.

    ``hidden`` is the hidden layer sizes (``hidden=300x150`` on the command line), ``lr``
    the initial learning rate of Adam, ``epochs`` the maximum number of epochs. With
    ``fit(..., batch_transform=f)`` (adversarial training) it trains one minibatch at a
    time through ``MLPClassifier.partial_fit``, for exactly ``epochs`` epochs.
    """

    base_capabilities = SklearnModel.base_capabilities | {BATCH_TRANSFORM}

    def __init__(
        self,
        hidden: int | tuple[int, ...] = (100,),
        activation: str = "relu",
        alpha: float = 1e-4,
        lr: float = 1e-3,
        epochs: int = 200,
        batch_size: int | None = None,
        scaler: str = "standard",
        pca: int | None = None,
        reject: bool = False,
        random_state: Any = None,
    ) -> None:
        self.hidden = hidden
        self.activation = activation
        self.alpha = alpha
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.scaler = scaler
        self.pca = pca
        self.reject = reject
        self.random_state = random_state

    def _hidden_sizes(self) -> tuple[int, ...]:
        sizes = (self.hidden,) if isinstance(self.hidden, Integral) else tuple(self.hidden)
        for size in sizes:
            check_int("hidden layer size", size)
        return sizes

    def _check_classifier_params(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise RobustkitError(
                f"activation must be one of {', '.join(ACTIVATIONS)}; got {self.activation!r}"
            )
        try:
            self._hidden_sizes()
        except TypeError:
            raise RobustkitError(
                f"hidden must be sizes like 100 or 300x150; got {self.hidden!r}"
            ) from None
        if not (isinstance(self.alpha, Real) and np.isfinite(self.alpha) and self.alpha >= 0):
            raise RobustkitError(f"alpha must be a finite number >= 0; got {self.alpha!r}")
        if not _is_positive(self.lr):
            raise RobustkitError(f"lr must be a finite number > 0; got {self.lr!r}")
        check_int("epochs", self.epochs)
        check_int("batch_size", self.batch_size, allow_none=True)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callback: EpochCallback | None = None,
        batch_transform: BatchTransform | None = None,
    ) -> SkMLP:
        """Fit with scikit-learn; with ``batch_transform(self, X_batch, y_batch)`` every
        minibatch of raw inputs is replaced by what it returns, computed with the current
        weights (the very first minibatch trains clean: there are no weights before it)."""
        if batch_transform is None:
            super().fit(X, y, eval_set=eval_set, callback=callback)
        else:
            self._fit_on_batches(X, y, batch_transform, eval_set, callback)
        return self

    def _fit_on_batches(
        self,
        X: Any,
        y: Any,
        batch_transform: BatchTransform,
        eval_set: tuple[np.ndarray, np.ndarray] | None,
        callback: EpochCallback | None,
    ) -> None:
        """The scaler and PCA fitted on the clean data, then ``epochs`` passes of
        ``partial_fit`` on each transformed minibatch, the model updated after each."""
        from sklearn.utils import check_random_state

        X, y = self._checked_training_data(X, y)
        pipeline = self._pipeline()
        steps = [step for _, step in pipeline.steps[:-1]]
        Z = X
        for step in steps:
            Z = step.fit_transform(Z)
        self.input_weight_, self.input_bias_ = _affine_of_steps(steps, X.shape[1])
        classifier, classes = pipeline[-1], np.unique(y)
        batch = min(self.batch_size or 200, len(X))  # 200: MLPClassifier's "auto"
        shuffle = check_random_state(self.random_state)
        self.history_, trained = [], False
        for epoch in range(1, self.epochs + 1):
            start = time.perf_counter()
            order = shuffle.permutation(len(X))
            for begin in range(0, len(X), batch):
                rows = order[begin : begin + batch]
                X_batch = X[rows]
                if trained:
                    X_batch = self._checked_batch(batch_transform(self, X_batch, y[rows]), rows)
                classifier.set_params(batch_size=len(rows))  # the last batch may be short
                classifier.partial_fit(self._preprocess(X_batch), y[rows], classes=classes)
                weights, biases, activation, head = _layers_of(classifier)
                self._set_arrays(
                    self.input_weight_,
                    self.input_bias_,
                    weights,
                    biases,
                    activation,
                    head,
                    classifier.classes_,
                )
                trained = True
            self._record(epoch, time.perf_counter() - start, X, y, eval_set, callback)

    def _checked_batch(self, X_batch: Any, rows: np.ndarray) -> np.ndarray:
        """What ``batch_transform`` returned, if it has the batch's shape."""
        X_batch = np.asarray(X_batch, dtype=np.float64)
        if X_batch.shape != (len(rows), self.n_features_in_):
            raise RobustkitError(
                f"batch_transform must return the batch's shape "
                f"{(len(rows), self.n_features_in_)}; got {X_batch.shape}"
            )
        return X_batch

    def _classifier(self) -> Any:
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(
            hidden_layer_sizes=self._hidden_sizes(),
            activation=self.activation,
            alpha=self.alpha,
            learning_rate_init=self.lr,
            max_iter=self.epochs,
            batch_size="auto" if self.batch_size is None else self.batch_size,
            random_state=self.random_state,
        )


# --------------------------------------------------------------------------- wrap


def _model_for(classifier: Any, steps: list[Any]) -> SklearnModel:
    """An unfitted plugin model whose parameters describe ``classifier`` and ``steps``."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    kinds = {StandardScaler: "standard", MinMaxScaler: "minmax"}
    scaler = next((kinds[type(s)] for s in steps if type(s) in kinds), "none")
    pca = next((s.n_components_ for s in steps if isinstance(s, PCA)), None)
    reject = bool(np.any(np.asarray(classifier.classes_) == REJECT))
    common = {"scaler": scaler, "pca": pca, "reject": reject}
    if isinstance(classifier, MLPClassifier):
        return SkMLP(
            hidden=tuple(classifier.hidden_layer_sizes)
            if not isinstance(classifier.hidden_layer_sizes, Integral)
            else (classifier.hidden_layer_sizes,),
            activation=classifier.activation,
            alpha=classifier.alpha,
            lr=classifier.learning_rate_init,
            epochs=classifier.max_iter,
            **common,
        )
    if isinstance(classifier, LogisticRegression):
        return SkLogisticRegression(C=classifier.C, max_iter=classifier.max_iter, **common)
    return SkLinearSVC(C=classifier.C, loss=classifier.loss, max_iter=classifier.max_iter, **common)


@hookimpl
def wrap_estimator(estimator):
    """A fitted LogisticRegression, LinearSVC or MLPClassifier (or a Pipeline ending in one)."""
    from sklearn.base import BaseEstimator
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(estimator, BaseEstimator):
        return None
    steps = [step for _, step in estimator.steps[:-1]] if isinstance(estimator, Pipeline) else []
    classifier = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    if not isinstance(classifier, LogisticRegression | LinearSVC | MLPClassifier):
        if isinstance(estimator, Pipeline):
            _layers_of(classifier)  # raises, naming the unsupported classifier
        return None
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise RobustkitError(
            f"robustkit.wrap needs a fitted estimator; call fit on the {type(estimator).__name__}"
        ) from None
    model = _model_for(classifier, steps)
    model._set_from_pipeline(estimator)
    model.history_ = []
    return model


@hookimpl
def register_models(register):
    """Register ``sk-logreg``, ``sk-linear-svc`` and ``sk-mlp``."""
    register("sk-logreg", SkLogisticRegression)
    register("sk-linear-svc", SkLinearSVC)
    register("sk-mlp", SkMLP)
