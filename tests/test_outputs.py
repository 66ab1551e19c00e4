"""Output files: atomic for regular files, never replacing devices, FIFOs or symlinks,
umask modes, one-line errors on a full disk, and every output checked before any work."""

from __future__ import annotations

import errno
import os
import stat
import threading
import time

import pytest
from click.testing import CliRunner

from robustkit import RobustkitError, harness, training
from robustkit import outputs as outputs_module
from robustkit.cli import cli
from robustkit.outputs import atomic_write, check_outputs, remove_stale_temporaries


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_new_file_mode_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.txt") as handle:
            handle.write("x")
        os.umask(0o077)
        with atomic_write(tmp_path / "b.txt") as handle:
            handle.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600


def test_replacing_a_file_keeps_its_mode(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    target.chmod(0o640)
    with atomic_write(target) as handle:
        handle.write("new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640


def test_a_device_is_written_to_never_replaced(tmp_path):
    before = os.stat("/dev/null")
    with atomic_write("/dev/null") as handle:
        handle.write("discarded")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_ino == before.st_ino


def test_a_fifo_is_written_to_never_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    with atomic_write(fifo) as handle:
        handle.write("through the pipe")
    reader.join(timeout=10)
    assert received == ["through the pipe"] and stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_symlink_is_written_through_to_its_target(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with atomic_write(link) as handle:
        handle.write("new")
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]


def test_dash_means_standard_output(capsys):
    with atomic_write("-") as handle:
        handle.write("to stdout")
    assert capsys.readouterr().out == "to stdout"


def test_full_disk_is_one_line_and_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.json"
    target.write_text("previous result")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(outputs_module.os, "fsync", no_space)
    with (
        pytest.raises(RobustkitError, match=r"cannot write .*out.json: No space left on device"),
        atomic_write(target) as handle,
    ):
        handle.write("new result")
    assert target.read_text() == "previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary left


def test_eval_on_a_full_disk_exits_2_naming_the_path(tmp_path, monkeypatch):
    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("robustkit.result.EvaluationResult.to_json", no_space)
    out = tmp_path / "r.json"
    result = run(
        "eval", "--model", "hinge:epochs=1", "--n-samples", "5", "--no-cache", "--json", out
    )
    assert_one_line_error(result, str(out), "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_kill_between_write_and_rename_leaves_a_temporary_that_is_cleaned_later(tmp_path):
    target = tmp_path / "out.json"

    class Killed(BaseException):
        pass

    with pytest.raises(Killed), atomic_write(target) as handle:
        handle.write("half")
        (leftover,) = tmp_path.glob(".out.json.*.tmp")
        raise Killed  # an exception still cleans up; kill -9 would not
    assert not leftover.exists()
    leftover.write_text("what kill -9 leaves")
    old = time.time() - 7200
    os.utime(leftover, (old, old))
    with atomic_write(target) as handle:
        handle.write("done")
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    assert remove_stale_temporaries(tmp_path) == 0


def test_two_outputs_with_one_path_or_an_output_that_is_an_input_are_refused(tmp_path):
    config = tmp_path / "g.toml"
    config.write_text("eps = [0.1]\n")
    with pytest.raises(RobustkitError, match=r"--csv .* is also the output --json"):
        check_outputs({"--json": tmp_path / "x", "--csv": tmp_path / "x"})
    with pytest.raises(RobustkitError, match="also the input --config"):
        check_outputs({"--json": config}, {"--config": config})
    link = tmp_path / "alias.toml"
    link.symlink_to(config)
    with pytest.raises(RobustkitError, match="also the input --config"):
        check_outputs({"--json": link}, {"--config": config})
    assert config.read_text() == "eps = [0.1]\n"


def test_eval_refuses_clashing_outputs_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "_fit", lambda *a: pytest.fail("trained"))
    config = tmp_path / "g.toml"
    config.write_text("eps = [0.1]\n")
    assert_one_line_error(
        run("eval", "--json", tmp_path / "x", "--csv", tmp_path / "x"), "--csv", "--json"
    )
    assert_one_line_error(run("eval", "--config", config, "--json", config), "--config")
    assert config.read_text() == "eps = [0.1]\n"
    assert_one_line_error(run("eval", "--plot", tmp_path / "p.jpg"), ".jpg", ".png, .pdf, .svg")


def test_train_save_to_an_unwritable_place_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "create", lambda *a, **k: pytest.fail("loaded data"))
    assert_one_line_error(run("train", "--save", "/proc/x.npz"), "/proc/x.npz")
    assert_one_line_error(run("train", "--plot", tmp_path / "p.gif"), ".gif")
    assert_one_line_error(
        run("train", "--save", tmp_path / "m", "--json", tmp_path / "m"), "--json", "--save"
    )


def test_eval_json_to_dev_null_keeps_the_device(tmp_path):
    before = os.stat("/dev/null")
    result = run(
        "eval", "--model", "hinge:epochs=1", "--n-samples", "5", "--no-cache", "--json", "/dev/null"
    )
    assert result.exit_code == 0, result.output
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
