"""``norm="l2"`` for fgsm and pgd: normalised steps, the L2 ball, ε in range units."""

import numpy as np
import pytest
from robustkit_plugins.gradient_attacks import FGSM, PGD

from robustkit import RobustkitError
from robustkit.testing import LinearModel, check_attack, toy_data


def test_l2_fgsm_steps_the_normalised_gradient_on_a_hand_computed_case():
    # s0 = x1, s1 = x2, class 0: the margin s1 − s0 has gradient (−1, 1). Bounds span 20,
    # so ε = 0.1 is an L2 radius of 2 and the step is 2·(−1, 1)/√2.
    model = LinearModel.from_weights([[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    X = np.array([[1.0, 0.0], [3.0, 2.0]])
    result = FGSM(norm="l2", loss="margin").perturb(model, X, [0, 0], [0.1], bounds=(-10, 10))
    step = 2.0 * np.array([-1.0, 1.0]) / np.sqrt(2.0)
    np.testing.assert_allclose(result.adversarials[0], X + step)


@pytest.mark.parametrize("attack", [FGSM(norm="l2"), PGD(norm="l2", steps=5, restarts=2)])
def test_l2_attacks_stay_in_the_l2_ball_and_pass_check_attack(attack):
    X, y, bounds = toy_data()
    model = LinearModel(random_state=0).fit(X, y)
    epsilons = [0.0, 0.05, 0.3]
    result = attack.perturb(model, X, y, epsilons, bounds=bounds, random_state=0)
    span = bounds[1] - bounds[0]
    for eps, adv in zip(epsilons, result.adversarials, strict=True):
        length = np.linalg.norm(adv.astype(np.float64) - X, axis=1)
        assert np.all(length <= eps * span * (1 + 1e-6) + 1e-6)
        assert adv.min() >= bounds[0] and adv.max() <= bounds[1]
    # An L2 step moves more than one coordinate by less than the radius: not an L∞ attack.
    assert np.abs(result.adversarials[-1] - X).max() < 0.3 * span
    check_attack(attack)


def test_l2_pgd_is_at_least_as_strong_as_l2_fgsm():
    X, y, bounds = toy_data(n_samples=200)
    model = LinearModel(random_state=0).fit(X, y)
    epsilons = [0.05, 0.1, 0.2]
    fgsm = FGSM(norm="l2", loss="margin").perturb(model, X, y, epsilons, bounds=bounds)
    pgd = PGD(norm="l2", loss="margin", random_start=False).perturb(
        model, X, y, epsilons, bounds=bounds
    )

    def wrong(result):
        return np.array([np.mean(model.predict(adv) != y) for adv in result.adversarials])

    assert np.all(wrong(pgd) >= wrong(fgsm))
    assert wrong(pgd)[-1] > wrong(pgd)[0]


def test_an_unknown_norm_is_a_one_line_error():
    X, y, bounds = toy_data()
    model = LinearModel(random_state=0).fit(X, y)
    with pytest.raises(RobustkitError, match="norm must be one of linf, l2; got 'L2'"):
        PGD(norm="L2").perturb(model, X, y, 0.1, bounds=bounds)
