"""The grid benchmark script still runs (a tiny grid on digits, without Dask)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "benchmarks" / "bench_grid.py"


def test_the_grid_benchmark_runs_and_finds_identical_rows(capsys):
    spec = importlib.util.spec_from_file_location("bench_grid", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--quick", "--no-dask"])
    out = capsys.readouterr().out
    assert "32 cells (8 training, 24 attack)" in out
    assert "the Dask run is skipped" in out
    table = [line for line in out.splitlines() if line.startswith("| --jobs")]
    assert len(table) == 2 and all("| yes " in line for line in table)
