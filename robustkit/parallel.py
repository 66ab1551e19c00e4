"""Running independent cells (training runs, attacks) in order, in worker processes if asked.

Worker processes never outlive the run: an exception, Ctrl-C or SIGTERM in the main
process ends them (joblib's loky backend kills the process trees, with psutil), and each
worker also exits by itself within a second once its parent is gone (even after a
SIGKILL of the parent, which no handler sees).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from joblib import Parallel, delayed

#: Seconds between a worker's checks that its parent process still exists.
PARENT_POLL_SECONDS = 0.5
#: Where cells run: this machine's processes (joblib's loky), or a Dask cluster.
BACKENDS = ("local", "dask")


def effective_jobs(jobs: int, n_tasks: int) -> int:
    """Worker processes to use: ``jobs`` (-1: every core), at most one per task."""
    wanted = os.cpu_count() or 1 if jobs == -1 else jobs
    return max(1, min(wanted, n_tasks))


def run_parallel(
    fn: Callable,
    jobs: int,
    items: Iterable[tuple],
    backend: str = "local",
    scheduler: str | None = None,
) -> Iterator[Any]:
    """``fn(*item)`` for each item, in order; in worker processes when more than one job
    is useful (``jobs`` is capped at the number of items; -1 means every core), or on a
    Dask cluster (``scheduler``'s, else a local one of ``jobs`` workers) with
    ``backend="dask"``."""
    items = list(items)
    jobs = effective_jobs(jobs, len(items))
    if backend == "dask":
        from .dask_backend import run_on_dask

        return iter(run_on_dask(fn, items, scheduler, jobs))
    if jobs == 1:
        return (fn(*item) for item in items)
    return _run_in_workers(fn, jobs, items)


def _run_in_workers(fn: Callable, jobs: int, items: list[tuple]) -> Iterator[Any]:
    """The loky pool; on any early exit (error, interrupt, generator dropped) it is
    aborted, which kills the workers instead of letting them finish their tasks."""
    outputs = Parallel(
        n_jobs=jobs,
        return_as="generator",
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )(delayed(fn)(*item) for item in items)
    finished = False
    try:
        yield from outputs
        finished = True
    finally:
        if not finished:
            outputs.close()  # joblib aborts the pool and kills its workers


def _exit_with_parent(parent: int) -> None:
    """Worker initialiser: a daemon thread that ends the worker when ``parent`` is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="robustkit-parent-watch", daemon=True).start()
