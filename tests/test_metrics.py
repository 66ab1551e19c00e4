"""Metrics, intervals, tables and sanity checks on hand-computed cases."""

import math

import numpy as np
import pytest

from robustkit import REJECT
from robustkit.metrics import (
    CORRECT,
    EVADED,
    REJECTED,
    attack_metrics,
    clean_metrics,
    outcomes,
    rate,
    sample_set_metrics,
    wilson_interval,
    worst_case,
)
from robustkit.sanity import (
    noise_beats_gradient,
    non_monotonic,
    sanity_warnings,
    score_beats_gradient,
    unbounded_not_reaching,
    zero_gradients,
)
from robustkit.tables import interval, number, percent, report

# ------------------------------------------------------------------ Wilson intervals


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # z = 1.96: centre (k + z²/2)/(n + z²), half-width z·√(k(n−k)/n + z²/4)/(n + z²)
        (0, 10, 0.0, 0.27753),  # centre = half = 1.92073/13.84146 = 0.138767
        (10, 10, 0.72247, 1.0),
        (5, 10, 0.23659, 0.76341),  # half = 1.95996·√(2.5 + 0.96037)/13.84146
        (1, 1, 0.20654, 1.0),  # centre 2.92073/4.84146, half 1.95996·0.98/4.84146
        (50, 100, 0.40383, 0.59617),
    ],
)
def test_wilson_interval_hand_computed(k, n, low, high):
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_edge_cases():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="between 0 and n"):
        wilson_interval(11, 10)
    low, high = wilson_interval(30, 100)
    assert low < 0.3 < high  # contains the estimate, narrower with more samples
    assert high - low > np.subtract(*wilson_interval(300, 1000)[::-1])


# ------------------------------------------------------------------ rates


def test_clean_metrics_hand_computed():
    y = np.array([0, 1, 2, 3])
    pred = np.array([0, REJECT, 2, 1])
    m = clean_metrics(y, pred)
    assert (m["clean_accuracy"], m["clean_reject_rate"]) == (0.5, 0.25)
    assert (m["clean_accuracy_low"], m["clean_accuracy_high"]) == wilson_interval(2, 4)


def test_attack_metrics_hand_computed():
    # 5 attacked samples: 2 still right, 1 rejected, 2 evaded (wrong, not rejected).
    y = np.array([0, 1, 2, 3, 4])
    adv = np.array([0, 1, REJECT, 0, 0])
    linf = np.array([0.1, 0.1, 0.1, 0.1, 0.2])
    zero = np.array([True, False, False, False, False])
    m = attack_metrics(y, adv, linf, zero)
    assert (m["n_attacked"], m["flipped"], m["rejected"], m["evaded"]) == (5, 3, 1, 2)
    assert m["attack_success_rate"] == pytest.approx(3 / 5)
    assert (m["attack_success_rate_low"], m["attack_success_rate_high"]) == wilson_interval(3, 5)
    assert m["correct_rejects"] == 1
    assert m["percent_rejected"] == pytest.approx(1 / 3)
    assert m["percent_rejected_high"] == wilson_interval(1, 3)[1]
    assert m["zero_gradient_rate"] == pytest.approx(0.2)
    assert m["mean_linf"] == pytest.approx(0.12)
    assert math.isnan(attack_metrics(y, adv, linf, None)["zero_gradient_rate"])


def test_percent_rejected_is_nan_when_nothing_flipped():
    y = np.array([1, 2])
    m = attack_metrics(y, y.copy(), np.zeros(2), np.zeros(2, bool))
    assert m["flipped"] == 0 and math.isnan(m["percent_rejected"])
    assert math.isnan(m["percent_rejected_low"])
    assert percent(m["percent_rejected"]) == "-" and interval(m, "percent_rejected") == "-"


def test_study_row_percent_rejected():
    # The study's Q8 row: 93 of 100 flipped, 46 rejected -> 49.46 % rejected.
    y = np.zeros(100, int)
    adv = np.array([REJECT] * 46 + [1] * 47 + [0] * 7)
    m = attack_metrics(y, adv, np.zeros(100), np.zeros(100, bool))
    assert m["attack_success_rate"] == pytest.approx(0.93)
    assert percent(m["percent_rejected"]) == "49.5%"


def test_sample_set_metrics_hand_computed():
    # 8 samples: 3 robust, 2 rejected (one a clean reject), 3 wrong and not rejected.
    y = np.array([0, 1, 2, 3, 4, 5, 6, 7])
    final = np.array([0, 1, 2, REJECT, REJECT, 0, 0, 1])
    o = outcomes(y, final)
    assert o.tolist() == [CORRECT] * 3 + [REJECTED] * 2 + [EVADED] * 3
    m = sample_set_metrics(o)
    assert (m["n_samples"], m["robust"]) == (8, 3)
    assert m["robust_accuracy"] == 3 / 8
    assert m["correct_or_reject"] == 5 / 8
    assert m["evasion_rate"] == 3 / 8
    assert (m["evasion_rate_low"], m["evasion_rate_high"]) == wilson_interval(3, 8)


def test_worst_case_is_the_per_sample_or_over_attacks():
    # Two attacks on 5 samples; a sample is robust only if both leave it correct.
    a = np.array([CORRECT, EVADED, CORRECT, REJECTED, REJECTED])
    b = np.array([CORRECT, CORRECT, REJECTED, EVADED, REJECTED])
    worst, chosen = worst_case(np.stack([a, b]))
    assert worst.tolist() == [CORRECT, EVADED, REJECTED, EVADED, REJECTED]
    assert chosen.tolist() == [0, 0, 1, 1, 0]
    m = sample_set_metrics(worst)
    assert (m["robust"], m["correct_or_reject"], m["evasion_rate"]) == (1, 3 / 5, 2 / 5)


def test_number_percent_and_interval_formatting():
    assert percent(0.8754) == "87.5%"
    assert number(0.1) == "0.1" and number(None) == "-" and number(3) == "3"
    # the larger distance to the bounds: at k = 0 the whole upper half-range
    low, high = wilson_interval(0, 10)
    assert interval({"r": 0.0, "r_low": low, "r_high": high}, "r") == "0.0 ± 27.8%"
    low, high = wilson_interval(5, 10)
    assert interval({"r": 0.5, "r_low": low, "r_high": high}, "r") == "50.0 ± 26.3%"


# ------------------------------------------------------------------ sanity checks


def row(eps, success, attack="fgsm", kind="gradient", zero=0.0, iterative=False, **extra):
    n = extra.pop("n", 10)
    flipped = round(n * success)
    evaded = extra.pop("evaded", flipped)
    return {
        "model": "rbf",
        "defense": "none",
        "eps_fraction": eps,
        "attack": attack,
        "lam": extra.pop("lam", None),
        "eps": eps,
        "attack_success_rate": flipped / n,
        "evasion_rate": evaded / n,
        "zero_gradient_rate": zero,
        "attack_kind": kind,
        "gradient_based": kind == "gradient",
        "iterative": iterative,
        "worst_case": False,
        "clean_accuracy": 0.9,
        "sample_accuracy": 1.0,
        "clean_reject_rate": 0.0,
        "n_samples": n,
        "robust": n - flipped,
        **rate("robust_accuracy", n - flipped, n),
        **rate("correct_or_reject", n - evaded, n),
        "n_attacked": n,
        "flipped": flipped,
        "rejected": flipped - evaded,
        "evaded": evaded,
        "correct_rejects": flipped - evaded,
        "percent_rejected": 0.0,
        "mean_linf": eps,
        "seconds": 0.01,
        "rejects": False,
        **extra,
    }


def test_non_monotonic_needs_a_drop_of_more_than_one_sample():
    assert non_monotonic([row(0.1, 0.2), row(0.3, 0.5)]) == []
    assert non_monotonic([row(0.1, 0.5), row(0.3, 0.4)]) == []  # one sample of 10: noise
    warnings = non_monotonic([row(0.1, 0.5), row(0.3, 0.2)])
    assert len(warnings) == 1
    assert "fgsm from 50% at ε=0.1 to 20% at ε=0.3" in warnings[0]
    assert "one-step attack overshoots" in warnings[0]
    iterative = non_monotonic(
        [row(0.1, 0.5, "pgd", iterative=True), row(0.3, 0.2, "pgd", iterative=True)]
    )
    assert "not converging" in iterative[0] and "overshoots" not in iterative[0]
    noise = [row(0.1, 0.5, "noise", "baseline"), row(0.3, 0.1, "noise", "baseline")]
    assert non_monotonic(noise) == []  # random noise need not rise with ε


def test_one_warning_per_model_and_defense_listing_attacks_and_eps():
    rows = [
        row(0.1, 0.6, "fgsm"),
        row(0.3, 0.2, "fgsm"),
        row(0.1, 0.7, "pgd", iterative=True),
        row(0.3, 0.3, "pgd", iterative=True),
        row(0.1, 0.2, "fgsm", defense="reject"),
        row(0.3, 0.0, "fgsm", defense="reject"),
    ]
    warnings = non_monotonic(rows)
    assert len(warnings) == 2
    assert "fgsm from 60%" in warnings[0] and "pgd from 70%" in warnings[0]
    assert "rbf + reject" in warnings[1]


def test_score_attack_beating_gradient_attacks_is_masking():
    rows = [
        row(0.1, 0.3, "fgsm"),
        row(0.1, 0.4, "pgd", iterative=True),
        row(0.1, 0.6, "square", "score", iterative=True),
        row(0.3, 0.9, "pgd", iterative=True),
        row(0.3, 0.95, "square", "score", iterative=True, n=20),
    ]
    warnings = score_beats_gradient(rows)
    assert len(warnings) == 1
    # one item per attack, its ε listed, the figures of its largest lead
    assert "square at ε=0.1, 0.3 (up to 60% vs 40% for pgd)" in warnings[0]
    assert "gradient masking" in warnings[0]
    assert score_beats_gradient([row(0.1, 0.6, "pgd"), row(0.1, 0.6, "sq", "score")]) == []


def test_strength_is_evasion_so_rejected_noise_is_no_masking():
    # noise flips 5 of 10 but all into rejects: it evades on none, the gradient on 2
    rows = [row(0.1, 0.3, evaded=2), row(0.1, 0.5, "noise", "baseline", evaded=0)]
    assert noise_beats_gradient(rows) == []


def test_noise_doing_as_well_as_gradient_is_flagged_once():
    rows = [
        row(0.1, 0.3),
        row(0.1, 0.3, "pgd"),
        row(0.1, 0.3, attack="noise", kind="baseline"),
        row(0.3, 0.5),
        row(0.3, 0.5, attack="noise", kind="baseline"),
    ]
    (warning,) = noise_beats_gradient(rows)
    assert "noise vs fgsm at ε=0.1, 0.3 (up to 30% vs 30%), noise vs pgd at ε=0.1" in warning
    lams = [
        row(0.1, 0.3, lam=50),
        row(0.1, 0.3, "noise", "baseline", lam=50),
        row(0.3, 0.3, lam=400),
        row(0.3, 0.4, "noise", "baseline", lam=400),
    ]
    (warning,) = noise_beats_gradient(lams)
    assert "noise vs fgsm at ε=0.1 (λ=50); ε=0.3 (λ=400) (up to 40% vs 30%)" in warning
    single = [row(0.1, 0.1), row(0.1, 0.1, attack="noise", kind="baseline")]
    assert noise_beats_gradient(single) == []  # one evading sample is no evidence
    rows = [row(0.1, 0.6), row(0.1, 0.3, attack="noise", kind="baseline")]
    assert noise_beats_gradient(rows) == []
    rows = [row(0.01, 0.0), row(0.01, 0.0, attack="noise", kind="baseline")]
    assert noise_beats_gradient(rows) == []  # both at zero: nothing to compare


def test_zero_gradient_and_unbounded_checks():
    (warning,) = zero_gradients([row(0.1, 0.4, zero=0.6), row(0.1, 0.4, "pgd", zero=0.5)])
    assert "fgsm (60%), pgd (50%)" in warning
    assert zero_gradients([row(0.1, 0.4, zero=0.1)]) == []
    assert zero_gradients([row(0.1, 0.4, "sq", "score", zero=0.9)]) == []
    assert unbounded_not_reaching([row(1.0, 0.5, attack="pgd", iterative=True)])
    assert unbounded_not_reaching([row(1.0, 1.0, attack="pgd", iterative=True)]) == []
    assert unbounded_not_reaching([row(0.5, 0.5, attack="pgd", iterative=True)]) == []
    noise = row(1.0, 0.5, attack="noise", kind="baseline", iterative=True)
    assert unbounded_not_reaching([noise]) == []


def test_worst_case_rows_are_not_checked():
    rows = [row(0.1, 0.5, worst_case=True), row(0.3, 0.1, worst_case=True)]
    assert sanity_warnings(rows) == []


def test_report_leads_with_robust_accuracy_and_has_study_tables():
    plain = report([row(0.1, 0.2)])
    assert plain.startswith("Robust accuracy over 10 samples")
    assert "80.0 ± " in plain and "Attack success" in plain
    assert "Correct rejects" not in plain and "correct or reject" not in plain
    text = report([row(0.1, 0.2, rejects=True)], ["something odd"])
    assert "Correct rejects" in text and "percent rejected" in text
    assert "correct or reject" in text and "evasion" in text
    assert text.endswith("- something odd")
    assert "its rows are the worst case" in report([row(0.1, 0.2)], single_attack=True)
