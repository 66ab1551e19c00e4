"""Questions 1-8 of the study: its table beside robustkit's, the figures, and the gaps."""

from __future__ import annotations

from pathlib import Path

from cells import (
    EPS_LABEL,
    FIGURES,
    MISSING,
    SPACE_LABEL,
    Gap,
    Table,
    gap_section,
    is_gap,
    number,
    pct,
    pct_ci,
    study_pct,
)
from figures import Curve, Panel, save_panels
from results import Results
from rows import find, group_curves, model_label
from study import TABLES, StudyTable

from robustkit.plotting import plot_training


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
    gaps, notes = [], []
    for index, (run, row) in enumerate(zip(results.runs[q], results.training[q], strict=True)):
        study = table.rows[run.study_row] if run.study_row is not None else None
        name = f"q{q}_{index + 1}_{run.spec.name}_e{row['epochs']}_b{row['batch_size']}"
        name += f"_lr{row['lr']:g}.png"
        plot_training(
            row["history"],
            figures / name,
            f"Q{q}: {run.label}, {row['input']}, {row['epochs']} epochs, "
            f"batch {row['batch_size']}, lr {row['lr']:g}",
        )
        label = run.label
        if "diverged" in row:
            label += "²"
            notes.append(
                f"² `{row['diverged']['model']}` on `{row['diverged']['dataset']}` (the recipe "
                f"of the other rows) failed: {row['diverged']['error']}. The row shows "
                f"`{row['model']}` on `{row['dataset']}` instead: the same network on the "
                "data set's PCA features, which the network rescales to a range of 1."
            )
        out.add(
            [
                label,
                row["input"],
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
        *(line for note in notes for line in (note, "")),
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
                pct_ci(own, "attack_success_rate"),
                pct(own["zero_gradient_rate"]),
                pct(pixels["clean_accuracy"]),
                pct_ci(pixels, "attack_success_rate"),
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
                        model_label(rows[0]),
                        [r["eps"] for r in rows],
                        [100 * r["attack_success_rate"] for r in rows],
                    )
                    for rows in group_curves(results.grids[f"q6/{space}"], attack="fgsm")
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
        cells += [study_pct(study["attack_success"]), pct_ci(own, "attack_success_rate")]
        cells += [study["correct_rejects"], own["correct_rejects"]]
        if lam_column:
            cells += [study_pct(study["percent_rejected"]), pct_ci(own, "percent_rejected")]
        cells += [
            pct(pixels["clean_accuracy"]),
            pct_ci(pixels, "attack_success_rate"),
            pixels["correct_rejects"],
        ]
        if lam_column:
            cells += [pct_ci(pixels, "percent_rejected")]
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
        plotted = [
            Curve("attack success", eps, [100 * r["attack_success_rate"] for r in rows]),
            Curve("rejected", eps, [100 * r["rejected"] / r["n_attacked"] for r in rows]),
            Curve("evasion (wrong, not rejected)", eps, [100 * r["evasion_rate"] for r in rows]),
        ]
        panels.append(
            Panel(
                f"FGSM on rbf + reject (λ = {rows[0]['lam']:g}), {SPACE_LABEL[space]}",
                EPS_LABEL[space],
                "% of attacked samples",
                plotted,
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
        plotted = []
        for index, eps in enumerate(sorted({r["eps"] for r in rows})):
            at = {lam: find(rows, model="rbf", eps=eps, lam=lam) for lam in lams}
            color = {"color": f"C{index}"}
            plotted.append(
                Curve(
                    f"success, ε = {eps:g}",
                    lams,
                    [100 * at[lam]["attack_success_rate"] for lam in lams],
                    color,
                )
            )
            plotted.append(
                Curve(
                    f"rejected, ε = {eps:g}",
                    lams,
                    [100 * at[lam]["rejected"] / at[lam]["n_attacked"] for lam in lams],
                    {**color, "linestyle": "--"},
                )
            )
        panels.append(Panel(f"FGSM, {SPACE_LABEL[space]}", "λ", "% of attacked samples", plotted))
    return panels
