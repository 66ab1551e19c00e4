"""The evaluation the study did not run: PGD and a rejection-aware attack.

The study attacked with FGSM on the training loss only. Here the same trained models
(questions 6 and 8) face 50-step PGD on the training loss, PGD on the margin (which a
zero hinge loss cannot stop), the rejection-aware PGD (it aims at a wrong class that is
NOT rejected, so it counts only evasions), the AutoAttack ensemble ``auto`` (and its
rejection-aware version against the defense) and random sign noise as a baseline.

    python examples/reproduce/stronger.py --data-dir DATA [--quick]
"""

from __future__ import annotations

import argparse

from grids import load_grid, run_grid, with_attacks

#: Against the undefended networks of question 6.
UNDEFENDED_ATTACKS = ["fgsm", "pgd:steps=50", "pgd:steps=50,loss=margin", "auto", "noise"]
#: Against the rejection defense of questions 7-8 (every λ of question 8).
REJECT_ATTACKS = [
    "fgsm",
    "pgd:steps=50",
    "pgd:steps=50,reject_aware=true",
    "auto",
    "auto:reject_aware=true",
    "noise",
]
REJECT_EPS = [0.03, 0.1, 0.3, 0.5, 1]

#: (name, grid whose models are attacked, attacks, ε or None for the grid's own).
STRONGER_GRIDS = [
    ("undefended", "q6_fgsm", UNDEFENDED_ATTACKS, None),
    ("reject", "q8_lambda", REJECT_ATTACKS, REJECT_EPS),
]


def main() -> None:
    """Run the stronger attacks in both threat models and print robustkit's tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True, help="folder holding fashion-mnist/")
    parser.add_argument("--quick", action="store_true", help="few samples and epochs")
    args = parser.parse_args()
    for name, base, attacks, eps in STRONGER_GRIDS:
        for space in ("pca", "pixels"):
            grid = load_grid(f"{base}_{space}", args.data_dir, quick=args.quick)
            grid = with_attacks(grid, attacks, eps, quick=args.quick)
            result, seconds = run_grid(grid)
            print(f"== {name} ({space}), {seconds:.0f} s\n{result.tables()}\n")


if __name__ == "__main__":
    main()
