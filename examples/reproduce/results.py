"""What ``run_all`` hands to the report: training summaries, grid rows, seconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainruns import TrainRun


@dataclass
class Results:
    """Everything ``run_all`` measured: training summaries, grid rows, seconds."""

    quick: bool
    data_dir: str
    jobs: int
    total_seconds: float
    runs: dict[int, list[TrainRun]]
    training: dict[int, list[dict[str, Any]]]
    grids: dict[str, list[dict[str, Any]]]
    grid_seconds: dict[str, float]
    grid_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    grid_warnings: dict[str, list[str]] = field(default_factory=dict)
