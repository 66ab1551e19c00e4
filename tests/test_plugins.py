"""Plugin discovery through fake installed distributions (real dist-info on sys.path)."""

import json
import textwrap

import pytest
from click.testing import CliRunner

import robustkit
from robustkit import plugins
from robustkit.cli import cli
from robustkit.errors import PluginError

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


def test_duplicate_name_names_both_sources(tmp_path, monkeypatch):
    install_fake(tmp_path, monkeypatch, "robustkit-dup", "rk_dup", GOOD_PLUGIN.format(name="fgsm"))
    with pytest.raises(PluginError) as caught:
        robustkit.registry("attack")
    message = str(caught.value)
    assert "registered twice" in message
    assert "plugin 'rk_dup' (robustkit-dup 1.0)" in message
    assert f"(robustkit {robustkit.__version__})" in message


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
