"""The evaluation harness on digits: rows, reproducibility, cache, λ sweeps, bad grids."""

import numpy as np
import pytest

import robustkit
from robustkit import CapabilityError, Grid, Harness, Model, RobustkitError, evaluate, harness
from robustkit.cache import CacheWarning, ModelCache
from robustkit.testing import temporary_plugin

FAST_RBF = "rbf:epochs=3"
FAST_HINGE = "hinge:epochs=3"
ROW_KEYS = {
    "model",
    "defense",
    "attack",
    "dataset",
    "eps",
    "params",
    "clean_accuracy",
    "clean_reject_rate",
    "n_attacked",
    "flipped",
    "rejected",
    "evaded",
    "attack_success_rate",
    "evasion_rate",
    "evasion_rate_low",
    "evasion_rate_high",
    "robust_accuracy",
    "robust_accuracy_low",
    "robust_accuracy_high",
    "correct_or_reject",
    "sample_accuracy",
    "n_samples",
    "robust",
    "seed",
    "worst_case",
    "mean_l2",
    "correct_rejects",
    "percent_rejected",
    "zero_gradient_rate",
    "mean_linf",
    "seconds",
}


def numbers(result):
    """The rows without timing and cache columns, for comparing runs."""
    skip = {"seconds", "train_seconds", "cached"}
    return [{k: v for k, v in row.items() if k not in skip} for row in result.to_dict()["rows"]]


def test_default_evaluation_rows():
    result = evaluate(FAST_RBF, "fgsm", "none", eps=[0.0, 0.1, 0.3], n_samples=50)
    assert [row["eps"] for row in result.rows] == [0.0, 0.1, 0.3]
    for row in result.rows:
        assert set(row) >= ROW_KEYS
        assert row["n_samples"] == 50 and row["dataset"] == "digits"
        assert row["n_attacked"] == round(50 * row["sample_accuracy"])
        assert row["clean_accuracy"] > 0.8
        assert row["mean_linf"] <= row["eps"] + 1e-6
    assert result.rows[0]["flipped"] == 0  # ε = 0 changes nothing
    assert result.rows[2]["attack_success_rate"] >= result.rows[1]["attack_success_rate"]
    assert result.meta["seed"] == 0 and result.meta["dataset"] == "digits"
    assert {p["name"] for p in result.meta["plugins"]} == {"rbf", "none", "fgsm", "digits"}
    assert "Attack success" in result.tables()


def test_same_seed_same_numbers_and_jobs_do_not_change_them():
    args = dict(
        model=[FAST_HINGE, FAST_RBF], attack=["fgsm", "noise"], eps=[0.1, 0.2], n_samples=30
    )
    first = evaluate(**args)
    assert numbers(evaluate(**args)) == numbers(first)
    assert numbers(evaluate(**args, jobs=2)) == numbers(first)
    assert numbers(evaluate(**args, seed=1)) != numbers(first)


def test_second_run_with_other_attacks_trains_nothing(tmp_path, monkeypatch):
    grid = dict(
        model=[FAST_HINGE, FAST_RBF],
        defense=["none", "reject"],
        eps=[0.1],
        n_samples=20,
        cache_dir=tmp_path,
    )
    first = evaluate(attack="fgsm", **grid)
    assert not any(row["cached"] for row in first.rows)
    assert len(list(tmp_path.glob("*.npz"))) == 4

    def no_training(*args):
        raise AssertionError("trained although the cache was warm")

    monkeypatch.setattr(harness, "_fit", no_training)
    second = evaluate(attack=["pgd", "noise"], **grid)
    assert all(row["cached"] for row in second.rows)
    again = evaluate(attack="fgsm", **grid)
    assert numbers(again) == numbers(first)  # a cached model predicts like the fresh one


def test_cache_key_changes_with_parameters_seed_and_data(tmp_path, monkeypatch):
    evaluate(FAST_HINGE, n_samples=10, eps=[0.1], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    evaluate("hinge:epochs=2", n_samples=10, eps=[0.1], cache_dir=tmp_path)
    evaluate(FAST_HINGE, n_samples=10, eps=[0.1], seed=3, cache_dir=tmp_path)
    evaluate(
        FAST_HINGE, n_samples=10, eps=[0.1], cache_dir=tmp_path, dataset="digits:random_state=1"
    )
    assert len(list(tmp_path.glob("*.npz"))) == 4


def test_unreadable_cache_file_is_retrained(tmp_path):
    evaluate(FAST_HINGE, n_samples=10, eps=[0.1], cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    path.write_bytes(b"not a zip file")
    with pytest.warns(CacheWarning, match="not a robustkit model file"):
        result = evaluate(FAST_HINGE, n_samples=10, eps=[0.1], cache_dir=tmp_path)
    assert not result.rows[0]["cached"]


def test_lambda_sweep_reaches_the_reject_defense():
    result = evaluate(FAST_RBF, "fgsm", "reject", lam=[5, 50], eps=[0.1], n_samples=20)
    assert [row["lam"] for row in result.rows] == [5.0, 50.0]
    assert all(row["rejects"] for row in result.rows)
    assert "Correct rejects" in result.tables()


def test_list_valued_plugin_parameters_expand():
    grid = Grid.build(model=[("hinge", {"epochs": [1, 2]})], n_samples=5)
    assert [r.model_params["epochs"] for r in grid.recipes()] == [1, 2]


def test_n_samples_larger_than_correct_is_an_error():
    with pytest.raises(RobustkitError, match=r"classifies only \d+ test samples correctly"):
        evaluate(FAST_HINGE, n_samples=449, samples="correct", eps=[0.1])


def test_n_samples_larger_than_the_test_set_fails_before_training(monkeypatch):
    monkeypatch.setattr(harness, "_fit", lambda *a: pytest.fail("trained"))
    with pytest.raises(RobustkitError, match="'digits' has only 450 test samples"):
        evaluate(FAST_HINGE, n_samples=451, eps=[0.1])


class GradientFreeModel(Model):
    """Nearest class mean: no input gradients, no rejection."""

    def fit(self, X, y, *, eval_set=None, callback=None):
        self.classes_ = np.unique(y)
        self.means_ = np.stack([X[y == c].mean(axis=0) for c in self.classes_])
        return self

    def decision_function(self, X):
        return -((X[:, None, :] - self.means_[None]) ** 2).sum(axis=2)


class GradientFreePlugin:
    @robustkit.hookimpl
    def register_models(self, register):
        register("nearest-mean", GradientFreeModel)


def test_capability_mismatch_is_found_before_training(monkeypatch):
    monkeypatch.setattr(harness, "_fit", lambda *a: pytest.fail("trained"))
    with temporary_plugin(GradientFreePlugin()):
        with pytest.raises(CapabilityError, match="attack 'fgsm' needs input_gradient"):
            evaluate("nearest-mean", "fgsm", eps=[0.1])
        with pytest.raises(CapabilityError, match="needs noise_class"):
            evaluate("nearest-mean", "noise", "reject", eps=[0.1])


def test_gradient_free_model_runs_with_noise_attack():
    with temporary_plugin(GradientFreePlugin()):
        result = evaluate("nearest-mean", "noise", eps=[0.2], n_samples=10)
    assert result.rows[0]["n_samples"] == 10


def test_harness_progress_shows_at_once_and_moves_per_epoch():
    seen = []
    model = ("hinge", {"epochs": 3, "hidden": 16})
    grid = Grid.build(model=[model], attack=["fgsm", "noise"], eps=[0.1], n_samples=5)
    Harness(grid, progress=lambda label, done, total: seen.append((label, done, total))).run()
    assert seen[0] == ("loading digits", 0, 5)  # before the data loads and anything trains
    assert [(done, total) for _, done, total in seen[1:]] == [
        (1, 5),
        (2, 5),
        (3, 5),  # one step per epoch, then the last epoch's "trained" step adds nothing
        (3, 5),
        (4, 5),
        (5, 5),
    ]
    assert "epoch 2" in seen[2][0] and seen[4][0].startswith("trained")


def test_cache_store_reports_unsaveable_models(tmp_path):
    model = GradientFreeModel().fit(np.eye(2), np.array([0, 1]))
    recipe = robustkit.Recipe("nearest-mean")
    assert ModelCache(tmp_path).store("k", recipe, model, {}) is False
    assert list(tmp_path.iterdir()) == []
