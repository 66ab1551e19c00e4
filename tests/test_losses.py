"""The score-level attack objectives: hand-computed values and finite-difference gradients."""

import math

import numpy as np
import pytest
from robustkit_plugins._losses import LOSSES, attack_won, cross_entropy, dlr, margin, score_loss

from robustkit import RobustkitError

# One sample: z = (1, 3, 2, 0), true class 0; sorted scores 3 > 2 > 1 > 0.
Z = np.array([[1.0, 3.0, 2.0, 0.0]])
Y = np.array([0])
T = np.array([2])


@pytest.mark.parametrize(
    ("loss", "target", "value", "grad"),
    [
        (margin, None, 3 - 1, [-1, 1, 0, 0]),  # best wrong class 1
        (margin, T, 2 - 3, [0, -1, 1, 0]),  # target 2 against the best other, 1
        (dlr, None, -(1 - 3) / (3 - 1), None),  # π1 = 3, π3 = 1
        (dlr, T, -(1 - 2) / (3 - (1 + 0) / 2), None),  # π3 = 1, π4 = 0
    ],
)
def test_losses_match_hand_computed_values(loss, target, value, grad):
    result = loss(Z, Y, target)
    np.testing.assert_allclose(result.value, [value])
    if grad is not None:
        np.testing.assert_allclose(result.grad_scores, [grad])
    assert result.grad_reject is None


def test_cross_entropy_matches_the_softmax_by_hand():
    total = math.e**1 + math.e**3 + math.e**2 + math.e**0
    softmax = np.exp(Z[0]) / total
    untargeted = cross_entropy(Z, Y)
    np.testing.assert_allclose(untargeted.value, [math.log(total) - 1.0])
    np.testing.assert_allclose(untargeted.grad_scores[0], softmax - [1, 0, 0, 0])
    targeted = cross_entropy(Z, Y, T)
    np.testing.assert_allclose(targeted.value, [2.0 - math.log(total)])
    np.testing.assert_allclose(targeted.grad_scores[0], [0, 0, 1, 0] - softmax)


def test_reject_aware_losses_replace_the_true_score_by_the_reject_score():
    # r = 2.5 > z_y = 1: the attack must beat max(z_y, r) = 2.5, so z' = (2.5, 3, 2, 0).
    reject = np.array([2.5])
    result = margin(Z, Y, reject=reject)
    np.testing.assert_allclose(result.value, [3 - 2.5])
    np.testing.assert_allclose(result.grad_scores, [[0, 1, 0, 0]])
    np.testing.assert_allclose(result.grad_reject, [-1])
    # DLR on z': −(2.5 − 3) / (3 − 2) = 0.5; d/dz'_y = −1 goes to r, d/dπ1 = 1 − 0.5,
    # d/dπ3 = +0.5 (π3 is class 2).
    result = dlr(Z, Y, reject=reject)
    np.testing.assert_allclose(result.value, [0.5])
    np.testing.assert_allclose(result.grad_scores, [[0, 0.5, 0.5, 0]])
    np.testing.assert_allclose(result.grad_reject, [-1])
    # A reject score below z_y changes nothing.
    low = np.array([0.5])
    for name in LOSSES:
        plain, aware = score_loss(name, Z, Y), score_loss(name, Z, Y, reject=low)
        np.testing.assert_allclose(aware.value, plain.value)
        np.testing.assert_allclose(aware.grad_scores, plain.grad_scores)
        np.testing.assert_array_equal(aware.grad_reject, [0.0])


def random_case(n_classes=6, n=25, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.normal(scale=2.0, size=(n, n_classes))
    y = rng.integers(0, n_classes, size=n)
    target = (y + rng.integers(1, n_classes, size=n)) % n_classes
    reject = scores[np.arange(n), y] + rng.normal(scale=1.0, size=n)  # above z_y for ~half
    return scores, y, target, reject


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("targeted", [False, True])
@pytest.mark.parametrize("reject_aware", [False, True])
def test_loss_gradients_match_finite_differences(name, targeted, reject_aware):
    scores, y, target, reject = random_case()
    target = target if targeted else None
    reject = reject if reject_aware else None
    result = score_loss(name, scores, y, target, reject)
    h = 1e-6

    def value(z, r):
        return score_loss(name, z, y, target, r).value

    for j in range(scores.shape[1]):
        step = np.zeros_like(scores)
        step[:, j] = h
        numeric = (value(scores + step, reject) - value(scores - step, reject)) / (2 * h)
        np.testing.assert_allclose(result.grad_scores[:, j], numeric, atol=1e-5, rtol=1e-4)
    if reject_aware:
        numeric = (value(scores, reject + h) - value(scores, reject - h)) / (2 * h)
        np.testing.assert_allclose(result.grad_reject, numeric, atol=1e-5, rtol=1e-4)
        assert result.grad_reject.any() and not result.grad_reject.all()


def test_dlr_is_invariant_to_shifting_and_scaling_the_scores():
    scores, y, target, _ = random_case()
    for t in (None, target):
        base = dlr(scores, y, t).value
        np.testing.assert_allclose(dlr(3.0 * scores - 7.0, y, t).value, base, rtol=1e-9)


def test_dlr_with_two_classes_is_a_clear_error():
    with pytest.raises(RobustkitError, match="at least 3 classes"):
        dlr(np.zeros((1, 2)), np.array([0]))


def test_unknown_loss_name_is_a_clear_error():
    with pytest.raises(RobustkitError, match="loss must be one of ce, dlr, margin"):
        score_loss("hinge", Z, Y)


def test_attack_won_follows_the_predict_rule():
    scores = np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0]])
    y = np.array([0, 0, 0, 0])
    reject = np.array([0.0, 0.0, 3.0, 0.0])  # sample 2 is rejected
    np.testing.assert_array_equal(attack_won(scores, y), [False, True, True, True])
    np.testing.assert_array_equal(attack_won(scores, y, reject=reject), [False, True, False, True])
    target = np.array([1, 1, 1, 1])
    np.testing.assert_array_equal(
        attack_won(scores, y, target, reject), [False, True, False, False]
    )
