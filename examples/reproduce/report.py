"""The generated document: summary, threat model, questions 1-8, the stronger attacks,
robustkit's sanity checks and the time each part took."""

from __future__ import annotations

import datetime
import platform
import re
from pathlib import Path

import numpy as np
from beyond import aware_outcome, stronger_section
from cells import ACCURACY_BELOW, FIGURES, MISSING, SPACE_LABEL, Table, pct
from defended import defended_section
from grids import QUICK_SAMPLES
from noise_class import noise_section
from questions import fgsm_section, reject_section, training_section
from results import Results
from rows import attack_key, find
from study import STUDY_SAMPLES, TABLES
from trainruns import QUICK_DATA, QUICK_EPOCHS, SEED

import robustkit

#: Names of the PNGs this report writes (older ones that it no longer links are removed).
GENERATED_FIGURE = re.compile(r"^(q\d_.*|stronger.*)\.png$")


def summary_section(results: Results) -> list[str]:
    """The findings in five bullets, every number from this run."""
    total, exceptions, diverged = 0, [], 0
    for q, runs in results.runs.items():
        for run, row in zip(runs, results.training[q], strict=True):
            diverged += "diverged" in row
            if run.study_row is None:
                continue
            total += 1
            gap = 100 * row["test_accuracy"] - TABLES[q].rows[run.study_row]["test_accuracy"]
            if gap < -ACCURACY_BELOW:
                exceptions.append(f"question {q} row {run.study_row + 1} ({gap:+.1f} points)")
    study_seconds = sum(float(r["seconds"]) for q in results.runs for r in TABLES[q].rows)
    train_seconds = sum(r["wall_seconds"] for rows in results.training.values() for r in rows)
    training = (
        f"{total - len(exceptions)} of {total} study rows reach the study's test accuracy "
        "within 1.5 points or better"
    )
    if exceptions:
        training += f"; below: {', '.join(exceptions)}"
    if diverged:
        training += (
            f". {diverged} recipe diverged in robustkit and was replaced by a stated fallback "
            "(question 3, footnote ²)"
        )
    pca = results.grids["q6/pca"]
    eps = max(r["eps"] for r in pca)
    hinge = find(pca, model="hinge", eps=eps)
    rbf = find(pca, model="rbf", eps=eps)
    rejects = {
        space: max(r["rejected"] for r in results.grids[f"q8/{space}"] if attack_key(r) == "fgsm")
        for space in ("pca", "pixels")
    }
    study_rejects = [
        int(r["correct_rejects"]) for q in (7, 8) for r in TABLES[q].rows if r["eps"] >= 0.3
    ]
    spread = {
        space: 100
        * (
            max(r["clean_accuracy"] for r in results.grids[f"q8/{space}"])
            - min(r["clean_accuracy"] for r in results.grids[f"q8/{space}"])
        )
        for space in ("pca", "pixels")
    }
    n = pca[0]["n_attacked"]
    low, high = min(study_rejects), max(study_rejects)
    between = rejects["pca"] <= low and high <= rejects["pixels"]
    study_place = "lie between the two" if between else "do not lie between the two"
    lam_verdict = ", as the study found" if max(spread.values()) <= 3 else ""
    outcome = aware_outcome(results.grids)
    holds = (
        "the defense holds only against an attacker who ignores it"
        if outcome.defeats_defense
        else "the defense keeps part of its value"
    )
    return [
        "## Summary",
        "",
        f"- **Training (questions 1-5).** {training}.",
        f"- **Time.** The study's training took {study_seconds / 3600:.1f} hours; robustkit "
        f"trains the same rows and the comparison rows in {train_seconds:.0f} s of worker "
        f"time, and runs the whole reproduction, attacks included, in "
        f"{results.total_seconds:.0f} s on {results.jobs} process(es).",
        "- **FGSM (question 6).** As the study found, FGSM on the hinge loss is capped by "
        f"samples whose loss is zero: {pct(hinge['zero_gradient_rate'])} of them in "
        f"PCA-feature space, so success stays at {pct(hinge['attack_success_rate'])} up to "
        f"ε = {eps:g}, while it reaches {pct(rbf['attack_success_rate'])} on the RBF "
        "network, whose loss is never zero.",
        f"- **Rejection (questions 7-8).** In the study's PCA-feature space robustkit's "
        f"defense rejects at most {rejects['pca']} of {n} FGSM inputs, in pixel space up to "
        f"{rejects['pixels']}; the study's rejects, {low}-{high} of 100 at ε ≥ 0.3, "
        f"{study_place}. λ from 50 to 550 moves clean accuracy by at most "
        f"{max(spread.values()):.1f} points{lam_verdict}.",
        "- **Stronger attacks.** Against the rejection-aware PGD, at most "
        f"{outcome.most_rejected} of {outcome.n} inputs are rejected (every λ, ε and threat "
        f"model) and at ε = {outcome.eps:g} it evades on {pct(outcome.evasion)} (lowest over λ "
        "and threat models): "
        f"{holds}. PGD on the margin breaks the hinge "
        "network's zero-gradient cap.",
        "",
    ]


def threat_model(results: Results) -> list[str]:
    """Where ε is measured, on which samples, with which seed, and what the metrics mean."""
    meta = results.grid_meta.get("q6/pca", {})
    low, high = meta.get("bounds", [float("nan"), float("nan")])
    n = results.grids["q6/pca"][0]["n_attacked"]
    n_test = meta.get("n_test", 10_000)
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
        'it classifies correctly (`samples = "correct"` in the grids; robustkit\'s default '
        "is the first N test samples, the same for every network, with clean errors "
        "counted as not robust). The study attacked "
        f"{STUDY_SAMPLES[6]} samples in question 6 and {STUDY_SAMPLES[7]} in questions "
        "7-8, so its question 6 numbers move in steps of 10 points. Model accuracy and "
        f"the clean reject rate are over all {n_test:,} test samples; a rejected test sample "
        "counts as wrong.",
        f"- **Seed {SEED}** for every network (initialisation, shuffling, training noise), "
        "defense (noise samples) and attack (random starts), so a rerun gives the same "
        "numbers (seconds aside). Every part runs with one BLAS thread; another thread "
        "count changes the order of floating-point sums and can move a count by one or "
        "two (e.g. `robustkit eval --config examples/reproduce/q7_reject_pca.toml` "
        "matches these tables with `OPENBLAS_NUM_THREADS=1`).",
        "- **Metrics.** *Attack success* = no longer the true label, a rejection counts "
        '(the study\'s "attack accuracy"); *correct rejects* = adversarial inputs '
        "rejected; *percent rejected* = correct rejects / successes; *evasion* = wrong "
        "and not rejected; *robust accuracy* = still correct (not rejected) under the "
        "attack. `a ± b` is a rate and the larger distance to its 95% Wilson interval "
        "(at n = 100 a rate of 50% has an interval of about ±10 points).",
        "",
    ]


def warnings_section(results: Results) -> list[str]:
    """robustkit's sanity checks (Carlini et al.'s checklist) on every grid, verbatim."""
    lines = [
        "## Sanity checks",
        "",
        "robustkit checks every evaluation against the checklist of Carlini et al. (success "
        "rising with ε, noise weaker than gradient attacks, few zero gradients, unbounded "
        "attacks — ε covering the whole input range — reaching 95%). A warning on the hinge "
        "network's loss is the study's own finding: where the hinge loss is zero, an attack "
        "that follows it has nothing to follow; the margin-loss PGD below does not stall.",
        "",
    ]
    for key in sorted(results.grid_warnings):
        warnings = results.grid_warnings[key]
        grid, space = key.split("/")
        lines.append(f"- `{grid}`, {SPACE_LABEL[space]}:" + ("" if warnings else " none"))
        lines += [f"  - {warning}" for warning in warnings]
    return [*lines, ""]


def seconds_section(results: Results) -> list[str]:
    """The seconds of every part beside the study's training durations."""
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
    noise = sum(s for key, s in results.grid_seconds.items() if key.startswith("noise-"))
    out.add(["Noise distributions (question 7)", MISSING, f"{noise:.0f}"])
    defended = sum(s for key, s in results.grid_seconds.items() if key.startswith("defended-"))
    out.add(["The study, defended (training included)", MISSING, f"{defended:.0f}"])
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
            f"> **Quick mode**: {QUICK_DATA['n_train']:,} training samples, at most "
            f"{QUICK_EPOCHS} epochs (one at batch size 1), {QUICK_SAMPLES} attacked samples; "
            "the numbers "
            "only show that the generator works and are not comparable with the study.",
            "",
        ]
    lines += summary_section(results)
    lines += threat_model(results)
    for q in results.runs:
        lines += training_section(q, results, figures)
    lines += fgsm_section(results, figures)
    lines += reject_section(7, results, figures)
    lines += noise_section(results.grids)
    lines += reject_section(8, results, figures)
    lines += stronger_section(results, figures)
    lines += defended_section(results.grids)
    lines += warnings_section(results)
    lines += seconds_section(results)
    text = "\n".join(lines).rstrip() + "\n"
    path.write_text(text, encoding="utf-8")
    linked = set(re.findall(rf"\]\({FIGURES}/([^)]+\.png)\)", text))
    for stale in figures.glob("*.png"):  # figures of an older version of this report
        if stale.name not in linked and GENERATED_FIGURE.match(stale.name):
            stale.unlink()
