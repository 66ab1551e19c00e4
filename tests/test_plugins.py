"""Plugin discovery through fake installed distributions (real dist-info on sys.path)."""

import json
import textwrap

import pytest
from click.testing import CliRunner

import robustkit
from robustkit import plugins
from robustkit.cli import cli
from robustkit.errors import PluginError, PluginWarning

GOOD_PLUGIN = """
from robustkit import Attack, hookimpl

class ShiftAttack(Attack):
    '''Adds +eps to every feature.'''
    requires = frozenset()

    def _run(self, model, X, y, radii, bounds, rng):
        from robustkit import AttackResult
        import numpy as np
        adv = np.stack([X + r for r in radii])
        return AttackResult(radii, adv, np.zeros(len(X), bool))

@hookimpl
def register_attacks(register):
    register("{name}", ShiftAttack)
"""


def install_fake(tmp_path, monkeypatch, dist, module, source, version="1.0"):
    """Write ``module.py`` and a ``dist-info`` declaring it under the robustkit group."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[robustkit]\n{module} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.fixture(autouse=True)
def _fresh(fresh_plugins, monkeypatch):
    monkeypatch.delenv("ROBUSTKIT_STRICT_PLUGINS", raising=False)
    monkeypatch.delenv("ROBUSTKIT_LOAD_PLUGINS", raising=False)


def test_builtins_come_through_entry_points():
    host = plugins.get_plugin_host()
    builtins = {info.name for info in host.infos.values() if info.distribution == "robustkit"}
    assert builtins == {
        "hinge",
        "rbf",
        "gradient-attacks",
        "noise-attack",
        "square",
        "apgd",
        "auto-attack",
        "defenses",
        "datasets",
        "sklearn-models",
    }
    assert {"hinge", "rbf"} <= set(robustkit.registry("model").names())
    assert "digits" in robustkit.registry("dataset").names()


def test_third_party_distribution_is_discovered(tmp_path, monkeypatch):
    install_fake(
        tmp_path, monkeypatch, "robustkit-shift", "rk_shift", GOOD_PLUGIN.format(name="shift")
    )
    entry = robustkit.registry("attack").get("shift")
    assert entry.source.distribution == "robustkit-shift"
    assert entry.source.version == "1.0"
    assert entry.summary == "Adds +eps to every feature."


def test_broken_plugin_warns_and_the_rest_work(tmp_path, monkeypatch):
    install_fake(
        tmp_path,
        monkeypatch,
        "robustkit-broken",
        "rk_broken",
        "raise ImportError('needs a missing library')\n",
    )
    with pytest.warns(RuntimeWarning, match=r"rk_broken.*robustkit-broken 1\.0 failed to load"):
        host = plugins.get_plugin_host()
    assert "rbf" in robustkit.registry("model").names()
    errors = {info.name: info.error for info in host.infos.values() if info.error}
    assert errors == {"rk_broken": "ImportError: needs a missing library"}
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0
    listed = json.loads(result.output)
    broken = [item for item in listed if item["name"] == "rk_broken"]
    assert broken[0]["error"] == "ImportError: needs a missing library"
    assert broken[0]["distribution"] == "robustkit-broken"


def test_strict_mode_makes_load_failures_fatal(tmp_path, monkeypatch):
    install_fake(tmp_path, monkeypatch, "robustkit-broken", "rk_broken2", "1/0\n")
    monkeypatch.setenv("ROBUSTKIT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=r"rk_broken2.*ZeroDivisionError"):
        plugins.get_plugin_host()


def test_misspelled_hook_is_a_load_error(tmp_path, monkeypatch):
    source = "from robustkit import hookimpl\n@hookimpl\ndef register_attack(register):\n    pass\n"
    install_fake(tmp_path, monkeypatch, "robustkit-typo", "rk_typo", source)
    with pytest.warns(RuntimeWarning, match="register_attack"):
        host = plugins.get_plugin_host()
    assert host.pm.get_plugin("robustkit-typo:rk_typo") is None
    assert "fgsm" in robustkit.registry("attack").names()


def test_duplicate_name_keeps_the_builtin_and_warns_naming_both(tmp_path, monkeypatch):
    install_fake(tmp_path, monkeypatch, "robustkit-dup", "rk_dup", GOOD_PLUGIN.format(name="fgsm"))
    with pytest.warns(PluginWarning, match="registered twice") as caught:
        entry = robustkit.registry("attack").get("fgsm")
    assert entry.source.distribution == "robustkit"  # the built-in wins
    message = str(caught[0].message)
    assert "plugin 'rk_dup' (robustkit-dup 1.0) (ignored)" in message
    assert f"(robustkit {robustkit.__version__}) (kept)" in message


def test_load_plugins_allow_list_keeps_builtins(tmp_path, monkeypatch):
    install_fake(
        tmp_path, monkeypatch, "robustkit-shift", "rk_shift2", GOOD_PLUGIN.format(name="shift2")
    )
    monkeypatch.setenv("ROBUSTKIT_LOAD_PLUGINS", "")
    names = robustkit.registry("attack").names()
    assert "shift2" not in names and "fgsm" in names
    plugins.reset_plugins()
    monkeypatch.setenv("ROBUSTKIT_LOAD_PLUGINS", "robustkit-shift")
    assert "shift2" in robustkit.registry("attack").names()


def test_unknown_name_lists_known_and_suggests():
    with pytest.raises(PluginError) as caught:
        robustkit.create("attack", "fgsn")
    message = str(caught.value)
    assert "unknown attack 'fgsn'" in message
    assert "fgsm" in message and "pgd" in message
    assert "did you mean 'fgsm'?" in message
    assert "\n" not in message


def test_unknown_parameter_lists_accepted_ones():
    with pytest.raises(PluginError, match=r"attack 'fgsm' has no parameter 'step'; accepted: .*"):
        robustkit.create("attack", "fgsm", step=3)


def test_in_process_plugin_registers_and_unregisters():
    module_globals = {}
    exec(GOOD_PLUGIN.format(name="inproc"), module_globals)

    class Holder:
        register_attacks = staticmethod(module_globals["register_attacks"])

    name = robustkit.register_plugin(Holder(), name="in-process-test")
    assert robustkit.registry("attack").get("inproc").source.distribution == "(in-process)"
    robustkit.unregister_plugin(name)
    assert "inproc" not in robustkit.registry("attack").names()


def test_discovery_runs_once_per_process():
    assert plugins.get_plugin_host() is plugins.get_plugin_host()
    assert plugins.get_plugin_manager() is plugins.get_plugin_host().pm


# ----------------------------------------------------------------- isolation at load


def test_hook_that_raises_disables_only_that_plugin(tmp_path, monkeypatch):
    source = (
        "from robustkit import hookimpl\n"
        "@hookimpl\n"
        "def register_models(register):\n"
        "    raise KeyError('oops')\n"
    )
    install_fake(tmp_path, monkeypatch, "robustkit-raising", "rk_raising", source)
    with pytest.warns(PluginWarning, match=r"rk_raising.*robustkit-raising 1\.0.*KeyError"):
        names = robustkit.registry("model").names()
    assert "hinge" in names
    assert plugins.get_plugin_host().pm.get_plugin("robustkit-raising:rk_raising") is None
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0
    listed = {item["name"]: item for item in json.loads(result.stdout)}
    assert "register_models raised KeyError" in listed["rk_raising"]["error"]


def test_every_clash_and_refused_registration_is_listed(tmp_path, monkeypatch):
    source = """
    from robustkit import Attack, hookimpl

    class NotAnAttack:
        pass

    class Fine(Attack):
        pass

    @hookimpl
    def register_attacks(register):
        register("fgsm", Fine)
        register("pgd", Fine)
        register("Bad Name!", Fine)
        register("not-an-attack", NotAnAttack)
        register("fine", Fine)
    """
    install_fake(tmp_path, monkeypatch, "robustkit-messy", "rk_messy", source)
    with pytest.warns(PluginWarning) as caught:
        registry = robustkit.registry("attack")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 4
    assert registry.get("fgsm").source.distribution == "robustkit"
    assert registry.get("fine").source.distribution == "robustkit-messy"
    assert "not-an-attack" not in registry.names()
    assert any("invalid name 'Bad Name!'" in m for m in messages)
    assert any("not a subclass of robustkit.Attack" in m for m in messages)
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0
    refused = [line for line in result.stdout.splitlines() if line.startswith("refused:")]
    assert len(refused) == 4
    assert any("'pgd' is registered twice" in line for line in refused)


def test_output_printed_by_a_plugin_never_reaches_json_stdout(tmp_path, monkeypatch):
    source = "print('hello from import')\n" + GOOD_PLUGIN.format(name="loud").replace(
        "def register_attacks(register):\n",
        "def register_attacks(register):\n    print('hello from the hook')\n",
    )
    install_fake(tmp_path, monkeypatch, "robustkit-loud", "rk_loud", source)
    result = CliRunner().invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0
    assert any(item["name"] == "loud" for item in json.loads(result.stdout))
    assert "hello from import" in result.stderr and "hello from the hook" in result.stderr


@pytest.mark.parametrize("spelling", ["robustkit_shift3", "Robustkit.Shift3", "ROBUSTKIT-shift3"])
def test_load_plugins_compares_normalised_names(tmp_path, monkeypatch, spelling):
    install_fake(
        tmp_path, monkeypatch, "robustkit-shift3", "rk_shift3", GOOD_PLUGIN.format(name="shift3")
    )
    monkeypatch.setenv("ROBUSTKIT_LOAD_PLUGINS", spelling)
    assert "shift3" in robustkit.registry("attack").names()


def test_load_plugins_warns_about_names_that_match_nothing(monkeypatch):
    monkeypatch.setenv("ROBUSTKIT_LOAD_PLUGINS", "robustkit-mifgsm,robustkit-nothing")
    with pytest.warns(PluginWarning, match="'robustkit-nothing', but no installed distribution"):
        names = robustkit.registry("attack").names()
    assert "mifgsm" in names
