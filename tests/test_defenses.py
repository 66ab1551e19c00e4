"""Defenses (none, reject, gaussian-augment) and the WrappedModel they build on."""

import numpy as np
import pytest
from robustkit_plugins.defenses import (
    NOISE_KINDS,
    GaussianAugmentDefense,
    NoDefense,
    NoiseClassRejection,
    RejectDefense,
)

from robustkit import (
    REJECT,
    CapabilityError,
    Recipe,
    RobustkitError,
    create,
    hookimpl,
    load_model,
    save_model,
)
from robustkit.interfaces import NOISE_CLASS
from robustkit.testing import LinearModel, check_defense, temporary_plugin, toy_data
from robustkit.wrapping import WrappedModel


class RecordingLinear(LinearModel):
    """LinearModel that remembers what it was fitted on."""

    def fit(self, X, y, **kwargs):
        self.seen_X_, self.seen_y_ = np.array(X), np.array(y)
        return super().fit(X, y, **kwargs)


class LinearWithLam(LinearModel):
    """LinearModel with a ``lam`` parameter, standing in for rbf's threshold."""

    def __init__(self, epochs=30, lr=0.1, reject=False, random_state=None, lam=1.0):
        super().__init__(epochs=epochs, lr=lr, reject=reject, random_state=random_state)
        self.lam = lam


class NoRejection(LinearModel):
    capabilities = frozenset({"input_gradient"})


@pytest.fixture(scope="module")
def data():
    X, y, _ = toy_data(n_samples=80)
    return X, y


# --------------------------------------------------------------------------- WrappedModel


def test_wrapped_model_delegates_and_prefixes_state(data):
    X, y = data
    wrapper = WrappedModel(model=LinearModel(epochs=5, random_state=0))
    assert wrapper.get_params(deep=True)["model__epochs"] == 5
    assert wrapper.capabilities == LinearModel.capabilities - {NOISE_CLASS}
    assert not hasattr(wrapper, "classes_")
    assert wrapper.fit(X, y) is wrapper
    inner = wrapper.model
    np.testing.assert_array_equal(wrapper.classes_, inner.classes_)
    assert wrapper.history_ is inner.history_
    np.testing.assert_array_equal(wrapper.decision_function(X), inner.decision_function(X))
    np.testing.assert_array_equal(wrapper.predict(X), inner.predict(X))
    np.testing.assert_array_equal(wrapper.loss_gradient(X, y)[1], inner.loss_gradient(X, y)[1])
    weights = np.ones((len(X), 3))
    np.testing.assert_array_equal(
        wrapper.decision_gradient(X, weights), inner.decision_gradient(X, weights)
    )
    state = wrapper.get_state()
    assert sorted(state) == ["model/classes", "model/coef", "model/intercept"]
    restored = WrappedModel(model=LinearModel()).set_state(state)
    np.testing.assert_array_equal(restored.decision_function(X), inner.decision_function(X))


# --------------------------------------------------------------------------- none


def test_none_returns_an_unfitted_clone(data):
    X, y = data
    model = LinearModel(epochs=7, random_state=0).fit(X, y)
    undefended = create("defense", "none").apply(model)
    assert type(undefended) is LinearModel and undefended is not model
    assert undefended.get_params() == model.get_params()
    assert not hasattr(undefended, "coef_")


# --------------------------------------------------------------------------- reject


def test_reject_adds_exactly_n_noise_reject_samples_and_sets_reject(data):
    X, y = data
    model = RecordingLinear(random_state=0)
    defended = RejectDefense(n_noise=37, random_state=0).apply(model)
    assert defended.get_params(deep=True)["model__reject"] is True
    assert model.reject is False  # the user's model is left alone
    defended.fit(X, y)
    seen_X, seen_y = defended.model.seen_X_, defended.model.seen_y_
    assert len(seen_y) == len(y) + 37
    np.testing.assert_array_equal(seen_X[: len(X)], X)
    np.testing.assert_array_equal(seen_y[: len(y)], y)
    np.testing.assert_array_equal(seen_y[len(y) :], np.full(37, REJECT))
    noise = seen_X[len(X) :]
    assert noise.min() >= X.min() and noise.max() <= X.max()
    assert noise.std() > 0.5 * X.std()  # spread over the range, not a copy of a point


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_reject_noise_is_seeded(data, kind):
    X, y = data

    def noise(seed):
        defended = RejectDefense(noise=kind, n_noise=20, random_state=seed)
        return defended.apply(RecordingLinear()).fit(X, y).model.seen_X_[len(X) :]

    np.testing.assert_array_equal(noise(1), noise(1))
    assert not np.array_equal(noise(1), noise(2))


def _noise_of(kind, X, y, n=4000):
    defended = RejectDefense(noise=kind, n_noise=n, random_state=0)
    return defended.apply(RecordingLinear(epochs=1)).fit(X, y).model.seen_X_[len(X) :]


@pytest.fixture
def two_features():
    """Feature 0 ~ N(0, 1), feature 1 ~ N(5, 0.1): the global range is about [-4, 5.4]."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(0.0, 1.0, 2000), rng.normal(5.0, 0.1, 2000)])
    return X, (X[:, 0] > 0).astype(int)


@pytest.mark.parametrize("kind", ["gaussian-data", "gaussian"])
def test_gaussian_data_noise_follows_the_feature_statistics(two_features, kind):
    noise = _noise_of(kind, *two_features)
    np.testing.assert_allclose(noise.mean(axis=0), [0.0, 5.0], atol=0.1)
    np.testing.assert_allclose(noise.std(axis=0), [1.0, 0.1], rtol=0.1)


def test_uniform_noise_covers_the_global_range_in_every_feature(two_features):
    X, y = two_features
    noise = _noise_of("uniform", X, y)
    lo, hi = X.min(), X.max()
    assert noise.min() >= lo and noise.max() <= hi
    # U(lo, hi): mean (lo + hi)/2, standard deviation (hi − lo)/√12, in both features
    np.testing.assert_allclose(noise.mean(axis=0), [(lo + hi) / 2] * 2, atol=0.1)
    np.testing.assert_allclose(noise.std(axis=0), [(hi - lo) / np.sqrt(12)] * 2, rtol=0.05)


def test_uniform_box_noise_stays_in_each_feature_range(two_features):
    X, y = two_features
    noise = _noise_of("uniform-box", X, y)
    assert (noise.min(axis=0) >= X.min(axis=0)).all()
    assert (noise.max(axis=0) <= X.max(axis=0)).all()
    span = X.max(axis=0) - X.min(axis=0)
    assert np.all(np.abs(noise.mean(axis=0) - (X.min(axis=0) + span / 2)) < 0.02 * span)
    np.testing.assert_allclose(noise.std(axis=0), span / np.sqrt(12), rtol=0.05)


def test_gaussian_isotropic_noise_has_one_scale_for_every_feature():
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.normal(0.0, 3.0, 4000), rng.normal(1.0, 0.3, 4000)])
    noise = _noise_of("gaussian-isotropic", X, (X[:, 0] > 0).astype(int), n=20_000)
    scale = np.sqrt(X.var(axis=0).mean())  # √(mean feature variance) ≈ √((9 + 0.09)/2)
    assert scale == pytest.approx(2.13, abs=0.05)
    # the range [-11, 11] is 5 scales from the mean: clipping is negligible
    np.testing.assert_allclose(noise.mean(axis=0), X.mean(axis=0), atol=0.05)
    np.testing.assert_allclose(noise.std(axis=0), [scale, scale], rtol=0.02)
    assert noise.min() >= X.min() and noise.max() <= X.max()


def test_reject_rule_on_hand_built_cases():
    # s0 = x1, s1 = x2, noise class r = 0.5; rejected where r + offset > max(s0, s1).
    state = {
        "model/coef": np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        "model/intercept": np.array([0.0, 0.0, 0.5]),
        "model/classes": np.array([0, 1]),
        "reject_offset": np.array(0.0),
    }
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 0.3], [0.5, 0.1]])
    defended = NoiseClassRejection(model=LinearModel()).set_state(state)
    np.testing.assert_array_equal(defended.predict(X), [0, 1, REJECT, 0])  # 0.5 vs 0.5: kept
    shifted = NoiseClassRejection(model=LinearModel())
    shifted.set_state({**state, "reject_offset": np.array(-0.25)})
    np.testing.assert_allclose(shifted.reject_score(X), 0.25)
    np.testing.assert_array_equal(shifted.predict(X), [0, 1, 1, 0])


def test_calibration_rejects_the_target_share_of_held_out_samples():
    X, y, _ = toy_data(n_samples=200, random_state=1)
    defense = RejectDefense(
        n_noise=50, target_reject_rate=0.15, calibration_fraction=0.2, random_state=0
    )
    defended = defense.apply(RecordingLinear(random_state=0)).fit(X, y)
    trained_on = defended.model.seen_X_[:-50]
    held_out = ~(X[:, None, :] == trained_on[None]).all(axis=2).any(axis=1)
    assert held_out.sum() == 40  # 20 % of 200 held out, the rest trained on
    assert len(trained_on) == 160

    # By hand: margin = max class score − noise score from the inner weights; 15 % of 40
    # is 6, so the offset lies between the 6th and 7th smallest margin.
    coef, intercept = defended.model.coef_, defended.model.intercept_
    scores = X[held_out].astype(np.float64) @ coef + intercept
    margins = np.sort(scores[:, :3].max(axis=1) - scores[:, 3])
    assert margins[5] < defended.reject_offset_ < margins[6]
    assert np.sum(defended.predict(X[held_out]) == REJECT) == 6


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_calibration_handles_the_extreme_rates(data, rate):
    X, y = data
    defense = RejectDefense(n_noise=20, target_reject_rate=rate, random_state=0)
    defended = defense.apply(RecordingLinear(random_state=0)).fit(X, y)
    trained_on = defended.model.seen_X_[:-20]
    held_out = ~(X[:, None, :] == trained_on[None]).all(axis=2).any(axis=1)
    assert np.mean(defended.predict(X[held_out]) == REJECT) == rate


def test_lam_is_passed_to_models_that_have_it(data):
    X, y = data
    defended = RejectDefense(lam=3.5, n_noise=10).apply(LinearWithLam())
    assert defended.model.lam == 3.5
    defended.set_params(lam=7.0).fit(X, y)
    assert defended.model.lam == 7.0
    with pytest.raises(RobustkitError, match="lam"):
        RejectDefense(lam=3.5).apply(LinearModel())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"noise": "pink"}, "noise must be one of uniform, uniform-box, gaussian-data"),
        ({"n_noise": -1}, "n_noise"),
        ({"n_noise": 2.5}, "n_noise"),
        ({"target_reject_rate": 1.5}, "target_reject_rate"),
        ({"target_reject_rate": 0.1, "calibration_fraction": 0.0}, "calibration_fraction"),
    ],
)
def test_bad_reject_parameters_are_clear_errors(data, params, message):
    X, y = data
    with pytest.raises(RobustkitError, match=message):
        RejectDefense(**params).apply(LinearModel()).fit(X, y)


def test_reject_needs_the_noise_class_capability():
    with pytest.raises(CapabilityError, match=NOISE_CLASS) as info:
        RejectDefense().apply(NoRejection())
    assert "\n" not in str(info.value)


class LinearPlugin:
    """An in-process plugin that registers LinearModel as ``linear-reference``."""

    @hookimpl
    def register_models(self, register):
        register("linear-reference", LinearModel)


def test_reject_state_round_trips_through_persistence(data, tmp_path):
    X, y = data
    recipe = Recipe(
        "linear-reference",
        {"epochs": 10, "random_state": 0},
        defense="reject",
        defense_params={"n_noise": 30, "target_reject_rate": 0.1, "random_state": 0},
    )
    with temporary_plugin(LinearPlugin(), "linear-reference-plugin"):
        model = recipe.build().fit(X, y)
        assert model.reject_offset_ != 0.0
        save_model(tmp_path / "defended.npz", recipe, model)
        loaded_recipe, loaded = load_model(tmp_path / "defended.npz")
    assert loaded_recipe == recipe
    assert isinstance(loaded, NoiseClassRejection)
    assert loaded.reject_offset_ == model.reject_offset_
    np.testing.assert_array_equal(loaded.reject_score(X), model.reject_score(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


# --------------------------------------------------------------------------- gaussian-augment


def test_gaussian_augment_doubles_the_training_set(data):
    X, y = data
    defended = GaussianAugmentDefense(std=0.1, random_state=0).apply(RecordingLinear())
    defended.fit(X, y)
    seen_X, seen_y = defended.model.seen_X_, defended.model.seen_y_
    assert len(seen_X) == 2 * len(X)
    np.testing.assert_array_equal(seen_X[: len(X)], X)
    np.testing.assert_array_equal(seen_y, np.concatenate([y, y]))
    noise = seen_X[len(X) :] - X
    inside = (seen_X[len(X) :] > X.min()) & (seen_X[len(X) :] < X.max())  # not clipped
    expected = 0.1 * (X.max() - X.min())
    assert abs(noise[inside].std() - expected) < 0.15 * expected
    assert seen_X.min() >= X.min() and seen_X.max() <= X.max()


def test_gaussian_augment_copies_and_seed(data):
    X, y = data

    def seen(**params):
        defense = GaussianAugmentDefense(**params)
        return defense.apply(RecordingLinear(epochs=1)).fit(X, y).model.seen_X_

    assert len(seen(copies=3, random_state=0)) == 4 * len(X)
    np.testing.assert_array_equal(seen(random_state=4), seen(random_state=4))
    assert not np.array_equal(seen(random_state=4), seen(random_state=5))
    with pytest.raises(RobustkitError, match="std"):
        seen(std=-0.1)
    with pytest.raises(RobustkitError, match="copies"):
        seen(copies=-1)


def test_gaussian_augment_works_without_capabilities(data):
    class Plain(LinearModel):
        capabilities = frozenset()

    X, y = data
    defended = GaussianAugmentDefense(random_state=0).apply(Plain(random_state=0)).fit(X, y)
    assert defended.capabilities == frozenset()
    assert defended.predict(X).shape == y.shape


def test_defenses_compose_and_their_state_nests(data):
    X, y = data
    rejecting = RejectDefense(n_noise=10, random_state=0).apply(LinearModel(random_state=0))
    both = GaussianAugmentDefense(random_state=0).apply(rejecting)
    both.fit(X, y)
    state = both.get_state()
    assert "model/model/coef" in state and "model/reject_offset" in state
    fresh = GaussianAugmentDefense(random_state=0).apply(rejecting).set_state(state)
    np.testing.assert_array_equal(fresh.predict(X), both.predict(X))


# --------------------------------------------------------------------------- check_defense


@pytest.mark.parametrize("name", ["none", "reject", "gaussian-augment"])
def test_registered_defenses_pass_check_defense(name):
    check_defense(create("defense", name))


def test_calibrated_reject_passes_check_defense():
    check_defense(RejectDefense(target_reject_rate=0.1, n_noise=20))
    check_defense(NoDefense(), model=LinearModel(reject=True))
