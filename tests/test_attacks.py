"""FGSM, PGD and the noise attack: hand-computed cases, gradients, budgets and sanity checks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from robustkit_plugins.gradient_attacks import FGSM, PGD, linf_box, sign_steps, steepest_direction
from robustkit_plugins.noise_attack import NoiseAttack

from robustkit import REJECT, CapabilityError, RobustkitError, create, interfaces
from robustkit.interfaces import project
from robustkit.testing import LinearModel, check_attack, toy_data

# s0 = 2·x1 + x2 and s1 = −x1 + 3·x2 (coef is (d, k)).
HAND_COEF = [[2.0, -1.0], [1.0, 3.0]]


@pytest.fixture
def hand_model():
    return LinearModel.from_weights(HAND_COEF, [0.0, 0.0])


@pytest.fixture(scope="module")
def toy():
    X, y, bounds = toy_data(n_samples=240)
    return LinearModel(random_state=0).fit(X, y), X, y, bounds


def success(model, batches, y):
    """(K, n) wrong and not rejected."""
    predicted = np.array([model.predict(batch) for batch in batches])
    return (predicted != y) & (predicted != REJECT)


# --------------------------------------------------------------------------- FGSM by hand


def test_fgsm_matches_a_hand_computed_case(hand_model):
    # All of class 0. Sample 0: s=(1.5, 1.0), hinge 1.0−1.5+1 = 0.5 > 0, ∇ = ∇s1 − ∇s0
    # = (−3, 2), so x' = x + 0.2·(−1, +1) = (0.3, 0.7) and s' = (1.3, 1.8): now class 1.
    # Sample 1: s=(1.9, −0.6), hinge max(0, −1.5) = 0: zero gradient, x' = x.
    # Sample 2: s=(1.05, 2.8), same gradient sign, x' = (−0.15, 1.15) clipped to (0, 1).
    X = np.array([[0.5, 0.5], [0.9, 0.1], [0.05, 0.95]])
    y = np.array([0, 0, 0])
    loss, grad = hand_model.loss_gradient(X, y)
    np.testing.assert_allclose(loss, [0.5, 0.0, 2.75])
    np.testing.assert_allclose(grad, [[-3, 2], [0, 0], [-3, 2]])

    result = FGSM().perturb(hand_model, X, y, [0.2], bounds=(0.0, 1.0))

    np.testing.assert_allclose(result.adversarials[0], [[0.3, 0.7], [0.9, 0.1], [0.0, 1.0]])
    np.testing.assert_array_equal(result.zero_gradient, [False, True, False])
    np.testing.assert_array_equal(hand_model.predict(result.adversarials[0]), [1, 0, 1])


def test_fgsm_uses_one_gradient_for_every_epsilon(hand_model):
    calls = []

    class CountingModel(LinearModel):
        def loss_gradient(self, X, y):
            calls.append(len(X))
            return super().loss_gradient(X, y)

    model = CountingModel().set_state(hand_model.get_state())
    X = np.array([[0.5, 0.5], [0.05, 0.95]])
    result = FGSM().perturb(model, X, [0, 0], [0.0, 0.05, 0.1, 0.2, 0.4])
    assert calls == [2]
    assert result.info["gradient_evaluations"] == 1


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_block_by_block_and_in_place_gives_the_one_pass_numbers(toy, norm, monkeypatch):
    """The FGSM step (direction in place in the gradient, cache-sized row blocks) gives the
    numbers of one pass to the bit, x + ε·direction(∇) projected, and leaves x alone."""
    model, X, y, bounds = toy
    X = X.astype(np.float32)
    X_before = X.copy()
    monkeypatch.setattr(interfaces, "CACHE_BLOCK", 10**9)
    whole = FGSM(norm=norm).perturb(model, X, y, [0.05, 0.1], bounds=bounds).adversarials
    monkeypatch.setattr(interfaces, "CACHE_BLOCK", 5)  # blocks of 2 rows of 2 features
    blocks = FGSM(norm=norm).perturb(model, X, y, [0.05, 0.1], bounds=bounds).adversarials
    np.testing.assert_array_equal(blocks, whole)
    np.testing.assert_array_equal(X, X_before)
    direction = steepest_direction(model.loss_gradient(X, y)[1], norm)
    span = bounds[1] - bounds[0]
    for k, eps in enumerate([0.05, 0.1]):
        expected = project(X + eps * span * direction, X, eps * span, bounds, norm)
        np.testing.assert_allclose(blocks[k], expected, rtol=1e-6, atol=1e-6)


def margin_of(model, X, y):
    """max_{j≠y} s_j − s_y: the margin loss at a point."""
    scores = model.decision_function(X).copy()
    rows = np.arange(len(X))
    true = scores[rows, y].copy()
    scores[rows, y] = -np.inf
    return scores.max(axis=1) - true


@pytest.mark.parametrize("loss", ["model", "margin"])
def test_fgsm_direction_is_the_sign_of_a_finite_difference_gradient(toy, loss):
    model, X, y, _ = toy
    X = X.astype(np.float64)
    objective = {
        "model": lambda Z: model.loss_gradient(Z, y)[0],
        "margin": lambda Z: margin_of(model, Z, y),
    }[loss]
    h = 1e-4
    numeric = np.empty_like(X)
    smooth = np.ones_like(X, dtype=bool)
    base = objective(X)
    for j in range(X.shape[1]):
        step = np.zeros_like(X)
        step[:, j] = h
        forward, backward = objective(X + step) - base, base - objective(X - step)
        numeric[:, j] = (forward + backward) / (2 * h)
        smooth[:, j] = np.isclose(forward, backward, atol=1e-9)  # no kink within ±h
    wide = (-100.0, 100.0)  # no clipping: x' − x is exactly ε·sign(∇)
    result = FGSM(loss=loss).perturb(model, X, y, [0.001], bounds=wide)
    moved = np.sign(result.adversarials[0] - X)
    clear = smooth & (np.abs(numeric) > 1e-6)
    assert clear.sum() > X.size // 4
    np.testing.assert_array_equal(moved[clear], np.sign(numeric[clear]))


# --------------------------------------------------------------------------- budgets


@pytest.mark.parametrize("name", ["fgsm", "pgd", "noise"])
def test_epsilon_zero_changes_nothing(toy, name):
    model, X, y, bounds = toy
    result = create("attack", name).perturb(model, X, y, [0.0, 0.1], bounds=bounds)
    np.testing.assert_array_equal(result.adversarials[0], X)
    assert not np.array_equal(result.adversarials[1], X)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_features=st.integers(1, 6),
    n_classes=st.integers(2, 4),
    reject=st.booleans(),
    low=st.floats(-50, 50),
    span=st.floats(1e-2, 300),
    epsilons=st.lists(st.floats(0.0, 1.5), min_size=1, max_size=4),
    attack=st.sampled_from(
        [
            FGSM(),
            FGSM(loss="margin", reject_aware=True),
            FGSM(targeted=True),
            PGD(steps=3),
            PGD(steps=2, restarts=2, loss="margin", targeted=True),
            NoiseAttack(),
        ]
    ),
)
def test_adversarials_stay_within_budget_and_bounds(
    seed, n_features, n_classes, reject, low, span, epsilons, attack
):
    rng = np.random.default_rng(seed)
    high = low + span
    coef = rng.normal(scale=3.0 / span, size=(n_features, n_classes + int(reject)))
    model = LinearModel.from_weights(coef, rng.normal(size=coef.shape[1]), reject=reject)
    X = rng.uniform(low, high, size=(7, n_features))
    X[0] = low  # inputs on the bounds
    X[1] = high
    y = rng.integers(0, n_classes, size=7)

    result = attack.perturb(model, X, y, epsilons, bounds=(low, high), random_state=seed)

    adv = result.adversarials
    assert adv.shape == (len(epsilons), *X.shape)
    distance = np.abs(adv - X).max(axis=(1, 2))
    assert np.all(distance <= np.array(epsilons) * span * (1 + 1e-12) + 1e-9 * abs(high))
    assert adv.min() >= low and adv.max() <= high
    assert result.zero_gradient.shape == (7,) and result.zero_gradient.dtype == bool


def test_float32_inputs_give_float32_adversarials(toy):
    model, X, y, bounds = toy
    result = FGSM().perturb(model, X, y, [0.1], bounds=bounds)
    assert result.adversarials.dtype == np.float32


# --------------------------------------------------------------------------- sanity checks


@pytest.mark.parametrize("loss", ["model", "margin"])
def test_fgsm_success_never_decreases_with_epsilon_on_a_linear_model(loss):
    # Along clip(x + ε·d), each coordinate moves monotonically, so the linear margin
    # s_t − s_y the step follows can only grow: once wrong, a sample stays wrong. With two
    # classes the hinge loss follows the same direction, so both losses are monotone.
    X, y, bounds = toy_data(n_samples=200, n_classes=2, random_state=3)
    model = LinearModel(random_state=0).fit(X, y)
    epsilons = np.linspace(0.0, 0.5, 11)
    result = FGSM(loss=loss).perturb(model, X, y, epsilons, bounds=bounds)
    won = success(model, result.adversarials, y)
    assert np.all(won[1:] >= won[:-1])
    assert won[-1].mean() > won[0].mean() + 0.3


def test_pgd_is_at_least_as_strong_as_fgsm(toy):
    model, X, y, bounds = toy
    epsilons = [0.02, 0.05, 0.1, 0.2]
    fgsm = FGSM(loss="margin").perturb(model, X, y, epsilons, bounds=bounds)
    pgd = PGD(loss="margin", random_start=False).perturb(model, X, y, epsilons, bounds=bounds)
    restarted = PGD(restarts=5).perturb(model, X, y, epsilons, bounds=bounds, random_state=0)
    fgsm_hinge = FGSM().perturb(model, X, y, epsilons, bounds=bounds)
    fgsm_won, pgd_won = success(model, fgsm.adversarials, y), success(model, pgd.adversarials, y)
    # PGD from the clean point keeps every sample FGSM flips, and the best of restarts
    # on the hinge loss flips at least as many as FGSM on it.
    assert np.all(pgd_won >= fgsm_won)
    hinge_rates = success(model, fgsm_hinge.adversarials, y).mean(axis=1)
    assert np.all(success(model, restarted.adversarials, y).mean(axis=1) >= hinge_rates)


def test_pgd_restarts_keep_the_best_result(toy):
    model, X, y, bounds = toy
    one = PGD(loss="margin").perturb(model, X, y, [0.1], bounds=bounds, random_state=1)
    many = PGD(loss="margin", restarts=4).perturb(model, X, y, [0.1], bounds=bounds, random_state=1)
    # The first restart draws the same start, so more restarts can only add successes.
    assert np.all(success(model, many.adversarials, y) >= success(model, one.adversarials, y))


def test_pgd_counts_gradients_per_step_and_shares_the_clean_one(hand_model):
    X = np.array([[0.5, 0.5], [0.05, 0.95]])
    result = PGD(steps=3, random_start=False).perturb(hand_model, X, [0, 0], [0.1, 0.2])
    # The clean gradient once, then per radius two more steps and the final evaluation.
    assert result.info["gradient_evaluations"] == 1 + 2 * (2 + 1)


def test_a_budget_does_not_depend_on_the_other_budgets(toy):
    model, X, y, bounds = toy
    alone = PGD().perturb(model, X, y, [0.1], bounds=bounds, random_state=5)
    among = PGD().perturb(model, X, y, [0.3, 0.1, 0.05], bounds=bounds, random_state=5)
    np.testing.assert_array_equal(alone.adversarials[0], among.adversarials[1])


@pytest.mark.parametrize("loss", ["model", "margin"])
def test_targeted_fgsm_moves_towards_the_target(toy, loss):
    model, X, y, bounds = toy
    keep = y != 2
    X, y = X[keep], y[keep]
    target = np.full(len(y), 2)
    result = FGSM(targeted=True, target=2, loss=loss).perturb(model, X, y, [0.05], bounds=bounds)
    adv = result.adversarials[0]
    before, _ = model.loss_gradient(X, target)
    after, _ = model.loss_gradient(adv, target)
    assert after.mean() < before.mean()
    assert np.sum(model.predict(adv) == 2) > np.sum(model.predict(X) == 2)
    untargeted = FGSM(loss=loss).perturb(model, X, y, [0.05], bounds=bounds).adversarials[0]
    assert np.sum(model.predict(adv) == 2) > np.sum(model.predict(untargeted) == 2)


def test_targeted_default_is_the_highest_scoring_wrong_class(hand_model):
    # Three classes: s0 = x1, s1 = x2, s2 = x1 + x2 − 1.
    model = LinearModel.from_weights([[1, 0, 1], [0, 1, 1]], [0, 0, -1])
    X = np.array([[0.9, 0.2], [0.9, 0.7], [0.1, 0.3]])
    y = np.array([0, 0, 1])
    # Wrong-class scores: sample 0 (s1, s2) = (0.2, 0.1) → 1; sample 1 (0.7, 0.6) → 1;
    # sample 2 (s0, s2) = (0.1, −0.6) → 0.
    result = FGSM(targeted=True).perturb(model, X, y, [0.1])
    np.testing.assert_array_equal(result.info["targets"], [1, 1, 0])


# --------------------------------------------------------------------------- rejection


def rejecting_model():
    """s0 = 0.5, s1 = x1 + x2 and a noise class r = 3·x1 (hand-built)."""
    return LinearModel.from_weights([[0, 1, 3], [0, 1, 0]], [0.5, 0, 0], reject=True)


def test_reject_aware_fgsm_avoids_rejection_on_a_hand_built_case():
    # s0 = 0.5, s1 = x2, r = 3·x1 at x ≈ 0 (class 0). The hinge loss has both s1 and r
    # active, so its gradient is (3, 1): plain FGSM raises x1 and lands in the noise class.
    # The reject-aware margin s1 − max(s0, r) has gradient (0, 1): it raises only s1.
    model = LinearModel.from_weights([[0, 0, 3], [0, 1, 0]], [0.5, 0, 0], reject=True)
    X = np.array([[0.0, 0.0], [0.05, -0.05], [-0.05, 0.05], [0.02, 0.0]])
    y = np.zeros(4, dtype=int)
    assert np.all(model.predict(X) == 0)
    plain = FGSM().perturb(model, X, y, [0.3], bounds=(-1.0, 1.0))
    aware = FGSM(reject_aware=True).perturb(model, X, y, [0.3], bounds=(-1.0, 1.0))
    np.testing.assert_array_equal(model.predict(plain.adversarials[0]), [REJECT] * 4)
    np.testing.assert_array_equal(model.predict(aware.adversarials[0]), [1] * 4)
    np.testing.assert_allclose(aware.adversarials[0], X + np.array([0.0, 0.6]))


def test_reject_aware_pgd_gives_fewer_rejections_than_plain_pgd():
    # Raising s1 = x1 + x2 also raises r = 3·x1, so a margin attack that ignores the noise
    # class ends up rejected; the reject-aware one turns back along x1 once r wins.
    model = rejecting_model()
    X = np.random.default_rng(0).uniform(-0.1, 0.1, size=(20, 2))
    y = np.zeros(20, dtype=int)
    assert np.all(model.predict(X) == 0)

    def outcome(attack):
        adv = attack.perturb(model, X, y, [0.3], bounds=(-1.0, 1.0)).adversarials[0]
        return np.sum(model.predict(adv) == REJECT), success(model, [adv], y).sum()

    plain_rejected, _ = outcome(PGD(loss="margin", random_start=False))
    aware_rejected, aware_won = outcome(PGD(reject_aware=True, random_start=False))
    assert plain_rejected == 20
    assert aware_rejected == 0 and aware_won == 20


# --------------------------------------------------------------------------- noise


def test_noise_attack_is_seeded_and_moves_every_coordinate_by_epsilon(toy):
    model, X, y, _ = toy
    wide = (-100.0, 100.0)
    first = NoiseAttack().perturb(model, X, y, [0.001, 0.002], bounds=wide, random_state=7)
    again = NoiseAttack().perturb(model, X, y, [0.001, 0.002], bounds=wide, random_state=7)
    other = NoiseAttack().perturb(model, X, y, [0.001, 0.002], bounds=wide, random_state=8)
    np.testing.assert_array_equal(first.adversarials, again.adversarials)
    assert not np.array_equal(first.adversarials, other.adversarials)
    for eps, adv in zip([0.001, 0.002], first.adversarials, strict=True):
        np.testing.assert_allclose(np.abs(adv - X), eps * 200, rtol=1e-3)
    assert not first.zero_gradient.any()
    signs = np.sign(first.adversarials - X)
    np.testing.assert_array_equal(signs[0], signs[1])  # one pattern scaled to every ε
    assert 0.4 < np.mean(signs[0] > 0) < 0.6


def test_noise_attack_needs_no_gradients():
    class NoGradients(LinearModel):
        capabilities = frozenset()

    X, y, bounds = toy_data()
    model = NoGradients(random_state=0).fit(X, y)
    result = NoiseAttack().perturb(model, X, y, [0.1], bounds=bounds, random_state=0)
    assert result.adversarials.shape == (1, *X.shape)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [-0.1, float("nan"), [0.1, float("inf")], []])
def test_bad_epsilon_is_a_clear_error(hand_model, bad):
    with pytest.raises(RobustkitError, match="epsilon"):
        FGSM().perturb(hand_model, np.zeros((1, 2)), [0], bad)


def test_non_numeric_epsilon_is_a_clear_error(hand_model):
    with pytest.raises(RobustkitError):
        FGSM().perturb(hand_model, np.zeros((1, 2)), [0], "abc")


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        (PGD(steps=0), "steps"),
        (PGD(restarts=1.5), "restarts"),
        (PGD(step_size=-1.0), "step_size"),
        (FGSM(loss="cross-entropy"), "loss must be one of model, margin"),
        (FGSM(target=1), "targeted=True"),
        (FGSM(targeted=True, target=7), "target"),
    ],
)
def test_bad_attack_parameters_are_clear_errors(hand_model, attack, message):
    with pytest.raises(RobustkitError, match=message):
        attack.perturb(hand_model, np.zeros((1, 2)), [0], 0.1)


def test_unknown_labels_are_a_clear_error_for_a_margin_attack(hand_model):
    with pytest.raises(RobustkitError, match="not classes of the model"):
        FGSM(loss="margin").perturb(hand_model, np.zeros((1, 2)), [5], 0.1)


def test_gradient_attack_on_a_model_without_gradients_is_a_capability_error():
    class NoGradients(LinearModel):
        capabilities = frozenset()

    model = NoGradients.from_weights(HAND_COEF, [0.0, 0.0])
    for attack in (FGSM(), PGD()):
        with pytest.raises(CapabilityError, match="input_gradient") as info:
            attack.perturb(model, np.zeros((1, 2)), [0], 0.1)
        assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", ["fgsm", "pgd", "noise"])
def test_registered_attacks_pass_check_attack(name):
    check_attack(create("attack", name))


def test_attack_variants_pass_check_attack():
    for attack in (
        FGSM(loss="margin", targeted=True),
        PGD(reject_aware=True, restarts=2),
        PGD(targeted=True, target=1, loss="margin"),
    ):
        check_attack(attack)
    check_attack(PGD(reject_aware=True), model=LinearModel(reject=True, random_state=0))


def test_sign_steps_are_one_pass_per_block_of_x_plus_step_times_the_sign(monkeypatch):
    """Each block of rows gets X + step·sign(grad) for every step (0 keeps X), and the
    zero-gradient flags; NaN stays NaN and is not a zero gradient; ±inf give ±1."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 7)).astype(np.float32)
    grad = rng.normal(size=(30, 7))  # float64, as a model may return it
    grad[rng.random(30) < 0.5] = 0.0
    grad[3, 2], grad[4, 1], grad[5, 0] = np.inf, -np.inf, np.nan
    grad[6] = -0.0
    monkeypatch.setattr(interfaces, "CACHE_BLOCK", 14)  # blocks of 2 rows
    steps = [0.25, 0.0, 1.5]
    adversarials, zero_gradient = sign_steps(grad, X, steps)
    assert adversarials.dtype == np.float32 and adversarials.shape == (3, 30, 7)
    sign = np.sign(grad).astype(np.float32)
    for adversarial, step in zip(adversarials, steps, strict=True):
        expected = X + np.float32(step) * sign if step else X
        np.testing.assert_array_equal(adversarial, expected)
    np.testing.assert_array_equal(zero_gradient, ~grad.any(axis=1))
    assert zero_gradient[6] and not zero_gradient[5]


def test_the_float32_linf_box_clips_iterates_to_the_float64_boxs_numbers():
    """An iterate clipped to the box rounded to float32 gets, bit for bit, what clipping
    it to the float64 box [max(X − r, 0), min(X + r, 1)] and rounding gives (float32
    arithmetic, X − float32(r), would be off by one unit in the last place on many)."""
    rng = np.random.default_rng(4)
    X = rng.uniform(0, 1, size=(400, 50)).astype(np.float32)
    radius = 0.0987654321
    Z = (X + rng.uniform(-1.5, 1.5, size=X.shape) * radius).astype(np.float32)
    low, high = linf_box(X, radius, (0.0, 1.0))
    assert low.dtype == high.dtype == np.float32
    X64 = X.astype(np.float64)
    box64 = np.maximum(X64 - radius, 0.0), np.minimum(X64 + radius, 1.0)
    expected = np.clip(Z.astype(np.float64), *box64).astype(np.float32)
    np.testing.assert_array_equal(np.maximum(np.minimum(Z, high), low), expected)
    float32_box = np.maximum(X - np.float32(radius), 0), np.minimum(X + np.float32(radius), 1)
    assert not np.array_equal(np.clip(Z, *float32_box), expected)


@pytest.mark.parametrize("kind", ["loss", "margin", "reject-aware margin"])
@pytest.mark.parametrize("targeted", [False, True])
def test_a_fused_evaluation_gives_the_two_call_objective_and_success(kind, targeted):
    """One forward pass (loss_gradient_and_scores, decision_and_gradient) gives the
    objective, its gradient and the success test that the gradient call and predict give."""
    from robustkit_plugins.gradient_attacks import _Objective

    X, y, _ = toy_data()
    model = create("model", "rbf", hidden=16, epochs=5, reject=True, lam=0.5, random_state=0)
    model.fit(X, y)
    Z = X + np.random.default_rng(0).uniform(-2.0, 2.0, X.shape)
    rejected = np.asarray(model.predict(Z)) == REJECT
    assert rejected.any() and not rejected.all()  # the success test meets both kinds
    classes = np.asarray(model.classes_)
    targets = classes[(np.searchsorted(classes, y) + 1) % len(classes)] if targeted else None
    objective = _Objective(model, y, targets, kind)
    value, grad, success = objective.evaluate(Z)
    expected_value, expected_grad = objective(Z)
    np.testing.assert_allclose(value, expected_value, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(success, objective.success(Z))


@pytest.mark.parametrize("name", ["hinge", "rbf"])
def test_loss_gradient_and_scores_are_the_separate_calls_values(name, monkeypatch):
    """The loss, gradient, class and reject scores of one pass, over several chunks."""
    from robustkit_plugins import _numpy_net

    X, y, _ = toy_data()
    model = create("model", name, hidden=16, epochs=5, reject=True, random_state=0).fit(X, y)
    monkeypatch.setattr(_numpy_net, "EVAL_CHUNK", 16)  # 90 rows: six chunks
    loss, grad, scores, reject = model.loss_gradient_and_scores(X, y)
    expected_loss, expected_grad = model.loss_gradient(X, y)
    np.testing.assert_array_equal(loss, expected_loss)
    np.testing.assert_array_equal(grad, expected_grad)
    np.testing.assert_allclose(scores, model.decision_function(X), rtol=1e-6)
    np.testing.assert_allclose(reject, model.reject_score(X), rtol=1e-6)
