"""The result of an evaluation: rows, run metadata and warnings, as tables, JSON or CSV."""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .outputs import atomic_write
from .samples import SampleCell, write_samples_file
from .tables import report


def plain(value: Any) -> Any:
    """JSON-ready data: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class EvaluationResult:
    """Rows (one per model × defense × λ × attack × ε, plus the worst case over attacks),
    metadata, sanity warnings and the per-sample cells (``write_samples``)."""

    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    cells: list[SampleCell] = field(default_factory=list, repr=False)

    def tables(self) -> str:
        """The text report: threat model line, robust accuracy, attack success, correct
        rejects, details, warnings."""
        single = self.meta.get("worst_case") == "the only attack"
        return "\n\n".join(
            filter(None, [self.threat_model(), report(self.rows, self.warnings, single)])
        )

    def threat_model(self) -> str:
        """One line stating data, budget unit, sample count and seed ("" without metadata)."""
        meta = self.meta
        if "dataset" not in meta:
            return ""
        low, high = meta["bounds"]
        unit = (
            f"fraction of the input range [{low:g}, {high:g}]"
            if meta["eps_unit"] == "range"
            else "input units (absolute)"
        )
        n = meta["grid"]["n_samples"]
        samples = (
            f"the first {n} correctly classified test samples of each model"
            if meta["grid"].get("samples") == "correct"
            else f"the first {n} test samples (the same for every model; clean errors "
            "count as not robust)"
        )
        return (
            f"Threat model: L∞ on {meta['dataset']} inputs, ε in {unit}; {samples}; "
            f"95% Wilson intervals; seed {meta['seed']}"
        )

    def to_dict(self) -> dict[str, Any]:
        return plain({"meta": self.meta, "rows": self.rows, "warnings": self.warnings})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def write_json(self, path: str | os.PathLike) -> None:
        """Write rows, metadata and warnings as JSON, atomically."""
        with atomic_write(path) as handle:
            handle.write(self.to_json() + "\n")

    def write_csv(self, path: str | os.PathLike) -> None:
        """Write one CSV line per row (``params`` as JSON), atomically."""
        rows = plain(self.rows)
        with atomic_write(path, "w") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "params": json.dumps(row["params"], sort_keys=True)})

    def write_samples(self, path: str | os.PathLike) -> None:
        """Write the per-sample arrays of every cell as ``.npz`` (``robustkit.samples``)."""
        write_samples_file(path, self.cells, self.meta)

    def plot(self, path: str | os.PathLike) -> None:
        """Success and evasion against ε (and the λ trade-off) as a PNG, atomically."""
        from .plotting import plot_evaluation

        plot_evaluation(self.rows, path)
