"""Running independent cells (training runs, attacks) in order, in worker processes if asked."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from joblib import Parallel, delayed

#: Where cells run: this machine's processes (joblib's loky), or a Dask cluster.
BACKENDS = ("local", "dask")


def run_parallel(
    fn: Callable,
    jobs: int,
    items: Iterable[tuple],
    backend: str = "local",
    scheduler: str | None = None,
) -> Iterator[Any]:
    """``fn(*item)`` for each item, in order; in worker processes when jobs > 1, or on a
    Dask cluster (``scheduler``'s, else a local one of ``jobs`` workers) with ``backend="dask"``."""
    if backend == "dask":
        from .dask_backend import run_on_dask

        return iter(run_on_dask(fn, items, scheduler, jobs))
    if jobs == 1:
        return (fn(*item) for item in items)
    return Parallel(n_jobs=jobs, return_as="generator")(delayed(fn)(*item) for item in items)
