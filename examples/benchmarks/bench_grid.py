"""Benchmark: one evaluation grid with ``--jobs 1``, ``--jobs 2`` and on a two-worker local
Dask cluster; wall time, speed-ups and whether the rows are identical (timings aside).

The grid has cells that do real work, so that what is measured is the parallel
speed-up, not the cost of shipping a task: hinge and rbf at two learning rates (15
epochs on Fashion-MNIST's 60,000 × 128 PCA features), each undefended and with the
rejection defense (8 training cells of a few seconds), attacked by three 50-step PGD
variants with 2 restarts (plain, margin loss, reject-aware) on 1,000 test samples at 3 ε
(24 attack cells of 1-2 s); nothing cached.

Start-up is measured on its own: the loky pool of ``--jobs 2`` (two processes importing
robustkit) and the local Dask cluster (scheduler, two workers, robustkit imported on
them) are started before the timed runs, and the table shows each run with and without
it. The CPU seconds of the whole process tree show the work a parallel run adds
(serialisation, scheduling) even where a busy machine makes wall times noisy.
``--repeat N`` keeps each run's fastest of N; ``--quick`` runs a tiny version on digits
(a smoke test, no figures). Without dask installed (or with ``--no-dask``) the Dask run
is skipped, saying so.

    python examples/benchmarks/bench_grid.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import psutil
from tabulate import tabulate

import robustkit
from robustkit.dask_backend import import_plugins
from robustkit.parallel import run_parallel

GRID = {
    "model": [
        "hinge:lr=0.05,epochs=15",
        "hinge:lr=0.1,epochs=15",
        "rbf:lr=0.05,epochs=15",
        "rbf:lr=0.1,epochs=15",
    ],
    "defense": ["none", "reject"],
    "attack": [
        "pgd:steps=50,restarts=2",
        "pgd:loss=margin,steps=50,restarts=2",
        "pgd:reject_aware=true,steps=50,restarts=2",
    ],
    "eps": [0.02, 0.05, 0.1],
    "n_samples": 1000,
}
TIMINGS = ("seconds", "train_seconds", "cached", "certify_seconds")
WORST_CASE = "worst case"


def rows_text(result) -> str:
    """The rows without timings, as JSON text (NaN equals NaN)."""
    rows = [{k: v for k, v in row.items() if k not in TIMINGS} for row in result.rows]
    return json.dumps(rows, sort_keys=True, default=str)


def cell_seconds(result) -> tuple[float, float]:
    """Seconds spent inside the training cells and inside the attack cells (summed)."""
    train, attack = {}, {}
    for row in result.rows:
        key = (row["model"], row["defense"])
        train[key] = row["train_seconds"]
        if row["attack"] != WORST_CASE:
            attack[(*key, row["attack"])] = row["seconds"]
    return sum(train.values()), sum(attack.values())


def start_loky_pool(jobs: int) -> float:
    """Start the worker pool that ``--jobs`` grids use (joblib's reusable loky pool, with
    robustkit's worker initialiser, so the grids reuse it) with robustkit imported in
    each worker: what the first ``--jobs`` grid of a process pays; its seconds."""
    start = time.perf_counter()
    list(run_parallel(import_plugins, jobs, [()] * jobs))
    return time.perf_counter() - start


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and every live descendant (the loky
    workers, the Dask workers): extra work of a parallel run shows here even when other
    programs on the machine make its wall time noisy."""
    me = psutil.Process()
    total = 0.0
    for process in [me, *me.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def quick_grid() -> dict:
    """The same 32 cells, tiny, on digits: checks that the script runs (no figures)."""
    return {
        **GRID,
        "model": [m.replace("epochs=15", "epochs=2") for m in GRID["model"]],
        "attack": [a.replace("steps=50", "steps=3") for a in GRID["attack"]],
        "n_samples": 50,
        "dataset": "digits",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("ROBUSTKIT_DATA_DIR"))
    parser.add_argument("--repeat", type=int, default=1, help="keep the fastest of N runs")
    parser.add_argument("--quick", action="store_true", help="a tiny grid on digits (a smoke test)")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask run")
    args = parser.parse_args(argv)
    if args.quick:
        grid = quick_grid()
    elif not args.data_dir:
        sys.exit("no data folder: pass --data-dir or set ROBUSTKIT_DATA_DIR")
    else:
        grid = {**GRID, "dataset": "fashion-mnist:pca=128", "data_dir": Path(args.data_dir)}
    n_train = len(GRID["model"]) * len(GRID["defense"])
    n_attack = n_train * len(GRID["attack"])
    print(
        f"{n_train + n_attack} cells ({n_train} training, {n_attack} attack), "
        f"{len(GRID['eps'])} ε each; no cache; {os.cpu_count()} cores; "
        f"load average {os.getloadavg()[0]:.1f} at the start"
    )

    runs = [("--jobs 1", {"jobs": 1}, 0.0)]
    runs.append(("--jobs 2", {"jobs": 2}, start_loky_pool(2)))
    if args.no_dask:
        print("--no-dask: the Dask run is skipped")
    elif importlib.util.find_spec("distributed") is not None:
        from robustkit.dask_backend import local_client

        start = time.perf_counter()
        local_client(2)
        runs.append(
            (
                "--backend dask (local cluster, 2 workers)",
                {"backend": "dask", "jobs": 2},
                time.perf_counter() - start,
            )
        )
    else:
        print("dask[distributed] is not installed: the Dask run is skipped")
    for label, _, startup in runs[1:]:
        print(f"start-up of {label}: {startup:.1f} s")

    results = {}
    for attempt in range(args.repeat):
        for label, options, _ in runs:
            start, cpu = time.perf_counter(), cpu_seconds()
            result = robustkit.evaluate(**grid, **options)
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
            print(f"  {label} (run {attempt + 1}): {seconds:.1f} s, {cpu:.1f} CPU s", flush=True)
            if label not in results or seconds < results[label][0]:
                results[label] = (seconds, result, cpu)

    reference_text = rows_text(results["--jobs 1"][1])
    jobs1 = results["--jobs 1"][0]
    train, attack = cell_seconds(results["--jobs 1"][1])
    print(
        f"--jobs 1: {train:.1f} s in training cells (mean {train / n_train:.2f} s), "
        f"{attack:.1f} s in attack cells (mean {attack / n_attack:.2f} s), "
        f"{jobs1 - train - attack:.1f} s outside the cells (data loading, clean predictions)"
    )
    table = []
    jobs1_cpu = results["--jobs 1"][2]
    for label, _, startup in runs:
        seconds, result, cpu = results[label]
        same = "yes" if rows_text(result) == reference_text else "NO"
        table.append(
            [
                label,
                seconds,
                f"{jobs1 / seconds:.2f}x",
                startup,
                seconds + startup,
                f"{jobs1 / (seconds + startup):.2f}x",
                cpu,
                f"{cpu / jobs1_cpu:.2f}x",
                same,
                len(result.rows),
            ]
        )
    headers = [
        "run",
        "seconds",
        "speed-up vs --jobs 1",
        "start-up s",
        "with start-up",
        "speed-up with start-up",
        "CPU s",
        "CPU vs --jobs 1",
        "rows identical",
        "rows",
    ]
    print(tabulate(table, headers=headers, floatfmt=".1f"))
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print("\nMarkdown (README):\n")
    print(tabulate(table, headers=headers, floatfmt=".1f", tablefmt="github"))


if __name__ == "__main__":
    main()
