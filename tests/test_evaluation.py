"""Sample sets, worst-case rows, seeds and bit-for-bit reproducibility on digits (no PCA),
and the per-sample files of ``--save-samples``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from robustkit import REJECT, RobustkitError, create, evaluate, harness
from robustkit.cli import cli
from robustkit.metrics import wilson_interval
from robustkit.samples import read_samples_file

FAST_RBF = "rbf:epochs=3"
FAST_HINGE = "hinge:epochs=3"
VOLATILE = {"seconds", "train_seconds", "cached"}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def stable(data):
    """A result's JSON without timings and cache flags, for comparing runs."""
    data = dict(data)
    data["rows"] = [{k: v for k, v in r.items() if k not in VOLATILE} for r in data["rows"]]
    data["meta"] = {k: v for k, v in data["meta"].items() if k != "seconds"}
    return data


# ------------------------------------------------------------------ sample sets


def test_first_samples_are_the_same_for_every_model_and_recorded():
    result = evaluate([FAST_HINGE, FAST_RBF], "fgsm", ["none", "reject"], eps=[0.1], n_samples=40)
    assert result.meta["samples"] == {"set": "first", "n": 40, "indices": list(range(40))}
    for row, cell in zip(result.rows, result.cells, strict=True):
        assert row["n_samples"] == 40 and row["samples"] == "first"
        np.testing.assert_array_equal(cell.indices, np.arange(40))
        # clean errors are not attacked and count as not robust
        assert row["n_attacked"] == int(cell.attacked.sum()) <= 40
        assert row["robust"] <= row["n_attacked"]
        assert row["robust_accuracy"] <= row["sample_accuracy"]
        k, n = row["robust"], row["n_samples"]
        assert (row["robust_accuracy_low"], row["robust_accuracy_high"]) == wilson_interval(k, n)


def test_correct_samples_are_per_model_and_give_the_study_columns():
    result = evaluate([FAST_HINGE, FAST_RBF], "fgsm", eps=[0.1], n_samples=30, samples="correct")
    per_model = result.meta["samples"]["per_model"]
    assert [m["model"] for m in per_model] == ["hinge(epochs=3)", "rbf(epochs=3)"]
    for row, cell, recorded in zip(result.rows, result.cells, per_model, strict=True):
        assert cell.indices.tolist() == recorded["indices"] and len(recorded["indices"]) == 30
        assert (cell.clean_predictions == cell.labels).all()  # all classified correctly
        assert row["n_attacked"] == row["n_samples"] == 30
        assert row["robust_accuracy"] == pytest.approx(1 - row["attack_success_rate"])


def test_robust_accuracy_and_rejects_over_the_set_add_up():
    result = evaluate(FAST_RBF, "fgsm", "reject", eps=[0.3], n_samples=60, lam=[5])
    (row,) = result.rows
    (cell,) = result.cells
    final = cell.predictions[0]
    robust = int(np.sum(final == cell.labels))
    evaded = int(np.sum((final != cell.labels) & (final != REJECT)))
    assert row["robust"] == robust and row["evasion_rate"] == evaded / 60
    assert row["correct_or_reject"] == pytest.approx(1 - evaded / 60)
    assert row["rejects"] and "correct or reject" in result.tables()


# ------------------------------------------------------------------ worst case


def test_worst_case_row_is_the_per_sample_or_over_attacks():
    result = evaluate(FAST_HINGE, ["fgsm", "pgd", "noise"], eps=[0.05, 0.2], n_samples=60)
    assert result.meta["worst_case"] == "row"
    assert [r["attack"] for r in result.rows] == ["fgsm"] * 2 + ["pgd"] * 2 + ["noise"] * 2 + [
        "worst case"
    ] * 2
    correct = np.stack([c.predictions == c.labels[None] for c in result.cells])  # (A, K, n)
    for k, row in enumerate(result.rows[-2:]):
        assert row["worst_case"] and row["seed"] is None
        assert row["params"]["attacks"] == ["fgsm", "pgd", "noise"]
        assert row["robust"] == int(correct[:, k].all(axis=0).sum())
        assert row["robust"] <= min(r["robust"] for r in result.rows[k:-2:2])
        broken = ~correct[:, k].all(axis=0) & result.cells[0].attacked
        assert row["flipped"] == int(broken.sum())
    assert "worst case" in result.tables()


def test_worst_case_rows_go_to_csv_with_the_others(tmp_path):
    result = evaluate(FAST_HINGE, ["fgsm", "noise"], eps=[0.1], n_samples=10)
    result.write_csv(tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert {"robust_accuracy_low", "robust_accuracy_high", "seed", "worst_case"} <= set(header)
    assert len(lines) == 4 and lines[3].startswith("hinge(epochs=3),none,worst case,")


def test_samples_in_grid_toml_and_its_errors(tmp_path, monkeypatch):
    config = tmp_path / "grid.toml"
    config.write_text(
        'samples = "correct"\nn_samples = 15\neps = [0.1]\nmodel = "hinge:epochs=2"\n'
    )
    result = run("eval", "--config", config, "--no-cache", "--json", tmp_path / "o.json")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "o.json").read_text())
    assert data["meta"]["samples"]["set"] == "correct"
    assert "first 15 correctly classified test samples of each model" in result.output
    monkeypatch.setattr(harness, "_fit", lambda *a: pytest.fail("trained"))
    config.write_text("samples = 3\n")
    result = run("eval", "--config", config, "--no-cache")
    assert result.exit_code == 2 and "samples must be one of first, correct" in result.output
    assert "got 3" in result.output


def test_one_attack_has_no_worst_case_row_and_says_so():
    result = evaluate(FAST_HINGE, "fgsm", eps=[0.1], n_samples=20)
    assert [r["attack"] for r in result.rows] == ["fgsm"]
    assert result.meta["worst_case"] == "the only attack"
    assert "one attack, so its rows are the worst case" in result.tables()


# ------------------------------------------------------------------ seeds


def test_seed_follows_the_resolved_parameters_not_their_spelling():
    args = dict(model=FAST_RBF, defense="reject", eps=[0.3], n_samples=40)
    plain = evaluate(attack="pgd", **args).rows[0]
    spelled = evaluate(attack="pgd:steps=10,restarts=1", **args).rows[0]
    assert plain["seed"] == spelled["seed"]
    skip = {"attack", "seconds", "train_seconds", "cached"}
    assert {k: v for k, v in plain.items() if k not in skip} == {
        k: v for k, v in spelled.items() if k not in skip
    }
    other = evaluate(attack="pgd:steps=11", **args).rows[0]
    assert other["seed"] != plain["seed"]
    # a model parameter spelled at its default does not change the seed either
    spelled_model = {**args, "model": "rbf:epochs=3,lr=0.1,hidden=150"}
    same_model = evaluate(attack="pgd", **spelled_model).rows[0]
    assert same_model["seed"] == plain["seed"]


# ------------------------------------------------------------------ reproducibility


GRID = [
    "eval",
    "--model",
    FAST_HINGE,
    "--model",
    FAST_RBF,
    "--defense",
    "none",
    "--defense",
    "reject",
    "--attack",
    "fgsm",
    "--attack",
    "pgd:steps=5",
    "--eps",
    "0.1,0.3",
    "--n-samples",
    "60",
]


def _cli_json(tmp_path, name, *extra, env=None):
    out = tmp_path / f"{name}.json"
    if env is None:
        result = run(*GRID, *extra, "--json", out)
        assert result.exit_code == 0, result.output
    else:
        robustkit = Path(sys.executable).parent / "robustkit"
        command = [str(robustkit), *GRID, *extra, "--json", str(out)]
        done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    return stable(json.loads(out.read_text()))


def test_same_json_for_jobs_and_cold_or_warm_cache(tmp_path):
    cache = tmp_path / "cache"
    cold = _cli_json(tmp_path, "cold", "--cache-dir", cache)
    warm = _cli_json(tmp_path, "warm", "--cache-dir", cache)
    parallel = _cli_json(tmp_path, "jobs2", "--no-cache", "--jobs", "2")
    assert warm == cold
    assert parallel["rows"] == cold["rows"]
    assert {k: v for k, v in parallel["meta"].items() if k != "grid"} == {
        k: v for k, v in cold["meta"].items() if k != "grid"
    }


def test_same_json_for_one_or_two_blas_threads(tmp_path):
    threads = {
        n: _cli_json(
            tmp_path,
            f"threads{n}",
            "--no-cache",
            env={"OPENBLAS_NUM_THREADS": str(n), "OMP_NUM_THREADS": str(n)},
        )
        for n in (1, 2)
    }
    assert threads[1] == threads[2]
    assert len(threads[1]["rows"]) == 2 * 2 * 3 * 2  # models × defenses × (attacks + worst) × ε


# ------------------------------------------------------------------ sample files


def test_save_samples_round_trip_and_info(tmp_path):
    path = tmp_path / "samples.npz"
    result = run(
        "eval",
        "--model",
        FAST_HINGE,
        "--attack",
        "fgsm",
        "--attack",
        "noise",
        "--eps",
        "0.1,0.3",
        "--n-samples",
        "25",
        "--no-cache",
        "--json",
        tmp_path / "r.json",
        "--save-samples",
        path,
        "--save-adversarials",
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    header, cells = read_samples_file(path)
    assert header["format"] == "robustkit-samples" and len(cells) == 2
    with np.load(path, allow_pickle=False) as data:  # nothing in it needs pickle
        assert {f"cell0/{name}" for name in ("indices", "success", "adversarials")} <= set(
            data.files
        )
    clean = create("dataset", "digits").load().X_test
    for cell, attack in zip(cells, ["fgsm", "noise"], strict=True):
        assert cell["attack"] == attack and cell["eps"] == [0.1, 0.3]
        np.testing.assert_array_equal(cell["indices"], np.arange(25))
        assert cell["predictions"].shape == cell["linf"].shape == (2, 25)
        assert cell["adversarials"].shape == (2, 25, 64)
        for k, row in enumerate(r for r in rows if r["attack"] == attack):
            assert int(cell["success"][k].sum()) == row["flipped"]
            assert int((cell["predictions"][k] == cell["labels"]).sum()) == row["robust"]
            assert np.mean(cell["linf"][k][cell["attacked"]]) == pytest.approx(row["mean_linf"])
            delta = cell["adversarials"][k] - clean[cell["indices"]]
            np.testing.assert_allclose(np.abs(delta).max(axis=1) / 16, cell["linf"][k], atol=1e-6)
            assert np.all(cell["linf"][k] <= row["eps"] + 1e-6)
            assert np.all(cell["l2"][k] >= cell["linf"][k] - 1e-9)  # ‖δ‖₂ ≥ ‖δ‖∞
    shown = run("info", path)
    assert shown.exit_code == 0, shown.output
    assert "sample file: 2 cells" in shown.output and "robust at ε=0.3" in shown.output
    assert "hinge(epochs=3)" in shown.output and "yes" in shown.output


def test_save_samples_without_adversarials_is_small(tmp_path):
    result = evaluate(FAST_HINGE, "fgsm", eps=[0.1], n_samples=10)
    result.write_samples(tmp_path / "s.npz")
    _, (cell,) = read_samples_file(tmp_path / "s.npz")
    assert "adversarials" not in cell and not cell["has_adversarials"]


def test_save_samples_to_an_unwritable_place_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "_fit", lambda *a: pytest.fail("trained"))
    result = run("eval", "--save-samples", tmp_path / "missing" / "s.npz")
    assert result.exit_code == 2 and "does not exist" in result.output
    assert "Traceback" not in result.output
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        result = run("eval", "--save-samples", locked / "s.npz")
        assert result.exit_code == 2 and "permission denied" in result.output
    finally:
        locked.chmod(0o700)
    assert list(locked.iterdir()) == []


def test_foreign_files_are_not_sample_files(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(RobustkitError, match="not a robustkit sample file"):
        read_samples_file(tmp_path / "other.npz")
    with pytest.raises(RobustkitError, match="does not exist"):
        read_samples_file(tmp_path / "none.npz")
