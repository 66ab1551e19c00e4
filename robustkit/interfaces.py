"""The four plugin interfaces: Model, Attack, Defense and Dataset.

Every concrete model, attack, defense and data set is a plugin that subclasses one of
these. They follow scikit-learn's estimator conventions: ``__init__`` only stores
keyword hyperparameters, ``get_params``/``set_params`` come from ``BaseEstimator``,
fitted state ends in ``_``, and every random choice takes ``random_state``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from .errors import CapabilityError, PluginFault, RobustkitError

#: The label a model predicts for a rejected input, and the label of training noise.
REJECT = -1

#: Capability: ``loss_gradient`` and ``decision_gradient`` give gradients w.r.t. the raw input.
INPUT_GRADIENT = "input_gradient"
#: Capability: the model can predict ``REJECT`` (its ``reject_score`` can beat every class).
REJECTION = "rejection"
#: Capability: the model trains on ``REJECT``-labelled samples (a noise class) when its
#: ``reject`` parameter is True. 0.1 had only REJECTION for both promises, so a model that
#: declares REJECTION and has a ``reject`` parameter is taken to have NOISE_CLASS too.
NOISE_CLASS = "noise_class"
#: Capability: the input gradients are straight-through approximations (BPDA style, e.g.
#: through a non-differentiable preprocessing); the test kit skips finite differences.
STRAIGHT_THROUGH = "straight_through"
#: Capability: ``certification_layers()`` describes the network for ``robustkit.certify``.
CERTIFIABLE = "certifiable"
#: Capability: ``fit`` takes ``batch_transform``, called on every training minibatch.
BATCH_TRANSFORM = "batch_transform"
#: Capability: ``fit`` takes ``ibp=IBPTraining(...)`` and trains on IBP worst-case margins.
IBP_TRAINING = "ibp_training"
#: Capability: ``fit`` takes ``trades=term`` (a ``RobustnessTerm``) and adds its penalty
#: between clean and adversarial scores to every minibatch's loss (TRADES).
TRADES_TRAINING = "trades_training"

#: Attack kinds: follows input gradients, queries scores only, or a baseline (random noise).
GRADIENT_ATTACK = "gradient"
SCORE_ATTACK = "score"
BASELINE_ATTACK = "baseline"
ATTACK_KINDS = (GRADIENT_ATTACK, SCORE_ATTACK, BASELINE_ATTACK)

#: Attack norms: the budget is a box (L∞) or a Euclidean ball (L2) of radius ε·range.
LINF, L2 = "linf", "l2"
NORMS = (LINF, L2)

#: Called once per epoch by ``Model.fit`` with the epoch's history record.
EpochCallback = Callable[[dict[str, float]], None]
#: ``batch_transform(model, X_batch, y_batch) -> X_batch'`` or ``(X_batch', y_batch')``:
#: with ``BATCH_TRANSFORM``, ``fit`` calls it on every minibatch of raw inputs while
#: ``model`` predicts with the current weights, and trains on what it returns (adversarial
#: training replaces the batch by adversarials; with new labels, e.g. REJECT, it relabels).
BatchTransform = Callable[[Any, np.ndarray, np.ndarray], np.ndarray | tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class IBPTraining:
    """What ``fit(..., ibp=...)`` trains on (Gowal et al., 2018): κ·(clean loss) +
    (1 − κ)·(loss on the IBP worst-case scores) over the L∞ ball of ``radius`` (input
    units) within ``bounds``. The radius ramps up from 0 and κ down from 1, linearly over
    the first ``ramp`` share of the epochs, as IBP training needs to start."""

    radius: float
    bounds: tuple[float, float]
    kappa: float = 0.5
    ramp: float = 0.5

    def schedule(self, epoch: int, epochs: int) -> tuple[float, float]:
        """(radius, κ) for ``epoch`` (1-based) of ``epochs``."""
        t = min(1.0, epoch / max(1, round(self.ramp * epochs)))
        return t * self.radius, 1.0 - t * (1.0 - self.kappa)


@runtime_checkable
class RobustnessTerm(Protocol):
    """What ``fit(..., trades=term)`` calls on every minibatch (the ``trades_training``
    capability; the ``trades`` defense passes one).

    With the weights of that moment, the model's ``fit`` gets the batch's adversarial
    points ``X_adv = term.adversarial(model, X_batch, y_batch)`` (raw inputs), computes
    its class scores ``s`` on ``X_batch`` and ``s'`` on ``X_adv`` (``decision_function``'s
    columns), calls ``value, grad_clean, grad_adv = term.penalty(s, s')`` (per-sample
    penalty (n,) and its gradients (n, n_classes) on ``s`` and ``s'``) and trains on the
    batch mean of its own loss at ``X_batch`` plus ``value``: ``grad_clean`` flows back
    through the clean pass, ``grad_adv`` through the adversarial one.
    """

    def adversarial(self, model: Any, X_batch: np.ndarray, y_batch: np.ndarray) -> np.ndarray:
        """The points (raw inputs, the batch's shape) at which the penalty is taken."""
        ...

    def penalty(
        self, clean_scores: np.ndarray, adversarial_scores: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-sample penalty (n,) and its gradients on the clean and adversarial scores."""
        ...


def capabilities_of(obj: Any) -> frozenset[str]:
    """What ``obj`` declares, plus NOISE_CLASS for a 0.1-style REJECTION model.

    In 0.1, REJECTION meant both "can reject" and "trains on a noise class"; a model
    that declares REJECTION and has a ``reject`` parameter still means both.
    """
    have = frozenset(getattr(obj, "capabilities", ()))
    if REJECTION in have and NOISE_CLASS not in have and _has_param(obj, "reject"):
        have |= {NOISE_CLASS}
    return have


def _has_param(obj: Any, name: str) -> bool:
    try:
        return name in obj.get_params(deep=False)
    except (AttributeError, TypeError):
        return False


def accepts_keyword(function: Callable[..., Any], name: str) -> bool:
    """True if ``function`` takes a keyword argument ``name`` (or ``**kwargs``)."""
    parameters = inspect.signature(function).parameters.values()
    return any(
        (p.name == name and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
        or p.kind is p.VAR_KEYWORD
        for p in parameters
    )


def fit_model(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    *,
    bounds: tuple[float, float] | None = None,
    **kw: Any,
) -> Any:
    """``model.fit(X, y, **kw)``, passing ``bounds=`` only when its ``fit`` accepts it."""
    if bounds is not None and accepts_keyword(model.fit, "bounds"):
        kw["bounds"] = tuple(map(float, bounds))
    return model.fit(X, y, **kw)


def require_capabilities(model: Any, needed: frozenset[str], user: str) -> None:
    """Raise a CapabilityError naming what ``user`` needs and ``model`` lacks."""
    have = capabilities_of(model)
    missing = sorted(needed - have)
    if missing:
        name = type(model).__name__
        raise CapabilityError(
            f"{user} needs {', '.join(missing)}, which model {name} does not have "
            f"(it has: {', '.join(sorted(have)) or 'none'})"
        )


def with_rejects(labels: np.ndarray, rejected: np.ndarray) -> np.ndarray:
    """``labels`` with ``REJECT`` where ``rejected``; text labels become an object array."""
    if not rejected.any():
        return labels
    if labels.dtype.kind not in "iuf":
        labels = labels.astype(object)  # REJECT is an int
    return np.where(rejected, REJECT, labels)


class Validating:
    """The optional parameter check every plugin kind has (default: nothing to check)."""

    def validate(self) -> None:
        """Raise a one-line RobustkitError if a parameter is invalid.

        The harness calls it on every model, defense, attack and data set of a grid
        before anything trains or loads, so override it with your own checks (and call
        it from ``fit``/``_run`` too, for direct Python use).
        """


class Model(Validating, ClassifierMixin, BaseEstimator):
    """A classifier over raw inputs that attacks can differentiate and defenses can wrap.

    Subclasses implement ``fit``, ``decision_function`` and, with ``INPUT_GRADIENT``,
    ``loss_gradient`` and ``decision_gradient``. ``predict`` is derived: the class with
    the highest score, or ``REJECT`` where ``reject_score`` is higher than every score.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callback: EpochCallback | None = None,
    ) -> Model:
        """Train on raw inputs ``X`` and labels ``y`` (``REJECT`` marks noise); return self.

        A model that wants the data's valid input range adds a keyword-only
        ``bounds: tuple[float, float] | None = None`` parameter: the harness passes
        ``bounds=(low, high)`` to every ``fit`` that accepts it (see ``fit_model``).
        """
        raise NotImplementedError

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Class scores, shape (n_samples, n_classes); higher means more likely."""
        raise NotImplementedError

    def reject_score(self, X: np.ndarray) -> np.ndarray:
        """The reject option's score, shape (n_samples,): rejected where it beats every class."""
        return np.full(len(X), -np.inf, dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels, ``REJECT`` (-1) for rejected inputs."""
        scores = self.decision_function(X)
        labels = np.asarray(self.classes_)[np.argmax(scores, axis=1)]
        return with_rejects(labels, self.reject_score(X) > scores.max(axis=1))

    def loss_gradient(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample training loss (n,) and its gradient w.r.t. the raw input (n, d)."""
        raise NotImplementedError(f"{type(self).__name__} has no input gradients")

    def decision_gradient(
        self,
        X: np.ndarray,
        grad_scores: np.ndarray,
        grad_reject: np.ndarray | None = None,
    ) -> np.ndarray:
        """Vector-Jacobian product: d(Σ grad_scores·scores + grad_reject·reject_score)/dX."""
        raise NotImplementedError(f"{type(self).__name__} has no input gradients")

    def certification_layers(self) -> list[Any]:
        """With ``CERTIFIABLE``: the fitted network as ``robustkit.certify`` layer records."""
        raise NotImplementedError(f"{type(self).__name__} cannot be certified")

    def get_state(self) -> dict[str, np.ndarray]:
        """The fitted arrays, for saving without pickle (see ``robustkit.persistence``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be saved")

    def set_state(self, state: dict[str, np.ndarray]) -> Model:
        """Restore what ``get_state`` returned; return self."""
        raise NotImplementedError(f"{type(self).__name__} cannot be loaded")


@dataclass
class AttackResult:
    """What an attack returns for one batch and a list of budgets (Foolbox style)."""

    epsilons: np.ndarray  # (K,) budgets, as fractions of the input range
    adversarials: np.ndarray  # (K, n, d) one adversarial batch per budget
    zero_gradient: np.ndarray  # (n,) True where the input gradient was exactly zero
    info: dict[str, Any] = field(default_factory=dict)


def _as_epsilons(epsilons: float | Sequence[float]) -> np.ndarray:
    try:
        eps = np.atleast_1d(np.asarray(epsilons, dtype=np.float64))
    except (TypeError, ValueError):
        raise RobustkitError(
            f"epsilon must be a number or a list of numbers, got {epsilons!r}"
        ) from None
    if eps.ndim != 1 or eps.size == 0:
        raise RobustkitError("epsilons must be a number or a non-empty list of numbers")
    if not np.all(np.isfinite(eps)) or np.any(eps < 0):
        raise RobustkitError(f"epsilon must be a finite number >= 0, got {eps.tolist()}")
    return eps


def _takes_image_shape(run: Callable[..., Any]) -> bool:
    return "image_shape" in inspect.signature(run).parameters


def check_norm(norm: Any) -> str:
    """``norm`` if it is ``"linf"`` or ``"l2"``, else a one-line RobustkitError."""
    if norm not in NORMS:
        raise RobustkitError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
    return str(norm)


#: Elements per block when a batch is processed a block of rows at a time (512 kB of
#: float32 per array): each block's passes stay in the core's L2 cache.
CACHE_BLOCK = 2**17


def cache_blocks(batch: np.ndarray) -> list[slice]:
    """Row slices of ``batch`` whose blocks hold about ``CACHE_BLOCK`` elements each."""
    n = len(batch)
    rows = max(1, CACHE_BLOCK // max(1, batch[0].size)) if n else 1
    return [slice(start, min(start + rows, n)) for start in range(0, n, rows)]


def project(
    adversarials: np.ndarray,
    X: np.ndarray,
    radius: float,
    bounds: tuple[float, float],
    norm: str = LINF,
) -> np.ndarray:
    """Project a batch in place into the ε-ball around ``X`` (L∞ box or L2 ball), then bounds.

    Clipping to the bounds after the ball keeps the point in the ball: it only moves
    coordinates back towards ``X``, which lies within the bounds. A block of rows at a
    time (``cache_blocks``): the same numbers as one pass over the batch, about twice as
    fast on batches larger than the cache.
    """
    if np.ndim(adversarials) == 0 or np.shape(X) != adversarials.shape:
        return _project_block(adversarials, X, radius, bounds, norm)
    for rows in cache_blocks(adversarials):
        _project_block(adversarials[rows], X[rows], radius, bounds, norm)
    return adversarials


def _project_block(
    adversarials: np.ndarray,
    X: np.ndarray,
    radius: float,
    bounds: tuple[float, float],
    norm: str,
) -> np.ndarray:
    delta = np.subtract(adversarials, X, out=adversarials)
    if norm == LINF:
        # ±radius rounded to the batch's dtype clip to the same numbers as in float64
        # (no float value lies between a radius and its rounding), in the batch's dtype.
        bound = delta.dtype.type(radius) if delta.dtype.kind == "f" else radius
        np.clip(delta, -bound, bound, out=delta)
    else:
        length = np.linalg.norm(delta.reshape(len(delta), -1), axis=1)
        outside = length > radius
        scale = np.ones_like(length)
        scale[outside] = radius / length[outside]
        delta *= scale.astype(delta.dtype).reshape(-1, *([1] * (delta.ndim - 1)))
    return np.clip(np.add(delta, X, out=delta), *bounds, out=adversarials)


def read_only(X: np.ndarray) -> np.ndarray:
    """A view of ``X`` that cannot be written through."""
    view = X.view()
    view.flags.writeable = False
    return view


class Attack(Validating, BaseEstimator):
    """An evasion attack that perturbs a batch within a budget ε for several ε at once.

    ε is a fraction of the input range ``bounds`` (ε = 0.1 on pixels in [0, 255] moves
    each pixel by at most 25.5 under L∞, or the whole input by at most 25.5 in L2 norm).
    The norm is the attack's ``norm`` parameter (``"linf"`` when it has none).
    Subclasses implement ``_run``; ``perturb`` validates the inputs, gives ``_run`` a
    private copy of them (or a read-only view: ``writes_inputs``), checks what it
    returns and projects every result into the budget and the valid range.
    """

    requires: ClassVar[frozenset[str]] = frozenset({INPUT_GRADIENT})
    #: What the attack uses: ``"gradient"``, ``"score"`` (scores only) or ``"baseline"``.
    kind: ClassVar[str] = GRADIENT_ATTACK
    #: False promises that ``_run`` never writes into its ``X``: ``perturb`` then gives it
    #: a read-only view of the inputs (a write raises) instead of a private copy, which
    #: saves copying the batch.
    writes_inputs: ClassVar[bool] = True

    @property
    def iterative(self) -> bool:
        """True if the attack takes more than one step (``steps`` > 1 by default)."""
        return int(getattr(self, "steps", 1) or 1) > 1

    def perturb(
        self,
        model: Model,
        X: np.ndarray,
        y: np.ndarray,
        epsilons: float | Sequence[float],
        *,
        bounds: tuple[float, float] = (0.0, 1.0),
        random_state: int | np.random.Generator | None = None,
        image_shape: tuple[int, ...] | None = None,
    ) -> AttackResult:
        """Attack ``model`` on ``(X, y)``; return adversarials for each ε.

        ``image_shape`` (e.g. ``(28, 28)``) is how one flat input row is laid out; it is
        passed on to ``_run`` when ``_run`` takes an ``image_shape`` keyword. A result
        that breaks the contract (shape, non-finite values) raises ``PluginFault``.
        """
        require_capabilities(model, self.requires, f"attack {type(self).__name__}")
        eps = _as_epsilons(epsilons)
        norm = check_norm(getattr(self, "norm", LINF))
        X = np.asarray(X)
        lo, hi = map(float, bounds)
        if not hi > lo:
            raise RobustkitError(f"bounds must be (low, high) with low < high, got {bounds}")
        radii = eps * (hi - lo)
        rng = np.random.default_rng(random_state)
        extra = {"image_shape": image_shape} if _takes_image_shape(self._run) else {}
        # _run works on a copy, or a read-only view: X here stays the reference.
        inputs = X.copy() if self.writes_inputs else read_only(X)
        result = self._run(model, inputs, np.array(y), radii, (lo, hi), rng, **extra)
        adv = self._checked_adversarials(result, X, eps, radii, (lo, hi), norm)
        result.adversarials = adv
        result.epsilons = eps
        return result

    def _checked_adversarials(
        self,
        result: Any,
        X: np.ndarray,
        eps: np.ndarray,
        radii: np.ndarray,
        bounds: tuple[float, float],
        norm: str,
    ) -> np.ndarray:
        """The result's adversarials as an array this call owns, checked against the
        contract and projected into each ε-ball and ``bounds`` (the finiteness check and
        the projection in one pass, a cache block at a time)."""
        who = f"attack {type(self).__name__}"
        if not isinstance(result, AttackResult):
            raise PluginFault(f"{who}: _run returned {type(result).__name__}, not an AttackResult")
        dtype = X.dtype if X.dtype.kind == "f" else np.dtype(np.float64)
        try:
            adv = np.asarray(result.adversarials, dtype=dtype)
        except (TypeError, ValueError) as exc:
            raise PluginFault(f"{who}: adversarials are not a numeric array ({exc})") from None
        expected = (len(eps), *X.shape)
        if adv.shape != expected:
            raise PluginFault(
                f"{who}: adversarials have shape {adv.shape}, expected (K budgets, n, ...) "
                f"= {expected}"
            )
        zero = np.asarray(result.zero_gradient)
        if zero.shape != (len(X),):
            raise PluginFault(
                f"{who}: zero_gradient must have shape {(len(X),)} (one flag per input), "
                f"got {zero.shape}"
            )
        result.zero_gradient = zero
        if not adv.flags.writeable or np.may_share_memory(adv, X):  # project a copy
            adv = adv.copy()
        finite = np.ones(len(eps), dtype=bool)
        for k, radius in enumerate(radii):
            for rows in cache_blocks(adv[k]):
                block = adv[k][rows]
                if not np.isfinite(block).all():
                    finite[k] = False
                    break
                _project_block(block, X[rows], radius, bounds, norm)
        if not finite.all():
            if not np.isfinite(X).all():
                raise RobustkitError("X contains NaN or inf; attacks need finite inputs")
            raise PluginFault(
                f"{who}: adversarials contain NaN or inf at ε = {eps[~finite].tolist()}"
            )
        return adv

    def _run(
        self,
        model: Model,
        X: np.ndarray,
        y: np.ndarray,
        radii: np.ndarray,
        bounds: tuple[float, float],
        rng: np.random.Generator,
    ) -> AttackResult:
        """Compute adversarials for each radius (in input units); override this."""
        raise NotImplementedError


class Defense(Validating, BaseEstimator):
    """Maps a model to a defended model, so any defense composes with any capable model."""

    requires: ClassVar[frozenset[str]] = frozenset()

    def apply(self, model: Model) -> Model:
        """Check capabilities, then return an unfitted defended model built on ``model``."""
        require_capabilities(model, self.requires, f"defense {type(self).__name__}")
        return self._apply(model)

    def _apply(self, model: Model) -> Model:
        raise NotImplementedError


@dataclass
class DataSplit:
    """A train/test split of raw inputs (float32, within ``bounds``) and int labels."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    bounds: tuple[float, float]
    image_shape: tuple[int, ...] | None = None
    class_names: list[str] | None = None


class Dataset(Validating, BaseEstimator):
    """A named data set that loads as a ``DataSplit``; parameters work like a model's."""

    description: ClassVar[str] = ""

    def load(self, data_dir: Path | None = None) -> DataSplit:
        """Load the split; ``data_dir`` is a root with one sub-folder per data set."""
        raise NotImplementedError
