"""PNG figures: training curves, attack success against ε, and the λ trade-off."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure

from .persistence import atomic_write


def _save(figure: Figure, path: str | os.PathLike) -> None:
    figure.tight_layout()
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=120)


def plot_training(
    history: Sequence[dict[str, float]], path: str | os.PathLike, title: str = ""
) -> None:
    """Accuracy (train, test) and loss per epoch, side by side."""
    figure = Figure(figsize=(10, 4))
    accuracy, loss = figure.subplots(1, 2)
    epochs = [record["epoch"] for record in history]
    for key, label in (("train_accuracy", "train"), ("test_accuracy", "test")):
        if history and key in history[0]:
            accuracy.plot(
                epochs, [100 * record[key] for record in history], marker="o", label=label
            )
    accuracy.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    accuracy.legend()
    loss.plot(epochs, [record["loss"] for record in history], marker="o", color="C3")
    loss.set(xlabel="epoch", ylabel="mean training loss", title="loss")
    if title:
        figure.suptitle(title)
    _save(figure, path)


def plot_evaluation(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Attack success and evasion against ε per (model, defense, λ, attack); with several λ,
    also clean accuracy against clean reject rate."""
    curves: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        lam = f" λ={row['lam']:g}" if row.get("lam") is not None else ""
        curves[f"{row['model']}+{row['defense']}{lam} / {row['attack']}"].append(row)
    lams = {row.get("lam") for row in rows} - {None}
    figure = Figure(figsize=(15 if len(lams) > 1 else 10, 4.5))
    axes = figure.subplots(1, 3 if len(lams) > 1 else 2)
    for index, (label, group) in enumerate(sorted(curves.items())):
        group = sorted(group, key=lambda r: r["eps"])
        eps = [r["eps"] for r in group]
        color = f"C{index % 10}"
        axes[0].plot(
            eps,
            [100 * r["attack_success_rate"] for r in group],
            marker="o",
            color=color,
            label=label,
        )
        axes[1].plot(eps, [100 * r["evasion_rate"] for r in group], marker="o", color=color)
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
    axes[0].legend(fontsize="small")
    if len(lams) > 1:
        trade: dict[str, dict[float, tuple[float, float]]] = defaultdict(dict)
        for row in rows:
            if row.get("lam") is not None:
                trade[f"{row['model']}+{row['defense']}"][row["lam"]] = (
                    100 * row["clean_reject_rate"],
                    100 * row["clean_accuracy"],
                )
        for label, points in sorted(trade.items()):
            ordered = sorted(points.items())
            axes[2].plot(
                [p[1][0] for p in ordered], [p[1][1] for p in ordered], marker="o", label=label
            )
            for lam, (x, y) in ordered:
                axes[2].annotate(f"λ={lam:g}", (x, y), fontsize="x-small")
        axes[2].set(
            xlabel="clean reject rate (%)", ylabel="clean accuracy (%)", title="λ trade-off"
        )
        axes[2].legend(fontsize="small")
    _save(figure, path)
