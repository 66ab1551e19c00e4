"""Benchmark: strength and speed of robustkit's ``auto`` against torchattacks' AutoAttack.

Trains the study's pixel-space networks on Fashion-MNIST with robustkit (hinge and rbf,
PCA 128, seed 0; cached with ``robustkit.save_model``), builds exact PyTorch copies of the
same weights (checked score by score), and attacks the first ``--n-samples`` test
samples at each ε with robustkit's ``auto`` (the standard and the fast version) and
with the reference, torchattacks 3.5.1 ``AutoAttack(norm='Linf', version='standard')``,
on inputs scaled to [0, 1] (so ε, a fraction of the input range, is the same number in
both). Prints clean accuracy, robust accuracy (reference, robustkit, difference in
points), seconds and the speed ratio; then times each version on the whole test set (3
ε × both networks) and measures the memory each extra ε costs. ``--attacks`` runs
single attacks beside the reference's components (``apgd`` ↔ APGD-CE and
``apgd:loss=dlr,targeted=true`` ↔ APGD-T, both at 100 steps, ``square`` ↔ Square with
5,000 queries). Note that torchattacks' AutoAttack runs its
APGD, APGD-T and FAB members at torchattacks' default of 10 steps, not the published 100.
The reference runs on one torch thread unless ``--reference-threads`` says otherwise:
on these small networks torch's default (a thread per core) was several times slower
here. PyTorch and torchattacks are references only: without them the script says so and
prints robustkit's figures alone.

    pip install torch==2.13.0 torchattacks==3.5.1     # optional reference, one command
    python examples/benchmarks/bench_autoattack.py [--data-dir DIR] [--attacks auto,square]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from tabulate import tabulate

import robustkit
from robustkit.persistence import atomic_write

#: The study's recipes (pixel space, PCA inside the model), as robustkit specs.
RECIPES = {
    "hinge": "hinge:pca=128,epochs=15,lr=0.1,batch_size=128",
    "rbf": "rbf:pca=128,epochs=10,lr=0.1,batch_size=128",
}
EPSILONS = (0.02, 0.05, 0.1)


# ---------------------------------------------------------------------------- the models


def typed_spec(spec: str, kind: str) -> tuple[str, dict]:
    """``name:key=value,...`` with each value typed against the plugin's parameters."""
    parsed = robustkit.PluginSpec.coerce(spec, kind)
    return parsed.name, dict(parsed.params)


def load_split(dataset: str, data_dir: str | None):
    """The data set's train/test split (the folder is only needed for IDX data sets)."""
    return robustkit.create("dataset", dataset).load(Path(data_dir) if data_dir else None)


def trained_networks(
    split, cache_dir: Path, epochs: int | None = None, names=tuple(RECIPES)
) -> dict:
    """Each study network trained on ``split`` (seed 0), loaded from ``cache_dir`` if there."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    networks = {}
    for name in names:
        spec = RECIPES[name]
        model_name, params = typed_spec(spec, "model")
        params["pca"] = min(params["pca"], split.X_train.shape[1])
        if epochs is not None:
            params["epochs"] = epochs
        params["random_state"] = 0
        tag = "-".join(f"{k}{v}" for k, v in sorted(params.items()))
        path = cache_dir / f"{split.name}-{model_name}-{tag}.npz"
        if path.exists():
            networks[name] = robustkit.load_model(path)[1]
            continue
        start = time.perf_counter()
        model = robustkit.create("model", model_name, **params).fit(split.X_train, split.y_train)
        robustkit.save_model(path, robustkit.Recipe(model_name, params), model)
        print(f"trained {name} in {time.perf_counter() - start:.1f} s (cached in {path})")
        networks[name] = model
    return networks


def torch_copy(name: str, model, bounds: tuple[float, float]):
    """The robustkit network as a torch module on inputs in [0, 1] (any shape (n, ...)).

    Raw pixels x = lo + (hi − lo)·u; network input ((x − low)/span − mean)·Pᵀ, folded
    into one linear layer; then the hidden layer (ReLU for hinge, tanh-GELU as the rbf
    plugin computes it) and the head (linear scores, or negated squared distances).
    """
    import torch

    state = {key: np.asarray(value, dtype=np.float64) for key, value in model.get_state().items()}
    lo, hi = bounds
    scale = (hi - lo) / float(state["input_span"])
    shift = (lo - float(state["input_low"])) / float(state["input_span"])
    P = state["pca_components"]
    W_in = scale * P  # (128, d)
    b_in = (shift - state["input_mean"]) @ P.T

    def tensor(array):
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    class Copy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.W_in, self.b_in = tensor(W_in.T), tensor(b_in)
            self.W1, self.b1 = tensor(state["W1"]), tensor(state["b1"])
            if name == "hinge":
                self.W2, self.b2 = tensor(state["W2"]), tensor(state["b2"])
            else:
                self.centres = tensor(state["centres"])

        def forward(self, u):
            z = u.reshape(len(u), -1) @ self.W_in + self.b_in
            pre = z @ self.W1 + self.b1
            if name == "hinge":
                return torch.relu(pre) @ self.W2 + self.b2
            h = torch.nn.functional.gelu(pre, approximate="tanh")
            return -torch.cdist(h, self.centres).square()

    return Copy().eval()


def check_copy(copy, model, X: np.ndarray, bounds, image_shape) -> float:
    """Largest |score difference| between the torch copy and robustkit, over ``X``."""
    import torch

    unit = to_unit(X, bounds, image_shape)
    with torch.no_grad():
        theirs = copy(torch.from_numpy(unit)).numpy().astype(np.float64)
    return float(np.max(np.abs(theirs - model.decision_function(X))))


def to_unit(X: np.ndarray, bounds, image_shape) -> np.ndarray:
    """Raw rows scaled to [0, 1] and shaped (n, 1, h, w), as torchattacks wants images."""
    lo, hi = bounds
    return ((X - lo) / (hi - lo)).astype(np.float32).reshape(len(X), 1, *image_shape)


# ---------------------------------------------------------------------------- the attacks


def reference_available() -> bool:
    """True if torch and torchattacks import; else say why and return False."""
    try:
        import torch  # noqa: F401
        import torchattacks  # noqa: F401
    except ImportError as exc:
        print(
            f"reference skipped: {exc.name} is not installed "
            "(pip install torch==2.13.0 torchattacks==3.5.1); robustkit's figures only"
        )
        return False
    return True


def reference_attack(spec: str, copy, eps: float, n_classes: int):
    """The torchattacks counterpart of robustkit ``spec``, or None if it has none."""
    import torchattacks

    common = {"norm": "Linf", "eps": eps, "seed": 0}
    if reference_key(spec) == "auto":
        return torchattacks.AutoAttack(copy, version="standard", n_classes=n_classes, **common)
    # The published 100 iterations (torchattacks' own default, also inside its AutoAttack,
    # is 10).
    if spec == "apgd":
        return torchattacks.APGD(copy, loss="ce", steps=100, n_restarts=1, **common)
    if spec == "apgd:loss=dlr,targeted=true":
        return torchattacks.APGDT(copy, n_classes=n_classes, steps=100, n_restarts=1, **common)
    if spec == "square":
        return torchattacks.Square(copy, n_queries=5000, n_restarts=1, **common)
    return None


def reference_key(spec: str) -> str:
    """The name the reference's cached results go under: every version of ``auto`` is
    compared with the one reference AutoAttack (standard)."""
    name, params = typed_spec(spec, "attack")
    return "auto" if name == "auto" and set(params) <= {"version"} else spec


def reference_threads() -> int:
    """The reference's intra-op thread count (``--reference-threads``; torch's default
    is one per core)."""
    import torch

    return torch.get_num_threads()


def run_reference(attack, copy, X, y, bounds, image_shape) -> tuple[np.ndarray, float]:
    """Per-sample robust flags of the reference attack on (X, y) and its seconds."""
    import torch

    images, labels = torch.from_numpy(to_unit(X, bounds, image_shape)), torch.from_numpy(y)
    start = time.perf_counter()
    adversarials = attack(images, labels.long())
    seconds = time.perf_counter() - start
    with torch.no_grad():
        robust = copy(adversarials).argmax(1).numpy() == y
    return robust, seconds


def run_robustkit(spec: str, model, X, y, epsilons, split) -> tuple[np.ndarray, float]:
    """Per-ε, per-sample robust flags (K, n) of robustkit ``spec`` and its seconds."""
    name, params = typed_spec(spec, "attack")
    attack = robustkit.create("attack", name, **params)
    start = time.perf_counter()
    result = attack.perturb(
        model, X, y, epsilons, bounds=split.bounds, random_state=0, image_shape=split.image_shape
    )
    seconds = time.perf_counter() - start
    return np.stack([model.predict(adv) == y for adv in result.adversarials]), seconds


def default_attacks() -> list[str]:
    """``auto`` in both versions if it is installed, else the strong attacks that are."""
    names = robustkit.registry("attack").names()
    if "auto" in names:
        return ["auto", "auto:version=fast"]
    print("robustkit attack 'auto' is not installed yet: running the attacks that are")
    wanted = ["apgd", "apgd:loss=dlr,targeted=true", "square"]
    return [spec for spec in wanted if spec.partition(":")[0] in names] or ["pgd:loss=margin"]


# ------------------------------------------------------------------------------ the parts


def weights_digest(model) -> str:
    """A short hash of the model's fitted arrays (keys the cached reference results)."""
    digest = hashlib.sha1()
    for key, value in sorted(model.get_state().items()):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()[:12]


def cached_reference(path: Path, *args) -> tuple[np.ndarray, float]:
    """The reference's (robust flags, seconds) from ``path``, or ``run_reference(*args)``."""
    if path.exists():
        with np.load(path, allow_pickle=False) as saved:
            return saved["robust"], float(saved["seconds"])
    robust, seconds = run_reference(*args)
    with atomic_write(path, "wb") as handle:
        np.savez(handle, robust=robust, seconds=np.float64(seconds))
    return robust, seconds


def strength_table(
    networks,
    split,
    attacks,
    epsilons,
    n_samples,
    cache_dir,
    *,
    reference: bool,
    ours: bool = True,
    cached_only: bool = False,
) -> None:
    """Robust accuracy and seconds per (network, attack, ε) cell, beside the reference.

    robustkit runs every ε in one call (its seconds per cell are that call's / the number
    of ε); the reference runs each ε on its own. The reference's results are cached per
    cell (keyed by the weights), so a rerun only times robustkit; ``ours=False`` fills
    that cache without running robustkit, ``cached_only`` shows only cached cells.
    """
    X, y = split.X_test[:n_samples], split.y_test[:n_samples]
    n_classes = len(np.unique(split.y_train))
    rows = []
    for name, model in networks.items():
        clean = float(np.mean(model.predict(X) == y))
        copy = None
        if reference:
            copy = torch_copy(name, model, split.bounds)
            n_check = min(1000, len(split.X_test))
            diff = check_copy(copy, model, split.X_test[:n_check], split.bounds, split.image_shape)
            scale = float(np.max(np.abs(model.decision_function(split.X_test[:n_check]))))
            print(
                f"{name}: torch copy vs robustkit scores on {n_check} test samples: "
                f"max |diff| {diff:.2e} (scores up to {scale:.3g}, relative {diff / scale:.1e})"
            )
        for spec in attacks:
            if ours:  # every ε in one call, as robustkit is meant to be used
                mine, my_seconds = run_robustkit(spec, model, X, y, epsilons, split)
                my_seconds /= len(epsilons)
            for k, eps in enumerate(epsilons):
                row = [name, spec, eps, 100 * clean, *[None] * 8]
                if ours:
                    row[5], row[8] = 100 * mine[k].mean(), my_seconds
                attack = reference_attack(spec, copy, eps, n_classes) if copy else None
                if attack is not None:
                    key = (
                        f"{split.name}-{name}-{weights_digest(model)}-{reference_key(spec)}-{eps}"
                        f"-{len(X)}"
                        f"-t{reference_threads()}"
                    )
                    path = cache_dir / f"reference-{key}.npz"
                if attack is not None and (path.exists() or not cached_only):
                    theirs, their_seconds = cached_reference(
                        path, attack, copy, X, y, split.bounds, split.image_shape
                    )
                    row[4], row[7] = 100 * theirs.mean(), their_seconds
                    if ours:
                        row[6] = 100 * (mine[k].mean() - theirs.mean())
                        row[9] = their_seconds / my_seconds
                        row[10] = int(np.sum(mine[k] & ~theirs))
                        row[11] = int(np.sum(theirs & ~mine[k]))
                rows.append(row)
                print(f"  {name} {spec} ε={eps}: done", flush=True)
    headers = [
        "network",
        "attack",
        "ε",
        "clean %",
        "reference robust %",
        "robustkit robust %",
        "diff (points)",
        "reference s",
        "robustkit s (per ε)",
        "speed ratio",
        "only ours robust",
        "only ref robust",
    ]
    threads = f", reference on {reference_threads()} torch thread(s)" if reference else ""
    print(f"\nStrength and speed on the first {len(X)} test samples of {split.name}{threads}")
    print("(diff > 0: robustkit finds the model MORE robust, i.e. robustkit's attack is weaker)")
    print(tabulate(rows, headers=headers, floatfmt=".2f", missingval="-"))


def full_test_set_time(networks, split, epsilons, spec: str) -> None:
    """Seconds of ``spec`` on every test sample × all ε × every network (one call each)."""
    rows, total = [], 0.0
    for name, model in networks.items():
        robust, seconds = run_robustkit(spec, model, split.X_test, split.y_test, epsilons, split)
        total += seconds
        rows.append([name, len(split.X_test), *(100 * robust.mean(axis=1)), seconds])
    headers = ["network", "samples", *(f"robust % ε={e}" for e in epsilons), "seconds"]
    print(f"\nrobustkit {spec} on the whole test set, {len(epsilons)} ε in one call per network")
    print(tabulate(rows, headers=headers, floatfmt=".2f"))
    print(f"total: {total:.1f} s (target < 120 s)")


def memory_per_epsilon(model, split, spec: str, n_samples: int, epsilons) -> None:
    """Peak traced memory of ``spec`` with all ε in one call vs each ε alone, in batches.

    Against the largest single-ε peak (the smallest ε keeps most samples under attack),
    so the difference is what the extra budgets themselves cost.
    """
    X, y = split.X_test[:n_samples], split.y_test[:n_samples]
    name, params = typed_spec(spec, "attack")
    attack = robustkit.create("attack", name, **params)
    batch_bytes = X.astype(np.result_type(X.dtype, np.float32)).nbytes

    def peak(budgets) -> int:
        tracemalloc.start()
        attack.perturb(
            model, X, y, budgets, bounds=split.bounds, random_state=0, image_shape=split.image_shape
        )
        high = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return high

    single = max(peak([eps]) for eps in epsilons)
    together = peak(list(epsilons))
    per_eps = (together - single) / max(len(epsilons) - 1, 1)
    print(
        f"\nmemory of {spec} on {len(X)} samples: peak {single / 2**20:.1f} MiB for the "
        f"costliest single ε, {together / 2**20:.1f} MiB for {len(epsilons)} ε in one call: "
        f"{per_eps / 2**20:.2f} MiB per extra ε = {per_eps / batch_bytes:.2f} adversarial "
        f"batches ({batch_bytes / 2**20:.2f} MiB each)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=os.environ.get("ROBUSTKIT_DATA_DIR", "/work/shared/data")
    )
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--cache-dir", type=Path, default=None, help="trained-weights folder")
    parser.add_argument("--epochs", type=int, default=None, help="override the recipes' epochs")
    parser.add_argument("--networks", default=",".join(RECIPES), help="hinge,rbf or one")
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--eps", default=",".join(map(str, EPSILONS)))
    parser.add_argument(
        "--attacks", default=None, help="robustkit attack specs separated by ';' (default: auto)"
    )
    parser.add_argument("--no-reference", action="store_true", help="skip torchattacks")
    parser.add_argument(
        "--reference-threads",
        type=int,
        default=1,
        help="torch threads for the reference (default 1: its fastest on these small "
        "networks, and robustkit's attacks use one BLAS thread too; 0: torch's default)",
    )
    parser.add_argument("--no-table", action="store_true", help="skip the strength table")
    parser.add_argument("--no-full", action="store_true", help="skip the whole-test-set timing")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measure")
    parser.add_argument(
        "--cached-reference", action="store_true", help="show only cached reference cells"
    )
    parser.add_argument(
        "--reference-only", action="store_true", help="only run (and cache) the reference cells"
    )
    args = parser.parse_args(argv)

    epsilons = [float(e) for e in args.eps.split(",")]
    attacks = args.attacks.split(";") if args.attacks else default_attacks()
    split = load_split(args.dataset, args.data_dir)
    cache_dir = args.cache_dir or Path(tempfile.gettempdir()) / "robustkit-bench-autoattack"
    networks = trained_networks(split, cache_dir, args.epochs, args.networks.split(","))
    reference = not args.no_reference and reference_available()
    if reference and args.reference_threads > 0:
        import torch

        torch.set_num_threads(args.reference_threads)
    if not args.no_table:
        strength_table(
            networks,
            split,
            attacks,
            epsilons,
            args.n_samples,
            cache_dir,
            reference=reference,
            ours=not args.reference_only,
            cached_only=args.cached_reference,
        )
    if args.reference_only:
        return
    if not args.no_full:
        for spec in attacks:
            full_test_set_time(networks, split, epsilons, spec)
    if not args.no_memory:
        memory_per_epsilon(
            list(networks.values())[-1], split, attacks[0], min(args.n_samples, 1000), epsilons
        )


if __name__ == "__main__":
    main()
