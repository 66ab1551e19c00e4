"""Benchmark: FGSM and PGD throughput on features and raw pixels, and against IBM ART.

FGSM on the 10,000 Fashion-MNIST test rows reduced to 128 PCA features, attacking the
same hinge network (150 ReLU units) in both toolkits: robustkit's numpy network and its
copy in PyTorch on the CPU, wrapped by ART's PyTorchClassifier and attacked with
``FastGradientMethod(batch_size=1000)`` with labels given (ART's best case). Also times
FGSM and PGD (10 steps) through the model's own PCA on the raw pixels against the same
attacks on the PCA features, and a 5-ε sweep. ART and PyTorch are references only:
without them the script says so and times robustkit alone. Ends with a markdown table.

    python examples/benchmarks/bench_fgsm.py --data-dir ../shared/data
"""

import argparse
import os
import random
import resource
import statistics
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

import robustkit

EPS = 0.1
#: Target: FGSM on raw pixels through the model's PCA within this factor of FGSM on features.
PIXELS_OVER_FEATURES = 2.0


def interleaved_medians(fns, repeats):
    """Median wall time of each ``fns[name]()`` over ``repeats`` rounds, the functions
    interleaved within each round in a new (seeded) order, after a warm-up: the
    machine's noise, and what the call before left in the caches and the allocator, hit
    them alike."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    order, shuffle = list(fns), random.Random(0).shuffle
    for _ in range(repeats):
        shuffle(order)
        for name in order:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def minor_faults_per_call(fn, calls: int = 3) -> float:
    """Minor page faults of this process per call of ``fn`` (freed memory faulted back in)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


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


def pixel_products(model, X: np.ndarray, y: np.ndarray):
    """A function running the matrix products that FGSM on raw pixels adds to FGSM on the
    features: the model's PCA forwards on every row and backwards on the rows whose
    loss gradient is not zero, as the model runs them (its blocks, chunks and threads)."""
    from robustkit_plugins import _numpy_net

    X = np.ascontiguousarray(X, dtype=np.float32)
    transform = model.input_transform_
    Z = transform.transform(X)
    live = model.loss_gradient(X, y)[1].any(axis=1)
    grad_Z = np.random.default_rng(0).standard_normal((int(live.sum()), Z.shape[1]))
    grad_Z = grad_Z.astype(np.float32)
    chunks = list(_numpy_net.row_chunks(len(grad_Z), _numpy_net.EVAL_CHUNK))
    threads = _numpy_net.threads_for_rows(len(X))

    def products():
        with _numpy_net.blas_threads(threads):
            transform.transform(X, out=Z)
            for rows in chunks:
                transform.backward(grad_Z[rows])

    return products


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("ROBUSTKIT_DATA_DIR"))
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    split = robustkit.create("dataset", "fashion-mnist").load(
        Path(args.data_dir) if args.data_dir else None
    )
    features = robustkit.create("dataset", "fashion-mnist", pca=128).load(
        Path(args.data_dir) if args.data_dir else None
    )
    P_train, P_test, bounds = features.X_train, features.X_test, features.bounds
    eps_fraction = EPS / (bounds[1] - bounds[0])  # ε = 0.1 in PCA units, as the study

    model = robustkit.create("model", "hinge", epochs=2, random_state=0).fit(P_train, split.y_train)
    fgsm = robustkit.create("attack", "fgsm")
    pgd = robustkit.create("attack", "pgd", steps=10)

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

    def feature_pgd():
        return pgd.perturb(
            model, P_test, split.y_test, [eps_fraction], bounds=bounds, random_state=0
        )

    def pixel_pgd():
        return pgd.perturb(
            pixel_model, split.X_test, split.y_test, [EPS], bounds=(0, 255), random_state=0
        )

    pca_products = pixel_products(pixel_model, split.X_test, split.y_test)
    reference = art_fgsm(model, P_test, split.y_test, bounds, EPS)
    timed = {
        "fgsm features": robustkit_fgsm,
        "fgsm features sweep": robustkit_sweep,
        "fgsm pixels": pixel_fgsm,
        "pgd features": feature_pgd,
        "pgd pixels": pixel_pgd,
        "pca products": pca_products,
    }
    if reference is not None:
        timed["art"] = reference
    seconds = interleaved_medians(timed, args.repeats)
    n = len(P_test)
    ours = seconds["fgsm features"]
    rows = [
        ["robustkit fgsm, PCA-128 features, 1 ε", ours, n / ours, ""],
        [
            "robustkit fgsm, PCA-128 features, 5 ε in one call",
            seconds["fgsm features sweep"],
            n / seconds["fgsm features sweep"],
            "",
        ],
        [
            "robustkit fgsm, raw 784 pixels through the model's PCA, 1 ε",
            seconds["fgsm pixels"],
            n / seconds["fgsm pixels"],
            f"{seconds['fgsm pixels'] / ours:.2f}x the features' time",
        ],
        [
            "robustkit pgd (10 steps), PCA-128 features, 1 ε",
            seconds["pgd features"],
            n / seconds["pgd features"],
            "",
        ],
        [
            "robustkit pgd (10 steps), raw 784 pixels through the model's PCA, 1 ε",
            seconds["pgd pixels"],
            n / seconds["pgd pixels"],
            f"{seconds['pgd pixels'] / seconds['pgd features']:.2f}x the features' time",
        ],
    ]
    if reference is not None:
        art = seconds["art"]
        rows.append(
            [
                "ART FastGradientMethod (PyTorch CPU, batch 1000)",
                art,
                n / art,
                f"robustkit is {art / ours:.1f}x faster",
            ]
        )
        ours_adv = robustkit_fgsm().adversarials[0]
        same = np.mean(np.isclose(ours_adv, reference(), atol=1e-4))
        print(f"agreement of adversarial coordinates, robustkit vs ART: {same:.2%}")
    ratio = seconds["fgsm pixels"] / ours
    verdict = "meets" if ratio <= PIXELS_OVER_FEATURES else "MISSES"
    print(
        f"target: fgsm on raw pixels within {PIXELS_OVER_FEATURES:g}x of fgsm on the "
        f"features: {ratio:.2f}x ({verdict})"
    )
    products = seconds["pca products"]
    extra = seconds["fgsm pixels"] - ours
    print(
        f"fgsm on pixels takes {extra:.4f} s more than on the features: {products:.4f} s "
        f"of PCA products (forwards, and backwards on the rows with a gradient) and "
        f"{extra - products:.4f} s of the rest (writing the gradient, the sign and step, "
        f"the check and the projection on 784-wide rows); with the products alone the "
        f"raw path would take {(ours + products) / ours:.2f}x the features' time, the "
        f"lowest ratio it can reach"
    )
    faults = {name: minor_faults_per_call(timed[name]) for name in ("fgsm features", "fgsm pixels")}
    print(
        "minor page faults per call: "
        + ", ".join(f"{name} {count:,.0f}" for name, count in faults.items())
    )
    headers = ["attack on 10,000 rows", "seconds", "rows/s", "ratio"]
    print(tabulate(rows, headers=headers, floatfmt=".4f"))
    print("\nMarkdown (README):\n")
    print(tabulate(rows, headers=headers, floatfmt=".4f", tablefmt="github"))


if __name__ == "__main__":
    main()
