"""Cells, markdown tables and the study-vs-robustkit gaps of the report.

Every table has the same layout: key columns, then ``X (study)`` / ``X (robustkit)``
pairs (and ``X (robustkit, pixels)`` for the pixel-space threat model). Study cells come
from ``study.py``; a cell with no study counterpart is ``–``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from explanations import REASONS, ROW_REASONS

from robustkit.tables import interval

#: Flag accuracies this many points below the study's, and anything this far off.
ACCURACY_BELOW = 1.5
FEW_POINTS = 3.0
MISSING = "–"
SPACE_LABEL = {"pca": "PCA-feature space", "pixels": "pixel space"}
EPS_LABEL = {"pca": "ε (PCA-feature units)", "pixels": "ε (fraction of the pixel range)"}
#: The figures' folder, beside the document.
FIGURES = "figures"


def pct(fraction: float | None) -> str:
    """A robustkit fraction as a percentage, ``87.5%``; ``n/a`` when undefined."""
    if fraction is None or (isinstance(fraction, float) and math.isnan(fraction)):
        return "n/a"
    return f"{100 * fraction:.1f}%"


def pct_ci(row: dict[str, Any], key: str) -> str:
    """A robustkit rate with its 95% Wilson interval, ``87.0 ± 6.6%`` (the larger distance
    to the bounds); ``n/a`` when undefined."""
    text = interval(row, key)
    return "n/a" if text == "-" else text


def study_pct(value: float) -> str:
    """A study percentage as printed, ``87.54%``."""
    return f"{value:g}%"


def number(value: float) -> str:
    """A short number, ``0.05``, ``400``."""
    return f"{value:g}"


@dataclass
class Table:
    """A markdown table: headers and rows of already formatted cells."""

    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, cells: Iterable[Any]) -> None:
        """Append a row; ValueError if it has not one cell per header."""
        cells = [str(cell) for cell in cells]
        if len(cells) != len(self.headers):
            raise ValueError(f"row {cells} has {len(cells)} cells, expected {len(self.headers)}")
        self.rows.append(cells)

    def markdown(self) -> str:
        """Header, separator and rows as pipe-table lines."""
        lines = ["| " + " | ".join(self.headers) + " |"]
        lines.append("|" + "|".join("---" for _ in self.headers) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


# ------------------------------------------------------------------------------ gaps


@dataclass
class Gap:
    """A robustkit number more than a few points away from the study's."""

    question: int
    row: int
    label: str
    column: str
    study: float
    robustkit: float

    @property
    def points(self) -> float:
        """robustkit minus study, in points."""
        return self.robustkit - self.study

    @property
    def reason(self) -> str:
        """Why they differ: the row's own explanation, else the column's."""
        return ROW_REASONS.get((self.question, self.row, self.column)) or REASONS.get(
            (self.question, self.column), "(no explanation recorded)"
        )

    def cell(self) -> str:
        """Where and by how much, e.g. ``row 2 (...), test accuracy: robustkit 84.0% vs ...``."""
        unit = " per 100" if self.column == "correct rejects" else "%"
        return (
            f"{self.label}, {self.column}: robustkit {self.robustkit:.1f}{unit} vs study "
            f"{self.study:g}{unit} ({self.points:+.1f} points)"
        )


def is_gap(column: str, study: float, robustkit: float) -> bool:
    """Accuracy more than 1.5 points below, or any number more than 3 points off."""
    difference = robustkit - study
    if "accuracy" in column and difference < -ACCURACY_BELOW:
        return True
    return abs(difference) > FEW_POINTS


def gap_section(gaps: list[Gap]) -> list[str]:
    """The flagged cells, one bullet per reason (or a line saying there are none)."""
    if not gaps:
        return ["Every number is within a few points of the study's (accuracy within 1.5)."]
    by_reason: dict[str, list[Gap]] = {}
    for gap in gaps:
        by_reason.setdefault(gap.reason, []).append(gap)
    return [
        "Where robustkit differs by more than a few points (accuracy: more than 1.5 below):",
        "",
        *(
            "- " + "; ".join(gap.cell() for gap in group) + f". **Why:** {reason}"
            for reason, group in by_reason.items()
        ),
    ]
