"""robustkit's own plugins pass the contract checks it ships to plugin authors."""

import pytest

import robustkit
from robustkit.grid import PluginSpec
from robustkit.testing import check_attack, check_defense, check_model

MODELS = ["hinge", "rbf"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("reject", [False, True])
def test_builtin_models_meet_the_model_contract(name, reject):
    check_model(robustkit.create("model", name, epochs=5, reject=reject, random_state=0))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(
    "defense",
    [
        "none",
        "reject",
        "gaussian-augment",
        "adversarial-training",
        "adversarial-training:eps_reject=0.3",
        "trades:steps=3",
    ],
)
def test_builtin_defenses_meet_the_contract_on_builtin_models(model, defense):
    spec = PluginSpec.coerce(defense, "defense")
    params = dict(spec.params) if spec.name == "none" else {**spec.params, "random_state": 0}
    check_defense(
        robustkit.create("defense", spec.name, **params),
        model=robustkit.create("model", model, epochs=3, random_state=0),
    )


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("attack", ["fgsm", "pgd", "noise"])
def test_builtin_attacks_meet_the_contract_on_builtin_models(model, attack):
    check_attack(
        robustkit.create("attack", attack),
        model=robustkit.create("model", model, epochs=3, random_state=0),
    )
