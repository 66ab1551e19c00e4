"""Text tables of evaluation rows (tabulate): the study's shapes, then the rigorous columns."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from tabulate import tabulate

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def percent(value: float | None) -> str:
    """``0.875`` → ``87.5%``; NaN or None → ``-``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}%"


def number(value: float | None) -> str:
    """A short number, ``-`` for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:g}" if isinstance(value, int) else f"{value:.4g}"


def render(rows: Sequence[dict[str, Any]], columns: Sequence[Column], fmt: str = "simple") -> str:
    """A tabulate table with one line per row and the given (header, getter) columns."""
    return tabulate(
        [[get(row) for _, get in columns] for row in rows],
        headers=[header for header, _ in columns],
        tablefmt=fmt,
        disable_numparse=True,
    )


def _lam(row: dict[str, Any]) -> str:
    return number(row.get("lam"))


#: What identifies a row: the first columns of every evaluation table.
KEY_COLUMNS: list[Column] = [
    ("model", lambda r: r["model"]),
    ("defense", lambda r: r["defense"]),
    ("attack", lambda r: r["attack"]),
    ("λ", _lam),
    ("ε", lambda r: number(r["eps"])),
]

SUCCESS_COLUMNS: list[Column] = [
    *KEY_COLUMNS,
    ("clean accuracy", lambda r: percent(r["clean_accuracy"])),
    ("attack success", lambda r: percent(r["attack_success_rate"])),
    ("evasion", lambda r: percent(r["evasion_rate"])),
    ("zero gradient", lambda r: percent(r["zero_gradient_rate"])),
]

REJECT_COLUMNS: list[Column] = [
    *KEY_COLUMNS,
    ("accuracy", lambda r: percent(r["clean_accuracy"])),
    ("attack success", lambda r: percent(r["attack_success_rate"])),
    ("correct rejects", lambda r: f"{r['correct_rejects']} of {r['n_attacked']}"),
    ("percent rejected", lambda r: percent(r["percent_rejected"])),
]

DETAIL_COLUMNS: list[Column] = [
    *KEY_COLUMNS,
    ("clean rejects", lambda r: percent(r["clean_reject_rate"])),
    ("n", lambda r: r["n_attacked"]),
    ("flipped", lambda r: r["flipped"]),
    ("rejected", lambda r: r["rejected"]),
    ("evaded", lambda r: r["evaded"]),
    ("evasion rate", lambda r: percent(r["evasion_rate"])),
    ("mean ‖δ‖∞", lambda r: number(r["mean_linf"])),
    ("seconds", lambda r: number(r["seconds"])),
]


def _bracket(row: dict[str, Any]) -> str:
    from .certify import bracket_gap, inconclusive

    gap = bracket_gap(row)
    width = "-" if gap is None else f"{100 * gap:.1f} pts"
    return f"{width} (inconclusive)" if inconclusive(row) else width


def _with_interval(row: dict[str, Any], name: str) -> str:
    if row.get(name) is None:
        return "-"
    return f"{percent(row[name])} [{percent(row[name + '_low'])}, {percent(row[name + '_high'])}]"


#: With ``--certify``: robust accuracy (an upper bound) beside certified accuracy (a lower one).
CERTIFIED_COLUMNS: list[Column] = [
    *KEY_COLUMNS,
    ("robust (attack)", lambda r: percent(r.get("robust_accuracy", 1 - r["attack_success_rate"]))),
    ("certified", lambda r: _with_interval(r, "certified_accuracy")),
    ("certified correct-or-reject", lambda r: _with_interval(r, "certified_correct_or_reject")),
    ("bracket", _bracket),
    ("method", lambda r: r["certify_method"]),
]


def report(rows: Sequence[dict[str, Any]], warnings: Sequence[str] = ()) -> str:
    """The attack-success table, the correct-reject table (rows of rejecting models), the
    rigorous columns, then any sanity warnings."""
    parts = ["Attack success", render(rows, SUCCESS_COLUMNS)]
    rejecting = [row for row in rows if row["rejects"]]
    if rejecting:
        parts += ["", "Correct rejects", render(rejecting, REJECT_COLUMNS)]
    parts += ["", "Details (evasion = wrong and not rejected)", render(rows, DETAIL_COLUMNS)]
    certified = [row for row in rows if row.get("certified_accuracy") is not None]
    if certified:
        title = "Certified bounds (true robust accuracy lies between certified and robust)"
        parts += ["", title, render(certified, CERTIFIED_COLUMNS)]
    if warnings:
        parts += ["", "Sanity warnings"] + [f"- {w}" for w in warnings]
    return "\n".join(parts)


EPOCH_COLUMNS: list[Column] = [
    ("epoch", lambda r: int(r["epoch"])),
    ("loss", lambda r: number(r["loss"])),
    ("train accuracy", lambda r: percent(r.get("train_accuracy"))),
    ("test accuracy", lambda r: percent(r.get("test_accuracy"))),
    ("seconds", lambda r: f"{r['seconds']:.2f}"),
]

TRAINING_COLUMNS: list[Column] = [
    ("model", lambda r: r["model"]),
    ("epochs", lambda r: r["epochs"]),
    ("batch size", lambda r: r["batch_size"]),
    ("learning rate", lambda r: number(r["lr"])),
    ("train accuracy", lambda r: percent(r["train_accuracy"])),
    ("test accuracy", lambda r: percent(r["test_accuracy"])),
    ("seconds", lambda r: f"{r['seconds']:.2f}"),
]


def epoch_table(history: Sequence[dict[str, float]]) -> str:
    """One line per training epoch."""
    return render(history, EPOCH_COLUMNS)


def training_table(runs: Sequence[dict[str, Any]]) -> str:
    """The study's training table: model, epochs, batch size, lr, accuracies, seconds."""
    return render(runs, TRAINING_COLUMNS)
