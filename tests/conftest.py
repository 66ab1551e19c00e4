"""Shared fixtures: the real data folder, a clean plugin host per test."""

import os
from pathlib import Path

import pytest

from robustkit import plugins

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ROBUSTKIT_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data_dir() -> Path:
    """The folder with fashion-mnist/ and mnist/ IDX files; tests never download."""
    if not (SHARED_DATA / "fashion-mnist").is_dir():
        pytest.skip(f"no real data at {SHARED_DATA} (set ROBUSTKIT_TEST_DATA)")
    return SHARED_DATA


@pytest.fixture
def fresh_plugins():
    """Discover plugins anew for this test and forget them afterwards."""
    plugins.reset_plugins()
    yield
    plugins.reset_plugins()
