"""Soundness of the certified bounds: hand cases per layer, random networks, real attacks."""

import numpy as np
import pytest
from robustkit_plugins import rbf
from robustkit_plugins.hinge import HingeNetwork
from robustkit_plugins.rbf import RBFNetwork
from sklearn.datasets import load_digits

from robustkit import REJECT, CapabilityError, Model, RobustkitError, create
from robustkit.certify import (
    GELU,
    GELU_ARGMIN,
    GELU_CURVATURE,
    Affine,
    LinearHead,
    RBFHead,
    ReLU,
    activation_interval,
    certify_model,
    gelu,
    margin_bounds,
    output_bounds,
    relaxation,
)
from robustkit.interfaces import CERTIFIABLE
from robustkit.wrapping import WrappedModel

BOUNDS = (0.0, 1.0)


def forward(layers, X):
    """An independent forward pass: class scores and reject score of a layer list."""
    h = np.asarray(X, dtype=np.float64)
    for layer in layers[:-1]:
        if isinstance(layer, Affine):
            h = h @ layer.weight + layer.bias
        elif isinstance(layer, ReLU):
            h = np.maximum(h, 0.0)
        else:
            h = rbf.gelu(h)  # the network's own GELU
    head = layers[-1]
    if isinstance(head, RBFHead):
        scores = -(((h[:, None, :] - head.centres[None]) ** 2).sum(-1))
        r = -np.inf if head.reject_score is None else head.reject_score
        return scores, np.full(len(h), r)
    if head.reject:
        return h[:, :-1], h[:, -1] + head.reject_offset
    return h, np.full(len(h), -np.inf)


def random_network(rng, n_in):
    """A random small network: 1–2 hidden layers of ReLU or GELU, a linear or RBF head."""
    layers, width = [], n_in
    activation = ReLU if rng.random() < 0.5 else GELU
    for _ in range(rng.integers(1, 3)):
        out = int(rng.integers(2, 7))
        layers += [Affine(rng.normal(0, 1.5, (width, out)), rng.normal(0, 1, out)), activation()]
        width = out
    k = int(rng.integers(2, 5))
    reject = bool(rng.random() < 0.5)
    if rng.random() < 0.5:
        n_out = k + reject
        layers += [Affine(rng.normal(0, 1, (width, n_out)), rng.normal(0, 1, n_out))]
        layers.append(LinearHead(reject=reject, reject_offset=float(rng.normal())))
    else:
        score = -float(rng.uniform(0.5, 5)) if reject else None
        layers.append(RBFHead(rng.normal(0, 1, (k, width)), score))
    return layers, k


def ball_points(rng, X, radius, n_random=30):
    """The clean points, random corners of each box and uniform points inside it."""
    low, high = np.maximum(X - radius, 0.0), np.minimum(X + radius, 1.0)
    points = [X, low, high]
    for _ in range(n_random):
        corner = rng.random(X.shape) < 0.5
        points.append(np.where(corner, low, high))
        points.append(rng.uniform(low, high))
    return points


def margins(scores, reject, y):
    """s_y − s_j, s_y − r and r − s_j at one point; +inf at j = y, as the bounds hold it."""
    rows = np.arange(len(y))
    class_m, over_m = scores[rows, y][:, None] - scores, reject[:, None] - scores
    class_m[rows, y] = over_m[rows, y] = np.inf
    return class_m, scores[rows, y] - reject, over_m


# ------------------------------------------------------------------- hand-computed cases


def test_affine_bounds_by_hand():
    layers = [Affine(np.array([[2.0, -1.0], [-3.0, 1.0]]), np.array([1.0, 0.0])), LinearHead()]
    lower, upper, _, _ = output_bounds(layers, np.array([[0.5, 0.5]]), 0.5, BOUNDS, "ibp")
    # s0 = 2a − 3b + 1 over [0, 1]²: [−2, 3]; s1 = −a + b: [−1, 1]
    np.testing.assert_allclose(lower, [[-2.0, -1.0]])
    np.testing.assert_allclose(upper, [[3.0, 1.0]])
    # margin s0 − s1 = 3a − 4b + 1 over [0, 1]²: min −3 at (0, 1)
    m = margin_bounds(layers, np.array([[0.5, 0.5]]), np.array([0]), 0.5, BOUNDS, "ibp")
    assert m.class_margin[0, 1] == pytest.approx(-3.0)
    # the data bounds clip the box: radius 0.5 around (1, 0) is [0.5, 1] × [0, 0.5]
    lower, upper, _, _ = output_bounds(layers, np.array([[1.0, 0.0]]), 0.5, BOUNDS, "ibp")
    np.testing.assert_allclose(lower[0], [2 * 0.5 - 3 * 0.5 + 1, -1.0])
    np.testing.assert_allclose(upper[0], [3.0, 0.0])


def test_relu_interval_and_relaxation_by_hand():
    lower, upper = activation_interval(ReLU(), np.array([-1.0, -2.0, 1.0]), np.array([2, -1, 3.0]))
    np.testing.assert_allclose(lower, [0, 0, 1])
    np.testing.assert_allclose(upper, [2, 0, 3])
    a_l, b_l, a_u, b_u = relaxation(ReLU(), np.array([-1.0, -2.0, 1.0]), np.array([2.0, 1, 3]))
    np.testing.assert_allclose(a_u, [2 / 3, 1 / 3, 1])  # the chords
    np.testing.assert_allclose(b_u, [2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(a_l, [1, 0, 1])  # slope 1 where u > −l, else 0
    np.testing.assert_allclose(b_l, 0)


def test_gelu_matches_the_network_and_its_minimum():
    x = np.linspace(-6, 6, 2001)
    np.testing.assert_allclose(gelu(x), rbf.gelu(x), atol=1e-12)
    assert gelu(np.float64(GELU_ARGMIN)) == pytest.approx(-0.17004075, abs=1e-8)
    dense = np.linspace(-40, 40, 800001)
    assert gelu(dense).min() >= gelu(np.float64(GELU_ARGMIN)) - 1e-12
    curvature = np.gradient(rbf.gelu_derivative(dense), dense[1] - dense[0])
    assert np.abs(curvature).max() <= GELU_CURVATURE  # the relaxation's slack relies on it
    derivative = rbf.gelu_derivative(dense)
    assert (derivative[dense < GELU_ARGMIN - 1e-6] <= 0).all()  # falls, then rises
    assert (derivative[dense > GELU_ARGMIN + 1e-6] > 0).all()


def test_gelu_interval_by_hand_including_its_non_monotone_region():
    lows, highs = np.array([-2.0, -3.0, 0.0, -1.25]), np.array([0.0, -1.0, 1.0, -0.25])
    lower, upper = activation_interval(GELU(), lows, highs)
    # [−2, 0] holds the minimum −0.17 at −0.752; [−3, −1] is falling; [0, 1] rising
    np.testing.assert_allclose(lower, [-0.17004075, -0.15880801, 0.0, -0.17004075], atol=1e-7)
    np.testing.assert_allclose(upper, [0.0, -0.00363739, 0.84119199, -0.10032465], atol=1e-7)
    # a one-unit network reaches those values exactly at radius 0.5 around the centre
    layers = [Affine(np.eye(1), np.zeros(1)), GELU(), Affine(np.eye(1), np.zeros(1)), LinearHead()]
    for method in ("ibp", "crown"):
        lo, hi, _, _ = output_bounds(layers, np.array([[-0.75]]), 0.5, (-5, 5), method)
        assert lo[0, 0] == pytest.approx(-0.17004075, abs=1e-7)
        assert hi[0, 0] == pytest.approx(-0.10032465, abs=1e-7)


@pytest.mark.parametrize("seed", range(5))
def test_gelu_relaxation_lines_bound_gelu(seed):
    rng = np.random.default_rng(seed)
    lows = rng.uniform(-6, 3, 2000)
    highs = lows + rng.exponential(1.5, 2000) * rng.choice([1e-10, 1e-3, 1.0], 2000)
    a_l, b_l, a_u, b_u = relaxation(GELU(), lows, highs)
    z = lows[:, None] + (highs - lows)[:, None] * np.linspace(0, 1, 257)
    value = gelu(z)
    assert (a_l[:, None] * z + b_l[:, None] <= value + 1e-12).all()
    assert (a_u[:, None] * z + b_u[:, None] >= value - 1e-12).all()


def test_rbf_head_bounds_by_hand():
    # h = x ∈ [1, 3]: d to centre 0 ∈ [1, 9], to centre 2 ∈ [0, 1]; reject score −2
    layers = [Affine(np.eye(1), np.zeros(1)), RBFHead(np.array([[0.0], [2.0]]), -2.0)]
    for method in ("ibp", "crown"):
        lower, upper, r_lo, _ = output_bounds(layers, np.array([[2.0]]), 1.0, (-10, 10), method)
        np.testing.assert_allclose(lower, [[-9.0, -1.0]])
        np.testing.assert_allclose(upper, [[-1.0, 0.0]])
        assert r_lo[0] == -2.0
        m = margin_bounds(layers, np.array([[2.0]]), np.array([1]), 1.0, (-10, 10), method)
        # s1 − s0 = d0 − d1 = 4h − 4 ∈ [0, 8]: exactly 0 at h = 1, so not certified
        assert m.class_margin[0, 0] == pytest.approx(0.0)
        assert m.reject_margin[0] == pytest.approx(2.0 - 1.0)  # s1 − r ≥ −1 + 2
        assert m.reject_over_class[0, 0] == pytest.approx(-2.0 + 1.0)  # r − s0 ≥ −2 + 1
        assert not m.correct[0] and not m.correct_or_reject[0]
        m = margin_bounds(layers, np.array([[2.5]]), np.array([1]), 0.25, (-10, 10), method)
        assert m.correct[0] and m.correct_or_reject[0]


def test_correct_or_reject_by_hand():
    # one input x: s0 = x, s1 = 0.5, reject score r = 1 − x, offset by +0.2
    W, b = np.array([[1.0, 0.0, -1.0]]), np.array([0.0, 0.5, 1.0])
    layers = [Affine(W, b), LinearHead(reject=True, reject_offset=0.2)]
    # x ∈ [0, 0.4]: r = 1.2 − x ≥ 0.8 beats both scores, so every input is rejected
    m = margin_bounds(layers, np.array([[0.2]]), np.array([0]), 0.2, BOUNDS, "ibp")
    assert m.class_margin[0, 1] == pytest.approx(-0.5)  # min of x − 0.5
    assert m.reject_over_class[0, 1] == pytest.approx(0.3)  # min of 0.7 − x
    assert m.reject_margin[0] == pytest.approx(-1.2)  # min of 2x − 1.2
    assert m.correct_or_reject[0] and not m.correct[0]
    # x ∈ [0.6, 1]: s0 beats s1 and r = 1.2 − x ≤ 0.6 ≤ s0: always class 0
    m = margin_bounds(layers, np.array([[0.8]]), np.array([0]), 0.2, BOUNDS, "ibp")
    assert m.reject_margin[0] == pytest.approx(0.0)  # 2x − 1.2 ≥ 0, a tie: not certified
    m = margin_bounds(layers, np.array([[0.85]]), np.array([0]), 0.2, BOUNDS, "ibp")
    assert m.correct[0] and m.correct_or_reject[0]


# ------------------------------------------------------------------- random networks


@pytest.mark.parametrize("seed", range(60))
def test_bounds_contain_sampled_outputs_and_crown_is_never_looser(seed):
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(2, 6))
    layers, k = random_network(rng, n_in)
    X = rng.uniform(0, 1, (8, n_in))
    y = rng.integers(0, k, 8)
    radius = float(rng.choice([0.0, 0.02, 0.1, 0.3]))
    found = {}
    for method in ("ibp", "crown"):
        lower, upper, r_lo, r_hi = output_bounds(layers, X, radius, BOUNDS, method)
        m = margin_bounds(layers, X, y, radius, BOUNDS, method)
        found[method] = (upper - lower, m)
        for point in ball_points(rng, X, radius):
            scores, reject = forward(layers, point)
            assert (scores >= lower - 1e-9).all() and (scores <= upper + 1e-9).all()
            assert (reject >= r_lo - 1e-9).all() and (reject <= r_hi + 1e-9).all()
            class_m, reject_m, over_m = margins(scores, reject, y)
            assert (class_m >= m.class_margin - 1e-9).all()
            assert (reject_m >= m.reject_margin - 1e-9).all()
            assert (over_m >= m.reject_over_class - 1e-9).all()
    (ibp_width, ibp), (crown_width, crown) = found["ibp"], found["crown"]
    assert (crown_width <= ibp_width + 1e-9).all()
    for name in ("class_margin", "reject_margin", "reject_over_class"):
        assert (getattr(crown, name) >= getattr(ibp, name) - 1e-9).all()
    assert (crown.correct >= ibp.correct).all()


def test_crown_is_tighter_than_ibp_on_average():
    rng = np.random.default_rng(0)
    gains = []
    for _ in range(20):
        layers, _ = random_network(rng, 4)
        X = rng.uniform(0, 1, (10, 4))
        widths = [
            np.subtract(*output_bounds(layers, X, 0.1, BOUNDS, m)[1::-1]) for m in ("ibp", "crown")
        ]
        gains.append(np.mean(widths[0] - widths[1]))
    assert np.mean(gains) > 0


# --------------------------------------------------------------------- real models


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y


def _fitted(kind, digits, **params):
    X, y = digits
    model = {"hinge": HingeNetwork, "rbf": RBFNetwork}[kind](
        hidden=24, epochs=3, random_state=0, **params
    )
    return model.fit(X[:1200], y[:1200])


@pytest.mark.parametrize(
    "kind, params",
    [("hinge", {}), ("hinge", {"pca": 12, "reject": True}), ("rbf", {}), ("rbf", {"reject": True})],
)
def test_certification_layers_reproduce_the_model(digits, kind, params):
    model = _fitted(kind, digits, **params)
    X = digits[0][1200:1300]
    lower, upper, r_lo, _ = output_bounds(model.certification_layers(), X, 0.0, (0, 16), "crown")
    scores = model.decision_function(X)
    np.testing.assert_allclose(lower, scores, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(upper, scores, rtol=1e-4, atol=1e-3)
    if model.reject:
        np.testing.assert_allclose(r_lo, model.reject_score(X), rtol=1e-4, atol=1e-3)
    certificate = certify_model(model, X, digits[1][1200:1300], 0.0, bounds=(0, 16))
    correct = model.predict(X) == digits[1][1200:1300]
    assert (
        certificate.correct <= correct
    ).all() and certificate.correct.mean() > 0.8 * correct.mean()


def test_calibrated_reject_defense_certifies_with_its_offset(digits):
    X, y = digits
    defended = create("defense", "reject", target_reject_rate=0.3, random_state=0).apply(
        RBFNetwork(hidden=24, epochs=3, random_state=0)
    )
    defended.fit(X[:1200], y[:1200])
    assert defended.reject_offset_ != 0
    _, _, r_lo, _ = output_bounds(defended.certification_layers(), X[1200:1300], 0.0, (0, 16))
    np.testing.assert_allclose(r_lo, defended.reject_score(X[1200:1300]), rtol=1e-5)


@pytest.mark.parametrize("kind, reject", [("hinge", False), ("hinge", True), ("rbf", True)])
def test_no_certified_sample_is_broken_by_a_strong_attack(digits, kind, reject):
    X, y = digits
    model = _fitted(kind, digits, reject=reject)
    X_test, y_test = X[1200:1400], y[1200:1400]
    radius = 0.04 * 16
    certificates = {
        m: certify_model(model, X_test, y_test, radius, bounds=(0, 16), method=m)
        for m in ("ibp", "crown")
    }
    crown = certificates["crown"]
    assert crown.correct.sum() >= 20  # enough certified samples for the test to bite
    for spec in ({"loss": "margin"}, {"reject_aware": True}, {}):
        attack = create("attack", "pgd", steps=40, restarts=3, **spec)
        adversarial = attack.perturb(
            model, X_test, y_test, radius / 16, bounds=(0, 16), random_state=1
        ).adversarials[0]
        predicted = model.predict(adversarial)
        broken = predicted != y_test
        assert not (broken & crown.correct).any()
        assert not (broken & (predicted != REJECT) & crown.correct_or_reject).any()
        assert not (broken & certificates["ibp"].correct).any()


def test_calibrated_hinge_reject_certifies_with_its_offset(digits):
    X, y = digits
    defended = create("defense", "reject", target_reject_rate=0.3, random_state=0).apply(
        HingeNetwork(hidden=24, epochs=3, random_state=0)
    )
    defended.fit(X[:1200], y[:1200])
    layers = defended.certification_layers()
    _, _, r_lo, _ = output_bounds(layers, X[1200:1300], 0.0, (0, 16))
    np.testing.assert_allclose(r_lo, defended.reject_score(X[1200:1300]), rtol=1e-4, atol=1e-4)
    certificate = certify_model(defended, X[1200:1300], y[1200:1300], 0.0, bounds=(0, 16))
    predicted = defended.predict(X[1200:1300])
    assert (certificate.correct <= (predicted == y[1200:1300])).all()
    assert (certificate.correct_or_reject <= np.isin(predicted, [REJECT, *y[1200:1300]])).all()


class _RescaledWrapper(WrappedModel):
    def decision_function(self, X):
        return 2 * self.model.decision_function(X) - 1


class _NeverRejectWrapper(WrappedModel):
    def predict(self, X):
        return np.zeros(len(X), dtype=int)


def test_a_wrapper_that_changes_the_scores_is_not_certifiable(digits):
    model = _fitted("hinge", digits)
    assert CERTIFIABLE in model.capabilities
    assert CERTIFIABLE not in _RescaledWrapper(model).capabilities
    assert CERTIFIABLE not in _NeverRejectWrapper(model).capabilities
    assert CERTIFIABLE in WrappedModel(model).capabilities  # same scores, same layers


# ------------------------------------------------------------------------- bad input


class _Opaque(Model):
    classes_ = np.array([0, 1])


def test_bad_certification_input_is_a_clear_error(digits):
    model = _fitted("hinge", digits)
    X, y = digits[0][:5], digits[1][:5]
    with pytest.raises(CapabilityError, match="certification needs certifiable"):
        certify_model(_Opaque(), X, y, 0.1, bounds=(0, 16))
    with pytest.raises(RobustkitError, match="method must be one of ibp, crown"):
        certify_model(model, X, y, 0.1, bounds=(0, 16), method="exact")
    with pytest.raises(RobustkitError, match="radius must be a finite number >= 0"):
        certify_model(model, X, y, -1, bounds=(0, 16))
    with pytest.raises(RobustkitError, match="last certification layer"):
        margin_bounds([Affine(np.eye(2), np.zeros(2))], X[:, :2], y, 0.1, BOUNDS)
