"""Benchmark: FGSM throughput of robustkit against IBM ART on the same network.

FGSM on the 10,000 Fashion-MNIST test rows reduced to 128 PCA features, attacking the
same hinge network (150 ReLU units) in both toolkits: robustkit's numpy network and its
copy in PyTorch on the CPU, wrapped by ART's PyTorchClassifier and attacked with
``FastGradientMethod(batch_size=1000)`` with labels given (ART's best case). Also times
FGSM through PCA to the raw pixels and a 5-ε sweep. ART and PyTorch are references
only: without them the script says so and times robustkit alone.

    python examples/benchmarks/bench_fgsm.py --data-dir ../shared/data
"""

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from tabulate import tabulate

import robustkit

EPS = 0.1


def median_seconds(fn, repeats):
    """Median wall time of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_copy(model):
    """The robustkit hinge network as a torch module (its scaling and centring folded in)."""
    import torch

    state = model.get_state()
    low, span = float(state["input_low"]), float(state["input_span"])
    W1 = state["W1"].astype(np.float32) / span
    b1 = state["b1"] - (low / span) * state["W1"].sum(axis=0) - state["input_mean"] @ state["W1"]
    net = torch.nn.Sequential(
        torch.nn.Linear(W1.shape[0], W1.shape[1]),
        torch.nn.ReLU(),
        torch.nn.Linear(W1.shape[1], state["W2"].shape[1]),
    )
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(W1.T.copy()))
        net[0].bias.copy_(torch.from_numpy(b1.astype(np.float32)))
        net[2].weight.copy_(torch.from_numpy(state["W2"].T.copy()))
        net[2].bias.copy_(torch.from_numpy(state["b2"]))
    return net


def art_fgsm(model, X, y, bounds, eps_abs):
    """A callable running ART's FastGradientMethod on a torch copy of ``model``, or None."""
    try:
        import torch
        from art.attacks.evasion import FastGradientMethod
        from art.estimators.classification import PyTorchClassifier
    except ImportError as exc:
        print(
            f"reference skipped: {exc.name} is not installed "
            "(pip install torch==2.13.0 adversarial-robustness-toolbox)"
        )
        return None
    classifier = PyTorchClassifier(
        torch_copy(model),
        loss=torch.nn.MultiMarginLoss(),
        input_shape=(X.shape[1],),
        nb_classes=10,
        clip_values=bounds,
    )
    attack = FastGradientMethod(classifier, eps=eps_abs, batch_size=1000)
    onehot = np.eye(10, dtype=np.float32)[y]
    return lambda: attack.generate(x=X, y=onehot)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("ROBUSTKIT_DATA_DIR"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    split = robustkit.create("dataset", "fashion-mnist").load(
        Path(args.data_dir) if args.data_dir else None
    )
    pca = PCA(128, random_state=0).fit(split.X_train / 255.0)
    P_train = pca.transform(split.X_train / 255.0).astype(np.float32)
    P_test = pca.transform(split.X_test / 255.0).astype(np.float32)
    bounds = (float(min(P_train.min(), P_test.min())), float(max(P_train.max(), P_test.max())))
    eps_fraction = EPS / (bounds[1] - bounds[0])  # ε = 0.1 in PCA units, as the study

    model = robustkit.create("model", "hinge", epochs=2, random_state=0).fit(P_train, split.y_train)
    fgsm = robustkit.create("attack", "fgsm")

    def robustkit_fgsm():
        return fgsm.perturb(model, P_test, split.y_test, [eps_fraction], bounds=bounds)

    def robustkit_sweep():
        return fgsm.perturb(
            model, P_test, split.y_test, eps_fraction * np.arange(1, 6), bounds=bounds
        )

    pixel_model = robustkit.create("model", "hinge", epochs=2, pca=128, random_state=0).fit(
        split.X_train, split.y_train
    )

    def pixel_fgsm():
        return fgsm.perturb(pixel_model, split.X_test, split.y_test, [EPS], bounds=(0, 255))

    rows = []
    ours = median_seconds(robustkit_fgsm, args.repeats)
    rows.append(["robustkit fgsm, PCA-128 space, 1 ε", ours, len(P_test) / ours, ""])
    sweep = median_seconds(robustkit_sweep, args.repeats)
    rows.append(["robustkit fgsm, PCA-128 space, 5 ε in one call", sweep, len(P_test) / sweep, ""])
    pixels = median_seconds(pixel_fgsm, args.repeats)
    rows.append(
        ["robustkit fgsm, raw 784 pixels through PCA, 1 ε", pixels, len(P_test) / pixels, ""]
    )
    reference = art_fgsm(model, P_test, split.y_test, bounds, EPS)
    if reference is not None:
        art = median_seconds(reference, args.repeats)
        rows.append(
            [
                "ART FastGradientMethod (PyTorch CPU, batch 1000)",
                art,
                len(P_test) / art,
                f"robustkit is {art / ours:.1f}x faster",
            ]
        )
        ours_adv = robustkit_fgsm().adversarials[0]
        same = np.mean(np.isclose(ours_adv, reference(), atol=1e-4))
        print(f"agreement of adversarial coordinates, robustkit vs ART: {same:.2%}")
    print(
        tabulate(
            rows, headers=["FGSM on 10,000 rows", "seconds", "rows/s", "ratio"], floatfmt=".4f"
        )
    )


if __name__ == "__main__":
    main()
