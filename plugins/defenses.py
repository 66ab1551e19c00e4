"""Defenses: ``none``, the study's noise-class rejection ``reject``, and ``gaussian-augment``.

Each defense maps a model to a defended model built on a fresh, unfitted clone, so the
user's model is never changed and any defense composes with any capable model.
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import clone

from robustkit import REJECT, REJECTION, Attack, Defense, Model, RobustkitError, create, hookimpl
from robustkit.certify import with_reject_offset
from robustkit.interfaces import (
    BATCH_TRANSFORM,
    IBP_TRAINING,
    NOISE_CLASS,
    EpochCallback,
    IBPTraining,
    require_capabilities,
    with_rejects,
)
from robustkit.params import check_int, parse_spec
from robustkit.plugins import registry
from robustkit.wrapping import WrappedModel

#: How the reject defense draws its noise class (see ``NoiseClassRejection.make_noise``);
#: "gaussian" is 0.1's name for "gaussian-data".
NOISE_KINDS = ("uniform", "uniform-box", "gaussian-data", "gaussian-isotropic", "gaussian")


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and bool(np.isfinite(value))


class NoDefense(Defense):
    """No defense: the undefended model (an unfitted clone), the baseline of every comparison."""

    def _apply(self, model: Model) -> Model:
        return clone(model)


# --------------------------------------------------------------------------- reject


class NoiseClassRejection(WrappedModel):
    """A model trained with an extra noise class that rejects where its score wins.

    It needs an inner model with NOISE_CLASS and can predict REJECT (REJECTION).

    ``fit`` sets the inner model's ``reject=True`` (and ``lam``, if given), appends
    ``n_noise`` REJECT-labelled noise samples and trains. With ``target_reject_rate`` it
    first holds out ``calibration_fraction`` of the clean data, and after training shifts
    the reject score by ``reject_offset_`` so that this fraction of it is rejected.
    """

    def __init__(
        self,
        model: Model | None = None,
        n_noise: int = 200,
        noise: str = "uniform",
        lam: float | None = None,
        target_reject_rate: float | None = None,
        calibration_fraction: float = 0.1,
        random_state=None,
    ):
        self.model = model
        self.n_noise = n_noise
        self.noise = noise
        self.lam = lam
        self.target_reject_rate = target_reject_rate
        self.calibration_fraction = calibration_fraction
        self.random_state = random_state

    def configure_inner(self) -> None:
        """Switch the inner model's noise class on and pass ``lam`` to it."""
        self.model.set_params(reject=True)
        if self.lam is None:
            return
        if "lam" not in self.model.get_params(deep=False):
            raise RobustkitError(
                f"lam applies to models with a 'lam' parameter (such as rbf); "
                f"{type(self.model).__name__} has none, so leave lam unset"
            )
        self.model.set_params(lam=self.lam)

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        """The inner model's capabilities (without NOISE_CLASS), plus REJECTION."""
        return super().capabilities | {REJECTION}

    def validate(self) -> None:
        """Check the inner model's parameters, then this defense's own."""
        super().validate()
        self.validate_own()

    def validate_own(self) -> None:
        """Check n_noise, noise, target_reject_rate and calibration_fraction."""
        check_int("n_noise", self.n_noise, 0)
        if not isinstance(self.random_state, np.random.Generator):
            check_int("random_state", self.random_state, 0, allow_none=True)
        if self.noise not in NOISE_KINDS:
            raise RobustkitError(
                f"noise must be one of {', '.join(NOISE_KINDS)}; got {self.noise!r}"
            )
        rate, fraction = self.target_reject_rate, self.calibration_fraction
        if rate is not None and not (_is_number(rate) and 0 <= rate <= 1):
            raise RobustkitError(
                f"target_reject_rate must be a fraction in [0, 1] or None, got {rate!r}"
            )
        if rate is not None and not (_is_number(fraction) and 0 < fraction < 1):
            raise RobustkitError(
                f"calibration_fraction must be a fraction in (0, 1), got {fraction!r}"
            )

    def make_noise(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``n_noise`` pure-noise inputs drawn as ``noise`` says, within [X.min(), X.max()]:

        - ``uniform`` (default, robustkit 0.1's): uniform over the data's whole range in
          every feature, so mostly far from the data;
        - ``uniform-box``: uniform within each feature's own [min, max] (the data's
          bounding box);
        - ``gaussian-data`` (or ``gaussian``): Gaussian with each feature's mean and
          standard deviation, so near the data, clipped to the range;
        - ``gaussian-isotropic``: Gaussian around the data's mean with one standard
          deviation for every feature, √(mean feature variance): white noise with the
          data's energy. An orthonormal projection (PCA) maps white noise to white noise,
          so in PCA-feature space it is what noise images projected onto the features
          look like (up to their mean and scale); an FGSM step, ±ε in every feature, also
          moves in all directions equally.
        """
        X = np.asarray(X)
        shape, dtype = (self.n_noise, *X.shape[1:]), np.result_type(X.dtype, np.float32)
        X = X.reshape(len(X), -1)
        lo, hi = float(X.min()), float(X.max())
        size = (self.n_noise, X.shape[1])
        if self.noise == "uniform":
            noise = rng.uniform(lo, hi, size=size)
        elif self.noise == "uniform-box":
            noise = rng.uniform(X.min(axis=0), X.max(axis=0), size=size)
        elif self.noise == "gaussian-isotropic":
            scale = float(np.sqrt(X.var(axis=0, dtype=np.float64).mean()))
            noise = np.clip(rng.normal(X.mean(axis=0), scale, size=size), lo, hi)
        else:  # gaussian-data
            noise = np.clip(rng.normal(X.mean(axis=0), X.std(axis=0), size=size), lo, hi)
        return noise.reshape(shape).astype(dtype)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callback: EpochCallback | None = None,
        bounds: tuple[float, float] | None = None,
        **hooks: Any,
    ) -> NoiseClassRejection:
        """Train on ``(X, y)`` plus REJECT-labelled noise, then calibrate; return self."""
        self.validate_own()
        self.configure_inner()
        X, y = np.asarray(X), np.asarray(y)
        rng = np.random.default_rng(self.random_state)
        calibration = np.zeros(len(X), dtype=bool)
        if self.target_reject_rate is not None:
            clean = np.flatnonzero(y != REJECT)
            size = max(1, round(self.calibration_fraction * len(clean)))
            if len(clean) - size < 2:
                raise RobustkitError(
                    f"calibration_fraction {self.calibration_fraction:g} holds out {size} of "
                    f"the {len(clean)} clean training samples, leaving {len(clean) - size} "
                    "to train on; use a smaller fraction such as 0.1"
                )
            calibration[rng.choice(clean, size=size, replace=False)] = True
        noise = self.make_noise(X[~calibration], rng)
        X_train = np.concatenate([X[~calibration], noise.astype(X.dtype, copy=False)])
        labels = np.promote_types(y.dtype, np.int8)  # REJECT = -1 needs a signed type
        noise_labels = np.full(len(noise), REJECT, dtype=labels)
        y_train = np.concatenate([y[~calibration].astype(labels), noise_labels])
        self.fit_inner(
            X_train, y_train, eval_set=eval_set, callback=callback, bounds=bounds, **hooks
        )
        self.reject_offset_ = 0.0
        if self.target_reject_rate is not None:
            self.reject_offset_ = self._calibrate(X[calibration])
        return self

    def _calibrate(self, X_held_out: np.ndarray) -> float:
        """The offset that makes ``round(rate·m)`` of the m held-out samples rejected.

        A sample is rejected when reject_score + offset > max score, i.e. when its margin
        (max score − reject_score) is below the offset: the offset goes midway between the
        k-th and (k+1)-th smallest margins (SecML's ``compute_threshold``).
        """
        margin = self.model.decision_function(X_held_out).max(axis=1)
        margin = np.sort(np.asarray(margin, dtype=np.float64) - self.model.reject_score(X_held_out))
        if not np.isfinite(margin).all():
            raise RobustkitError("cannot calibrate: the model's scores are not finite")
        k = round(self.target_reject_rate * len(margin))
        spread = 1.0 + margin[-1] - margin[0]
        lower = margin[k - 1] if k > 0 else margin[0] - spread
        upper = margin[k] if k < len(margin) else margin[-1] + spread
        return float((lower + upper) / 2)

    def reject_score(self, X: np.ndarray) -> np.ndarray:
        """The inner model's reject score plus the calibrated offset."""
        return np.asarray(self.model.reject_score(X)) + self.reject_offset_

    def certification_layers(self) -> list[Any]:
        """The inner model's layers with the calibrated offset on the reject score."""
        return with_reject_offset(self.model.certification_layers(), self.reject_offset_)

    def get_state(self) -> dict[str, np.ndarray]:
        """The inner model's state plus the calibrated offset."""
        return {**super().get_state(), "reject_offset": np.asarray(self.reject_offset_)}

    def set_state(self, state: dict[str, np.ndarray]) -> NoiseClassRejection:
        """Restore the inner model and the offset; return self."""
        self.configure_inner()
        super().set_state(state)
        self.reject_offset_ = float(state["reject_offset"])
        return self


class RejectDefense(Defense):
    """The study's defense: train a noise class on pure noise and reject where it wins.

    ``lam`` is passed to models with a ``lam`` parameter (rbf's threshold λ);
    ``target_reject_rate`` calibrates the reject score on held-out clean data.
    """

    requires = frozenset({NOISE_CLASS})

    def __init__(
        self,
        n_noise: int = 200,
        noise: str = "uniform",
        lam: float | None = None,
        target_reject_rate: float | None = None,
        calibration_fraction: float = 0.1,
        random_state=None,
    ):
        self.n_noise = n_noise
        self.noise = noise
        self.lam = lam
        self.target_reject_rate = target_reject_rate
        self.calibration_fraction = calibration_fraction
        self.random_state = random_state

    def validate(self) -> None:
        """The checks of the defended model's parameters."""
        NoiseClassRejection(**self.get_params()).validate_own()

    def _apply(self, model: Model) -> Model:
        defended = NoiseClassRejection(model=clone(model), **self.get_params())
        defended.configure_inner()
        return defended


# --------------------------------------------------------------------------- gaussian-augment


class GaussianAugmented(WrappedModel):
    """A model trained on its data plus ``copies`` noisy copies (the study's question 5).

    The noise is Gaussian with standard deviation ``std`` times the training data's range
    (max − min), and the copies are clipped to that range.
    """

    def __init__(
        self, model: Model | None = None, std: float = 0.1, copies: int = 1, random_state=None
    ):
        self.model = model
        self.std = std
        self.copies = copies
        self.random_state = random_state

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callback: EpochCallback | None = None,
        bounds: tuple[float, float] | None = None,
        **hooks: Any,
    ) -> GaussianAugmented:
        """Train the inner model on ``X`` and its noisy copies; return self."""
        self.validate_own()
        X, y = np.asarray(X), np.asarray(y)
        rng = np.random.default_rng(self.random_state)
        lo, hi = float(X.min()), float(X.max())
        scale = self.std * (hi - lo)
        noisy = [
            np.clip(X + rng.normal(0.0, scale, size=X.shape), lo, hi).astype(X.dtype)
            for _ in range(self.copies)
        ]
        X_train = np.concatenate([X, *noisy])
        y_train = np.tile(y, self.copies + 1)
        self.fit_inner(
            X_train, y_train, eval_set=eval_set, callback=callback, bounds=bounds, **hooks
        )
        return self

    def validate_own(self) -> None:
        """Check std and copies."""
        if not (_is_number(self.std) and self.std >= 0):
            raise RobustkitError(
                f"std must be a number >= 0 (a fraction of the range), got {self.std!r}"
            )
        check_int("copies", self.copies, 0)

    def validate(self) -> None:
        """Check the inner model's parameters, then std and copies."""
        super().validate()
        self.validate_own()


class GaussianAugmentDefense(Defense):
    """Train on Gaussian-noised copies of the training data; works for any model."""

    def __init__(self, std: float = 0.1, copies: int = 1, random_state=None):
        self.std = std
        self.copies = copies
        self.random_state = random_state

    def validate(self) -> None:
        """The checks of the defended model's parameters."""
        GaussianAugmented(**self.get_params()).validate_own()

    def _apply(self, model: Model) -> Model:
        return GaussianAugmented(model=clone(model), **self.get_params())


# --------------------------------------------------------------------------- adversarial-training


def _fraction(name: str, value: Any) -> float:
    """A number in (0, 1], or a one-line error."""
    if not (_is_number(value) and 0 < value <= 1):
        raise RobustkitError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


def training_bounds(X: np.ndarray, hooks: dict[str, Any]) -> tuple[float, float]:
    """The data's bounds the harness passed to ``fit`` (taken out of ``hooks``), else the
    training data's min and max."""
    return hooks.pop("bounds", None) or (float(X.min()), float(X.max()))


def training_attack(spec: str, steps: int, step_size: float | None) -> Attack:
    """The attack of ``spec`` (e.g. ``"pgd:loss=margin"``) with ``steps`` and ``step_size``
    where it takes them and the spec does not set them."""
    name, params = parse_spec(spec) if isinstance(spec, str) else (None, None)
    if name is None:
        raise RobustkitError(f"attack must be an attack spec such as 'pgd', got {spec!r}")
    accepted = registry("attack").get(name).cls().get_params(deep=False)
    for key, value in (("steps", check_int("steps", steps)), ("step_size", step_size)):
        if key in accepted:
            params.setdefault(key, value)
    return create("attack", name, **params)


class AdversariallyTrained(WrappedModel):
    """A model trained on adversarials of its current weights (Madry et al., ICLR 2018).

    Each minibatch (or a ``ratio`` of it, REJECT-labelled noise excepted) is replaced by
    ``attack``'s adversarials at budget ``eps`` (a fraction of the training data's range,
    whose min and max are the bounds) against the weights of that moment.

    With ``eps_reject`` (the rejection option of confidence-calibrated adversarial
    training, Stutz et al., ICML 2020), the inner model's noise class is switched on and
    a ``reject_ratio`` of those adversarials is instead attacked at a radius drawn
    uniformly in (eps, eps_reject] and labelled REJECT: beyond the training budget the
    network learns to reject rather than to be right.
    """

    def __init__(
        self,
        model: Model | None = None,
        attack: str = "pgd",
        eps: float = 0.1,
        steps: int = 10,
        step_size: float | None = 0.25,
        ratio: float = 1.0,
        eps_reject: float | None = None,
        reject_ratio: float = 0.3,
        random_state=None,
    ):
        self.model = model
        self.attack = attack
        self.eps = eps
        self.steps = steps
        self.step_size = step_size
        self.ratio = ratio
        self.eps_reject = eps_reject
        self.reject_ratio = reject_ratio
        self.random_state = random_state

    def make_attack(self) -> Attack:
        """Validate the parameters; return the training attack."""
        eps = _fraction("eps", self.eps)
        _fraction("ratio", self.ratio)
        if self.step_size is not None and not (_is_number(self.step_size) and self.step_size > 0):
            raise RobustkitError(
                f"step_size must be a number > 0 (a fraction of eps) or None, "
                f"got {self.step_size!r}"
            )
        if self.eps_reject is not None:
            if not (_is_number(self.eps_reject) and eps < self.eps_reject <= 1):
                raise RobustkitError(
                    f"eps_reject must be a number in (eps, 1] = ({eps:g}, 1] or None, "
                    f"got {self.eps_reject!r}"
                )
            _fraction("reject_ratio", self.reject_ratio)
        return training_attack(self.attack, self.steps, self.step_size)

    def configure_inner(self) -> None:
        """With ``eps_reject``: check the inner model has a noise class and switch it on."""
        if self.eps_reject is None:
            return
        require_capabilities(
            self.model, frozenset({NOISE_CLASS}), "adversarial-training's eps_reject"
        )
        self.model.set_params(reject=True)

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        """The inner model's (without NOISE_CLASS), plus REJECTION with ``eps_reject``."""
        return super().capabilities | ({REJECTION} if self.eps_reject is not None else set())

    def validate(self) -> None:
        """Check the inner model's parameters, then this defense's own."""
        super().validate()
        self.make_attack()

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callback: EpochCallback | None = None,
        **hooks: Any,
    ) -> AdversariallyTrained:
        """Train the inner model with every minibatch replaced by adversarials; return self."""
        attack = self.make_attack()
        self.configure_inner()
        require_capabilities(self.model, attack.requires, "adversarial-training's attack")
        outer = hooks.pop("batch_transform", None)
        X, y = np.asarray(X), np.asarray(y)
        bounds = training_bounds(X, hooks)
        adversarials = _training_adversarials(attack, bounds)
        rng = np.random.default_rng(self.random_state)
        eps, ratio, eps_reject = float(self.eps), float(self.ratio), self.eps_reject

        def adversarial_batch(model: Model, X_batch: np.ndarray, y_batch: np.ndarray):
            chosen = np.flatnonzero(np.asarray(y_batch != REJECT, dtype=bool))
            if ratio < 1:
                chosen = np.sort(rng.choice(chosen, round(ratio * len(chosen)), replace=False))
            if len(chosen) == 0:
                return X_batch, y_batch
            X_batch = X_batch.copy()
            far = np.zeros(len(chosen), dtype=bool)
            if eps_reject is not None:
                far[rng.choice(len(chosen), round(self.reject_ratio * len(chosen)), False)] = True
            near = chosen[~far]
            if len(near):
                X_batch[near] = adversarials(model, X_batch[near], y_batch[near], eps, rng)
            if far.any():
                far = chosen[far]
                radii = rng.uniform(eps, eps_reject, len(far))
                X_batch[far] = adversarials(model, X_batch[far], y_batch[far], radii, rng)
                y_batch = with_rejects(y_batch, np.isin(np.arange(len(y_batch)), far))
            return X_batch, y_batch

        def transform(model: Model, X_batch: np.ndarray, y_given: np.ndarray):
            y_batch = y_given
            if outer is not None:  # an outer defense's transform comes first
                X_batch, y_batch = split_transformed(outer(model, X_batch, y_batch), y_batch)
            X_new, y_new = adversarial_batch(model, X_batch, y_batch)
            return X_new if y_new is y_given else (X_new, y_new)  # labels only if changed

        self.fit_inner(
            X,
            y,
            eval_set=eval_set,
            callback=callback,
            bounds=bounds,
            **hooks,
            batch_transform=transform,
        )
        return self

    def set_state(self, state: dict[str, np.ndarray]) -> AdversariallyTrained:
        """Restore the inner model (its noise class switched on with ``eps_reject``)."""
        self.configure_inner()
        return super().set_state(state)


def split_transformed(result: Any, y_batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A batch transform's ``X'`` or ``(X', y')`` as ``(X', y')`` (``y'`` = ``y_batch``
    for a transform that returns inputs only)."""
    if isinstance(result, tuple):
        return result
    return result, y_batch


def _training_adversarials(attack: Attack, bounds: tuple[float, float]):
    """``f(model, X, y, eps, rng)``: adversarials at ``eps`` (a fraction of the range, one
    number or one per sample) by the attack's fused ``training_adversarials`` where it has
    one (``pgd``, ``fgsm``), else by ``perturb`` (at the first sample's ε)."""
    span = bounds[1] - bounds[0]
    fused = getattr(attack, "training_adversarials", None)
    if fused is not None:
        return lambda model, X, y, eps, rng: fused(model, X, y, np.asarray(eps) * span, bounds, rng)

    def perturbed(model: Model, X: np.ndarray, y: np.ndarray, eps: Any, rng: Any) -> np.ndarray:
        eps = float(np.ravel(eps)[0])
        return attack.perturb(model, X, y, eps, bounds=bounds, random_state=rng).adversarials[0]

    return perturbed


class AdversarialTrainingDefense(Defense):
    """PGD adversarial training (Madry et al.) for models that train on transformed batches.

    ``attack`` is any attack spec (default ``pgd``); ``steps`` and ``step_size`` (a fraction
    of ``eps``) go to it where it takes them; ``eps`` is a fraction of the data's range;
    ``ratio`` of each batch is replaced. ``eps_reject`` (models with a noise class):
    a ``reject_ratio`` of the adversarials is made at a radius in (eps, eps_reject] and
    trained towards REJECT (Stutz et al.'s confidence-calibrated adversarial training idea).
    """

    requires = frozenset({BATCH_TRANSFORM})

    def __init__(
        self,
        attack: str = "pgd",
        eps: float = 0.1,
        steps: int = 10,
        step_size: float | None = 0.25,
        ratio: float = 1.0,
        eps_reject: float | None = None,
        reject_ratio: float = 0.3,
        random_state=None,
    ):
        self.attack = attack
        self.eps = eps
        self.steps = steps
        self.step_size = step_size
        self.ratio = ratio
        self.eps_reject = eps_reject
        self.reject_ratio = reject_ratio
        self.random_state = random_state

    def validate(self) -> None:
        """The checks of the defended model's parameters (before any training)."""
        AdversariallyTrained(**self.get_params()).make_attack()

    def _apply(self, model: Model) -> Model:
        defended = AdversariallyTrained(model=clone(model), **self.get_params())
        attack = defended.make_attack()  # bad parameters fail before any training
        require_capabilities(
            model, attack.requires, f"adversarial-training's attack {self.attack!r}"
        )
        defended.configure_inner()
        return defended


# --------------------------------------------------------------------------- ibp-training


def _share(name: str, value: Any) -> float:
    """A number in [0, 1], or a one-line error."""
    if not (_is_number(value) and 0 <= value <= 1):
        raise RobustkitError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


class IBPTrained(WrappedModel):
    """A model trained on its IBP worst-case loss (Gowal et al., 2018), so that its
    certificates are not vacuous: κ·clean + (1 − κ)·worst case over the ε-ball (a fraction
    of the training data's range, within its min and max), ε and κ ramped over ``ramp``."""

    def __init__(
        self, model: Model | None = None, eps: float = 0.1, kappa: float = 0.5, ramp: float = 0.5
    ):
        self.model = model
        self.eps = eps
        self.kappa = kappa
        self.ramp = ramp

    def validate(self) -> None:
        """One-line errors for parameters out of range."""
        _fraction("eps", self.eps)
        _share("kappa", self.kappa)
        _share("ramp", self.ramp)

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        eval_set: tuple[np.ndarray, np.ndarray] | None = None,
        callback: EpochCallback | None = None,
        **hooks: Any,
    ) -> IBPTrained:
        """Train the inner model on its IBP worst-case loss; return self."""
        self.validate()
        X = np.asarray(X)
        lo, hi = training_bounds(X, hooks)
        spec = IBPTraining(float(self.eps) * (hi - lo), (lo, hi), float(self.kappa), self.ramp)
        self.fit_inner(
            X, y, eval_set=eval_set, callback=callback, bounds=(lo, hi), **hooks, ibp=spec
        )
        return self


class IBPTrainingDefense(Defense):
    """IBP training (Gowal et al., 2018) for models with the ``ibp_training`` capability
    (the built-in ``hinge`` and ``rbf``): ``eps`` a fraction of the data's range, ``kappa``
    the final weight of the clean loss, ``ramp`` the share of epochs over which ε and κ ramp."""

    requires = frozenset({IBP_TRAINING})

    def __init__(self, eps: float = 0.1, kappa: float = 0.5, ramp: float = 0.5):
        self.eps = eps
        self.kappa = kappa
        self.ramp = ramp

    def _apply(self, model: Model) -> Model:
        defended = IBPTrained(model=clone(model), **self.get_params())
        defended.validate()  # before any training
        return defended


@hookimpl
def register_defenses(register):
    """Register ``none``, ``reject``, ``gaussian-augment``, ``adversarial-training``,
    ``ibp-training`` and ``trades``."""
    from .trades import TradesDefense  # it uses this module's parameter checks

    register("none", NoDefense)
    register("reject", RejectDefense)
    register("gaussian-augment", GaussianAugmentDefense)
    register("adversarial-training", AdversarialTrainingDefense)
    register("ibp-training", IBPTrainingDefense)
    register("trades", TradesDefense)
