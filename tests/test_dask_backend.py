"""Grids on a Dask cluster: the same rows as on this machine; clear errors without Dask."""

import importlib.util
import json
import socket
from urllib.parse import urlparse

import pytest
from click.testing import CliRunner

import robustkit
from robustkit import RobustkitError
from robustkit.cli import cli
from robustkit.grid import Grid

GRID = {
    "model": ["hinge:epochs=3", "rbf:epochs=3"],
    "attack": ["fgsm", "pgd:steps=3"],
    "defense": ["none", "reject"],
    "eps": [0.05, 0.2],
    "n_samples": 20,
}
TIMINGS = ("seconds", "train_seconds", "cached")


def _rows(rows):
    """The rows without timings, as JSON text (so that NaN equals NaN)."""
    kept = [{k: v for k, v in row.items() if k not in TIMINGS} for row in rows]
    return json.dumps(kept, sort_keys=True, default=str)


@pytest.fixture(scope="module")
def local_cluster():
    """A two-worker distributed.LocalCluster (skipped, saying so, without the dask extra)."""
    pytest.importorskip("distributed", reason="dask[distributed] is not installed (the dask extra)")
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
    ) as cluster:
        yield cluster.scheduler_address


def test_a_grid_on_a_dask_cluster_gives_the_local_rows_and_fills_the_cache(local_cluster, tmp_path):
    local = robustkit.evaluate(**GRID)
    cache = tmp_path / "cache"
    remote = robustkit.evaluate(**GRID, backend="dask", scheduler=local_cluster, cache_dir=cache)
    assert _rows(remote.rows) == _rows(local.rows)
    assert len(list(cache.rglob("*.npz"))) == 4  # written by the client, one per recipe
    again = robustkit.evaluate(**GRID, backend="dask", scheduler=local_cluster, cache_dir=cache)
    assert all(row["cached"] for row in again.rows)
    assert _rows(again.rows) == _rows(local.rows)


def test_the_cli_runs_a_grid_on_a_dask_scheduler(local_cluster, tmp_path):
    out = tmp_path / "rows.json"
    args = ["eval", "--model", "hinge:epochs=2", "--attack", "fgsm", "--eps", "0.1"]
    args += ["--n-samples", "10", "--no-cache", "--json", str(out)]
    done = CliRunner().invoke(cli, [*args, "--backend", "dask", "--scheduler", local_cluster])
    assert done.exit_code == 0, done.output
    local_out = tmp_path / "local.json"
    CliRunner().invoke(cli, [*args[:-1], str(local_out)])
    remote_rows, local_rows = (json.loads(p.read_text())["rows"] for p in (out, local_out))
    assert _rows(remote_rows) == _rows(local_rows)


def test_backend_dask_without_dask_installed_is_a_one_line_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "distributed" else real(name, *args),
    )
    with pytest.raises(RobustkitError, match=r"pip install 'robustkit\[dask\]'"):
        Grid.build(backend="dask")
    done = CliRunner().invoke(cli, ["eval", "--backend", "dask", "--no-cache"])
    assert done.exit_code == 2
    assert "pip install 'robustkit[dask]'" in done.output
    assert "Traceback" not in done.output


def test_a_scheduler_without_the_dask_backend_is_an_error():
    with pytest.raises(RobustkitError, match="scheduler is given but backend is not 'dask'"):
        Grid.build(scheduler="tcp://localhost:8786")
    with pytest.raises(RobustkitError, match="backend must be one of local, dask"):
        Grid.build(backend="spark")


def test_grid_toml_takes_backend_and_scheduler(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('backend = "local"\n[[model]]\nname = "hinge"\n')
    assert Grid.from_toml(path).backend == "local"


def test_shared_arrays_are_the_large_arrays_several_items_take():
    import numpy as np

    from robustkit.dask_backend import SCATTER_BYTES, shared_arrays

    big = np.zeros(SCATTER_BYTES // 8 + 1)
    alone = np.zeros_like(big)
    small = np.zeros(10)
    items = [(big, small, 1), (big, alone, small), (big, big, "x")]
    assert [id(a) for a in shared_arrays(items)] == [id(big)]
    assert shared_arrays([(alone,), (small,), (small,)]) == []


def _row_sum(X, i):
    return float(X[i].sum())


def test_shared_training_data_goes_to_every_worker_once(local_cluster, monkeypatch):
    import numpy as np
    from distributed import Client

    from robustkit.dask_backend import run_on_dask

    calls = []
    real = Client.scatter

    def spy(self, data, *args, **kwargs):
        calls.append((type(data).__name__, kwargs.get("broadcast", False)))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Client, "scatter", spy)
    X = np.arange(4 * 300_000, dtype=np.float64).reshape(4, -1)  # 9.6 MB
    results = run_on_dask(_row_sum, [(X, i) for i in range(4)], local_cluster, 2)
    assert results == [float(row.sum()) for row in X]
    assert calls == [("list", True)]  # one broadcast of [X], no per-cell copies


def _allocator_setting():
    import os

    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_the_local_cluster_gives_the_local_rows_with_glibcs_default_allocator(monkeypatch):
    pytest.importorskip("distributed", reason="dask[distributed] is not installed (the dask extra)")
    from robustkit.dask_backend import local_client

    # A nanny also sets its worker environment in its own process: the module's other
    # cluster has left it in this one, and workers inherit it.
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    grid = {**GRID, "model": ["hinge:epochs=2"], "attack": ["fgsm"], "defense": ["none"]}
    remote = robustkit.evaluate(**grid, backend="dask", jobs=1)
    assert _rows(remote.rows) == _rows(robustkit.evaluate(**grid).rows)
    # Dask's nanny default (65536) turns off glibc's adaptive mmap threshold: a page
    # fault for every fresh temporary array.
    assert set(local_client(1).run(_allocator_setting).values()) == {None}


def test_the_local_cluster_leaves_dasks_default_dashboard_port_to_other_clusters(recwarn):
    """Beside a user's own cluster on port 8787, robustkit's local cluster starts without
    Dask's "Port 8787 is already in use" warning: its dashboard takes a free port."""
    pytest.importorskip("distributed", reason="dask[distributed] is not installed (the dask extra)")
    from robustkit.dask_backend import local_client

    with socket.socket() as other_cluster:
        try:
            other_cluster.bind(("127.0.0.1", 8787))
            other_cluster.listen()
        except OSError:  # something already holds the port: the situation under test
            pass
        client = local_client.__wrapped__(1)  # a cluster of its own, not the cached one
        try:
            port = urlparse(client.cluster.dashboard_link).port
        finally:
            client.close()
            client.cluster.close()
    assert port != 8787
    assert not [w for w in recwarn if "already in use" in str(w.message)]
