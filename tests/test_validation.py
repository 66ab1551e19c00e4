"""Bad options and grid.toml fields: one line naming the field, exit 2, before any work."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from robustkit import Grid, RobustkitError, evaluate, harness
from robustkit.cli import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(harness, "_fit", lambda *a, **k: pytest.fail("trained"))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--dataset", "digits:random_state=-1"], "random_state"),
        (["--defense", "reject:random_state=abc"], "random_state"),
        (
            ["--defense", "reject:target_reject_rate=0.1,calibration_fraction=0.9999"],
            "calibration_fraction",
        ),
        (["--eps", "0.1,,0.3"], "empty item"),
        (["--eps", "0.1,"], "empty item"),
        (["--eps", "1.5"], "more than the whole input range"),
        (["--eps", "20", "--eps-unit", "absolute"], "more than the data's whole input range 16"),
        (["--lam", "50"], "no model in the grid takes λ (hinge)"),
    ],
)
def test_bad_options_are_one_line_errors(args, fragment):
    assert_user_error(run("eval", "--model", "hinge:epochs=1", "--no-cache", *args), fragment)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--eps", "1.5"], "eps"),
        (["--eps", "20", "--eps-unit", "absolute"], "eps"),  # checked once the data is loaded
        (["--lam", "50"], "lam"),
    ],
)
def test_budget_and_lambda_errors_come_before_training(no_training, args, fragment):
    assert_user_error(run("eval", "--model", "hinge:epochs=1", "--no-cache", *args), fragment)


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("data_dir = 5\n", "data_dir"),
        ("model = 5\n", "model"),
        ("model = true\n", "model"),
        ("defense = 5\n", "defense"),
        ("attack = 1.5\n", "attack"),
        ("model = []\n", "model is an empty list"),
        ('[[model]]\nname = "rbf"\nlr = []\n', "lr = [] is an empty list"),
        ("eps = []\n", "eps"),
        ('eps = ["a"]\n', "eps"),
        ("eps = [true]\n", "eps"),
        ("lam = []\n", "lam"),
        ("eps_unit = 5\n", "eps_unit"),
        ('n_samples = "x"\n', "n_samples"),
        ("seed = true\n", "seed"),
        ("jobs = 1.5\n", "jobs"),
        ("dataset = 5\n", "dataset"),
    ],
)
def test_wrong_grid_fields_name_the_field(tmp_path, no_training, toml, fragment):
    config = tmp_path / "grid.toml"
    config.write_text(toml)
    assert_user_error(run("eval", "--config", config, "--no-cache"), "grid.toml", fragment)


def test_repeated_eps_and_lam_options_combine(tmp_path):
    out = tmp_path / "r.json"
    result = run(
        "eval",
        "--model",
        "rbf:epochs=1",
        "--eps",
        "0.1",
        "--eps",
        "0.3,0.05",
        "--lam",
        "5",
        "--lam",
        "50",
        "--n-samples",
        "5",
        "--no-cache",
        "--json",
        out,
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert sorted({row["eps"] for row in rows}) == [0.05, 0.1, 0.3]
    assert sorted({row["lam"] for row in rows}) == [5.0, 50.0]


def test_models_differing_only_by_seed_are_labelled_apart():
    result = evaluate(
        ["hinge:epochs=2,random_state=1", "hinge:epochs=2,random_state=2"],
        eps=[0.05, 0.1, 0.3],
        n_samples=10,
    )
    labels = {row["model"] for row in result.rows}
    assert labels == {"hinge(epochs=2,random_state=1)", "hinge(epochs=2,random_state=2)"}
    assert not any("not converging" in warning for warning in result.warnings)
    single = evaluate("hinge:epochs=2", eps=[0.1], n_samples=5)
    assert single.rows[0]["model"] == "hinge(epochs=2)"  # the grid's seed stays hidden


def test_lambda_that_applies_to_no_cell_is_an_error():
    with pytest.raises(RobustkitError, match="no model in the grid takes λ"):
        Grid.build(model="hinge", defense="reject", lam=[5])
    assert Grid.build(model=["hinge", "rbf"], lam=[5]).lams == [5.0]  # rbf takes it
