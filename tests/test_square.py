"""The Square Attack plugin: budgets, determinism, strength, gradient masking, bad input."""

import tracemalloc

import numpy as np
import pytest
from robustkit_plugins.square import box_rings, split_bump, window_fraction

import robustkit
from robustkit import REJECT, RobustkitError
from robustkit.interfaces import SCORE_ATTACK
from robustkit.testing import LinearModel, check_attack, toy_data

SHAPE = (4, 4)  # toy_data(n_features=16) read as a 4×4 image


def square(**params):
    return robustkit.create("attack", "square", **params)


@pytest.fixture(scope="module")
def linear_setup():
    X, y, bounds = toy_data(n_samples=60, n_features=16, n_classes=3)
    return LinearModel(random_state=0).fit(X, y), X, y, bounds


def optimal_linf_breaks(model, X, y, radius, bounds):
    """Exactly which samples an L∞ attack of ``radius`` can break on a linear model.

    Against class t the best move is δ_i = clip(x_i + r·sign(v_i)) − x_i, v = w_t − w_y.
    """
    W, b = model.coef_, model.intercept_
    columns = np.searchsorted(model.classes_, y)
    breakable = np.zeros(len(X), dtype=bool)
    for t in range(W.shape[1]):
        v = W[:, t] - W[:, columns].T  # (n, d)
        delta = np.clip(X + radius * np.sign(v), *bounds) - X
        gain = (X + delta) @ W[:, t] + b[t] - np.sum((X + delta) * W[:, columns].T, axis=1)
        breakable |= (columns != t) & (gain - b[columns] > 0)
    return breakable


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_square_meets_the_attack_contract(norm):
    check_attack(square(norm=norm, n_queries=200), image_shape=(2, 2))


def test_square_is_a_gradient_free_score_attack():
    attack = square()
    assert attack.requires == frozenset() and attack.kind == SCORE_ATTACK and attack.iterative
    assert not square(n_queries=1).iterative


def test_window_schedule_halves_p_at_the_published_points_rescaled_to_the_budget():
    assert window_fraction(0.8, 10, 10_000) == 0.8
    assert window_fraction(0.8, 11, 10_000) == 0.4
    assert window_fraction(0.8, 8001, 10_000) == 0.8 / 2**9
    # With 5,000 queries the points come twice as early: iteration 6 is 12 of 10,000.
    assert window_fraction(0.8, 5, 5000) == 0.8 and window_fraction(0.8, 6, 5000) == 0.4


def test_l2_bumps_are_unit_norm_rings_of_opposite_halves():
    rings = box_rings(3, 3)
    # centre: 1 + 1/4; border: 1/4; normalised
    expected = np.full((3, 3), 0.25)
    expected[1, 1] = 1.25
    np.testing.assert_allclose(rings, expected / np.linalg.norm(expected))
    bump = split_bump(5)
    assert bump.shape == (5, 5) and np.isclose(np.linalg.norm(bump), 1.0)
    assert (bump[:2] > 0).all() and (bump[2:] < 0).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("image_shape", [SHAPE, (2, 2, 4)])
def test_raw_results_stay_in_the_ball_and_the_bounds(linear_setup, norm, image_shape):
    """_run itself (before perturb projects) keeps every point inside the budget."""
    model, X, y, (lo, hi) = linear_setup
    radii = np.array([0.1, 0.4, 2.0])
    result = square(norm=norm, n_queries=300)._run(
        model, X.copy(), y, radii, (lo, hi), np.random.default_rng(0), image_shape=image_shape
    )
    for radius, adv in zip(radii, result.adversarials, strict=True):
        delta = adv.astype(np.float64) - X
        size = np.abs(delta).max(axis=1) if norm == "linf" else np.linalg.norm(delta, axis=1)
        assert size.max() <= radius * (1 + 1e-6)
        assert adv.min() >= lo and adv.max() <= hi
        assert np.count_nonzero(size) > 0


def test_same_seed_same_result_and_each_budget_independent_of_the_list(linear_setup):
    model, X, y, bounds = linear_setup
    attack = square(n_queries=200)
    run = attack.perturb(model, X, y, [0.05, 0.1], bounds=bounds, random_state=3, image_shape=SHAPE)
    again = attack.perturb(
        model, X, y, [0.05, 0.1], bounds=bounds, random_state=3, image_shape=SHAPE
    )
    alone = attack.perturb(model, X, y, [0.1], bounds=bounds, random_state=3, image_shape=SHAPE)
    other = attack.perturb(model, X, y, [0.1], bounds=bounds, random_state=4, image_shape=SHAPE)
    np.testing.assert_array_equal(run.adversarials, again.adversarials)
    np.testing.assert_array_equal(run.adversarials[1], alone.adversarials[0])
    assert not np.array_equal(alone.adversarials, other.adversarials)


def test_linf_finds_nearly_every_break_the_exact_optimum_allows(linear_setup):
    """Random search over box corners may stall in a local optimum, but rarely."""
    model, X, y, bounds = linear_setup
    span = bounds[1] - bounds[0]
    for eps in (0.15, 0.2):
        breakable = optimal_linf_breaks(model, X, y, eps * span, bounds)
        adv = square(n_queries=1000).perturb(
            model, X, y, eps, bounds=bounds, random_state=0, image_shape=SHAPE
        )
        broken = model.predict(adv.adversarials[0]) != y
        assert not (broken & ~breakable).any()  # a break the optimum says is impossible
        assert breakable.sum() >= 5 and broken.sum() >= 0.9 * breakable.sum()


def test_l2_is_stronger_with_a_larger_budget_and_only_queries_unbroken_samples(linear_setup):
    model, X, y, bounds = linear_setup
    result = square(norm="l2", n_queries=300).perturb(
        model, X, y, [0.5, 1.0, 2.0], bounds=bounds, random_state=0, image_shape=SHAPE
    )
    broken = [np.count_nonzero(model.predict(adv) != y) for adv in result.adversarials]
    assert broken[0] < broken[1] < broken[2] == len(X)
    # every sample broken early stops costing queries: far fewer than 3 budgets × 300 each
    assert result.info["queries"] < 0.6 * 3 * 300 * len(X)


class StaircaseModel(LinearModel):
    """A masked linear model: scores rounded to a staircase, every input gradient zero."""

    def decision_function(self, X):
        return np.floor(super().decision_function(X) * 20) / 20

    def loss_gradient(self, X, y):
        loss, grad = super().loss_gradient(X, y)
        return loss, np.zeros_like(grad)

    def decision_gradient(self, X, grad_scores, grad_reject=None):
        return np.zeros(np.shape(X))


def test_square_breaks_a_gradient_masked_model_that_pgd_cannot(linear_setup):
    model, X, y, bounds = linear_setup
    masked = StaircaseModel().set_state(model.get_state())
    clean = masked.predict(X) == y
    pgd = robustkit.create("attack", "pgd", steps=20, loss="margin", random_start=False)
    pgd_adv = pgd.perturb(masked, X, y, 0.2, bounds=bounds, random_state=0).adversarials[0]
    sq_adv = square(n_queries=500).perturb(
        masked, X, y, 0.2, bounds=bounds, random_state=0, image_shape=SHAPE
    )
    assert np.array_equal(masked.predict(pgd_adv) == y, clean)  # gradients lead nowhere
    robust_after_square = np.mean(masked.predict(sq_adv.adversarials[0]) == y)
    assert robust_after_square < 0.5 * clean.mean()


def test_reject_aware_square_aims_at_a_class_that_is_not_rejected():
    """Class 1 is a trap (the reject score always beats it); class 2 is the way out."""
    # Pixels in [0, 1], clean at 0.5 (rejected). s0 = 0, s1 = 3(x1 + x2) − 2.5,
    # reject = s1 + 1.5, s2 = 2(x0 + x3) − 2.2: at ε = 0.3 only x0, x3 up and x1, x2 down
    # wins (s2 = 1 > reject = 0.2), which the plain margin (max(s1, s2)) rarely climbs to.
    coef = np.zeros((4, 4))
    coef[[1, 2], 1] = coef[[1, 2], 3] = 3.0
    coef[[0, 3], 2] = 2.0
    model = LinearModel.from_weights(coef, np.array([0.0, -2.5, -2.2, -1.0]), reject=True)
    X = np.full((32, 4), 0.5)
    y = np.zeros(32, dtype=int)
    predicted = {}
    for aware in (False, True):
        result = square(n_queries=300, reject_aware=aware).perturb(
            model, X, y, 0.3, bounds=(0, 1), random_state=0, image_shape=(2, 2)
        )
        predicted[aware] = model.predict(result.adversarials[0])
    assert result.info["objective"] == "reject-aware margin"
    assert (predicted[True] == 2).all()
    assert np.mean(predicted[False] == 2) < 0.5 and set(predicted[False]) <= {2, REJECT}


def test_targeted_square_reaches_the_target(linear_setup):
    model, X, y, bounds = linear_setup
    target = np.where(y == 2, 0, 2)
    result = square(n_queries=500, targeted=True, target=target).perturb(
        model, X, y, 0.3, bounds=bounds, random_state=0, image_shape=SHAPE
    )
    predicted = model.predict(result.adversarials[0])
    assert np.mean(predicted == target) > 0.9
    np.testing.assert_array_equal(result.info["targets"], target)


class ImageLinearModel(LinearModel):
    """A linear model that reads inputs shaped (n, h, w) by flattening them."""

    def decision_function(self, X):
        return super().decision_function(np.reshape(X, (len(X), -1)))

    def reject_score(self, X):
        return super().reject_score(np.reshape(X, (len(X), -1)))


def test_inputs_already_shaped_as_images_need_no_image_shape(linear_setup):
    model, X, y, bounds = linear_setup
    image_model = ImageLinearModel().set_state(model.get_state())
    images = X.reshape(len(X), *SHAPE)
    shaped = square(n_queries=100).perturb(
        image_model, images, y, 0.1, bounds=bounds, random_state=0
    )
    flat = square(n_queries=100).perturb(
        model, X, y, 0.1, bounds=bounds, random_state=0, image_shape=SHAPE
    )
    assert shaped.adversarials.shape == (1, len(X), *SHAPE)
    np.testing.assert_array_equal(shaped.adversarials.reshape(1, len(X), -1), flat.adversarials)


@pytest.mark.parametrize(
    ("params", "image_shape", "message"),
    [
        ({"n_queries": 0}, SHAPE, "n_queries must be an integer >= 1"),
        ({"norm": "l1"}, SHAPE, "norm must be one of linf, l2"),
        ({"p_init": 1.5}, SHAPE, "p_init must be a number in (0, 1]"),
        ({"target": 1}, SHAPE, "target is set but targeted=False"),
        ({}, None, "square needs the inputs' image shape"),
        ({}, (3, 5), "image_shape must be (height, width) or (height, width, channels)"),
    ],
)
def test_bad_parameters_are_one_line_errors(linear_setup, params, image_shape, message):
    model, X, y, bounds = linear_setup
    with pytest.raises(RobustkitError) as error:
        square(**params).perturb(model, X, y, 0.1, bounds=bounds, image_shape=image_shape)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_each_extra_budget_costs_at_most_one_adversarial_batch_of_memory():
    X, y, bounds = toy_data(n_samples=3000, n_features=64, n_classes=3)
    model = LinearModel(random_state=0).fit(X, y)
    attack = square(n_queries=30)

    def peak(epsilons):
        tracemalloc.start()
        attack.perturb(model, X, y, epsilons, bounds=bounds, random_state=0, image_shape=(8, 8))
        high = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return high

    epsilons = [0.02, 0.05, 0.1]
    extra = peak(epsilons) - max(peak([eps]) for eps in epsilons)
    assert extra <= 1.05 * (len(epsilons) - 1) * X.nbytes
