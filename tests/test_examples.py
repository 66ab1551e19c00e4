"""The shipped examples: the third-party plugin package and the embedding script."""

import importlib.metadata
import json
import runpy
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from robustkit.cli import cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def mifgsm_installed() -> bool:
    try:
        importlib.metadata.distribution("robustkit-mifgsm")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_mifgsm = pytest.mark.skipif(
    not mifgsm_installed(), reason="pip install ./examples/robustkit-mifgsm (CI does)"
)


@needs_mifgsm
def test_plugins_command_lists_the_installed_example_plugin():
    listed = json.loads(CliRunner().invoke(cli, ["plugins", "--json"]).output)
    (entry,) = [item for item in listed if item["name"] == "mifgsm"]
    assert entry["kind"] == "attack"
    assert entry["distribution"] == "robustkit-mifgsm" and entry["version"] == "0.1.0"


@needs_mifgsm
def test_eval_runs_the_example_attack(tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "eval",
            "--model",
            "hinge:epochs=3",
            "--attack",
            "mifgsm:steps=5",
            "--attack",
            "fgsm",
            "--eps",
            "0.1,0.3",
            "--n-samples",
            "30",
            "--no-cache",
            "--json",
            str(tmp_path / "o.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "o.json").read_text())["rows"]
    assert [(r["attack"], r["eps"]) for r in rows] == [
        ("mifgsm(steps=5)", 0.1),
        ("mifgsm(steps=5)", 0.3),
        ("fgsm", 0.1),
        ("fgsm", 0.3),
        ("worst case", 0.1),
        ("worst case", 0.3),
    ]
    assert all(r["mean_linf"] <= r["eps"] + 1e-6 for r in rows)


def test_embed_harness_example_runs(tmp_path, monkeypatch, capsys):
    out = tmp_path / "rows.json"
    monkeypatch.setattr(sys, "argv", ["embed_harness.py", "--json", str(out)])
    try:
        runpy.run_path(str(EXAMPLES / "embed_harness.py"), run_name="__main__")
    finally:
        from robustkit import plugins

        plugins.reset_plugins()
    printed = capsys.readouterr().out
    assert "softmax" in printed and "weakest cell" in printed
    rows = json.loads(out.read_text())["rows"]
    assert {row["model"] for row in rows} == {"softmax", "hinge"}
    softmax = [r for r in rows if r["model"] == "softmax" and r["attack"] == "fgsm"]
    assert softmax[-1]["attack_success_rate"] >= softmax[0]["attack_success_rate"]
