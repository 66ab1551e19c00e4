"""Running independent cells (training runs, attacks) in order, in worker processes if asked."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from joblib import Parallel, delayed


def run_parallel(fn: Callable, jobs: int, items: Iterable[tuple]) -> Iterator[Any]:
    """``fn(*item)`` for each item, in order; in worker processes when jobs > 1."""
    if jobs == 1:
        return (fn(*item) for item in items)
    return Parallel(n_jobs=jobs, return_as="generator")(delayed(fn)(*item) for item in items)
