"""Benchmark: PGD adversarial training of a 784-150-10 network, robustkit against PyTorch.

robustkit: the ``hinge`` network (raw pixels, 150 ReLU units, its own hinge loss, SGD
lr 0.1, batch 128) under the ``adversarial-training`` defense (ε = 0.1 of the pixel
range, 10 steps of 0.25 ε, random start). Reference, where torch is installed: the
issue's standard PyTorch recipe on the same data (cross-entropy, SGD lr 0.1 momentum
0.9, batch 128, ε = 0.1, 10 steps of 0.025, random start), measured in the same run.
Both are evaluated on the first 1,000 test samples by robustkit's PGD (margin loss, 50
steps, 3 restarts; the reference through a robustkit copy of its weights) and, with
``--autoattack`` where torchattacks is installed, by AutoAttack (standard) on a torch copy.

    python examples/benchmarks/bench_adversarial_training.py --data-dir ../shared/data
"""

import argparse
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

import robustkit

EPS = 0.1
N_EVAL = 1000


def robustkit_model(args):
    network = robustkit.create("model", "hinge", hidden=150, epochs=args.epochs, random_state=0)
    defense = robustkit.create(
        "defense", "adversarial-training", attack=args.attack, eps=EPS, steps=10,
        step_size=0.25, ratio=args.ratio, random_state=0,
    )  # fmt: skip
    return defense.apply(network)


def torch_reference(split, epochs, threads=None):
    """Train the PyTorch reference; return (seconds, W1, b1, W2, b2) or None without torch."""
    try:
        import torch
    except ImportError:
        print("reference skipped: torch is not installed (pip install torch==2.13.0)")
        return None
    torch.manual_seed(0)
    if threads:
        torch.set_num_threads(threads)
    X = torch.from_numpy(split.X_train.astype(np.float32) / 255.0)
    y = torch.from_numpy(split.y_train.astype(np.int64))
    net = torch.nn.Sequential(torch.nn.Linear(784, 150), torch.nn.ReLU(), torch.nn.Linear(150, 10))
    optimiser = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        for batch in torch.randperm(len(X)).split(128):
            xb, yb = X[batch], y[batch]
            adv = (xb + torch.empty_like(xb).uniform_(-EPS, EPS)).clamp(0, 1)
            for _ in range(10):
                adv.requires_grad_(True)
                grad = torch.autograd.grad(loss_fn(net(adv), yb), adv)[0]
                adv = adv.detach() + 0.025 * grad.sign()
                adv = torch.min(torch.max(adv, xb - EPS), xb + EPS).clamp(0, 1)
            optimiser.zero_grad()
            loss_fn(net(adv), yb).backward()
            optimiser.step()
    seconds = time.perf_counter() - start
    print(f"reference: {seconds:.1f} s wall, {time.process_time() - cpu:.1f} s CPU", flush=True)
    weights = [p.detach().numpy().astype(np.float32) for p in net.parameters()]
    return seconds, weights[0].T, weights[1], weights[2].T, weights[3]


def as_robustkit(split, W1, b1, W2, b2):
    """The reference weights in a robustkit hinge network (inputs scaled by 1/255)."""
    model = robustkit.create("model", "hinge", hidden=150)
    state = {
        "input_low": np.asarray(0.0),
        "input_span": np.asarray(255.0),
        "input_mean": np.zeros(784, np.float32),
        "W1": W1, "b1": b1, "W2": W2, "b2": b2,
        "classes": np.arange(10),
        **{f"history_{k}": np.zeros(0) for k in ("epoch", "loss", "train_accuracy", "seconds")},
    }  # fmt: skip
    return model.set_state(state)


def autoattack(model, X, y):
    """AutoAttack (standard, torchattacks) robust accuracy on a torch copy, or None."""
    try:
        import torch
        import torchattacks
    except ImportError:
        return None
    layers = model.certification_layers()  # the affine maps, input scaling folded in
    from robustkit.certify import Affine

    affine = [layer for layer in layers if isinstance(layer, Affine)]
    W0, b0 = affine[0].weight * 255.0, affine[0].bias  # inputs in [0, 1]
    W1, b1 = W0 @ affine[1].weight, b0 @ affine[1].weight + affine[1].bias
    nn = torch.nn
    linear = nn.Sequential(nn.Linear(784, 150), nn.ReLU(), nn.Linear(150, 10))
    net = torch.nn.Sequential(torch.nn.Flatten(), linear)  # torchattacks wants (N, C, H, W)
    with torch.no_grad():
        linear[0].weight.copy_(torch.from_numpy(W1.T.astype(np.float32)))
        linear[0].bias.copy_(torch.from_numpy(b1.astype(np.float32)))
        linear[2].weight.copy_(torch.from_numpy(affine[2].weight.T.astype(np.float32)))
        linear[2].bias.copy_(torch.from_numpy(affine[2].bias.astype(np.float32)))
    attack = torchattacks.AutoAttack(net, norm="Linf", eps=EPS, version="standard", seed=0)
    images = torch.from_numpy(X.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    labels = torch.from_numpy(y.astype(np.int64))
    adversarial = attack(images, labels)
    with torch.no_grad():
        return float((net(adversarial).argmax(1) == labels).float().mean())


def evaluate(model, split, with_autoattack):
    X, y = split.X_test[:N_EVAL], split.y_test[:N_EVAL]
    pgd = robustkit.create("attack", "pgd", loss="margin", steps=50, restarts=3)
    adversarial = pgd.perturb(model, X, y, EPS, bounds=split.bounds, random_state=0)
    clean = float(np.mean(model.predict(X) == y))
    robust = float(np.mean(model.predict(adversarial.adversarials[0]) == y))
    return clean, robust, autoattack(model, X, y) if with_autoattack else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--attack", default="pgd:loss=margin", help="robustkit's training attack")
    parser.add_argument("--ratio", type=float, default=1.0)
    parser.add_argument("--autoattack", action="store_true", help="also run torchattacks' AA")
    parser.add_argument("--torch-threads", type=int, default=None, help="(a busy machine: 1)")
    parser.add_argument("--n-train", type=int, default=None, help="fewer training rows (smoke)")
    args = parser.parse_args()
    split = robustkit.create("dataset", "fashion-mnist", n_train=args.n_train).load(args.data_dir)
    rows = []
    model = robustkit_model(args)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(split.X_train, split.y_train)
    seconds = time.perf_counter() - start
    print(f"robustkit: {seconds:.1f} s wall, {time.process_time() - cpu:.1f} s CPU", flush=True)
    rows.append(["robustkit hinge", args.attack, seconds, *evaluate(model, split, args.autoattack)])
    reference = torch_reference(split, args.epochs, args.torch_threads)
    if reference is not None:
        ref_seconds, *weights = reference
        ref = as_robustkit(split, *weights)
        figures = evaluate(ref, split, args.autoattack)
        rows.append(["PyTorch reference (CE)", "pgd (CE)", ref_seconds, *figures])
    table = [
        [name, attack, f"{s:.1f}", f"{c:.1%}", f"{r:.1%}", "-" if a is None else f"{a:.1%}"]
        for name, attack, s, c, r, a in rows
    ]
    print(f"Fashion-MNIST, ε = {EPS} of the pixel range, {args.epochs} epochs, first {N_EVAL}")
    headers = ["network", "training attack", "train s", "clean", "PGD-margin robust", "AutoAttack"]
    print(tabulate(table, headers=headers, disable_numparse=True))
    if reference is not None:
        print(f"training time ratio robustkit / reference: {seconds / reference[0]:.2f}")


if __name__ == "__main__":
    main()
