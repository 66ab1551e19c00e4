"""Harness cells on a Dask cluster, through joblib's Dask backend (the optional ``dask`` extra).

Without a scheduler address a local cluster of single-threaded worker processes is
started once per process, with robustkit and its plugins imported on every worker (so
the first cell does not pay for it). Arrays that several cells share (the training
data) are sent to every worker once, before the first cell, not with each cell.
Results (fitted models included) travel back to the client, so the model cache is
written where the grid runs. Workers must run one thread each (``dask worker ADDRESS
--nthreads 1``): BLAS thread limits are per process.

The local cluster's workers keep glibc's default allocator settings. Dask's nanny sets
``MALLOC_TRIM_THRESHOLD_`` in its workers, which also turns off glibc's adaptive mmap
threshold: every large temporary array is then mapped afresh and faulted in, and
robustkit's cells took 1.3-1.8× the CPU time they take in any other process.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from .errors import RobustkitError

#: Seconds to wait for a scheduler to answer, and for a worker to join.
CONNECT_TIMEOUT = 30
#: Dask's worker environment setting that costs robustkit's cells a page fault per fresh
#: temporary (see the module doc); None removes it from the local cluster's workers.
ALLOCATOR_SETTING = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
#: Where the local cluster serves its dashboard: a free port on the loopback interface
#: (Dask's default, 8787, warns "already in use" beside a user's own cluster).
LOCAL_DASHBOARD = "127.0.0.1:0"
#: Arrays of at least this many bytes that several cells take are broadcast to every
#: worker once (smaller ones travel with their cells).
SCATTER_BYTES = 1_000_000


def require_dask() -> None:
    """A one-line RobustkitError saying how to install Dask, if it is missing."""
    if importlib.util.find_spec("distributed") is None:
        raise RobustkitError(
            "backend 'dask' needs dask.distributed, which is not installed; "
            "install it with: pip install 'robustkit[dask]'"
        )


@functools.cache
def local_client(workers: int) -> Any:
    """A client of a local cluster of ``workers`` single-threaded processes, started once
    per process (it takes seconds, robustkit's import on the workers included) and
    closed when the process exits."""
    require_dask()
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(ALLOCATOR_SETTING):  # read once, as each worker's nanny starts
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=LOCAL_DASHBOARD,
        )
    client = Client(cluster)
    atexit.register(cluster.close)
    atexit.register(client.close)  # registered last, so run first
    client.run(import_plugins)
    return client


def import_plugins() -> int:
    """Import robustkit and every plugin (run on each worker as it starts)."""
    from .plugins import registry

    return len(registry("model").names())


def shared_arrays(items: list[tuple]) -> list[np.ndarray]:
    """The large numpy arrays (``SCATTER_BYTES`` or more) that more than one item takes,
    each once: what is worth sending to every worker before the first cell."""
    arrays: dict[int, np.ndarray] = {}
    takers: Counter[int] = Counter()
    for item in items:
        large = {id(a): a for a in item if isinstance(a, np.ndarray) and a.nbytes >= SCATTER_BYTES}
        arrays.update(large)
        takers.update(large.keys())
    return [arrays[key] for key, count in takers.items() if count > 1]


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A client of the scheduler at ``scheduler`` (closed afterwards), or of the local cluster."""
    if scheduler is None:
        yield local_client(workers)
        return
    require_dask()
    from distributed import Client

    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise RobustkitError(
            f"cannot reach the Dask scheduler at {scheduler!r}: {exc}; pass the address "
            "that `dask scheduler` prints, e.g. tcp://host:8786"
        ) from None
    with client:
        yield client


def run_on_dask(
    fn: Callable, items: Iterable[tuple], scheduler: str | None, workers: int
) -> list[Any]:
    """``fn(*item)`` for each item on the Dask cluster, results in order, on the client;
    the large arrays that several items share are broadcast to the workers first."""
    from joblib import Parallel, delayed, parallel_config

    items = list(items)
    with (
        dask_client(scheduler, workers) as client,
        parallel_config(
            backend="dask",
            client=client,
            scatter=shared_arrays(items),
            wait_for_workers_timeout=CONNECT_TIMEOUT,
        ),
    ):
        return Parallel(n_jobs=-1)(delayed(fn)(*item) for item in items)
