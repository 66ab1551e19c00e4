"""Embedding robustkit's harness in a project: evaluate your own model beside the built-ins.

The project's model is a plain softmax regression with analytic input gradients. It is
registered in-process (no package needed), then attacked with FGSM, PGD and random
noise next to the built-in hinge network, and the results are printed and saved.

    python examples/embed_harness.py [--json out.json]
"""

import argparse

import numpy as np

import robustkit
from robustkit import INPUT_GRADIENT, Grid, Harness, Model


class SoftmaxRegression(Model):
    """Multinomial logistic regression trained by full-batch gradient descent."""

    capabilities = frozenset({INPUT_GRADIENT})

    def __init__(self, lr: float = 0.5, epochs: int = 200, random_state: int | None = None):
        self.lr = lr
        self.epochs = epochs
        self.random_state = random_state

    def fit(self, X, y, *, eval_set=None, callback=None):
        self.classes_, codes = np.unique(y, return_inverse=True)
        self.scale_ = float(X.max()) or 1.0
        Z = X / self.scale_
        rng = np.random.default_rng(self.random_state)
        self.W_ = rng.normal(0, 0.01, (X.shape[1], len(self.classes_)))
        onehot = np.eye(len(self.classes_))[codes]
        for _ in range(self.epochs):
            self.W_ -= self.lr * Z.T @ (self._softmax(Z @ self.W_) - onehot) / len(X)
        return self

    @staticmethod
    def _softmax(scores):
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def decision_function(self, X):
        return (X / self.scale_) @ self.W_

    def loss_gradient(self, X, y):
        p = self._softmax(self.decision_function(X))
        codes = np.searchsorted(self.classes_, y)
        loss = -np.log(p[np.arange(len(X)), codes] + 1e-12)
        p[np.arange(len(X)), codes] -= 1.0  # d(cross-entropy)/d(scores)
        return loss, self.decision_gradient(X, p)

    def decision_gradient(self, X, grad_scores, grad_reject=None):
        return grad_scores @ self.W_.T / self.scale_


class ProjectPlugin:
    """An in-process plugin: the same hook a pip-installed plugin implements."""

    @robustkit.hookimpl
    def register_models(self, register):
        register("softmax", SoftmaxRegression)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the rows and metadata as JSON")
    args = parser.parse_args()

    robustkit.register_plugin(ProjectPlugin(), name="my-project")
    grid = Grid.build(
        model=["softmax", "hinge"],
        attack=["fgsm", "pgd", "noise"],
        eps=[0.05, 0.1, 0.2],
        n_samples=100,
        seed=0,
    )
    result = Harness(grid).run()
    print(result.tables())
    worst = max(result.rows, key=lambda row: row["evasion_rate"])
    print(
        f"\nweakest cell: {worst['model']} under {worst['attack']} at ε={worst['eps']:g}, "
        f"evasion {worst['evasion_rate']:.0%}"
    )
    if args.json:
        result.write_json(args.json)


if __name__ == "__main__":
    main()
