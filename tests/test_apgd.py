"""APGD: schedule, strength against PGD, budgets, determinism, rejection, errors."""

import itertools

import numpy as np
import pytest
from robustkit_plugins.apgd import APGD, Scorer, apgd_search, checkpoints
from robustkit_plugins.gradient_attacks import FGSM, PGD

from robustkit import REJECT, RobustkitError, create
from robustkit.testing import LinearModel, check_attack, toy_data


def robust_accuracy(model, adversarials, y):
    """Per ε, the fraction still classified correctly (rejected counts as not robust)."""
    return np.array([np.mean(model.predict(adv) == y) for adv in adversarials])


def evaded(model, adversarials, y):
    """Per ε, the fraction classified wrong and not rejected."""
    return np.array([np.mean((p != y) & (p != REJECT)) for p in map(model.predict, adversarials)])


@pytest.fixture(scope="module")
def digits_net():
    """A small hinge network on the digits (8×8 pixels in [0, 16]), and 150 test samples."""
    split = create("dataset", "digits").load()
    model = create("model", "hinge", hidden=32, epochs=5, random_state=0)
    model.fit(split.X_train, split.y_train)
    return model, split.X_test[:150], split.y_test[:150], split.bounds


def test_checkpoints_follow_the_published_schedule():
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 of 100 steps.
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10) == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert checkpoints(1) == [1]


@pytest.mark.parametrize("loss", ["dlr", "margin"])
def test_apgd_is_at_least_as_strong_as_pgd_on_the_same_budget(digits_net, loss):
    # Against PGD on the margin loss (its strongest); on this hinge network cross-entropy
    # is a weaker objective than the margin for either attack.
    model, X, y, bounds = digits_net
    epsilons = [0.02, 0.05, 0.1]
    kwargs = {"bounds": bounds, "random_state": 0}
    apgd = APGD(loss=loss, steps=20).perturb(model, X, y, epsilons, **kwargs)
    pgd = PGD(loss="margin", steps=20).perturb(model, X, y, epsilons, **kwargs)
    ours, theirs = (
        robust_accuracy(model, apgd.adversarials, y),
        robust_accuracy(model, pgd.adversarials, y),
    )
    assert np.all(ours <= theirs)
    assert ours[0] < robust_accuracy(model, [X], y)[0]  # it breaks something at the smallest ε


def test_targeted_apgd_breaks_at_least_what_untargeted_dlr_breaks_on_most_budgets(digits_net):
    model, X, y, bounds = digits_net
    epsilons = [0.02, 0.05]
    kwargs = {"bounds": bounds, "random_state": 0}
    plain = APGD(loss="dlr", steps=20).perturb(model, X, y, epsilons, **kwargs)
    targeted = APGD(loss="dlr", steps=20, targeted=True, n_target_classes=3)
    result = targeted.perturb(model, X, y, epsilons, **kwargs)
    assert np.all(
        robust_accuracy(model, result.adversarials, y)
        <= robust_accuracy(model, plain.adversarials, y)
    )
    assert result.info["targets"].shape == (len(X), 3)
    assert not np.any(result.info["targets"] == y[:, None])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_apgd_results_stay_in_the_ball_and_the_bounds(digits_net, norm):
    model, X, y, bounds = digits_net
    epsilons = [0.0, 0.03, 0.3]
    result = APGD(norm=norm, steps=10).perturb(model, X, y, epsilons, bounds=bounds)
    span = bounds[1] - bounds[0]
    for eps, adv in zip(epsilons, result.adversarials, strict=True):
        delta = (adv.astype(np.float64) - X).reshape(len(X), -1)
        length = np.abs(delta).max(axis=1) if norm == "linf" else np.linalg.norm(delta, axis=1)
        assert np.all(length <= eps * span * (1 + 1e-5) + 1e-5)
        assert adv.min() >= bounds[0] and adv.max() <= bounds[1]
    assert np.array_equal(result.adversarials[0], X)


def test_l2_apgd_is_stronger_than_l2_fgsm(digits_net):
    model, X, y, bounds = digits_net
    epsilons = [0.1, 0.3]
    apgd = APGD(norm="l2", loss="margin", steps=20)
    apgd = apgd.perturb(model, X, y, epsilons, bounds=bounds, random_state=0)
    fgsm = FGSM(norm="l2", loss="margin").perturb(model, X, y, epsilons, bounds=bounds)
    ours = robust_accuracy(model, apgd.adversarials, y)
    assert np.all(ours <= robust_accuracy(model, fgsm.adversarials, y))
    assert ours[-1] < robust_accuracy(model, [X], y)[0] - 0.1


def test_apgd_is_deterministic_for_a_seed_and_varies_with_it(digits_net):
    model, X, y, bounds = digits_net
    attack = APGD(steps=5, restarts=2)
    first = attack.perturb(model, X, y, [0.05], bounds=bounds, random_state=3)
    again = attack.perturb(model, X, y, [0.05], bounds=bounds, random_state=3)
    other = attack.perturb(model, X, y, [0.05], bounds=bounds, random_state=4)
    np.testing.assert_array_equal(first.adversarials, again.adversarials)
    assert not np.array_equal(first.adversarials, other.adversarials)


def test_a_budget_does_not_depend_on_the_other_budgets(digits_net):
    model, X, y, bounds = digits_net
    alone = APGD(steps=10).perturb(model, X, y, [0.05], bounds=bounds, random_state=5)
    among = APGD(steps=10).perturb(model, X, y, [0.1, 0.05, 0.02], bounds=bounds, random_state=5)
    np.testing.assert_array_equal(alone.adversarials[0], among.adversarials[1])


def test_broken_samples_leave_the_search(digits_net):
    # At a huge budget every sample breaks within a few steps: the work stops then, far
    # below steps × batch size.
    model, X, y, bounds = digits_net
    result = APGD(steps=100).perturb(model, X, y, [1.0], bounds=bounds, random_state=0)
    assert robust_accuracy(model, result.adversarials, y)[0] == 0.0
    assert result.info["gradient_evaluations"] < 20


def test_the_fused_forward_pass_gives_the_same_attack(digits_net):
    # The numpy networks give scores and gradient in one pass (decision_and_gradient);
    # a model without it takes decision_function + decision_gradient: same result.
    model, X, y, bounds = digits_net

    class TwoPasses:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            if name == "decision_and_gradient":
                raise AttributeError(name)
            return getattr(self.inner, name)

    fused = APGD(steps=10).perturb(model, X, y, [0.05], bounds=bounds, random_state=0)
    X32 = X.astype(np.float32)
    plain_scorer = Scorer.for_batch(TwoPasses(model), X32, y, False)
    fused_scorer = Scorer.for_batch(model, X32, y, False)
    rows = np.arange(len(X))
    for scorer in (plain_scorer, fused_scorer):
        out = np.empty_like(X32)
        start = X32 + np.float32(0.5)
        apgd_search(scorer, "ce", X32, rows, start, 0.8, bounds, "linf", 10, 0.75, out)
        scorer.out = out
    np.testing.assert_allclose(plain_scorer.out, fused_scorer.out, atol=1e-4)
    assert fused_scorer.forward_calls == fused_scorer.gradient_calls
    assert fused.adversarials.shape == (1, *X.shape)


@pytest.mark.parametrize("name", ["hinge", "rbf"])
@pytest.mark.parametrize("reject", [False, True])
def test_decision_and_gradient_matches_the_separate_calls(name, reject):
    X, y, _ = toy_data()
    model = create("model", name, hidden=8, epochs=2, reject=reject, random_state=0)
    if reject:
        noise = np.random.default_rng(0).uniform(-1, 3, size=(20, X.shape[1])).astype(X.dtype)
        model.fit(np.concatenate([X, noise]), np.concatenate([y, np.full(20, REJECT)]))
    else:
        model.fit(X, y)
    rng = np.random.default_rng(1)
    grad_scores = rng.normal(size=(len(X), len(model.classes_)))
    grad_reject = rng.normal(size=len(X))
    seen = {}

    def weights(scores, reject_scores):
        seen["scores"], seen["reject"] = scores, reject_scores
        return grad_scores, grad_reject

    scores, reject_scores, grad = model.decision_and_gradient(X, weights)
    np.testing.assert_allclose(scores, model.decision_function(X), rtol=1e-6)
    np.testing.assert_allclose(reject_scores, model.reject_score(X), rtol=1e-6)
    np.testing.assert_array_equal(seen["scores"], scores)
    expected = model.decision_gradient(X, grad_scores, grad_reject)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


def rejecting_model():
    """s0 = 0.5, s1 = x1 + x2 and a noise class r = 3·x1 (hand-built)."""
    return LinearModel.from_weights([[0, 1, 0, 3], [0, 1, -1, 0]], [0.5, 0, 0, 0], reject=True)


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_reject_aware_apgd_evades_a_rejecting_model_more(loss):
    # Raising s1 = x1 + x2 also raises r = 3·x1: an attack that ignores the noise class
    # ends up rejected; the reject-aware one raises x2 instead.
    model = rejecting_model()
    X = np.random.default_rng(0).uniform(-0.1, 0.1, size=(20, 2))
    y = np.zeros(20, dtype=int)
    assert np.all(model.predict(X) == 0)

    def outcome(reject_aware):
        attack = APGD(loss=loss, steps=20, reject_aware=reject_aware)
        result = attack.perturb(model, X, y, [0.3], bounds=(-1.0, 1.0), random_state=0)
        return evaded(model, result.adversarials, y)[0]

    plain, aware = outcome(False), outcome(True)
    assert aware == 1.0 and plain < 0.5


def test_reject_aware_apgd_evades_the_reject_defense_more(digits_net):
    _, X, y, bounds = digits_net
    split = create("dataset", "digits").load()
    defended = create("defense", "reject", random_state=0).apply(
        create("model", "hinge", hidden=32, epochs=5, random_state=0)
    )
    defended.fit(split.X_train, split.y_train)
    kwargs = {"bounds": bounds, "random_state": 0}
    plain = APGD(steps=20).perturb(defended, X, y, [0.1, 0.2], **kwargs)
    aware = APGD(steps=20, reject_aware=True).perturb(defended, X, y, [0.1, 0.2], **kwargs)
    assert np.all(
        evaded(defended, aware.adversarials, y) >= evaded(defended, plain.adversarials, y)
    )
    assert (
        evaded(defended, aware.adversarials, y).sum()
        > evaded(defended, plain.adversarials, y).sum()
    )


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        (APGD(norm="l1"), "norm must be one of linf, l2; got 'l1'"),
        (APGD(loss="hinge"), "loss must be one of ce, dlr, margin"),
        (APGD(steps=0), "steps must be an integer >= 1"),
        (APGD(restarts=0), "restarts must be an integer >= 1"),
        (APGD(rho=1.5), r"rho must be a number in \(0, 1\]"),
        (APGD(targeted=True, n_target_classes=3), "at most 2 wrong classes"),
        (APGD(targeted="yes"), "targeted must be True or False"),
    ],
)
def test_bad_parameters_are_one_line_errors(attack, message):
    X, y, bounds = toy_data()
    model = LinearModel(random_state=0).fit(X, y)
    with pytest.raises(RobustkitError, match=message) as info:
        attack.perturb(model, X, y, 0.1, bounds=bounds)
    assert "\n" not in str(info.value)


def test_dlr_on_two_classes_is_a_one_line_error():
    X, y, bounds = toy_data(n_classes=2)
    model = LinearModel(random_state=0).fit(X, y)
    with pytest.raises(RobustkitError, match="needs at least 3 classes"):
        APGD(loss="dlr").perturb(model, X, y, 0.1, bounds=bounds)


@pytest.mark.parametrize(
    "attack",
    [
        APGD(),
        APGD(norm="l2", loss="dlr"),
        APGD(loss="margin", targeted=True, n_target_classes=2, restarts=2),
        APGD(reject_aware=True, random_start=False),
    ],
)
def test_apgd_passes_check_attack(attack):
    check_attack(attack)


def test_registered_apgd_passes_check_attack_on_a_rejecting_model():
    check_attack(create("attack", "apgd", reject_aware=True), model=LinearModel(reject=True))


def test_a_sample_leaves_with_all_its_runs_once_one_breaks_it(digits_net):
    # Three runs per sample in one search (as targets and restarts go in): once one run
    # breaks a sample, no later evaluation includes any of its runs.
    model, X, y, bounds = digits_net
    X32 = X.astype(np.float32)
    scorer = Scorer.for_batch(model, X32, y, False)
    evaluated = []
    real = scorer.evaluate

    def spy(loss, Z, rows, *args, **kwargs):
        evaluated.append(rows.copy())
        return real(loss, Z, rows, *args, **kwargs)

    scorer.evaluate = spy
    rows = np.tile(np.arange(len(X)), 3)
    start = np.repeat(X32[None], 3, axis=0).reshape(-1, X.shape[1])
    start += np.random.default_rng(0).uniform(-2, 2, start.shape).astype(np.float32)
    out = X32.copy()
    won = apgd_search(scorer, "ce", X32, rows, start, 2.0, bounds, "linf", 20, 0.75, out)
    broken = np.unique(rows[won])
    assert 0 < len(broken) < len(X)
    np.testing.assert_array_equal(model.predict(out[broken]) != y[broken], True)
    for before, after in itertools.pairwise(evaluated):
        staying, runs_after = np.unique(after, return_counts=True)
        runs_before = np.bincount(before, minlength=len(X))[staying]
        np.testing.assert_array_equal(runs_after, runs_before)  # no sample loses one run


def test_runs_split_into_groups_give_a_valid_attack_of_the_same_strength(digits_net, monkeypatch):
    # Few rows per search: the 9 targets × 150 samples go in as several groups, each on
    # the samples the earlier groups left.
    from robustkit_plugins import apgd as apgd_module

    model, X, y, bounds = digits_net
    attack = APGD(loss="dlr", targeted=True, steps=10)
    together = attack.perturb(model, X, y, [0.05], bounds=bounds, random_state=0)
    monkeypatch.setattr(apgd_module, "RUN_ROWS", 200)
    grouped = attack.perturb(model, X, y, [0.05], bounds=bounds, random_state=0)
    again = attack.perturb(model, X, y, [0.05], bounds=bounds, random_state=0)
    np.testing.assert_array_equal(grouped.adversarials, again.adversarials)
    assert np.abs(grouped.adversarials - X).max() <= 0.05 * (bounds[1] - bounds[0]) + 1e-5
    strength = [robust_accuracy(model, r.adversarials, y)[0] for r in (together, grouped)]
    assert abs(strength[0] - strength[1]) <= 0.05


class ImageLinearModel(LinearModel):
    """A linear model that reads inputs shaped (n, h, w) by flattening them."""

    def decision_function(self, X):
        return super().decision_function(np.reshape(X, (len(X), -1)))

    def reject_score(self, X):
        return super().reject_score(np.reshape(X, (len(X), -1)))

    def decision_gradient(self, X, grad_scores, grad_reject=None):
        flat = super().decision_gradient(np.reshape(X, (len(X), -1)), grad_scores, grad_reject)
        return np.reshape(flat, np.shape(X))


@pytest.mark.parametrize("targeted", [False, True])
def test_inputs_shaped_as_images_give_the_flat_inputs_attack(targeted):
    """APGD on inputs shaped (n, h, w) gives the adversarials of the same inputs flat (the
    best-point and restart copies work on rows of any shape)."""
    X, y, bounds = toy_data(n_samples=60, n_features=16, n_classes=3)
    model = LinearModel(random_state=0).fit(X, y)
    image_model = ImageLinearModel().set_state(model.get_state())
    attack = APGD(loss="dlr", targeted=targeted, n_target_classes=2, steps=20)
    flat = attack.perturb(model, X, y, [0.05, 0.2], bounds=bounds, random_state=0)
    shaped = attack.perturb(
        image_model, X.reshape(len(X), 4, 4), y, [0.05, 0.2], bounds=bounds, random_state=0
    )
    assert shaped.adversarials.shape == (2, len(X), 4, 4)
    np.testing.assert_array_equal(
        shaped.adversarials.reshape(flat.adversarials.shape), flat.adversarials
    )
    assert not np.array_equal(flat.adversarials[1], X)
