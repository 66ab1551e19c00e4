"""The guarded attack call: private inputs, checked results, norm-aware projection."""

import numpy as np
import pytest

from robustkit import (
    Attack,
    AttackResult,
    PluginFault,
    RobustkitError,
    evaluate,
    hookimpl,
    interfaces,
)
from robustkit.interfaces import project
from robustkit.testing import LinearModel, temporary_plugin, toy_data


@pytest.fixture(scope="module")
def toy():
    X, y, bounds = toy_data()
    return LinearModel(random_state=0).fit(X, y), X, y, bounds


class Returns(Attack):
    """An attack whose ``_run`` returns whatever ``make(X, radii)`` builds."""

    requires = frozenset()

    def __init__(self, make=None, norm="linf"):
        self.make = make
        self.norm = norm

    def _run(self, model, X, y, radii, bounds, rng):
        adversarials = self.make(X, radii)
        return AttackResult(radii, adversarials, np.zeros(len(X), dtype=bool))


def test_an_identity_attack_returning_views_of_x_reports_no_change(toy):
    model, X, y, bounds = toy
    before = X.copy()
    for make in (
        lambda X, radii: np.broadcast_to(X, (len(radii), *X.shape)),  # read-only view
        lambda X, radii: X[None],  # writeable view, one budget
    ):
        result = Returns(make).perturb(model, X, y, [0.3], bounds=bounds)
        np.testing.assert_array_equal(result.adversarials[0], X)
        np.testing.assert_array_equal(model.predict(result.adversarials[0]), model.predict(X))
    np.testing.assert_array_equal(X, before)


def test_an_attack_that_mutates_its_input_cannot_move_beyond_the_budget(toy):
    model, X, y, bounds = toy
    before = X.copy()

    def mutate(X, radii):
        X += 2 * radii.max()  # moves its input, then reports the moved input
        return np.stack([X] * len(radii))

    result = Returns(mutate).perturb(model, X, y, [0.05, 0.1], bounds=bounds)
    np.testing.assert_array_equal(X, before)
    span = bounds[1] - bounds[0]
    for eps, adv in zip([0.05, 0.1], result.adversarials, strict=True):
        np.testing.assert_allclose(adv, np.minimum(X + eps * span, bounds[1]), rtol=1e-6)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda X, radii: np.full((len(radii), *X.shape), np.nan), r"NaN or inf at ε = \[0.1\]"),
        (lambda X, radii: X, r"shape \(90, 4\), expected \(K budgets, n, \.\.\.\) = \(1, 90, 4\)"),
        (lambda X, radii: X[None, :, :2], "shape"),
        (lambda X, radii: [["a"]], "not a numeric array"),
    ],
)
def test_broken_results_are_plugin_faults_naming_the_attack(toy, make, message):
    model, X, y, bounds = toy
    with pytest.raises(PluginFault, match=message) as info:
        Returns(make).perturb(model, X, y, [0.1], bounds=bounds)
    assert str(info.value).startswith("attack Returns:")
    assert "\n" not in str(info.value)


def test_a_wrong_zero_gradient_or_result_type_is_a_plugin_fault(toy):
    model, X, y, bounds = toy

    class BadFlags(Attack):
        requires = frozenset()

        def _run(self, model, X, y, radii, bounds, rng):
            return AttackResult(radii, X[None], np.zeros(3, dtype=bool))

    class NotAResult(Attack):
        requires = frozenset()

        def _run(self, model, X, y, radii, bounds, rng):
            return X[None]

    with pytest.raises(
        PluginFault, match=r"attack BadFlags: zero_gradient must have shape \(90,\)"
    ):
        BadFlags().perturb(model, X, y, 0.1, bounds=bounds)
    with pytest.raises(PluginFault, match="attack NotAResult: _run returned ndarray"):
        NotAResult().perturb(model, X, y, 0.1, bounds=bounds)


def test_l2_attacks_are_projected_into_the_l2_ball_and_the_bounds(toy):
    model, X, y, bounds = toy
    rng = np.random.default_rng(0)
    far = X + rng.normal(scale=3.0, size=X.shape).astype(X.dtype)
    small = X + (1e-3 * rng.normal(size=X.shape)).astype(X.dtype)
    span = bounds[1] - bounds[0]
    for target in (far, small):
        attack = Returns(lambda X, radii, t=target: np.stack([t] * len(radii)), norm="l2")
        result = attack.perturb(model, X, y, [0.0, 0.05, 0.2], bounds=bounds)
        for eps, adv in zip([0.0, 0.05, 0.2], result.adversarials, strict=True):
            length = np.linalg.norm(adv.astype(np.float64) - X, axis=1)
            assert np.all(length <= eps * span * (1 + 1e-6) + 1e-6)
            assert adv.min() >= bounds[0] and adv.max() <= bounds[1]
    # Inside the ball and the bounds nothing moves; outside, the radius is reached.
    inside = np.clip(small, *bounds)
    result = Returns(lambda X, radii: inside[None], norm="l2").perturb(
        model, X, y, 0.2, bounds=bounds
    )
    np.testing.assert_allclose(result.adversarials[0], inside)


def test_project_scales_l2_steps_onto_the_sphere():
    X = np.zeros((2, 2))
    adv = np.array([[3.0, 4.0], [0.3, 0.4]])  # lengths 5 and 0.5
    np.testing.assert_allclose(project(adv, X, 1.0, (-10, 10), "l2"), [[0.6, 0.8], [0.3, 0.4]])
    adv = np.array([[3.0, -4.0], [0.3, 0.4]])
    np.testing.assert_allclose(project(adv, X, 1.0, (-10, 10), "linf"), [[1.0, -1.0], [0.3, 0.4]])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_project_block_by_block_gives_the_one_pass_numbers(norm, monkeypatch):
    """Cache-sized row blocks (here 3 rows of 7 features) change speed, not one bit."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(20, 7)).astype(np.float32)
    adv = (X + rng.normal(scale=0.3, size=X.shape)).astype(np.float32)
    monkeypatch.setattr(interfaces, "CACHE_BLOCK", 10**9)
    assert len(interfaces.cache_blocks(adv)) == 1
    whole = project(adv.copy(), X, 0.1, (0.0, 1.0), norm)
    monkeypatch.setattr(interfaces, "CACHE_BLOCK", 21)
    assert [b.stop - b.start for b in interfaces.cache_blocks(adv)] == [3] * 6 + [2]
    blocks = project(adv.copy(), X, 0.1, (0.0, 1.0), norm)
    np.testing.assert_array_equal(blocks, whole)
    assert not np.array_equal(whole, adv)  # the projection moved points


def test_linf_projection_of_float32_rows_gives_the_float64_projections_numbers():
    """Clipping float32 offsets to ±radius rounded to float32 gives, bit for bit, what
    clipping them in float64 and rounding gives, on points close to the box's faces."""
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, size=(400, 50)).astype(np.float32)
    radius = 0.1234567891  # not a float32
    near = (
        rng.choice([-1.0, 1.0], size=X.shape) * radius * (1 + rng.normal(scale=1e-7, size=X.shape))
    )
    adv = (X + near).astype(np.float32)
    expected = np.clip(
        np.clip(adv.astype(np.float64) - X, -radius, radius).astype(np.float32) + X, 0, 1
    )
    np.testing.assert_array_equal(project(adv.copy(), X, radius, (0.0, 1.0), "linf"), expected)


def test_an_unknown_norm_is_a_clear_error(toy):
    model, X, y, bounds = toy
    with pytest.raises(RobustkitError, match="norm must be one of linf, l2; got 'l1'"):
        Returns(lambda X, radii: X[None], norm="l1").perturb(model, X, y, 0.1, bounds=bounds)


class IdentityView(Attack):
    """Returns views of its input: an attack that changes nothing."""

    requires = frozenset()

    def _run(self, model, X, y, radii, bounds, rng):
        return AttackResult(
            radii, np.broadcast_to(X, (len(radii), *X.shape)), np.zeros(len(X), bool)
        )


class Mutating(Attack):
    """Moves its input by four budgets in place and reports it."""

    requires = frozenset()

    def _run(self, model, X, y, radii, bounds, rng):
        X += 4 * radii.max()
        return AttackResult(radii, np.stack([X] * len(radii)), np.zeros(len(X), bool))


class GuardPlugin:
    @hookimpl
    def register_attacks(self, register):
        register("identity-view", IdentityView)
        register("mutating", Mutating)


def test_harness_rows_are_honest_for_view_and_mutating_attacks():
    with temporary_plugin(GuardPlugin()):
        rows = evaluate(
            "hinge:epochs=3", ["identity-view", "mutating"], eps=[0.1], n_samples=20
        ).rows
    identity, mutating = [row for row in rows if not row["worst_case"]]
    assert identity["flipped"] == 0 and identity["mean_linf"] == 0.0
    assert mutating["mean_linf"] <= 0.1 + 1e-6


def test_nan_in_the_input_is_blamed_on_the_input_not_the_attack(toy):
    model, X, y, bounds = toy
    X = X.copy()
    X[3, 1] = np.nan
    with pytest.raises(RobustkitError, match="X contains NaN or inf") as info:
        Returns(lambda X, radii: X[None]).perturb(model, X, y, [0.1], bounds=bounds)
    assert not isinstance(info.value, PluginFault)


class ReadsOnly(Returns):
    """An attack that promises not to write into its inputs."""

    writes_inputs = False


def test_an_attack_that_only_reads_gets_a_read_only_view_of_the_inputs(toy):
    model, X, y, bounds = toy
    seen = {}

    def make(inputs, radii):
        seen["writeable"], seen["shared"] = inputs.flags.writeable, np.shares_memory(inputs, X)
        return np.stack([inputs + radius for radius in radii])

    original = X.copy()
    result = ReadsOnly(make).perturb(model, X, y, [0.05, 0.1], bounds=bounds)
    assert seen == {"writeable": False, "shared": True}  # no copy of the batch
    np.testing.assert_array_equal(X, original)
    moved = np.clip(X + 0.1 * (bounds[1] - bounds[0]), *bounds)
    np.testing.assert_allclose(result.adversarials[1], moved, atol=1e-6)


def test_an_attack_that_breaks_its_read_only_promise_fails_and_leaves_x(toy):
    model, X, y, bounds = toy
    original = X.copy()

    def make(inputs, radii):
        inputs += 1.0
        return inputs[None]

    with pytest.raises(ValueError, match="read-only"):
        ReadsOnly(make).perturb(model, X, y, [0.1], bounds=bounds)
    np.testing.assert_array_equal(X, original)


def test_a_result_that_is_a_writeable_view_of_the_callers_x_is_projected_on_a_copy(toy):
    """A plugin holding the caller's array (here: rows reversed) must not see X changed
    by the projection; a writeable result of its own is projected in place, no copy."""
    model, X, y, bounds = toy
    X = X.copy()
    original = X.copy()
    result = Returns(lambda inputs, radii: X[::-1][None]).perturb(model, X, y, [0.1], bounds=bounds)
    np.testing.assert_array_equal(X, original)
    assert not np.shares_memory(result.adversarials, X)
    own = np.zeros((1, *X.shape), X.dtype)
    result = Returns(lambda inputs, radii: own).perturb(model, X, y, [0.1], bounds=bounds)
    assert result.adversarials is own
