"""IDX files are checked against the canonical md5s the download uses; a copy of another
data set's file is a one-line error unless accepted knowingly; the check is remembered."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from robustkit import DataError, create
from robustkit import download as download_module
from robustkit.cli import cli

FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture
def mixed_root(tmp_path, shared_data_dir, monkeypatch):
    """fashion-mnist/ whose training labels are really MNIST's (same shape, wrong data)."""
    monkeypatch.setenv("ROBUSTKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ROBUSTKIT_VERIFY_DATA", raising=False)
    folder = tmp_path / "root" / "fashion-mnist"
    folder.mkdir(parents=True)
    for file in FILES:
        (folder / file).symlink_to(shared_data_dir / "fashion-mnist" / file)
    (folder / FILES[1]).unlink()
    shutil.copy(shared_data_dir / "mnist" / FILES[1], folder / FILES[1])
    return tmp_path / "root"


def test_a_file_of_another_data_set_is_a_one_line_error(mixed_root):
    with pytest.raises(DataError) as error:
        create("dataset", "fashion-mnist", n_train=10, n_test=10).load(mixed_root)
    message = str(error.value)
    assert "train-labels-idx1-ubyte.gz has md5 d53e105e" in message
    assert "it is mnist's train-labels-idx1-ubyte.gz" in message and "verify=false" in message
    result = CliRunner().invoke(
        cli, ["eval", "--dataset", "fashion-mnist:n_train=50", "--data-dir", str(mixed_root)]
    )
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output


def test_other_copies_are_accepted_knowingly(mixed_root, monkeypatch):
    split = create("dataset", "fashion-mnist", n_train=10, n_test=10, verify=False).load(mixed_root)
    assert len(split.y_train) == 10
    monkeypatch.setenv("ROBUSTKIT_VERIFY_DATA", "0")
    assert len(create("dataset", "fashion-mnist", n_train=10).load(mixed_root).y_train) == 10
    with pytest.raises(DataError, match="verify must be true or false"):
        create("dataset", "fashion-mnist", verify="maybe").load(mixed_root)


def test_the_canonical_files_pass_and_the_check_is_remembered(
    tmp_path, shared_data_dir, monkeypatch
):
    monkeypatch.setenv("ROBUSTKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ROBUSTKIT_VERIFY_DATA", raising=False)
    create("dataset", "mnist", n_train=10, n_test=10).load(shared_data_dir)
    assert (tmp_path / "cache" / "verified-md5.json").is_file()
    monkeypatch.setattr(download_module, "md5_of", lambda path: pytest.fail("hashed again"))
    create("dataset", "mnist", n_train=10, n_test=10).load(shared_data_dir)


def test_a_changed_file_is_hashed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTKIT_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "f.gz"
    path.write_bytes(b"one")
    first = download_module.cached_md5(path)
    assert first == download_module.md5_of(path)
    path.write_bytes(b"two, longer")
    assert download_module.cached_md5(path) == download_module.md5_of(path) != first
