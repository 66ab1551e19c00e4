"""Benchmark: peak memory of training and of a 10,000-sample evaluation on Fashion-MNIST.

Each measurement runs in a fresh process and reports its peak resident set size:
``robustkit train --dataset fashion-mnist --pca 128`` (raw pixels through the model's own
PCA), an FGSM evaluation of all 10,000 test images at 3 ε with a prediction per ε (what
the harness does per cell) with a saved model, and the interpreter with robustkit's
imports alone. The target: training peaks at most 2× the float32 data (train and test).

    python examples/benchmarks/bench_memory.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tabulate import tabulate

#: Float32 bytes of Fashion-MNIST's 60,000 + 10,000 images of 784 pixels.
DATA_MB = 70_000 * 784 * 4 / 2**20

IMPORTS = "import robustkit, robustkit.cli, robustkit_plugins.hinge, matplotlib.pyplot"

EVALUATION = """
import sys, numpy as np, robustkit
recipe, model = robustkit.load_model(sys.argv[1])
split = robustkit.create("dataset", "fashion-mnist").load(sys.argv[2])
fgsm = robustkit.create("attack", "fgsm")
result = fgsm.perturb(model, split.X_test, split.y_test, [0.02, 0.05, 0.1], bounds=split.bounds)
predictions = [model.predict(adv) for adv in result.adversarials]
print(float(np.mean(predictions[-1] == split.y_test)))
"""


def peak_mb(command: list[str]) -> float:
    """Peak RSS (MB) of ``command`` run alone in a child of a fresh helper process."""
    probe = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *command], check=True, capture_output=True, text=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("ROBUSTKIT_DATA_DIR"))
    args = parser.parse_args()
    if not args.data_dir:
        sys.exit("no data folder: pass --data-dir or set ROBUSTKIT_DATA_DIR")
    robustkit = str(Path(sys.executable).with_name("robustkit"))
    with tempfile.TemporaryDirectory() as folder:
        saved = str(Path(folder) / "hinge.npz")
        train = [robustkit, "train", "--model", "hinge", "--dataset", "fashion-mnist"]
        train += ["--data-dir", args.data_dir, "--pca", "128", "--epochs", "2"]
        imports = peak_mb([sys.executable, "-c", IMPORTS])
        training = peak_mb([*train, "--save", saved])
        evaluation = peak_mb([sys.executable, "-c", EVALUATION, saved, args.data_dir])
    rows = [
        ["interpreter and robustkit's imports", imports, ""],
        [
            "robustkit train --dataset fashion-mnist --pca 128",
            training,
            f"{training / DATA_MB:.2f}x the float32 data ({DATA_MB:.0f} MB)",
        ],
        [
            "FGSM on all 10,000 test images, 3 ε, predictions per ε",
            evaluation,
            f"{evaluation / DATA_MB:.2f}x the float32 data",
        ],
    ]
    headers = ["process", "peak RSS (MB)", "ratio"]
    print(tabulate(rows, headers=headers, floatfmt=".0f"))
    print("\nMarkdown (README):\n")
    print(tabulate(rows, headers=headers, floatfmt=".0f", tablefmt="github"))


if __name__ == "__main__":
    main()
