"""Figures as PNG, PDF or SVG: training curves, attack success against ε, the λ trade-off.

The format follows the file name's suffix. Every series gets its own combination of
colour, line style and marker, so any number of them stays distinguishable, and the
legend sits below the panels, never over the data.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .errors import RobustkitError
from .outputs import atomic_write

#: File suffix → matplotlib format.
FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
_LINE_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def check_plot_path(path: str | os.PathLike | None) -> None:
    """Fail before any work unless ``path`` ends in a supported figure suffix."""
    if path is None:
        return
    if Path(path).suffix.lower() not in FORMATS:
        raise RobustkitError(
            f"--plot {path}: unknown figure format {Path(path).suffix or '(no suffix)'!r}; "
            f"accepted: {', '.join(FORMATS)}"
        )


def series_style(index: int) -> dict[str, Any]:
    """Colour, line style and marker of series ``index``: the three cycles have coprime
    lengths (10, 4, 7), so the first 280 series all look different."""
    return {
        "color": f"C{index % 10}",
        "linestyle": _LINE_STYLES[index % len(_LINE_STYLES)],
        "marker": _MARKERS[index % len(_MARKERS)],
    }


def _save(figure: Figure, path: str | os.PathLike) -> None:
    check_plot_path(path)
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format=FORMATS[Path(path).suffix.lower()], dpi=120)


def _legend_below(figure: Figure, axes: Any, count: int) -> None:
    """One legend for the whole figure, below the panels (constrained layout makes room)."""
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        columns = max(1, min(count, 3))
        figure.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize="small")


def plot_training(
    history: Sequence[dict[str, float]], path: str | os.PathLike, title: str = ""
) -> None:
    """Accuracy (train, test) and loss per epoch, side by side."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    accuracy, loss = figure.subplots(1, 2)
    epochs = [record["epoch"] for record in history]
    for index, (key, label) in enumerate((("train_accuracy", "train"), ("test_accuracy", "test"))):
        if history and key in history[0]:
            accuracy.plot(
                epochs,
                [100 * record[key] for record in history],
                label=label,
                **series_style(index),
            )
    accuracy.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    _legend_below(figure, accuracy, 2)
    loss.plot(epochs, [record["loss"] for record in history], marker="o", color="C3")
    loss.set(xlabel="epoch", ylabel="mean training loss", title="loss")
    if title:
        figure.suptitle(title)
    _save(figure, path)


def _series_key(row: dict[str, Any]) -> tuple:
    """Sort key of a series: model, defense, λ as a number, attack."""
    lam = row.get("lam")
    return (row["model"], row["defense"], lam is not None, lam or 0.0, row["attack"])


def _series_label(row: dict[str, Any]) -> str:
    lam = f" λ={row['lam']:g}" if row.get("lam") is not None else ""
    return f"{row['model']}+{row['defense']}{lam} / {row['attack']}"


def plot_evaluation(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write ``evaluation_figure(rows)`` to ``path`` (.png, .pdf or .svg)."""
    _save(evaluation_figure(rows), path)


def evaluation_figure(rows: Sequence[dict[str, Any]]) -> Figure:
    """Attack success and evasion against ε per (model, defense, λ, attack); with several λ,
    also clean accuracy against clean reject rate."""
    curves: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        curves[_series_key(row)].append(row)
    lams = {row.get("lam") for row in rows} - {None}
    height = 4.5 + 0.22 * ((len(curves) + 2) // 3)
    figure = Figure(figsize=(15 if len(lams) > 1 else 10, height), layout="constrained")
    axes = figure.subplots(1, 3 if len(lams) > 1 else 2)
    for index, key in enumerate(sorted(curves)):
        group = sorted(curves[key], key=lambda r: r["eps"])
        eps = [r["eps"] for r in group]
        style = series_style(index)
        axes[0].plot(
            eps,
            [100 * r["attack_success_rate"] for r in group],
            label=_series_label(group[0]),
            **style,
        )
        axes[1].plot(eps, [100 * r["evasion_rate"] for r in group], **style)
    unit = (
        "input units"
        if rows and rows[0].get("eps_unit") == "absolute"
        else ("fraction of input range")
    )
    axes[0].set(
        xlabel=f"ε ({unit})",
        ylabel="%",
        title="attack success (wrong or rejected)",
        ylim=(-2, 102),
    )
    axes[1].set(
        xlabel=f"ε ({unit})",
        ylabel="%",
        title="evasion (wrong and not rejected)",
        ylim=(-2, 102),
    )
    _legend_below(figure, axes[0], len(curves))
    if len(lams) > 1:
        _plot_trade_off(axes[2], rows)
    return figure


def _plot_trade_off(axes: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Clean accuracy against clean reject rate, one line per model+defense through its λ."""
    trade: dict[str, dict[float, tuple[float, float]]] = defaultdict(dict)
    for row in rows:
        if row.get("lam") is not None:
            trade[f"{row['model']}+{row['defense']}"][row["lam"]] = (
                100 * row["clean_reject_rate"],
                100 * row["clean_accuracy"],
            )
    for index, (label, points) in enumerate(sorted(trade.items())):
        ordered = sorted(points.items())
        axes.plot(
            [p[1][0] for p in ordered],
            [p[1][1] for p in ordered],
            label=label,
            **series_style(index),
        )
        for lam, (x, y) in ordered:
            axes.annotate(
                f"λ={lam:g}", (x, y), fontsize="x-small", xytext=(3, 3), textcoords="offset points"
            )
    axes.margins(x=0.15, y=0.1)  # room for the λ labels at the edges
    axes.set(xlabel="clean reject rate (%)", ylabel="clean accuracy (%)", title="λ trade-off")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(0.0, -0.15))
