"""The plugin guide's complete examples are real plugins that pass the test kit."""

import re
import types
from pathlib import Path

import pytest

import robustkit
from robustkit.testing import (
    LinearModel,
    check_attack,
    check_defense,
    check_model,
    temporary_plugin,
)

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"


def example(kind: str) -> types.ModuleType:
    """The guide's ``# example: <kind>`` code block, executed as a module."""
    blocks = re.findall(r"```python\n# example: (\w+)\n(.*?)```", GUIDE.read_text(), re.S)
    source = dict(blocks)[kind]
    module = types.ModuleType(f"guide_{kind}")
    exec(compile(source, f"{GUIDE}:{kind}", "exec"), module.__dict__)
    return module


def test_the_guide_has_one_example_of_each_kind():
    kinds = re.findall(r"```python\n# example: (\w+)\n", GUIDE.read_text())
    assert sorted(kinds) == ["attack", "defense", "model"]


def test_the_example_attack_meets_the_contract():
    check_attack(example("attack").RandomSignSearch(tries=5))


def test_the_example_defense_meets_the_contract():
    module = example("defense")
    with pytest.warns(UserWarning, match="straight_through"):
        check_defense(module.QuantiseDefense(levels=8), model=LinearModel(random_state=0))


def test_the_example_model_meets_the_contract():
    check_model(example("model").SoftCentroid(temperature=2.0))


def test_the_examples_run_together_in_the_harness():
    plugins = [example(kind) for kind in ("attack", "defense", "model")]
    with temporary_plugin(plugins[0]), temporary_plugin(plugins[1]), temporary_plugin(plugins[2]):
        result = robustkit.evaluate(
            "soft-centroid:temperature=4",
            ["random-signs:tries=3", "fgsm"],
            ["none", "quantise:levels=9"],
            eps=[0.1],
            n_samples=10,
        )
        assert {row["attack_kind"] for row in result.rows if not row["worst_case"]} == {
            "score",
            "gradient",
        }
        with pytest.raises(robustkit.RobustkitError, match="levels must be an integer >= 2"):
            robustkit.evaluate("soft-centroid", "fgsm", "quantise:levels=1", eps=[0.1])


def test_every_hook_and_capability_is_documented():
    from robustkit import hookspecs, interfaces

    text = GUIDE.read_text()
    hooks = [name for name in dir(hookspecs) if name.startswith(("register_", "wrap_"))]
    assert len(hooks) == 6
    for name in hooks:
        assert f"`{name}(" in text, name
    for constant in ("INPUT_GRADIENT", "REJECTION", "NOISE_CLASS", "STRAIGHT_THROUGH"):
        assert f'`{constant}` (`"{getattr(interfaces, constant)}"`)' in text, constant


def test_plugins_params_table_shows_types_and_defaults():
    from click.testing import CliRunner

    from robustkit.cli import cli

    output = CliRunner().invoke(cli, ["plugins", "--params"]).stdout
    line = next(line for line in output.splitlines() if line.startswith("attack   pgd "))
    assert "steps: int = 10" in line and "reject_aware: bool = False" in line
