"""Certified accuracy in the harness and the CLI: the bracket, the intervals, bad input."""

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from test_harness import GradientFreePlugin

from robustkit import CapabilityError, RobustkitError, evaluate, harness
from robustkit.certify import _rate_with_interval
from robustkit.cli import cli
from robustkit.testing import temporary_plugin

HINGE = "hinge:epochs=3,hidden=24"
RBF = "rbf:epochs=3,hidden=24"


def test_rows_carry_certified_accuracy_below_robust_accuracy():
    result = evaluate(
        [HINGE, RBF],
        "pgd:loss=margin,steps=20",
        ["none", "reject"],
        eps=[0.0, 0.02, 0.1],
        n_samples=60,
        certify="crown",
    )
    for row in result.rows:
        certified = row["certified_accuracy"]
        assert row["certified_accuracy_low"] <= certified <= row["certified_accuracy_high"]
        assert certified <= row["robust_accuracy"]  # a sound bound is never above
        assert row["certify_method"] == "crown"
        if row["rejects"]:
            assert row["certified_correct_or_reject"] >= certified
        else:
            assert row["certified_correct_or_reject"] is None
        gap = row["robust_accuracy"] - certified
        assert row["certification_inconclusive"] == (gap > 0.2)
    at_zero = [row for row in result.rows if row["eps"] == 0.0]
    # at ε = 0 nearly every correctly classified sample of the set is certified
    assert all(row["certified_accuracy"] > 0.9 * row["sample_accuracy"] for row in at_zero)
    wide = [row for row in result.rows if row["certification_inconclusive"]]
    assert len([w for w in result.warnings if "inconclusive" in w]) == len(wide)


def test_wilson_interval_of_a_certified_rate_by_hand():
    # 7 of 10: centre (7 + z²/2)/(10 + z²) = 0.6445, half-width 0.2477 (z = 1.96)
    rate = _rate_with_interval("certified_accuracy", np.arange(10) < 7)
    assert rate["certified_accuracy"] == 0.7
    assert rate["certified_accuracy_low"] == pytest.approx(0.3968, abs=1e-4)
    assert rate["certified_accuracy_high"] == pytest.approx(0.8922, abs=1e-4)
    assert math.isnan(_rate_with_interval("x", np.zeros(0, bool))["x"])


def test_a_model_that_cannot_be_certified_fails_before_training(monkeypatch):
    monkeypatch.setattr(harness, "_fit", lambda *a: pytest.fail("trained"))
    with (
        temporary_plugin(GradientFreePlugin()),
        pytest.raises(CapabilityError, match="--certify ibp needs certifiable"),
    ):
        evaluate("nearest-mean", "noise", eps=[0.1], certify="ibp")
    with pytest.raises(RobustkitError, match="more than the whole input range"):
        evaluate(HINGE, "fgsm", eps=[1.5], certify="ibp")
    with pytest.raises(RobustkitError, match="certify must be one of ibp, crown"):
        evaluate(HINGE, "fgsm", eps=[0.1], certify="exact")


def test_cli_certify_prints_the_bracket_and_writes_json(tmp_path):
    out = tmp_path / "rows.json"
    args = ["eval", "--model", HINGE, "--attack", "pgd", "--eps", "0.02", "--certify", "ibp"]
    result = CliRunner().invoke(cli, [*args, "--n-samples", "30", "--no-cache", "--json", out])
    assert result.exit_code == 0, result.output
    assert "Certified bounds" in result.output
    row = json.loads(out.read_text())["rows"][0]
    assert 0 <= row["certified_accuracy"] <= 1 and row["certify_method"] == "ibp"
    bad = CliRunner().invoke(cli, [*args[:-1], "exact", "--no-cache"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
