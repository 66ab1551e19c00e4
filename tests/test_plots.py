"""Figures: the suffix picks the format, many series stay distinguishable, λ in numeric
order, legends outside the data."""

from __future__ import annotations

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from robustkit import RobustkitError
from robustkit.plotting import check_plot_path, evaluation_figure, plot_evaluation, plot_training


def rows(models=3, attacks=2, lams=(None,)):
    out = []
    for m in range(models):
        for lam in lams:
            for a in range(attacks):
                for k, eps in enumerate((0.05, 0.1, 0.3)):
                    out.append(
                        {
                            "model": f"model{m}",
                            "defense": "reject",
                            "lam": lam,
                            "attack": f"attack{a}",
                            "eps": eps,
                            "eps_unit": "range",
                            "attack_success_rate": 0.2 * k + 0.01 * m,
                            "evasion_rate": 0.1 * k,
                            "clean_reject_rate": 0.01 * (lam or 0) / 100,
                            "clean_accuracy": 0.9 - 0.001 * (lam or 0),
                        }
                    )
    return out


@pytest.mark.parametrize(
    ("suffix", "magic"), [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml")]
)
def test_the_suffix_picks_the_format(tmp_path, suffix, magic):
    plot_evaluation(rows(), tmp_path / f"e{suffix}")
    assert (tmp_path / f"e{suffix}").read_bytes().startswith(magic)
    history = [{"epoch": 1, "loss": 1.0, "train_accuracy": 0.5, "test_accuracy": 0.4}]
    plot_training(history, tmp_path / f"t{suffix}")
    assert (tmp_path / f"t{suffix}").read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["out.jpg", "out", "out.png.txt"])
def test_other_suffixes_are_errors(name):
    with pytest.raises(RobustkitError, match=r"accepted: \.png, \.pdf, \.svg"):
        check_plot_path(name)


def test_twelve_and_more_series_look_different():
    figure = evaluation_figure(rows(models=6, attacks=4))  # 24 series
    lines = figure.axes[0].get_lines()
    styles = {(line.get_color(), line.get_linestyle(), line.get_marker()) for line in lines}
    assert len(lines) == 24 and len(styles) == 24


def test_lambda_is_in_numeric_order():
    figure = evaluation_figure(rows(models=1, attacks=1, lams=(400.0, 50.0, 100.0)))
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert [label.split("λ=")[1].split()[0] for label in labels] == ["50", "100", "400"]
    trade_off = figure.axes[2].get_lines()[0]
    assert list(trade_off.get_xdata()) == sorted(trade_off.get_xdata())


def test_legends_do_not_cover_the_data():
    figure = evaluation_figure(rows(models=6, attacks=2, lams=(50.0, 400.0)))
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = [*figure.legends, *(ax.get_legend() for ax in figure.axes if ax.get_legend())]
    assert legends
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for axes in figure.axes:
            assert not box.overlaps(axes.get_window_extent(renderer))
