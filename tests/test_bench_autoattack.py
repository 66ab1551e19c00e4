"""The AutoAttack benchmark script still runs (robustkit's path, tiny digits setting)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "benchmarks" / "bench_autoattack.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_autoattack", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_robustkit_path_prints_every_part(bench, tmp_path, capsys):
    argv = ["--dataset", "digits", "--n-samples", "30", "--epochs", "2", "--eps", "0.05,0.1"]
    argv += ["--attacks", "square:n_queries=20;pgd", "--no-reference"]
    bench.main([*argv, "--cache-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "Strength and speed on the first 30 test samples of digits" in out
    assert out.count("square:n_queries=20") >= 2 and "whole test set" in out
    assert "per extra ε" in out
    assert len(list(tmp_path.glob("digits-*.npz"))) == 2  # trained weights cached
    bench.main([*argv, "--cache-dir", str(tmp_path), "--no-full", "--no-memory"])
    assert "trained" not in capsys.readouterr().out  # the second run loads them


def test_torch_copy_gives_robustkit_scores(bench, tmp_path):
    pytest.importorskip("torch")
    split = bench.load_split("digits", None)
    networks = bench.trained_networks(split, tmp_path, epochs=2)
    for name, model in networks.items():
        copy = bench.torch_copy(name, model, split.bounds)
        scale = np.max(np.abs(model.decision_function(split.X_test)))
        difference = bench.check_copy(copy, model, split.X_test, split.bounds, split.image_shape)
        assert difference <= 1e-5 * scale
