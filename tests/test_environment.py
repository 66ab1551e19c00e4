"""No home folder (HOME unset, no passwd entry: a container's usual case): the cache goes
to the temporary directory, with a warning, and commands still run."""

from __future__ import annotations

import pwd
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from robustkit import download
from robustkit.cli import cli


@pytest.fixture
def homeless(monkeypatch):
    for name in ("HOME", "XDG_CACHE_HOME", "ROBUSTKIT_CACHE_DIR", "ROBUSTKIT_MODEL_CACHE"):
        monkeypatch.delenv(name, raising=False)

    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    download._temporary_cache_dir.cache_clear()
    yield
    download._temporary_cache_dir.cache_clear()


def test_cache_folder_falls_back_to_the_temporary_directory(homeless):
    with pytest.warns(UserWarning, match="no home folder") as caught:
        folder = download.cache_dir()
        assert download.cache_dir() == folder  # warned once
    assert len(caught) == 1
    assert folder.parent == Path(tempfile.gettempdir())


def test_commands_run_without_a_home(homeless):
    with pytest.warns(UserWarning, match="ROBUSTKIT_CACHE_DIR"):
        result = CliRunner().invoke(cli, ["cache", "info"])
    assert result.exit_code == 0, result.output
    assert tempfile.gettempdir() in result.output
