"""Ctrl-C and SIGTERM end every worker and exit 130/143 quickly; ``--jobs`` is capped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from click.testing import CliRunner

from robustkit import RobustkitError, parallel
from robustkit.cli import cli
from robustkit.grid import Grid
from robustkit.parallel import effective_jobs, run_parallel

#: Two models that train for minutes, so the signal always arrives mid-run.
SLOW_EVAL = [
    "eval",
    "--model",
    "rbf:epochs=500",
    "--model",
    "hinge:epochs=500",
    "--jobs",
    "2",
    "--no-cache",
]


def _start(tmp_path):
    command = [sys.executable, "-c", "from robustkit.cli import main; main()", *SLOW_EVAL]
    command += ["--json", str(tmp_path / "out.json")]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a shell job would be
        # Ctrl-C as at a terminal, even when pytest itself runs as a background job (which
        # inherits SIGINT ignored, and Python then keeps ignoring it)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    parent = psutil.Process(process.pid)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        workers = [p for p in parent.children(recursive=True) if "loky" in " ".join(p.cmdline())]
        if len(workers) >= 2:
            break
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the workers did not start")
    time.sleep(1.5)  # let them get into training
    return process, parent.children(recursive=True)


def _assert_all_gone(children, timeout=10.0):
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for process in alive:
        process.kill()
    assert alive == [], f"left running: {alive}"


@pytest.mark.parametrize(
    ("signum", "to_group", "status"),
    [(signal.SIGTERM, False, 143), (signal.SIGINT, True, 130)],
    ids=["SIGTERM", "Ctrl-C"],
)
def test_signal_ends_every_worker_and_exits_with_the_signal_status(
    tmp_path, signum, to_group, status
):
    process, children = _start(tmp_path)
    started = time.monotonic()
    if to_group:  # Ctrl-C reaches the whole foreground process group
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("hung after the signal")
    assert process.returncode == status, err.decode()
    assert time.monotonic() - started < 15
    assert "Traceback" not in err.decode().split("\n")[-3:]
    _assert_all_gone(children)
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


@pytest.mark.slow
def test_workers_exit_when_their_parent_is_killed(tmp_path):
    process, children = _start(tmp_path)
    process.kill()  # SIGKILL: no handler runs in the parent
    process.communicate(timeout=30)
    _assert_all_gone(children, timeout=15)


def test_jobs_are_capped_at_the_number_of_tasks(monkeypatch):
    assert effective_jobs(24, 2) == 2
    assert effective_jobs(-1, 100) == (os.cpu_count() or 1)
    assert effective_jobs(4, 1) == 1
    started = []
    monkeypatch.setattr(parallel, "_run_in_workers", lambda fn, jobs, items: started.append(jobs))
    run_parallel(abs, 24, [(-1,), (-2,)])
    assert started == [2]
    assert list(run_parallel(abs, 24, [(-3,)])) == [3]  # one task runs in this process


@pytest.mark.parametrize("jobs", ["0", "-2", "x"])
def test_bad_jobs_is_a_one_line_error(jobs):
    result = CliRunner().invoke(cli, ["eval", "--jobs", jobs, "--no-cache"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "jobs" in result.output.lower()


def test_jobs_minus_one_means_every_core():
    assert Grid.build(jobs=-1).jobs == -1
    with pytest.raises(RobustkitError, match=r"-1 .every core. or an integer >= 1"):
        Grid.build(jobs=0)
