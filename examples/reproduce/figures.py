"""Line figures of the report: panels of labelled curves, saved as PNG.

(Training curves use ``robustkit.plotting.plot_training``; these panels exist because the
report puts both threat models side by side and needs the ε axis in each one's unit.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure


@dataclass
class Curve:
    """One line: a legend label, x and y values, and matplotlib style keywords."""

    label: str
    x: list[float]
    y: list[float]
    style: dict = field(default_factory=dict)


@dataclass
class Panel:
    """One set of axes: title, axis labels and curves; ``logx`` for ε sweeps."""

    title: str
    xlabel: str
    ylabel: str
    curves: list[Curve]
    logx: bool = False
    ylim: tuple[float, float] | None = (-2, 102)


def save_panels(panels: list[Panel], path: Path, title: str = "", ncols: int = 2) -> None:
    """Draw ``panels`` in a grid of ``ncols`` columns and save a PNG at ``path``."""
    nrows = -(-len(panels) // ncols)
    figure = Figure(figsize=(6.2 * ncols, 4.3 * nrows))
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels, strict=False):
        for curve in panel.curves:
            ax.plot(curve.x, curve.y, marker="o", markersize=4, label=curve.label, **curve.style)
        if panel.logx:
            ax.set_xscale("log")
        ax.set(title=panel.title, xlabel=panel.xlabel, ylabel=panel.ylabel)
        if panel.ylim is not None:
            ax.set_ylim(*panel.ylim)
        ax.grid(alpha=0.3)
        if panel.curves:
            ax.legend(fontsize="small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
