"""The ``auto`` ensemble: member order, per-sample worst case, masking, rejection, errors."""

import numpy as np
import pytest
from robustkit_plugins.apgd import APGD
from robustkit_plugins.auto_attack import VERSIONS, AutoAttack, grid_shape

from robustkit import REJECT, RobustkitError, create
from robustkit.interfaces import GRADIENT_ATTACK
from robustkit.testing import LinearModel, check_attack, toy_data


@pytest.fixture(scope="module")
def digits_net():
    """A small hinge network on the digits and 60 test samples."""
    split = create("dataset", "digits").load()
    model = create("model", "hinge", hidden=32, epochs=5, random_state=0)
    model.fit(split.X_train, split.y_train)
    return model, split.X_test[:60], split.y_test[:60], split.bounds, split.image_shape


def robust(model, adversarials, y):
    return np.stack([model.predict(adv) == y for adv in adversarials])


def test_auto_is_at_least_as_strong_as_its_first_member_on_every_sample(digits_net):
    model, X, y, bounds, shape = digits_net
    epsilons = [0.05, 0.1]
    kwargs = {"bounds": bounds, "random_state": 0, "image_shape": shape}
    auto = AutoAttack(version="fast").perturb(model, X, y, epsilons, **kwargs)
    ce = APGD(loss="ce", steps=VERSIONS["fast"].ce_steps).perturb(model, X, y, epsilons, **kwargs)
    ours, first = robust(model, auto.adversarials, y), robust(model, ce.adversarials, y)
    assert np.all(first[ours])  # robust to auto ⇒ robust to APGD-CE
    assert ours.sum() < first.sum()  # and the later members break more
    # broken_by names a member exactly where the sample is no longer robust.
    broken_by = auto.info["broken_by"]
    assert broken_by.shape == (2, len(X))
    np.testing.assert_array_equal(broken_by == "", ours)
    assert set(np.unique(broken_by)) <= {"", "clean", "apgd-ce", "apgd-t", "apgd-dlr", "square"}
    counts = auto.info["broken_counts"]
    assert [counts["clean"][k] + counts["apgd-ce"][k] for k in range(2)] == list(
        (~first).sum(axis=1)
    )


class MaskedGradients(LinearModel):
    """A linear model whose input gradients are reported as zero (gradient masking)."""

    def decision_gradient(self, X, grad_scores, grad_reject=None):
        return np.zeros(np.shape(X))


def test_square_breaks_what_masked_gradients_hide():
    X, y, bounds = toy_data(n_samples=60)
    model = MaskedGradients(random_state=0).fit(X, y)
    result = AutoAttack(version="fast").perturb(model, X, y, [0.2], bounds=bounds, random_state=0)
    broken_by = result.info["broken_by"][0]
    # The gradient members break only what their random starts happen to break.
    assert np.sum(broken_by == "square") > max(
        5, np.sum(np.isin(broken_by, ["apgd-ce", "apgd-t", "apgd-dlr"]))
    )
    assert result.zero_gradient.all()


def test_reject_aware_is_passed_to_every_member_and_evades_rejection():
    attack = AutoAttack(version="fast", reject_aware=True)
    gradient, square = attack.members(10)
    assert all(member.reject_aware for _, member in gradient) and square.reject_aware
    # s0 = 0.5, s1 = x1 + x2, s2 = −x2, r = 3·x1: raising s1 along x1 gets rejected.
    model = LinearModel.from_weights([[0, 1, 0, 3], [0, 1, -1, 0]], [0.5, 0, 0, 0], reject=True)
    X = np.random.default_rng(0).uniform(-0.1, 0.1, size=(20, 2))
    y = np.zeros(20, dtype=int)

    def evaded(reject_aware):
        """The share of samples evading, and how many APGD-CE (the first member) broke."""
        auto = AutoAttack(version="fast", reject_aware=reject_aware)
        result = auto.perturb(model, X, y, [0.3], bounds=(-1.0, 1.0), random_state=0)
        predicted = model.predict(result.adversarials[0])
        share = np.mean((predicted != y) & (predicted != REJECT))
        return share, result.info["broken_counts"]["apgd-ce"][0]

    # Without it APGD-CE climbs s1 into the reject region on most samples, and only the
    # later (targeted) members find the non-rejected class.
    assert evaded(True) == (1.0, 20)
    assert evaded(False)[1] <= 5


def test_versions_and_kind():
    gradient, square = AutoAttack().members(10)
    members = dict(gradient)
    assert list(members) == ["apgd-ce", "apgd-t", "apgd-dlr"]
    assert [m.steps for m in members.values()] == [100, 100, 100]
    assert members["apgd-t"].n_target_classes == 9 and members["apgd-t"].loss == "dlr"
    assert members["apgd-dlr"].restarts == 5 and not members["apgd-dlr"].targeted
    assert square.n_queries == 5000
    fast_gradient, fast_square = AutoAttack(version="fast").members(10)
    fast = dict(fast_gradient)
    assert fast_square.n_queries < 5000 and fast["apgd-ce"].steps < 100
    assert fast["apgd-t"].steps < 100 and fast["apgd-dlr"].restarts == 1
    assert AutoAttack.kind == GRADIENT_ATTACK and AutoAttack().iterative
    assert dict(AutoAttack().members(3)[0])["apgd-t"].n_target_classes == 2  # every wrong class
    assert [name for name, _ in AutoAttack().members(2)[0]] == ["apgd-ce"]  # DLR needs 3


def test_flat_inputs_get_a_nearly_square_grid_for_square():
    assert grid_shape(784) == (28, 28)
    assert grid_shape(128) == (8, 16)
    assert grid_shape(7) == (1, 7)


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        (AutoAttack(version="quick"), "version must be one of standard, fast; got 'quick'"),
        (AutoAttack(norm="l1"), "norm must be one of linf, l2"),
        (AutoAttack(reject_aware="no"), "reject_aware must be True or False"),
    ],
)
def test_bad_parameters_are_one_line_errors(attack, message):
    X, y, bounds = toy_data()
    model = LinearModel(random_state=0).fit(X, y)
    with pytest.raises(RobustkitError, match=message) as info:
        attack.perturb(model, X, y, 0.1, bounds=bounds)
    assert "\n" not in str(info.value)


def test_auto_passes_check_attack():
    check_attack(AutoAttack(version="fast"))


def test_l2_auto_stays_in_the_l2_ball_and_breaks_samples():
    X, y, bounds = toy_data(n_samples=30)
    model = LinearModel(random_state=0).fit(X, y)
    result = AutoAttack(version="fast", norm="l2").perturb(
        model, X, y, [0.2], bounds=bounds, random_state=0
    )
    length = np.linalg.norm(result.adversarials[0].astype(np.float64) - X, axis=1)
    assert np.all(length <= 0.2 * (bounds[1] - bounds[0]) * (1 + 1e-6))
    assert (
        np.sum(np.isin(result.info["broken_by"][0], ["apgd-ce", "apgd-t", "apgd-dlr", "square"]))
        > 3
    )


def test_registered_auto_passes_check_attack_on_a_rejecting_model():
    attack = create("attack", "auto", version="fast", reject_aware=True)
    check_attack(attack, model=LinearModel(reject=True))
