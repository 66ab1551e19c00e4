"""The result of an evaluation: rows, run metadata and warnings, as tables, JSON or CSV."""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .persistence import atomic_write
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
    """Rows (one per model × defense × λ × attack × ε), metadata and sanity warnings."""

    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def tables(self) -> str:
        """The text report: threat model line, attack success, correct rejects, details,
        warnings."""
        return "\n\n".join(filter(None, [self.threat_model(), report(self.rows, self.warnings)]))

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
        return (
            f"Threat model: L∞ on {meta['dataset']} inputs, ε in {unit}; the first "
            f"{meta['grid']['n_samples']} correctly classified test samples per model; "
            f"seed {meta['seed']}"
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

    def plot(self, path: str | os.PathLike) -> None:
        """Success and evasion against ε (and the λ trade-off) as a PNG, atomically."""
        from .plotting import plot_evaluation

        plot_evaluation(self.rows, path)
