"""The plugin contract of issue 8: typed parameters, validate(), errors naming the plugin,
wrappers whose predict follows their scores, straight-through gradients, bounds to fit."""

import json
from typing import ClassVar

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.base import clone
from test_plugins import install_fake

import robustkit
from robustkit import Defense, Grid, PluginSpec, RobustkitError, harness
from robustkit.cli import cli
from robustkit.errors import PluginFault
from robustkit.interfaces import INPUT_GRADIENT, STRAIGHT_THROUGH
from robustkit.testing import LinearModel, check_defense, check_model, temporary_plugin, toy_data
from robustkit.wrapping import WrappedModel


@pytest.fixture(autouse=True)
def _fresh(fresh_plugins, monkeypatch):
    monkeypatch.delenv("ROBUSTKIT_DEBUG", raising=False)
    monkeypatch.delenv("ROBUSTKIT_LOAD_PLUGINS", raising=False)


def no_training(monkeypatch):
    monkeypatch.setattr(harness, "_fit", lambda *a: pytest.fail("trained"))


# --------------------------------------------------------------------------- typed params


@pytest.mark.parametrize(
    ("text", "value"), [("no", False), ("off", False), ("0", False), ("Yes", True), ("on", True)]
)
def test_boolean_words_become_booleans(text, value):
    spec = PluginSpec.coerce(f"pgd:reject_aware={text}", "attack")
    assert spec.params == {"reject_aware": value}


def test_values_follow_the_init_signature():
    spec = PluginSpec.coerce("rbf:lr=1,pca=none,epochs=3,reject_threshold=2,dtype=float64", "model")
    assert spec.params == {
        "lr": 1.0,
        "pca": None,
        "epochs": 3,
        "reject_threshold": 2.0,
        "dtype": "float64",
    }
    assert isinstance(spec.params["lr"], float)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("pgd:reject_aware=maybe", "attack 'pgd': reject_aware must be true/false/yes/no"),
        ("pgd:steps=ten", "attack 'pgd': steps must be an integer; got 'ten'"),
        ("pgd:step_size=big", "step_size must be a number or none"),
    ],
)
def test_bad_text_is_a_one_line_error_before_training(monkeypatch, spec, message):
    no_training(monkeypatch)
    result = CliRunner().invoke(cli, ["eval", "--attack", spec, "--no-cache"])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_grid_toml_strings_are_typed(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('attack = [{name = "pgd", reject_aware = "no", steps = "3"}]\n')
    grid = Grid.from_toml(path)
    assert grid.attacks[0].params == {"reject_aware": False, "steps": 3}


@pytest.mark.parametrize(
    ("option", "spec", "message"),
    [
        ("--attack", "pgd:loss=bogus", "loss must be one of model, margin"),
        ("--defense", "reject:noise=pink", "noise must be one of uniform, uniform-box, gaussian"),
        ("--defense", "gaussian-augment:std=-1", "std must be a number >= 0"),
        ("--model", "hinge:lr=-1", "lr must be a finite number > 0"),
        ("--model", "sk-mlp:activation=softplus", "activation must be one of identity"),
        ("--dataset", "digits:pca=0", "pca must be None or an integer >= 1"),
    ],
)
def test_validate_runs_on_every_plugin_before_training(monkeypatch, option, spec, message):
    no_training(monkeypatch)
    result = CliRunner().invoke(cli, ["eval", option, spec, "--no-cache"])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_the_harness_validates_models_built_with_a_lambda_sweep(monkeypatch):
    no_training(monkeypatch)
    with pytest.raises(RobustkitError, match="lam must be a finite number > 0"):
        robustkit.evaluate("rbf", "fgsm", "reject", lam=[0.0], eps=[0.1])


# --------------------------------------------------------------------------- plugin faults

FAULTY = """
import numpy as np
from robustkit import Attack, Model, hookimpl

class Faulty(Model):
    '''Fails where told to.'''

    def __init__(self, where="fit"):
        self.where = where

    def fit(self, X, y, **kwargs):
        self.classes_ = np.unique(y)
        if self.where == "fit":
            1 / 0
        return self

    def decision_function(self, X):
        if self.where == "predict":
            {}["missing"]
        return np.asarray(X)[:, : len(self.classes_)]

class FaultyAttack(Attack):
    requires = frozenset()

    def _run(self, model, X, y, radii, bounds, rng):
        raise IndexError("attack bug")

@hookimpl
def register_models(register):
    register("faulty", Faulty)

@hookimpl
def register_attacks(register):
    register("faulty-attack", FaultyAttack)
"""


@pytest.fixture
def faulty(tmp_path, monkeypatch):
    install_fake(tmp_path, monkeypatch, "robustkit-faulty", "rk_faulty", FAULTY, version="2.1")


@pytest.mark.parametrize(
    ("args", "doing", "error"),
    [
        (["--model", "faulty"], "fit of model 'faulty'", "ZeroDivisionError: division by zero"),
        (["--model", "faulty:where=predict"], "predict of model 'faulty'", "KeyError: 'missing'"),
        (
            ["--model", "faulty:where=none", "--attack", "faulty-attack"],
            "perturb of attack 'faulty-attack'",
            "IndexError: attack bug",
        ),
    ],
)
def test_a_plugin_bug_is_one_line_naming_the_plugin(faulty, args, doing, error):
    # 50 samples: this model gets some right, so the attacks have samples to perturb
    command = ["eval", *args, "--attack", "noise", "--n-samples", "50", "--no-cache"]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert f"plugin 'rk_faulty' (robustkit-faulty 2.1) failed in {doing}: {error}" in lines[0]
    assert "--debug" in lines[0]


def test_debug_shows_the_traceback(faulty, monkeypatch):
    command = ["eval", "--model", "faulty", "--attack", "noise", "--no-cache"]
    result = CliRunner().invoke(cli, ["--debug", *command])
    assert isinstance(result.exception, PluginFault)
    assert isinstance(result.exception.__cause__, ZeroDivisionError)
    monkeypatch.setenv("ROBUSTKIT_DEBUG", "1")
    result = CliRunner().invoke(cli, command)
    assert isinstance(result.exception.__cause__, ZeroDivisionError)


def test_python_callers_get_a_plugin_fault(faulty):
    with pytest.raises(PluginFault, match=r"robustkit-faulty 2\.1\) failed in fit") as caught:
        robustkit.evaluate("faulty", "noise", eps=[0.1])
    assert isinstance(caught.value.__cause__, ZeroDivisionError)


# --------------------------------------------------------------------------- wrappers


class AlwaysReject(WrappedModel):
    """Overrides only reject_score: every input is rejected."""

    def reject_score(self, X):
        return np.full(len(X), np.inf)


class StalePredict(AlwaysReject):
    """A predict that ignores the wrapper's own reject_score (the 0.1 behaviour)."""

    def predict(self, X):
        return self.model.predict(X)


class WrapWith(Defense):
    def __init__(self, wrapper=AlwaysReject):
        self.wrapper = wrapper

    def _apply(self, model):
        return self.wrapper(model=clone(model))


def test_a_wrapper_that_overrides_only_reject_score_rejects():
    X, y, _ = toy_data()
    defended = AlwaysReject(model=LinearModel(random_state=0)).fit(X, y)
    assert (defended.predict(X) == robustkit.REJECT).all()


def test_check_defense_catches_a_predict_that_ignores_the_scores():
    check_defense(WrapWith(AlwaysReject))
    with pytest.raises(AssertionError, match="predict disagrees with its decision_function"):
        check_defense(WrapWith(StalePredict))


@pytest.mark.parametrize("model", ["hinge", "rbf"])
@pytest.mark.parametrize("defense", ["none", "reject", "gaussian-augment"])
def test_check_model_passes_on_every_builtin_defended_model(model, defense):
    params = {} if defense == "none" else {"random_state": 0}
    inner = robustkit.create("model", model, epochs=3, random_state=0)
    check_model(robustkit.create("defense", defense, **params).apply(inner))


class Rounded(WrappedModel):
    """Rounds inputs to whole numbers first; gradients pass straight through (BPDA)."""

    capabilities = frozenset({INPUT_GRADIENT, STRAIGHT_THROUGH})

    def decision_function(self, X):
        return self.model.decision_function(np.round(X))

    def loss_gradient(self, X, y):
        return self.model.loss_gradient(np.round(X), y)

    def decision_gradient(self, X, grad_scores, grad_reject=None):
        return self.model.decision_gradient(np.round(X), grad_scores, grad_reject)


class RoundedWithoutDeclaring(Rounded):
    capabilities = frozenset({INPUT_GRADIENT})


def test_straight_through_gradients_skip_finite_differences_and_say_so():
    X, y, _ = toy_data()
    X = X * 3  # several whole numbers per feature
    with pytest.warns(UserWarning, match="straight_through.*finite-difference check .* skipped"):
        check_model(Rounded(model=LinearModel(random_state=0)), X, y)
    with pytest.raises(AssertionError, match="disagrees with finite differences"):
        check_model(RoundedWithoutDeclaring(model=LinearModel(random_state=0)), X, y)


# --------------------------------------------------------------------------- bounds


class BoundsRecorder(LinearModel):
    """A LinearModel that records the bounds its fit receives."""

    seen: ClassVar[list] = []

    def fit(self, X, y, *, eval_set=None, callback=None, bounds=None):
        BoundsRecorder.seen.append(bounds)
        return super().fit(X, y, eval_set=eval_set, callback=callback)


class BoundsPlugin:
    @robustkit.hookimpl
    def register_models(self, register):
        register("bounds-recorder", BoundsRecorder)


def test_fit_receives_the_data_bounds_when_it_asks_for_them():
    BoundsRecorder.seen = []
    with temporary_plugin(BoundsPlugin()):
        robustkit.evaluate("bounds-recorder", "noise", ["none", "gaussian-augment"], eps=[0.1])
    assert BoundsRecorder.seen == [(0.0, 16.0), (0.0, 16.0)]  # digits, plain and defended


def test_plugins_params_json_shows_types_and_defaults():
    listed = json.loads(CliRunner().invoke(cli, ["plugins", "--json"]).stdout)
    pgd = next(item for item in listed if item["name"] == "pgd")
    assert {"name": "reject_aware", "type": "bool", "default": False} in pgd["params"]
    mlp = next(item for item in listed if item["name"] == "sk-mlp")
    assert {"name": "hidden", "type": "int | tuple[int, ...]", "default": [100]} in mlp["params"]


def test_an_unexpected_error_is_one_line_too(monkeypatch):
    def broken(self):
        raise RuntimeError("core bug")

    monkeypatch.setattr(harness.Harness, "run", broken)
    result = CliRunner().invoke(cli, ["eval", "--no-cache"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: unexpected error in robustkit: RuntimeError: core bug")
    assert "Traceback" not in result.output
