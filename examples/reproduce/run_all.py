"""Reproduce every table of the study in one command and write docs/reproduction.md.

    python examples/reproduce/run_all.py --data-dir DATA [--out docs/reproduction.md]
        [--quick] [--jobs 2]

Questions 1-5 train one network per table row (``q1_hinge.py`` ... ``q5_noise.py``);
questions 6-8 evaluate the grids ``q6_*.toml`` ... ``q8_*.toml`` in PCA-feature space
(the study's setting) and in pixel space; ``stronger.py`` adds PGD and the
rejection-aware attack; ``noise_class.py`` runs question 7 with each noise distribution
of the defense; ``defended.py`` trains the pixel-space networks with each defense and
sets robust accuracy under ``auto`` beside certified accuracy. The document, with the
study's tables beside robustkit's and the figures in ``<out folder>/figures/``, is
generated: do not edit it by hand.
``--quick`` runs everything on a few hundred samples and one or two epochs (for tests).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import q1_hinge
import q2_rbf
import q3_sgd
import q4_raw_pixels
import q5_noise
from defended import COSTS as DEFENDED_COSTS
from defended import run_defended
from grids import load_grid, run_grid, with_attacks
from joblib import Parallel, delayed
from noise_class import run_noise_grids
from report import Results, write_report
from stronger import STRONGER_GRIDS
from threadpoolctl import threadpool_limits
from trainruns import TrainRun, run_training

from robustkit import EvaluationResult

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = {m.QUESTION: m.RUNS for m in (q1_hinge, q2_rbf, q3_sgd, q4_raw_pixels, q5_noise)}
SPACES = ("pca", "pixels")
#: Grids that share trained models run in one task, in order, through one model cache.
GRID_GROUPS = {
    "undefended": ["q6_fgsm"],
    "reject": ["q7_reject", "q8_lambda"],
}


@dataclass(frozen=True)
class Task:
    """One unit of work for a worker: a training run, or a group of grids in one space."""

    kind: str  # "train", "grids", "noise" (question 7's noise distributions), "defended"
    key: tuple
    cost: float  # rough seconds, to start the longest tasks first

    def describe(self) -> str:
        """What the task does, in words, for the progress lines."""
        if self.kind == "train":
            question, index, run = self.key
            return f"trained question {question}, row {index + 1}: {run.model}"
        group, space = self.key
        if self.kind == "defended":
            return f"trained and attacked the {group} defense in pixel space"
        if self.kind == "noise":
            return "compared question 7's noise distributions in PCA-feature space"
        grids = ", ".join(GRID_GROUPS[group])
        where = "PCA-feature space" if space == "pca" else "pixel space"
        return f"evaluated the {group} grids ({grids} and stronger attacks) in {where}"

    def run(self, data_dir: str, quick: bool, cache_root: str) -> dict[str, Any]:
        """Do the work with one BLAS thread (the matrices are small; two workers share
        the cores) and return plain data."""
        with threadpool_limits(limits=1, user_api="blas"):
            if self.kind == "train":
                question, index, run = self.key
                return {"train": (question, index, run_training(run, data_dir, quick=quick))}
            if self.kind == "noise":
                return {"grids": run_noise_grids(data_dir, quick=quick)}
            if self.kind == "defended":
                return {"grids": run_defended(self.key[0], data_dir, quick=quick)}
            return {"grids": _run_group(*self.key, data_dir, quick, cache_root)}


def _run_group(
    group: str, space: str, data_dir: str, quick: bool, cache_root: str
) -> list[tuple[str, EvaluationResult, float]]:
    """The group's grids in order, then its stronger attacks, sharing one model cache."""
    cache = Path(cache_root) / f"{group}-{space}"
    out = []
    grid = None
    for name in GRID_GROUPS[group]:
        grid = load_grid(f"{name}_{space}", data_dir, quick=quick)
        result, seconds = run_grid(grid, cache)
        out.append((f"{name.split('_')[0]}/{space}", result, seconds))
    for name, base, attacks, eps in STRONGER_GRIDS:
        if name == group:
            grid = load_grid(f"{base}_{space}", data_dir, quick=quick)
            grid = with_attacks(grid, attacks, eps, quick=quick)
            result, seconds = run_grid(grid, cache)
            out.append((f"{name}/{space}", result, seconds))
    return out


def _train_cost(run: TrainRun) -> float:
    params = run.spec.params
    per_epoch = 0.6 if params.get("batch_size", 128) > 1 else 4.0
    if run.spec.name == "rbf":
        per_epoch *= 2
    if not params.get("pca"):
        per_epoch *= 2
    return 3 + per_epoch * params.get("epochs", 10)


def tasks() -> list[Task]:
    """Every task, longest first."""
    out = [
        Task("train", (question, index, run), _train_cost(run))
        for question, runs in QUESTIONS.items()
        for index, run in enumerate(runs)
    ]
    models = {"undefended": 3, "reject": 5}
    for group in GRID_GROUPS:
        for space in SPACES:
            out.append(Task("grids", (group, space), 15 * models[group]))
    out.append(Task("noise", ("noise", "pca"), 60))
    out += [Task("defended", (key, "pixels"), cost) for key, cost in DEFENDED_COSTS.items()]
    return sorted(out, key=lambda task: -task.cost)


def run_all(data_dir: str, *, quick: bool, jobs: int) -> Results:
    """Run every task (in ``jobs`` processes) and collect the results."""
    start = time.perf_counter()
    training: dict[int, list[dict]] = {q: [{}] * len(runs) for q, runs in QUESTIONS.items()}
    grids: dict[str, list[dict]] = {}
    grid_seconds: dict[str, float] = {}
    meta: dict[str, dict] = {}
    warnings: dict[str, list[str]] = {}
    cache_root = tempfile.mkdtemp(prefix="robustkit-reproduce-")
    try:
        todo = tasks()
        n_train = sum(task.kind == "train" for task in todo)
        print(
            f"running {len(todo)} tasks ({n_train} training runs of questions 1-5, "
            f"{len(todo) - n_train} groups of evaluation grids of questions 6-8) "
            f"in {jobs} worker processes{', quick mode' if quick else ''}",
            flush=True,
        )
        outcomes = Parallel(n_jobs=jobs, return_as="generator", batch_size=1)(
            delayed(task.run)(data_dir, quick, cache_root) for task in todo
        )
        for done, (task, outcome) in enumerate(zip(todo, outcomes, strict=True), 1):
            if "train" in outcome:
                question, index, row = outcome["train"]
                training[question][index] = row
            else:
                for key, result, seconds in outcome["grids"]:
                    grids[key], grid_seconds[key] = result.rows, seconds
                    meta[key], warnings[key] = result.meta, result.warnings
            elapsed = time.perf_counter() - start
            print(f"[{done}/{len(todo)}] {task.describe()}; {elapsed:.0f} s so far", flush=True)
    finally:
        shutil.rmtree(cache_root, ignore_errors=True)
    return Results(
        quick=quick,
        data_dir=str(data_dir),
        jobs=jobs,
        total_seconds=time.perf_counter() - start,
        runs=QUESTIONS,
        training=training,
        grids=grids,
        grid_seconds=grid_seconds,
        grid_meta=meta,
        grid_warnings=warnings,
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: run everything and write the document and its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="folder holding fashion-mnist/")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "docs" / "reproduction.md",
        help="the markdown file to write; figures go to figures/ beside it",
    )
    parser.add_argument("--quick", action="store_true", help="few samples and epochs (tests)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if not (Path(args.data_dir) / "fashion-mnist").is_dir():
        parser.error(f"--data-dir {args.data_dir} has no fashion-mnist/ folder")
    results = run_all(args.data_dir, quick=args.quick, jobs=args.jobs)
    write_report(results, args.out)
    print(f"wrote {args.out} in {results.total_seconds:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
