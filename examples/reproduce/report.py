"""The generated document: the study's tables beside robustkit's, figures, and the gaps.

Every table has the same layout: key columns, then ``X (study)`` / ``X (robustkit)``
pairs (and ``X (robustkit, pixels)`` for the pixel-space threat model). Study cells come
from ``study.py``; a cell with no study counterpart is ``–``.
"""

from __future__ import annotations

import datetime
import math
import platform
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from explanations import REASONS, ROW_REASONS
from figures import Curve, Panel, save_panels
from study import STUDY_SAMPLES, TABLES, StudyTable
from trainruns import SEED, TrainRun

import robustkit
from robustkit import PluginSpec
from robustkit.plotting import plot_training

#: Flag accuracies this many points below the study's, and anything this far off.
ACCURACY_BELOW = 1.5
FEW_POINTS = 3.0
MISSING = "–"
SPACE_LABEL = {"pca": "PCA-feature space", "pixels": "pixel space"}
EPS_LABEL = {"pca": "ε (PCA-feature units)", "pixels": "ε (fraction of the pixel range)"}
FIGURES = "figures"


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


# ----------------------------------------------------------------------------- cells


def pct(fraction: float | None) -> str:
    """A robustkit fraction as a percentage, ``87.5%``; ``n/a`` when undefined."""
    if fraction is None or (isinstance(fraction, float) and math.isnan(fraction)):
        return "n/a"
    return f"{100 * fraction:.1f}%"


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
        cells = [str(cell) for cell in cells]
        if len(cells) != len(self.headers):
            raise ValueError(f"row {cells} has {len(cells)} cells, expected {len(self.headers)}")
        self.rows.append(cells)

    def markdown(self) -> str:
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
        return self.robustkit - self.study

    def line(self) -> str:
        reason = ROW_REASONS.get((self.question, self.row, self.column)) or REASONS.get(
            (self.question, self.column), "(no explanation recorded)"
        )
        return (
            f"- {self.label}, {self.column}: robustkit {self.robustkit:.1f} vs study "
            f"{self.study:g} ({self.points:+.1f} points). {reason}"
        )


def is_gap(column: str, study: float, robustkit: float) -> bool:
    """Accuracy more than 1.5 points below, or any number more than 3 points off."""
    difference = robustkit - study
    if "accuracy" in column and difference < -ACCURACY_BELOW:
        return True
    return abs(difference) > FEW_POINTS


def gap_section(gaps: list[Gap]) -> list[str]:
    if not gaps:
        return ["Every number is within a few points of the study's (accuracy within 1.5)."]
    return [
        "Where robustkit differs by more than a few points (accuracy: more than 1.5 below):",
        "",
        *(gap.line() for gap in gaps),
    ]


# --------------------------------------------------------------------------- lookups


def model_name(row: dict[str, Any]) -> str:
    return str(row["model"]).split("(")[0]


def find(
    rows: list[dict[str, Any]],
    *,
    model: str,
    eps: float,
    attack: str = "fgsm",
    pca: Any = "any",
    lam: float | None = None,
) -> dict[str, Any]:
    """The one row of ``model`` (with model parameter ``pca``, unless "any") under
    ``attack`` at ``eps`` (and λ)."""
    label = PluginSpec.coerce(attack, "attack").label
    found = [
        row
        for row in rows
        if model_name(row) == model
        and row["attack"] == label
        and math.isclose(row["eps"], eps)
        and (pca == "any" or row["params"]["model"].get("pca") == pca)
        and (lam is None or math.isclose(row["lam"], lam))
    ]
    if len(found) != 1:
        raise KeyError(f"{len(found)} rows for {model} pca={pca} {label} ε={eps} λ={lam}")
    return found[0]


# ------------------------------------------------------------------------- questions


def training_section(q: int, results: Results, figures: Path) -> list[str]:
    """Questions 1-5: one row per run, the study's row beside it where there is one."""
    table: StudyTable = TABLES[q]
    out = Table(
        [
            "Model",
            "Input",
            "Epochs",
            "Batch size",
            "Learning rate",
            "Train accuracy (study)",
            "Train accuracy (robustkit)",
            "Test accuracy (study)",
            "Test accuracy (robustkit)",
            "Training seconds (study)",
            "Training seconds (robustkit)",
            "Curves",
        ]
    )
    gaps = []
    for index, (run, row) in enumerate(zip(results.runs[q], results.training[q], strict=True)):
        study = table.rows[run.study_row] if run.study_row is not None else None
        name = f"q{q}_{index + 1}_{run.spec.name}_e{row['epochs']}_b{row['batch_size']}"
        name += f"_lr{row['lr']:g}.png"
        plot_training(
            row["history"],
            figures / name,
            f"Q{q}: {run.label}, {run.input_name}, {row['epochs']} epochs, "
            f"batch {row['batch_size']}, lr {row['lr']:g}",
        )
        out.add(
            [
                run.label,
                run.input_name,
                row["epochs"],
                row["batch_size"],
                number(row["lr"]),
                study_pct(study["train_accuracy"]) if study else MISSING,
                pct(row["train_accuracy"]),
                study_pct(study["test_accuracy"]) if study else MISSING,
                pct(row["test_accuracy"]),
                number(study["seconds"]) if study else MISSING,
                f"{row['seconds']:.1f}",
                f"[png]({FIGURES}/{name})",
            ]
        )
        if study is None:
            continue
        for column, key in (
            ("train accuracy", "train_accuracy"),
            ("test accuracy", "test_accuracy"),
        ):
            if is_gap(column, study[key], 100 * row[key]):
                gaps.append(
                    Gap(
                        q,
                        run.study_row,
                        f"row {run.study_row + 1} ({run.label}, {study['epochs']} epochs, "
                        f"batch {study['batch_size']}, lr {number(study['lr'])})",
                        column,
                        float(study[key]),
                        100 * row[key],
                    )
                )
    seconds = sum(row["wall_seconds"] for row in results.training[q])
    study_seconds = sum(float(row["seconds"]) for row in table.rows)
    return [
        f"## Question {q}: {table.title}",
        "",
        out.markdown(),
        "",
        f"robustkit took {seconds:.0f} s for these {len(results.runs[q])} runs (wall time, "
        f"data loading included; the study's {len(table.rows)} rows took {study_seconds:.0f} s "
        "of training).",
        "",
        *gap_section(gaps),
        "",
    ]


#: Question 6's study rows → (model plugin, pca parameter in the pixel-space grid).
Q6_MODELS = {
    "Hinge loss": ("hinge", 128, "hinge, PCA 128"),
    "RBF loss": ("rbf", 128, "rbf, PCA 128"),
    "Hinge loss 784 dim": ("hinge", None, "hinge, 784 pixels¹"),
}


def fgsm_section(results: Results, figures: Path) -> list[str]:
    """Question 6: FGSM on three networks in both threat models."""
    table = TABLES[6]
    pca_rows, pixel_rows = results.grids["q6/pca"], results.grids["q6/pixels"]
    out = Table(
        [
            "Model",
            "ε",
            "Model accuracy (study)",
            "Model accuracy (robustkit)",
            "Attack success (study)",
            "Attack success (robustkit)",
            "Zero-gradient samples (robustkit)",
            "Model accuracy (robustkit, pixels)",
            "Attack success (robustkit, pixels)",
            "Zero-gradient samples (robustkit, pixels)",
        ]
    )
    gaps = []
    for index, study in enumerate(table.rows):
        name, pca, label = Q6_MODELS[str(study["model"])]
        pixels = find(pixel_rows, model=name, pca=pca, eps=study["eps"])
        own = pixels if pca is None else find(pca_rows, model=name, eps=study["eps"])
        out.add(
            [
                label,
                number(study["eps"]),
                study_pct(study["model_accuracy"]),
                pct(own["clean_accuracy"]),
                study_pct(study["attack_success"]),
                pct(own["attack_success_rate"]),
                pct(own["zero_gradient_rate"]),
                pct(pixels["clean_accuracy"]),
                pct(pixels["attack_success_rate"]),
                pct(pixels["zero_gradient_rate"]),
            ]
        )
        row_label = f"row {index + 1} ({label.rstrip('¹')}, ε = {number(study['eps'])})"
        for column, key, study_key in (
            ("model accuracy", "clean_accuracy", "model_accuracy"),
            ("attack success", "attack_success_rate", "attack_success"),
        ):
            if is_gap(column, study[study_key], 100 * own[key]):
                gaps.append(
                    Gap(6, index, row_label, column, float(study[study_key]), 100 * own[key])
                )
    figure = "q6_fgsm.png"
    save_panels(
        [
            Panel(
                f"FGSM, {SPACE_LABEL[space]}",
                EPS_LABEL[space],
                "attack success (%)",
                [
                    Curve(
                        _model_label(rows[0]),
                        [r["eps"] for r in rows],
                        [100 * r["attack_success_rate"] for r in rows],
                    )
                    for rows in _curves(results.grids[f"q6/{space}"], attack="fgsm")
                ],
                logx=True,
            )
            for space in ("pca", "pixels")
        ],
        figures / figure,
        "Question 6: FGSM against the undefended networks",
    )
    seconds = results.grid_seconds["q6/pca"] + results.grid_seconds["q6/pixels"]
    return [
        f"## Question 6: {table.title}",
        "",
        out.markdown(),
        "",
        "¹ The 784-pixel network has no PCA-feature space: in both threat models it is "
        "attacked in its own input, the pixels (ε a fraction of the pixel range).",
        "",
        f"![FGSM success against ε]({FIGURES}/{figure})",
        "",
        f"robustkit took {seconds:.0f} s for both grids (training 5 networks included).",
        "",
        *gap_section(gaps),
        "",
    ]


def reject_section(q: int, results: Results, figures: Path) -> list[str]:
    """Questions 7 and 8: the rejection defense, study rows beside both threat models."""
    table = TABLES[q]
    rows = {space: results.grids[f"q{q}/{space}"] for space in ("pca", "pixels")}
    n = rows["pca"][0]["n_attacked"]
    lam_column = "lam" in table.columns
    headers = ["Model", "λ", "ε", "Model accuracy (study)", "Model accuracy (robustkit)"]
    headers += ["Attack success (study)", "Attack success (robustkit)"]
    headers += ["Correct rejects of 100 (study)", f"Correct rejects of {n} (robustkit)"]
    if lam_column:
        headers += ["Percent rejected (study)", "Percent rejected (robustkit)"]
    headers += [
        "Model accuracy (robustkit, pixels)",
        "Attack success (robustkit, pixels)",
        f"Correct rejects of {n} (robustkit, pixels)",
    ]
    if lam_column:
        headers += ["Percent rejected (robustkit, pixels)"]
    out = Table(headers)
    gaps = []
    lam_default = rows["pca"][0]["lam"]
    for index, study in enumerate(table.rows):
        lam = float(study.get("lam", lam_default))
        own = find(rows["pca"], model="rbf", eps=study["eps"], lam=lam)
        pixels = find(rows["pixels"], model="rbf", eps=study["eps"], lam=lam)
        cells = ["rbf + reject", number(lam), number(study["eps"])]
        cells += [study_pct(study["model_accuracy"]), pct(own["clean_accuracy"])]
        cells += [study_pct(study["attack_success"]), pct(own["attack_success_rate"])]
        cells += [study["correct_rejects"], own["correct_rejects"]]
        if lam_column:
            cells += [study_pct(study["percent_rejected"]), pct(own["percent_rejected"])]
        cells += [
            pct(pixels["clean_accuracy"]),
            pct(pixels["attack_success_rate"]),
            pixels["correct_rejects"],
        ]
        if lam_column:
            cells += [pct(pixels["percent_rejected"])]
        out.add(cells)
        checks = [
            ("model accuracy", float(study["model_accuracy"]), 100 * own["clean_accuracy"]),
            ("attack success", float(study["attack_success"]), 100 * own["attack_success_rate"]),
            ("correct rejects", float(study["correct_rejects"]), 100 * own["correct_rejects"] / n),
        ]
        label = f"row {index + 1} (λ = {number(lam)}, ε = {number(study['eps'])})"
        gaps += [Gap(q, index, label, c, s, r) for c, s, r in checks if is_gap(c, s, r)]
    figure = f"q{q}_{'reject' if q == 7 else 'lambda'}.png"
    panels = _reject_panels(results, q) if q == 7 else _lambda_panels(results)
    save_panels(panels, figures / figure, f"Question {q}: {table.title.split(' (')[0]}")
    seconds = results.grid_seconds[f"q{q}/pca"] + results.grid_seconds[f"q{q}/pixels"]
    shared = " (the λ = 400 networks come from question 7's grids)" if q == 8 else ""
    return [
        f"## Question {q}: {table.title}",
        "",
        out.markdown(),
        "",
        f"![Question {q}]({FIGURES}/{figure})",
        "",
        f"robustkit took {seconds:.0f} s for both grids{shared}.",
        "",
        *gap_section(gaps),
        "",
    ]


def _reject_panels(results: Results, q: int) -> list[Panel]:
    panels = []
    for space in ("pca", "pixels"):
        rows = sorted(results.grids[f"q{q}/{space}"], key=lambda r: r["eps"])
        eps = [r["eps"] for r in rows]
        curves = [
            Curve("attack success", eps, [100 * r["attack_success_rate"] for r in rows]),
            Curve("rejected", eps, [100 * r["rejected"] / r["n_attacked"] for r in rows]),
            Curve("evasion (wrong, not rejected)", eps, [100 * r["evasion_rate"] for r in rows]),
        ]
        panels.append(
            Panel(
                f"FGSM on rbf + reject (λ = {rows[0]['lam']:g}), {SPACE_LABEL[space]}",
                EPS_LABEL[space],
                "% of attacked samples",
                curves,
                logx=True,
            )
        )
    return panels


def _lambda_panels(results: Results) -> list[Panel]:
    panels = []
    for space in ("pca", "pixels"):
        rows = results.grids[f"q8/{space}"]
        lams = sorted({r["lam"] for r in rows})
        first = {lam: next(r for r in rows if r["lam"] == lam) for lam in lams}
        panels.append(
            Panel(
                f"clean test set, {SPACE_LABEL[space]} networks",
                "λ",
                "%",
                [
                    Curve("accuracy", lams, [100 * first[lam]["clean_accuracy"] for lam in lams]),
                    Curve(
                        "rejected",
                        lams,
                        [100 * first[lam]["clean_reject_rate"] for lam in lams],
                    ),
                ],
            )
        )
        curves = []
        for index, eps in enumerate(sorted({r["eps"] for r in rows})):
            at = {lam: find(rows, model="rbf", eps=eps, lam=lam) for lam in lams}
            color = {"color": f"C{index}"}
            curves.append(
                Curve(
                    f"success, ε = {eps:g}",
                    lams,
                    [100 * at[lam]["attack_success_rate"] for lam in lams],
                    color,
                )
            )
            curves.append(
                Curve(
                    f"rejected, ε = {eps:g}",
                    lams,
                    [100 * at[lam]["rejected"] / at[lam]["n_attacked"] for lam in lams],
                    {**color, "linestyle": "--"},
                )
            )
        panels.append(Panel(f"FGSM, {SPACE_LABEL[space]}", "λ", "% of attacked samples", curves))
    return panels


# ------------------------------------------------------------------------ stronger


def _model_label(row: dict[str, Any]) -> str:
    params = row["params"]["model"]
    inputs = f"PCA {params['pca']}" if params.get("pca") else None
    if inputs is None:
        inputs = "PCA 128" if "pca" in row["dataset"] else "784 pixels"
    return f"{model_name(row)}, {inputs}"


def _curves(rows: list[dict[str, Any]], **match: Any) -> list[list[dict[str, Any]]]:
    """Rows grouped by (model, defense, λ, attack), each sorted by ε."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if all(row[k] == v for k, v in match.items()):
            key = (row["model"], row["defense"], row["lam"], row["attack"])
            groups.setdefault(key, []).append(row)
    return [sorted(group, key=lambda r: r["eps"]) for group in groups.values()]


ATTACK_NAMES = {
    "fgsm": "FGSM",
    "pgd(steps=50)": "PGD-50, training loss",
    "pgd(loss=margin,steps=50)": "PGD-50, margin",
    "pgd(reject_aware=True,steps=50)": "PGD-50, rejection-aware",
    "noise": "random signs",
}


def stronger_section(results: Results, figures: Path) -> list[str]:
    """PGD, margin PGD and the rejection-aware PGD on the same networks."""
    lines = [
        "## Beyond the study: PGD and an attacker who knows the defense",
        "",
        "The study attacked with FGSM only. The same trained networks now face 50-step PGD "
        "(random start, step 2.5·ε/50) on the training loss, PGD on the margin "
        "(best wrong score minus true score, which a zero hinge loss cannot stop), the "
        "rejection-aware PGD (margin against the best of the true class *and the reject "
        "option*, so it looks for a wrong class that is not rejected) and random sign "
        "noise as a baseline. *Evasion* (wrong and not rejected) is what counts against a "
        "rejection defense; the study's attack success also counts rejected inputs.",
        "",
    ]
    for space in ("pca", "pixels"):
        rows = results.grids[f"undefended/{space}"]
        eps_values = sorted({r["eps"] for r in rows})
        out = Table(
            ["Model", "Attack"]
            + [f"Success at ε = {e:g} (robustkit)" for e in eps_values]
            + ["Zero-gradient samples (robustkit)"]
        )
        for group in _curves(rows):
            out.add(
                [_model_label(group[0]), ATTACK_NAMES.get(group[0]["attack"], group[0]["attack"])]
                + [pct(r["attack_success_rate"]) for r in group]
                + [pct(group[0]["zero_gradient_rate"])]
            )
        lines += [f"Undefended networks, {SPACE_LABEL[space]}:", "", out.markdown(), ""]
    lam = 400.0
    reject = {space: results.grids[f"reject/{space}"] for space in ("pca", "pixels")}
    out = Table(
        ["Attack", "ε"]
        + [
            f"{metric} (robustkit{suffix})"
            for suffix in ("", ", pixels")
            for metric in ("Attack success", "Evasion", "Rejected")
        ]
    )
    attacks = [a for a in ATTACK_NAMES if any(r["attack"] == a for r in reject["pca"])]
    eps_values = sorted({r["eps"] for r in reject["pca"]})
    for attack in attacks:
        for eps in eps_values:
            cells = [ATTACK_NAMES[attack], number(eps)]
            for space in ("pca", "pixels"):
                row = find(reject[space], model="rbf", attack=attack, eps=eps, lam=lam)
                cells += [
                    pct(row["attack_success_rate"]),
                    pct(row["evasion_rate"]),
                    pct(row["rejected"] / row["n_attacked"]),
                ]
            out.add(cells)
    lines += [
        f"The rejection defense (rbf + reject, λ = {lam:g}, question 7's networks):",
        "",
        out.markdown(),
        "",
    ]
    sweep = Table(
        ["λ", "ε"]
        + [
            f"{name} (robustkit{suffix})"
            for suffix in ("", ", pixels")
            for name in ("Evasion, FGSM", "Evasion, rejection-aware PGD")
        ]
    )
    aware = "pgd(reject_aware=True,steps=50)"
    for lam_value in sorted({r["lam"] for r in reject["pca"]}):
        for eps in (0.1, 0.5, 1.0):
            cells = [number(lam_value), number(eps)]
            for space in ("pca", "pixels"):
                for attack in ("fgsm", aware):
                    row = find(reject[space], model="rbf", attack=attack, eps=eps, lam=lam_value)
                    cells.append(pct(row["evasion_rate"]))
            sweep.add(cells)
    lines += ["Every λ of question 8:", "", sweep.markdown(), ""]
    figure = "stronger.png"
    panels = []
    for space in ("pca", "pixels"):
        curves = [
            Curve(
                ATTACK_NAMES[group[0]["attack"]],
                [r["eps"] for r in group],
                [100 * r["evasion_rate"] for r in group],
            )
            for group in _curves(reject[space], lam=lam)
        ]
        panels.append(
            Panel(
                f"rbf + reject (λ = {lam:g}), {SPACE_LABEL[space]}",
                EPS_LABEL[space],
                "evasion: wrong and not rejected (%)",
                curves,
                logx=True,
            )
        )
    for space in ("pca", "pixels"):
        curves = [
            Curve(
                f"{_model_label(group[0])}: {ATTACK_NAMES[group[0]['attack']]}",
                [r["eps"] for r in group],
                [100 * r["attack_success_rate"] for r in group],
                {"color": f"C{index // 4}", "linestyle": ["-", "--", ":", "-."][index % 4]},
            )
            for index, group in enumerate(_curves(results.grids[f"undefended/{space}"]))
        ]
        panels.append(
            Panel(
                f"undefended networks, {SPACE_LABEL[space]}",
                EPS_LABEL[space],
                "attack success (%)",
                curves,
                logx=True,
            )
        )
    save_panels(panels, figures / figure, "Stronger attacks on the study's networks")
    seconds = sum(
        results.grid_seconds[f"{name}/{space}"]
        for name in ("undefended", "reject")
        for space in ("pca", "pixels")
    )
    lines += [
        f"![Stronger attacks]({FIGURES}/{figure})",
        "",
        f"robustkit took {seconds:.0f} s for these attacks (networks reused from questions 6-8).",
        "",
        "What changes:",
        "",
        *stronger_conclusions(results.grids, lam),
        "",
    ]
    return lines


def stronger_conclusions(grids: dict[str, list[dict[str, Any]]], lam: float) -> list[str]:
    """What the stronger attacks change, in numbers, per threat model."""
    aware = "pgd(reject_aware=True,steps=50)"
    lines = []
    for space in ("pca", "pixels"):
        rows = grids[f"reject/{space}"]
        eps = max(r["eps"] for r in rows)
        fgsm = find(rows, model="rbf", attack="fgsm", eps=eps, lam=lam)
        best = find(rows, model="rbf", attack=aware, eps=eps, lam=lam)
        lines.append(
            f"- Rejection defense, {SPACE_LABEL[space]}, ε = {eps:g}: FGSM succeeds on "
            f"{pct(fgsm['attack_success_rate'])} but {fgsm['rejected']} of "
            f"{fgsm['n_attacked']} are rejected (evasion {pct(fgsm['evasion_rate'])}); the "
            f"rejection-aware PGD evades on {pct(best['evasion_rate'])} with "
            f"{best['rejected']} rejected."
        )
    return lines


# --------------------------------------------------------------------------- document


def threat_model(results: Results) -> list[str]:
    meta = results.grid_meta.get("q6/pca", {})
    low, high = meta.get("bounds", [float("nan"), float("nan")])
    n = results.grids["q6/pca"][0]["n_attacked"]
    return [
        "## Threat model",
        "",
        "- **White-box L∞ attacks.** The attacker knows the weights and moves every input "
        "coordinate by at most ε, then clips to the data's range. FGSM follows the sign of "
        "the gradient of the network's own training loss, as the study did.",
        "- **PCA-feature space: the study's setting, columns `(robustkit)`.** The data set "
        "is Fashion-MNIST projected on its first 128 principal components (fitted on the "
        "training pixels scaled to [0, 1]); the networks take these features as input and "
        'the attack perturbs them. ε is in feature units (`eps_unit = "absolute"`); the '
        f"features range from {low:.1f} to {high:.1f} and the first one has a standard "
        "deviation of about 4.5, so ε = 1 is a small change of the image.",
        "- **Pixel space: columns `(robustkit, pixels)`.** The attack perturbs the 784 "
        "pixels; the PCA projection is part of the 128-D networks, so gradients flow "
        "through it. ε is a fraction of the pixel range, i.e. pixel units on [0, 1]: "
        "ε = 0.1 moves each pixel by up to 25.5 of 255 grey levels and ε = 1 is "
        "unbounded.",
        f"- **Samples.** Each (network, defense) is attacked on the first {n} test samples "
        "it classifies correctly (the study attacked "
        f"{STUDY_SAMPLES[6]} samples in question 6 and {STUDY_SAMPLES[7]} in questions "
        "7-8, so its question 6 numbers move in steps of 10 points). Model accuracy and "
        "the clean reject rate are over all 10,000 test samples; a rejected test sample "
        "counts as wrong.",
        f"- **Seed {SEED}** for every network (initialisation, shuffling, training noise), "
        "defense (noise samples) and attack (random starts), so a rerun gives the same "
        "numbers (seconds aside).",
        "- **Metrics.** *Attack success* = no longer the true label, a rejection counts "
        '(the study\'s "attack accuracy"); *correct rejects* = adversarial inputs '
        "rejected; *percent rejected* = correct rejects / successes; *evasion* = wrong "
        "and not rejected.",
        "",
    ]


def seconds_section(results: Results) -> list[str]:
    out = Table(["Part", "Seconds (study, training only)", "Seconds (robustkit)"])
    for q in results.runs:
        study = sum(float(row["seconds"]) for row in TABLES[q].rows)
        mine = sum(row["wall_seconds"] for row in results.training[q])
        out.add([f"Question {q}", f"{study:.0f}", f"{mine:.0f}"])
    for q in (6, 7, 8):
        mine = results.grid_seconds[f"q{q}/pca"] + results.grid_seconds[f"q{q}/pixels"]
        out.add([f"Question {q} (both threat models)", MISSING, f"{mine:.0f}"])
    mine = sum(
        seconds
        for key, seconds in results.grid_seconds.items()
        if key.split("/")[0] in ("undefended", "reject")
    )
    out.add(["Stronger attacks", MISSING, f"{mine:.0f}"])
    out.add(["Whole run (wall clock)", MISSING, f"{results.total_seconds:.0f}"])
    return [
        "## Time",
        "",
        out.markdown(),
        "",
        f"Parts ran in {results.jobs} worker process(es), one BLAS thread each, so the "
        "parts add up to more than the wall clock. The study's seconds are its training "
        "durations alone.",
        "",
    ]


def write_report(results: Results, path: Path) -> None:
    """Write the markdown document at ``path`` and its figures in ``figures/`` beside it."""
    path = Path(path)
    figures = path.parent / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    command = "python examples/reproduce/run_all.py --data-dir DATA" + (
        " --quick" if results.quick else ""
    )
    lines = [
        "# Reproducing the study with robustkit",
        "",
        "<!-- Generated by examples/reproduce/run_all.py: do not edit by hand. -->",
        "",
        f"Generated by `{command}` on "
        f"{datetime.date.today().isoformat()} in {results.total_seconds:.0f} s "
        f"(robustkit {robustkit.__version__}, Python {platform.python_version()}, numpy "
        f"{np.__version__}). The study is Fadaeinedjad, *Deep Learning with Applications, "
        "HW 1*: two small networks on Fashion-MNIST reduced to 128 dimensions by PCA, "
        "FGSM attacks and a rejection defense. Each table puts the study's numbers "
        "(`study`) beside robustkit's (`robustkit`); the recipes are in "
        "`examples/reproduce/`.",
        "",
    ]
    if results.quick:
        lines += [
            "> **Quick mode**: a few hundred samples and one or two epochs; the numbers "
            "only show that the generator works and are not comparable with the study.",
            "",
        ]
    lines += threat_model(results)
    for q in results.runs:
        lines += training_section(q, results, figures)
    lines += fgsm_section(results, figures)
    lines += reject_section(7, results, figures)
    lines += reject_section(8, results, figures)
    lines += stronger_section(results, figures)
    lines += seconds_section(results)
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
