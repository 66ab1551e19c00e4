"""Text tables of evaluation rows (tabulate): robust accuracy over the sample set first,
then the study's shapes (attack success, correct rejects) and the details."""

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


def interval(row: dict[str, Any], key: str) -> str:
    """``87.0 ± 6.6%``: the rate and the larger distance to its 95% Wilson bounds (the
    printed range contains the interval; the exact bounds are in JSON/CSV)."""
    value, low, high = row.get(key), row.get(f"{key}_low"), row.get(f"{key}_high")
    if percent(value) == "-":
        return "-"
    if percent(low) == "-" or percent(high) == "-":
        return percent(value)
    return f"{100 * value:.1f} ± {100 * max(value - low, high - value):.1f}%"


ROBUST_COLUMNS: list[Column] = [
    *KEY_COLUMNS,
    ("clean accuracy", lambda r: percent(r["clean_accuracy"])),
    ("clean on samples", lambda r: percent(r["sample_accuracy"])),
    ("robust accuracy", lambda r: interval(r, "robust_accuracy")),
]

REJECTING_COLUMNS: list[Column] = [
    ("correct or reject", lambda r: interval(r, "correct_or_reject")),
    ("evasion", lambda r: interval(r, "evasion_rate")),
]

SUCCESS_COLUMNS: list[Column] = [
    *KEY_COLUMNS,
    ("attacked", lambda r: r["n_attacked"]),
    ("attack success", lambda r: interval(r, "attack_success_rate")),
    ("zero gradient", lambda r: percent(r["zero_gradient_rate"])),
]

REJECT_COLUMNS: list[Column] = [
    *KEY_COLUMNS,
    ("accuracy", lambda r: percent(r["clean_accuracy"])),
    ("attack success", lambda r: percent(r["attack_success_rate"])),
    ("correct rejects", lambda r: f"{r['correct_rejects']} of {r['n_attacked']}"),
    ("percent rejected", lambda r: interval(r, "percent_rejected")),
]

DETAIL_COLUMNS: list[Column] = [
    *KEY_COLUMNS,
    ("clean rejects", lambda r: percent(r["clean_reject_rate"])),
    ("samples", lambda r: r["n_samples"]),
    ("robust", lambda r: r["robust"]),
    ("attacked", lambda r: r["n_attacked"]),
    ("flipped", lambda r: r["flipped"]),
    ("rejected", lambda r: r["rejected"]),
    ("evaded", lambda r: r["evaded"]),
    ("mean ‖δ‖∞", lambda r: number(r["mean_linf"])),
    ("mean ‖δ‖₂", lambda r: number(r.get("mean_l2"))),
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
    ("robust (attack)", lambda r: _with_interval(r, "robust_accuracy")),
    ("certified", lambda r: _with_interval(r, "certified_accuracy")),
    ("certified correct-or-reject", lambda r: _with_interval(r, "certified_correct_or_reject")),
    ("bracket", _bracket),
    ("method", lambda r: r["certify_method"]),
]


def report(
    rows: Sequence[dict[str, Any]], warnings: Sequence[str] = (), single_attack: bool = False
) -> str:
    """Robust accuracy over the sample set (with the worst case over attacks), the study's
    attack success and correct rejects over the attacked samples, details, warnings."""
    rejecting = [row for row in rows if row["rejects"]]
    n = sorted({row["n_samples"] for row in rows})
    worst = (
        "one attack, so its rows are the worst case"
        if single_attack
        else "'worst case': broken by any attack"
    )
    title = (
        f"Robust accuracy over {', '.join(map(str, n))} samples (correct and not rejected "
        f"under attack; ± 95% Wilson interval; {worst})"
    )
    robust = ROBUST_COLUMNS + (REJECTING_COLUMNS if rejecting else [])
    parts = [title, render(rows, robust)]
    parts += [
        "",
        "Attack success over the attacked samples (those classified correctly; a reject counts)",
        render(rows, SUCCESS_COLUMNS),
    ]
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
