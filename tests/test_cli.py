"""The command line end to end on digits, through click's test runner."""

import csv
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import robustkit
from robustkit import harness
from robustkit.cli import cli

REPO = Path(__file__).resolve().parents[1]


def run(*args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


def assert_user_error(result, *fragments):
    """Exit 2, one ``Error:`` line naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1, result.output
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]


def test_eval_main_job_writes_json_csv_and_plot(tmp_path):
    out = tmp_path / "r"
    result = run(
        "eval",
        "--model",
        "rbf:epochs=3",
        "--attack",
        "fgsm",
        "--defense",
        "reject",
        "--eps",
        "0.05,0.1,0.3",
        "--n-samples",
        "40",
        "--cache-dir",
        tmp_path / "c",
        "--json",
        f"{out}.json",
        "--csv",
        f"{out}.csv",
        "--plot",
        f"{out}.png",
    )
    assert result.exit_code == 0, result.output
    assert "Attack success" in result.output and "Correct rejects" in result.output
    data = json.loads(Path(f"{out}.json").read_text())
    assert data["meta"]["robustkit_version"] == robustkit.__version__
    assert [row["eps"] for row in data["rows"]] == [0.05, 0.1, 0.3]
    with open(f"{out}.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 and float(rows[2]["eps"]) == 0.3
    assert Path(f"{out}.png").read_bytes().startswith(b"\x89PNG")


def test_eval_config_file_and_overrides(tmp_path):
    config = tmp_path / "grid.toml"
    config.write_text(
        'eps = [0.1]\nn_samples = 10\n[[model]]\nname = "hinge"\nepochs = 2\n'
        '[[attack]]\nname = "fgsm"\n[[attack]]\nname = "noise"\n'
    )
    result = run(
        "eval", "--config", config, "--no-cache", "--json", tmp_path / "o.json", "--eps", "0.2"
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "o.json").read_text())["rows"]
    assert [(r["attack"], r["eps"]) for r in rows] == [
        ("fgsm", 0.2),
        ("noise", 0.2),
        ("worst case", 0.2),
    ]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--eps", "-0.1"], ["eps", "-0.1"]),
        (["--eps", "abc"], ["eps", "'abc'"]),
        (["--eps", "nan"], ["eps"]),
        (["--attack", "fgsn"], ["unknown attack 'fgsn'", "fgsm", "did you mean"]),
        (["--defense", "rejekt"], ["unknown defense", "reject"]),
        (["--model", "mlp"], ["unknown model 'mlp'", "hinge", "rbf"]),
        (["--model", "rbf:bogus=1"], ["no parameter 'bogus'", "accepted"]),
        (["--n-samples", "100000"], ["n_samples", "450 test samples"]),
        (["--samples", "random"], ["samples must be one of first, correct", "'random'"]),
        (["--save-adversarials"], ["--save-adversarials needs --save-samples"]),
        (["--dataset", "cifar"], ["unknown dataset 'cifar'", "digits"]),
    ],
)
def test_eval_bad_input_is_one_line_error(tmp_path, args, fragments):
    result = run("eval", "--model", "hinge:epochs=1", *args, "--no-cache")
    assert_user_error(result, *fragments)


def test_eval_broken_grid_file(tmp_path):
    bad = tmp_path / "grid.toml"
    bad.write_text("eps = [0.1\n")
    assert_user_error(run("eval", "--config", bad), "grid.toml", "not valid TOML")
    bad.write_text("epsilon = [0.1]\n")
    assert_user_error(run("eval", "--config", bad), "unknown key epsilon", "accepted")
    bad.write_text('[[attack]]\nname = "nope"\n')
    assert_user_error(run("eval", "--config", bad), "unknown attack 'nope'")


def test_eval_unwritable_output_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "_fit", lambda *a: pytest.fail("trained"))
    result = run("eval", "--json", tmp_path / "missing" / "out.json")
    assert_user_error(result, "does not exist")
    result = run("eval", "--csv", tmp_path)
    assert result.exit_code == 2


def test_eval_writes_nothing_when_it_fails(tmp_path):
    out = tmp_path / "out.json"
    result = run(
        "eval", "--model", "hinge:epochs=1", "--n-samples", "100000", "--json", out, "--no-cache"
    )
    assert result.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_train_writes_json_model_and_plot(tmp_path):
    result = run(
        "train",
        "--model",
        "hinge",
        "--dataset",
        "digits",
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--lr",
        "0.1",
        "--seed",
        "1",
        "--json",
        tmp_path / "t.json",
        "--save",
        tmp_path / "m.npz",
        "--plot",
        tmp_path / "curve.png",
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"hinge\s+3\s+32\s+0\.1\s+\d+\.\d%\s+\d+\.\d%", result.output)
    summary = json.loads((tmp_path / "t.json").read_text())
    assert 0.8 < summary["test_accuracy"] <= 1 and 0 <= summary["train_accuracy"] <= 1
    assert len(summary["history"]) == 3 and summary["seconds"] > 0
    recipe, model = robustkit.load_model(tmp_path / "m.npz")
    split = robustkit.create("dataset", "digits").load()
    assert recipe.model == "hinge" and recipe.model_params["epochs"] == 3
    assert np.isclose(model.score(split.X_test, split.y_test), summary["test_accuracy"])
    assert (tmp_path / "curve.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--lr", "-1"], "--lr"),
        (["--lr", "abc"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "two"], "--epochs"),
        (["--batch-size", "-5"], "--batch-size"),
        (["--pca", "100"], "pca"),
        (["--model", "svm"], "unknown model 'svm'"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent"], "mnist"),
    ],
)
def test_train_bad_input_is_one_line_error(tmp_path, args, fragment):
    result = run("train", "--model", "hinge", "--epochs", "1", *args, "--json", tmp_path / "t.json")
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert fragment in result.output
    assert not (tmp_path / "t.json").exists()


def test_plugins_and_datasets_commands():
    listed = json.loads(run("plugins", "--json").output)
    kinds = {(item["kind"], item["name"]) for item in listed}
    assert {
        ("model", "hinge"),
        ("model", "rbf"),
        ("attack", "fgsm"),
        ("attack", "pgd"),
        ("attack", "noise"),
        ("defense", "reject"),
        ("dataset", "digits"),
    } <= kinds
    assert all({"name", "kind", "distribution", "version"} <= set(item) for item in listed)
    table = run("plugins").output
    assert "interpreter:" in table and "robustkit" in table
    names = {item["name"] for item in json.loads(run("datasets", "--json").output)}
    assert names >= {"digits", "mnist", "fashion-mnist"}


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"```(?:bash|sh)\n(.*?)\n```", readme, re.S)
    assert "robustkit eval" in commands[0]
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert shlex.split(ci) == shlex.split(commands[1])


def test_info_shows_a_saved_model_and_refuses_foreign_files(tmp_path):
    saved = tmp_path / "m.npz"
    assert run("train", "--model", "rbf", "--epochs", "2", "--save", saved).exit_code == 0
    result = run("info", saved)
    assert result.exit_code == 0, result.output
    assert "model:     rbf" in result.output and "dataset:   digits" in result.output
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    assert_user_error(run("info", tmp_path / "other.npz"), "not a robustkit model file")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    assert_user_error(run("info", tmp_path / "junk.npz"), "not a robustkit model file")
    with np.load(saved) as data:
        arrays = dict(data)
    meta = json.loads(str(arrays["__robustkit__"]))
    arrays["__robustkit__"] = np.array(json.dumps({**meta, "format_version": 7}))
    np.savez(tmp_path / "future.npz", **arrays)
    assert_user_error(run("info", tmp_path / "future.npz"), "format version 7", "reads version")
