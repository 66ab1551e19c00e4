"""Row-blocked work on the cores this process may use, the same bits on any number.

The wide GEMMs of an attack on raw inputs (784 pixels through the model's PCA, forwards
and backwards) are most of its time. OpenBLAS's own threads would share them out, but
its sgemm rounds differently on one and two threads, so a result would depend on the
machine. Here a product of many rows is cut into fixed blocks of ``ROW_BLOCK`` rows (the
cut depends on the number of rows only), each block is one single-threaded BLAS call,
and the blocks run on up to ``core_budget()`` threads (numpy releases the GIL in BLAS):
the same bits whatever the number of threads. ``for_row_blocks`` runs any per-row work
that way (APGD's element-wise update step, whose results do not depend on the cut).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController  # a scikit-learn dependency

from robustkit.features import row_chunks

#: Rows per block: enough for a block to run at the GEMM's full single-core speed.
ROW_BLOCK = 256
#: Products of fewer rows are one BLAS call in the caller's setting (threads do not pay).
BLOCKED_ROWS = 4 * ROW_BLOCK
#: From this many rows on the numpy networks' inference takes two BLAS threads by its
#: shape (``_numpy_net.MANY_ROWS``), which beats blocks: one call in the caller's setting.
UNBLOCKED_ROWS = 4096
#: Environment variables through which joblib's workers, Dask's workers and users give a
#: process its share of the cores (the first one set wins).
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def core_budget() -> int:
    """Threads one product may use: ``OPENBLAS_NUM_THREADS`` or ``OMP_NUM_THREADS``
    (joblib's and Dask's workers get 1 each, so parallel cells do not oversubscribe the
    cores), else the cores this process may run on."""
    for name in THREAD_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@functools.cache
def _pool(threads: int, pid: int) -> ThreadPoolExecutor:
    """A pool per process (``pid``: a forked child has none of its parent's threads)."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="robustkit-gemm")


@functools.cache
def thread_controller() -> ThreadpoolController:
    """The process's BLAS thread controller, made once (a scan takes 200 µs, a limit 8 µs)."""
    return ThreadpoolController()


def for_row_blocks(function: Callable[[slice], Any], n_rows: int, block_rows: int) -> None:
    """Call ``function(rows)`` on each block of ``block_rows`` rows of ``n_rows``, the
    blocks on up to ``core_budget()`` threads (``function`` must touch its rows only)."""
    blocks = list(row_chunks(n_rows, block_rows))
    threads = min(core_budget(), len(blocks))
    if threads > 1:
        list(_pool(threads, os.getpid()).map(function, blocks))
    else:
        for rows in blocks:
            function(rows)


def matmul(A: np.ndarray, B: np.ndarray, out: np.ndarray | None = None, dtype: Any = None):
    """``A @ B`` (into ``out``, computed in ``dtype``). From ``BLOCKED_ROWS`` rows of ``A``
    to below ``UNBLOCKED_ROWS``, by blocks of ``ROW_BLOCK`` rows, each on one BLAS
    thread, the blocks on up to ``core_budget()`` threads; other sizes are one call in
    the caller's BLAS setting."""
    if not BLOCKED_ROWS <= len(A) < UNBLOCKED_ROWS:
        return np.matmul(A, B, out=out, dtype=dtype)
    if out is None:
        out = np.empty((len(A), B.shape[1]), dtype or np.result_type(A, B))

    def block(rows: slice) -> None:
        np.matmul(A[rows], B, out=out[rows], dtype=dtype)

    with thread_controller().limit(limits=1, user_api="blas"):
        for_row_blocks(block, len(A), ROW_BLOCK)
    return out
