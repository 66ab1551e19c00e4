"""Metrics, tables and sanity checks on hand-computed cases."""

import math

import numpy as np
import pytest

from robustkit import REJECT
from robustkit.metrics import attack_metrics, clean_metrics
from robustkit.sanity import (
    noise_beats_gradient,
    non_monotonic,
    unbounded_not_reaching,
    zero_gradients,
)
from robustkit.tables import number, percent, report


def test_clean_metrics_hand_computed():
    y = np.array([0, 1, 2, 3])
    pred = np.array([0, REJECT, 2, 1])
    assert clean_metrics(y, pred) == {"clean_accuracy": 0.5, "clean_reject_rate": 0.25}


def test_attack_metrics_hand_computed():
    # 5 attacked samples: 2 still right, 1 rejected, 2 evaded (wrong, not rejected).
    y = np.array([0, 1, 2, 3, 4])
    adv = np.array([0, 1, REJECT, 0, 0])
    linf = np.array([0.1, 0.1, 0.1, 0.1, 0.2])
    zero = np.array([True, False, False, False, False])
    m = attack_metrics(y, adv, linf, zero)
    assert (m["n_attacked"], m["flipped"], m["rejected"], m["evaded"]) == (5, 3, 1, 2)
    assert m["attack_success_rate"] == pytest.approx(3 / 5)
    assert m["evasion_rate"] == pytest.approx(2 / 5)
    assert m["correct_rejects"] == 1
    assert m["percent_rejected"] == pytest.approx(1 / 3)
    assert m["zero_gradient_rate"] == pytest.approx(0.2)
    assert m["mean_linf"] == pytest.approx(0.12)


def test_percent_rejected_is_nan_when_nothing_flipped():
    y = np.array([1, 2])
    m = attack_metrics(y, y.copy(), np.zeros(2), np.zeros(2, bool))
    assert m["flipped"] == 0 and math.isnan(m["percent_rejected"])
    assert percent(m["percent_rejected"]) == "-"


def test_study_row_percent_rejected():
    # The study's Q8 row: 93 of 100 flipped, 46 rejected -> 49.46 % rejected.
    y = np.zeros(100, int)
    adv = np.array([REJECT] * 46 + [1] * 47 + [0] * 7)
    m = attack_metrics(y, adv, np.zeros(100), np.zeros(100, bool))
    assert m["attack_success_rate"] == pytest.approx(0.93)
    assert percent(m["percent_rejected"]) == "49.5%"


def test_number_and_percent_formatting():
    assert percent(0.8754) == "87.5%"
    assert number(0.1) == "0.1" and number(None) == "-" and number(3) == "3"


def row(eps, success, attack="fgsm", zero=0.0, gradient=True, iterative=False, rejects=False):
    return {
        "model": "rbf",
        "defense": "none",
        "eps_fraction": eps,
        "attack": attack,
        "lam": None,
        "eps": eps,
        "attack_success_rate": success,
        "evasion_rate": success,
        "zero_gradient_rate": zero,
        "gradient_based": gradient,
        "iterative": iterative,
        "clean_accuracy": 0.9,
        "clean_reject_rate": 0.0,
        "n_attacked": 10,
        "flipped": int(10 * success),
        "rejected": 0,
        "evaded": int(10 * success),
        "correct_rejects": 0,
        "percent_rejected": 0.0,
        "mean_linf": eps,
        "seconds": 0.01,
        "rejects": rejects,
    }


def test_non_monotonic_success_is_flagged():
    assert non_monotonic([row(0.1, 0.2), row(0.3, 0.5)]) == []
    warnings = non_monotonic([row(0.1, 0.5), row(0.3, 0.2)])
    assert len(warnings) == 1 and "falls from 50% at ε=0.1 to 20% at ε=0.3" in warnings[0]


def test_noise_doing_as_well_as_gradient_is_flagged():
    rows = [row(0.1, 0.3), row(0.1, 0.3, attack="noise", gradient=False)]
    assert "suspect gradient masking" in noise_beats_gradient(rows)[0]
    rows = [row(0.1, 0.6), row(0.1, 0.3, attack="noise", gradient=False)]
    assert noise_beats_gradient(rows) == []
    rows = [row(0.01, 0.0), row(0.01, 0.0, attack="noise", gradient=False)]
    assert noise_beats_gradient(rows) == []  # both at zero: nothing to compare


def test_zero_gradient_and_unbounded_checks():
    assert zero_gradients([row(0.1, 0.4, zero=0.6)])
    assert zero_gradients([row(0.1, 0.4, zero=0.1)]) == []
    assert unbounded_not_reaching([row(1.0, 0.5, attack="pgd", iterative=True)])
    assert unbounded_not_reaching([row(1.0, 1.0, attack="pgd", iterative=True)]) == []
    assert unbounded_not_reaching([row(0.5, 0.5, attack="pgd", iterative=True)]) == []


def test_report_has_study_shaped_reject_table_only_for_rejecting_models():
    plain = report([row(0.1, 0.2)])
    assert "Attack success" in plain and "Correct rejects" not in plain
    text = report([row(0.1, 0.2, rejects=True)], ["something odd"])
    assert "Correct rejects" in text and "percent rejected" in text
    assert text.endswith("- something odd")
