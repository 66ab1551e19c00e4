"""Benchmark: one evaluation grid with ``--jobs 1``, ``--jobs 2`` and on a two-worker local
Dask cluster; wall time and whether the rows are identical (timings aside).

The grid: hinge and rbf at two learning rates, each undefended and with the rejection
defense (8 training cells), attacked by FGSM, PGD (20 steps) and noise (24 attack cells),
3 ε, on Fashion-MNIST's 128 PCA features; nothing cached. The Dask cluster is started
before the timed run (its start-up is reported on its own line). Without dask installed
the Dask line is skipped, saying so.

    python examples/benchmarks/bench_grid.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from tabulate import tabulate

import robustkit

GRID = {
    "model": [
        "hinge:lr=0.05,epochs=5",
        "hinge:lr=0.1,epochs=5",
        "rbf:lr=0.05,epochs=5",
        "rbf:lr=0.1,epochs=5",
    ],
    "defense": ["none", "reject"],
    "attack": ["fgsm", "pgd:steps=20", "noise"],
    "eps": [0.02, 0.05, 0.1],
    "n_samples": 500,
}
TIMINGS = ("seconds", "train_seconds", "cached")


def rows_text(result) -> str:
    """The rows without timings, as JSON text (NaN equals NaN)."""
    rows = [{k: v for k, v in row.items() if k not in TIMINGS} for row in result.rows]
    return json.dumps(rows, sort_keys=True, default=str)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("ROBUSTKIT_DATA_DIR"))
    args = parser.parse_args()
    if not args.data_dir:
        sys.exit("no data folder: pass --data-dir or set ROBUSTKIT_DATA_DIR")
    grid = {**GRID, "dataset": "fashion-mnist:pca=128", "data_dir": Path(args.data_dir)}
    n_cells = len(GRID["model"]) * len(GRID["defense"]) * (1 + len(GRID["attack"]))
    print(f"{n_cells} cells (training and attack), {len(GRID['eps'])} ε each; no cache")

    runs = [("--jobs 1", {"jobs": 1}), ("--jobs 2", {"jobs": 2})]
    has_dask = importlib.util.find_spec("distributed") is not None
    if has_dask:
        from robustkit.dask_backend import local_client

        start = time.perf_counter()
        local_client(2)
        print(f"local Dask cluster (2 workers) started in {time.perf_counter() - start:.1f} s")
        runs.append(("--backend dask (local cluster, 2 workers)", {"backend": "dask", "jobs": 2}))
    else:
        print("dask[distributed] is not installed: the Dask run is skipped")

    table, reference, baseline = [], None, None
    for label, options in runs:
        start = time.perf_counter()
        result = robustkit.evaluate(**grid, **options)
        seconds = time.perf_counter() - start
        text = rows_text(result)
        reference = reference or text
        baseline = baseline or seconds
        same = "yes" if text == reference else "NO"
        table.append([label, seconds, f"{baseline / seconds:.2f}x", same, len(result.rows)])
        print(f"  {label}: {seconds:.1f} s", flush=True)
    headers = ["run", "seconds", "speed-up vs --jobs 1", "rows identical", "rows"]
    print(tabulate(table, headers=headers, floatfmt=".1f"))
    print("\nMarkdown (README):\n")
    print(tabulate(table, headers=headers, floatfmt=".1f", tablefmt="github"))


if __name__ == "__main__":
    main()
