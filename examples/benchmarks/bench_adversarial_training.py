"""Benchmark: PGD adversarial training on Fashion-MNIST, robustkit against PyTorch.

robustkit: the ``hinge`` and ``rbf`` networks (raw pixels, 150 hidden units, their own
losses, SGD lr 0.1 for hinge and 0.03 for rbf, whose squared distances diverge at 0.1
under adversarial training, batch 128) under the ``adversarial-training`` defense (ε =
0.1 of the pixel range, PGD on the margin, random start, by default 5 steps of 0.5 ε:
0.7-0.8× the reference's time per epoch on an idle 2-core machine, where 10 steps of
0.25 ε took 1.0× (hinge) and 1.2× (rbf)).
Reference, where torch is installed: the issue's standard PyTorch recipe on the same
data (784-150-10 ReLU, cross-entropy, SGD lr 0.1 momentum 0.9, batch 128, ε = 0.1, 10
steps of 0.025, random start), trained in the same run. Every network is evaluated on
the first 1,000 test samples by robustkit's ``auto`` (AutoAttack, ``--auto-version``;
the reference through a robustkit copy of its weights) and, with ``--torchattacks``
where torchattacks is installed, by torchattacks' AutoAttack (standard) on a torch copy.
``--defense trades`` trains robustkit's networks with TRADES (``--beta``) instead.

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


def robustkit_model(name, args):
    lr = args.rbf_lr if name == "rbf" else args.lr
    params = {"hidden": args.hidden, "epochs": args.epochs, "lr": lr, "random_state": 0}
    if args.pca:
        params["pca"] = args.pca
    network = robustkit.create("model", name, **params)
    if args.defense == "trades":
        defense = robustkit.create(
            "defense", "trades", beta=args.beta, eps=EPS, steps=args.steps,
            step_size=args.step_size, random_state=0,
        )  # fmt: skip
    else:
        defense = robustkit.create(
            "defense", "adversarial-training", attack=args.attack, eps=EPS, steps=args.steps,
            step_size=args.step_size, ratio=args.ratio, random_state=0,
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


def torchattacks_autoattack(model, X, y):
    """AutoAttack (standard, torchattacks) robust accuracy of a hinge network's torch copy,
    or None where torchattacks is not installed."""
    try:
        import torch
        import torchattacks
    except ImportError:
        print("torchattacks AutoAttack skipped: torchattacks is not installed")
        return None
    from robustkit.certify import Affine

    affine = [layer for layer in model.certification_layers() if isinstance(layer, Affine)]
    W0, b0 = affine[0].weight * 255.0, affine[0].bias  # inputs in [0, 1]
    W1, b1 = W0 @ affine[1].weight, b0 @ affine[1].weight + affine[1].bias
    nn = torch.nn
    linear = nn.Sequential(nn.Linear(784, W1.shape[1]), nn.ReLU(), nn.Linear(W1.shape[1], 10))
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


def evaluate(model, split, args, linear_head=True):
    """Clean and ``auto`` robust accuracy on the first N_EVAL test samples (and
    torchattacks' AutoAttack with ``--torchattacks`` for the ReLU networks)."""
    X, y = split.X_test[:N_EVAL], split.y_test[:N_EVAL]
    auto = robustkit.create("attack", "auto", version=args.auto_version)
    start = time.perf_counter()
    adversarial = auto.perturb(
        model, X, y, EPS, bounds=split.bounds, random_state=0, image_shape=split.image_shape
    )
    attack_seconds = time.perf_counter() - start
    clean = float(np.mean(model.predict(X) == y))
    robust = float(np.mean(model.predict(adversarial.adversarials[0]) == y))
    theirs = torchattacks_autoattack(model, X, y) if args.torchattacks and linear_head else None
    return clean, robust, theirs, attack_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--models", default="hinge,rbf", help="robustkit networks to train")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--defense", default="adversarial-training", choices=["adversarial-training", "trades"]
    )
    parser.add_argument("--beta", type=float, default=6.0, help="trades' β")
    parser.add_argument("--attack", default="pgd:loss=margin", help="robustkit's training attack")
    parser.add_argument("--steps", type=int, default=5, help="robustkit's PGD steps")
    parser.add_argument("--step-size", type=float, default=0.5, help="a fraction of ε")
    parser.add_argument("--ratio", type=float, default=1.0, help="share of each batch attacked")
    parser.add_argument("--hidden", type=int, default=150)
    parser.add_argument("--pca", type=int, default=None)
    parser.add_argument("--lr", type=float, default=0.1, help="hinge's learning rate")
    parser.add_argument("--rbf-lr", type=float, default=0.03, help="(0.1 diverges on pixels)")
    parser.add_argument("--auto-version", default="standard", choices=["standard", "fast"])
    parser.add_argument("--torchattacks", action="store_true", help="also torchattacks' AA")
    parser.add_argument("--torch-threads", type=int, default=None, help="(a busy machine: 1)")
    parser.add_argument("--no-reference", action="store_true", help="skip the PyTorch run")
    parser.add_argument("--n-train", type=int, default=None, help="fewer training rows (smoke)")
    args = parser.parse_args()
    split = robustkit.create("dataset", "fashion-mnist", n_train=args.n_train).load(args.data_dir)
    rows = []
    reference = (
        None if args.no_reference else torch_reference(split, args.epochs, args.torch_threads)
    )
    if reference is not None:
        ref_seconds, *weights = reference
        figures = evaluate(as_robustkit(split, *weights), split, args)
        rows.append(["PyTorch reference (CE)", "pgd CE, 10 × 0.25ε", ref_seconds, *figures])
    recipe = f"{args.attack}, {args.steps} × {args.step_size:g}ε, ratio {args.ratio:g}"
    if args.defense == "trades":
        recipe = f"trades β {args.beta:g}, {args.steps} × {args.step_size:g}ε"
    for name in args.models.split(","):
        model = robustkit_model(name, args)
        start, cpu = time.perf_counter(), time.process_time()
        model.fit(split.X_train, split.y_train, bounds=split.bounds)
        seconds = time.perf_counter() - start
        print(f"robustkit {name}: {seconds:.1f} s wall, {time.process_time() - cpu:.1f} s CPU")
        figures = evaluate(model, split, args, linear_head=name == "hinge")
        rows.append([f"robustkit {name}", recipe, seconds, *figures])
    table = [
        [
            name, attack, f"{s:.1f}",
            "-" if reference is None else f"{s / reference[0]:.2f}",
            f"{c:.1%}", f"{r:.1%}", "-" if a is None else f"{a:.1%}", f"{t:.0f}",
        ]
        for name, attack, s, c, r, a, t in rows
    ]  # fmt: skip
    print(
        f"Fashion-MNIST, ε = {EPS} of the pixel range, {args.epochs} epochs, hidden "
        f"{args.hidden}, pca {args.pca}, lr {args.lr:g} (rbf {args.rbf_lr:g}); first {N_EVAL} "
        "test samples"
    )
    headers = [
        "network", "training attack", "train s", "× reference", "clean",
        f"auto ({args.auto_version}) robust", "torchattacks AA", "auto s",
    ]  # fmt: skip
    print(tabulate(table, headers=headers, disable_numparse=True))


if __name__ == "__main__":
    main()
