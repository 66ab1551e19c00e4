"""Benchmark: certifying 10,000 Fashion-MNIST test samples at one ε with IBP and CROWN.

The study's networks (raw pixels → PCA 128 → 150 hidden → 10), hinge (ReLU) and rbf
(GELU, RBF head; with the noise-class defense for correct-or-reject), trained briefly.
Targets (issue 11): IBP under 10 s, CROWN under 60 s per network and ε. Beside the
certified accuracy (a lower bound on robust accuracy) it prints robustkit's PGD robust
accuracy (margin loss, an upper bound) on the first 1,000 samples. A second table: the
bracket [certified, PGD robust] of a hinge network IBP-trained in pixel space at
ε = 0.1 (target: within 10 points). No certification
toolkit is installed here as a reference (auto_LiRPA needs torch and is not a
dependency), so the targets are absolute.

    python examples/benchmarks/bench_certify.py --data-dir ../shared/data
"""

import argparse
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

import robustkit
from robustkit.certify import certify_model

TARGETS = {"ibp": 10.0, "crown": 60.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--eps", type=float, default=0.01, help="ε, a fraction of the range")
    parser.add_argument("--epochs", type=int, default=5, help="(IBP training: twice this)")
    args = parser.parse_args()
    split = robustkit.create("dataset", "fashion-mnist").load(args.data_dir)
    lo, hi = split.bounds
    radius = args.eps * (hi - lo)
    recipes = {
        "hinge": robustkit.create("model", "hinge", pca=128, epochs=args.epochs, random_state=0),
        "rbf": robustkit.create("model", "rbf", pca=128, epochs=args.epochs, random_state=0),
        "rbf + reject": robustkit.create("defense", "reject", random_state=0).apply(
            robustkit.create("model", "rbf", pca=128, epochs=args.epochs, random_state=0)
        ),
    }
    rows = []
    for name, model in recipes.items():
        start = time.perf_counter()
        model.fit(split.X_train, split.y_train)
        train_seconds = time.perf_counter() - start
        clean = float(np.mean(model.predict(split.X_test) == split.y_test))
        attack = robustkit.create("attack", "pgd", loss="margin", steps=50, restarts=2)
        n = 1000
        adversarial = attack.perturb(
            model, split.X_test[:n], split.y_test[:n], args.eps, bounds=split.bounds, random_state=0
        ).adversarials[0]
        robust = float(np.mean(model.predict(adversarial) == split.y_test[:n]))
        for method in ("ibp", "crown"):
            start = time.perf_counter()
            certificate = certify_model(
                model, split.X_test, split.y_test, radius, bounds=split.bounds, method=method
            )
            seconds = time.perf_counter() - start
            rows.append(
                [
                    name,
                    method,
                    f"{clean:.1%}",
                    f"{robust:.1%}",
                    f"{certificate.correct[:n].mean():.1%}",
                    f"{certificate.correct.mean():.1%}",
                    f"{certificate.correct_or_reject.mean():.1%}",
                    f"{seconds:.2f}",
                    f"{TARGETS[method]:.0f}",
                    f"{TARGETS[method] / seconds:.1f}x",
                    f"{train_seconds:.1f}",
                ]
            )
    print(f"Fashion-MNIST, 10,000 test samples, ε = {args.eps:g} of the range (radius {radius:g})")
    print(
        tabulate(
            rows,
            headers=[
                "network",
                "method",
                "clean",
                "PGD robust (1k)",
                "certified (1k)",
                "certified (10k)",
                "correct-or-reject (10k)",
                "seconds",
                "target s",
                "margin",
                "train s",
            ],
            disable_numparse=True,
        )
    )
    ibp_trained_bracket(split, args.epochs * 2)


def ibp_trained_bracket(split, epochs: int) -> None:
    """Certified and PGD robust accuracy of an IBP-trained pixel-space hinge at ε = 0.1."""
    eps, n = 0.1, 1000
    network = robustkit.create("model", "hinge", epochs=epochs, random_state=0)
    model = robustkit.create("defense", "ibp-training", eps=eps).apply(network)
    start = time.perf_counter()
    model.fit(split.X_train, split.y_train)
    seconds = time.perf_counter() - start
    X, y = split.X_test[:n], split.y_test[:n]
    attack = robustkit.create("attack", "pgd", loss="margin", steps=50, restarts=3)
    adversarial = attack.perturb(model, X, y, eps, bounds=split.bounds, random_state=0)
    robust = float(np.mean(model.predict(adversarial.adversarials[0]) == y))
    rows = []
    for method in ("ibp", "crown"):
        radius = eps * (split.bounds[1] - split.bounds[0])
        certified = certify_model(model, X, y, radius, bounds=split.bounds, method=method)
        share = certified.correct.mean()
        rows.append([method, f"{share:.1%}", f"{robust:.1%}", f"{100 * (robust - share):.1f}"])
    clean = float(np.mean(model.predict(X) == y))
    print(f"\nIBP-trained hinge (pixels, ε = {eps}, {epochs} epochs, {seconds:.0f} s), "
          f"clean {clean:.1%}, first {n} test samples")  # fmt: skip
    headers = ["method", "certified", "PGD robust", "bracket (points, target <= 10)"]
    print(tabulate(rows, headers=headers, disable_numparse=True))


if __name__ == "__main__":
    main()
