"""Square's incremental scores (plugins/_square_incremental.py) against the models' own."""

import os
import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest
from robustkit_plugins import square as square_module
from robustkit_plugins._square_incremental import IncrementalMargins, WindowChange
from robustkit_plugins.hinge import HingeNetwork
from robustkit_plugins.rbf import RBFNetwork
from sklearn.datasets import load_digits

import robustkit
from robustkit.certify import fold_leading_affine
from robustkit.testing import LinearModel
from robustkit.wrapping import WrappedModel

BOUNDS = (0.0, 16.0)
SHAPE = (8, 8)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def models(digits):
    X, y = digits
    fitted = {
        "hinge": HingeNetwork(hidden=24, epochs=3, pca=12, random_state=0),
        "rbf": RBFNetwork(hidden=24, epochs=3, random_state=0),
        "reject": robustkit.create(
            "defense", "reject", target_reject_rate=0.3, random_state=0
        ).apply(HingeNetwork(hidden=24, epochs=3, random_state=0)),
    }
    return {name: model.fit(X[:1200], y[:1200]) for name, model in fitted.items()}


class CheckedMargins(IncrementalMargins):
    """Checks every incremental query against the model's own margins and verdicts."""

    log: ClassVar[list] = []

    def sync(self, best, runs, rows, model_value):
        CheckedMargins.log.append(("sync", self.usable))
        return super().sync(best, runs, rows, model_value)

    def query(self, change, runs, rows, best, slots):
        value, won = super().query(change, runs, rows, best, slots)
        X = change.applied(best, slots).reshape(len(rows), -1)
        model = self.queries.model
        model_value = self.queries.margins(model.decision_function(X), model.reject_score(X), rows)
        exact_pre = X.astype(np.float64) @ self.weight + self.bias
        CheckedMargins.log.append(("query", value, model_value, won, self.queries.confirm(X, rows)))
        np.testing.assert_allclose(self.candidate, exact_pre, rtol=1e-9, atol=1e-9)
        return value, won


def checked_square(monkeypatch, model, X, y, eps, **params):
    CheckedMargins.log = []
    monkeypatch.setattr(square_module, "IncrementalMargins", CheckedMargins)
    attack = robustkit.create("attack", "square", n_queries=150, **params)
    return attack.perturb(model, X, y, eps, bounds=BOUNDS, random_state=0, image_shape=SHAPE)


@pytest.mark.parametrize(
    "name, reject_aware", [("hinge", False), ("rbf", False), ("reject", False), ("reject", True)]
)
def test_incremental_margins_equal_the_models_along_a_search(
    monkeypatch, digits, models, name, reject_aware
):
    X, y = digits[0][1200:1300], digits[1][1200:1300]
    checked_square(monkeypatch, models[name], X, y, 0.1, reject_aware=reject_aware)
    queries = [entry for entry in CheckedMargins.log if entry[0] == "query"]
    assert len(queries) > 100  # most of the 150 queries run incrementally
    for _, value, model_value, won, model_won in queries:
        scale = 1.0 + np.abs(model_value).max()
        np.testing.assert_allclose(value, model_value, rtol=1e-4, atol=1e-4 * scale)
        np.testing.assert_array_equal(won, model_won)
    assert any(entry[3].any() for entry in queries)  # wins happened on the way


def test_a_non_certifiable_model_takes_the_generic_path(monkeypatch, digits):
    X, y = digits
    model = LinearModel(random_state=0).fit(X[:500], y[:500])
    assert IncrementalMargins.for_model(model, None, 64, np.float32) is None
    checked_square(monkeypatch, model, X[1200:1240], y[1200:1240], 0.1)
    assert CheckedMargins.log == []


class Shifted(WrappedModel):
    """A wrapper whose scores its (inherited) certification layers do not describe."""

    def decision_function(self, X):
        scores = np.array(self.model.decision_function(X))
        scores[:, 0] += 3.0
        return scores

    def certification_layers(self):
        return self.model.certification_layers()


def test_layers_that_do_not_match_the_model_fall_back_to_the_models_scores(
    monkeypatch, digits, models
):
    X, y = digits[0][1200:1260], digits[1][1200:1260]
    model = Shifted(models["hinge"])
    result = checked_square(monkeypatch, model, X, y, 0.1)
    assert CheckedMargins.log == [("sync", True)]  # checked once, then never used
    monkeypatch.setattr(CheckedMargins, "for_model", classmethod(lambda cls, *args: None))
    generic = robustkit.create("attack", "square", n_queries=150).perturb(
        model, X, y, 0.1, bounds=BOUNDS, random_state=0, image_shape=SHAPE
    )
    np.testing.assert_array_equal(result.adversarials, generic.adversarials)


def test_fast_and_generic_paths_break_the_same_samples_on_an_easy_case(monkeypatch, digits, models):
    X, y = digits[0][1200:1300], digits[1][1200:1300]
    model = models["hinge"]
    fast = checked_square(monkeypatch, model, X, y, 0.25).adversarials[0]
    assert any(entry[0] == "query" for entry in CheckedMargins.log)
    monkeypatch.setattr(CheckedMargins, "for_model", classmethod(lambda cls, *args: None))
    generic = robustkit.create("attack", "square", n_queries=150).perturb(
        model, X, y, 0.25, bounds=BOUNDS, random_state=0, image_shape=SHAPE
    )
    broken_fast = model.predict(fast) != y
    broken_generic = model.predict(generic.adversarials[0]) != y
    assert broken_generic.mean() > 0.9
    np.testing.assert_array_equal(broken_fast, broken_generic)


def test_pre_activations_are_recomputed_exactly_every_resync_queries(monkeypatch, digits, models):
    X, y = digits[0][1200:1300], digits[1][1200:1300]
    monkeypatch.setattr(square_module, "RESYNC", 7)
    checked_square(monkeypatch, models["rbf"], X, y, 0.05)
    kinds = [entry[0] for entry in CheckedMargins.log]
    n_queries = kinds.count("query")
    assert n_queries > 100 and kinds.count("sync") == -(-n_queries // 7)
    assert all(kind == "sync" for kind in kinds[:: 7 + 1])


def test_a_resync_removes_any_drift(digits, models):
    model = models["reject"]
    X, y = digits[0][1200:1220], digits[1][1200:1220]
    y_columns = np.searchsorted(model.classes_, y)
    queries = square_module._MarginQueries(model, (64,), y_columns, None, True)
    incremental = IncrementalMargins.for_model(model, queries, 64, np.float32)
    incremental.reset(len(X))
    rows = np.arange(len(X))
    true_value = queries(X, rows)[0]
    synced = incremental.sync(X, rows, rows, true_value)
    np.testing.assert_allclose(synced, true_value, rtol=1e-5)
    incremental.pre += 0.5  # drift
    no_change = WindowChange(np.zeros((len(X), 1), dtype=np.intp), X[:, :1], np.zeros((20, 1)))
    drifted = incremental.query(no_change, rows, rows, X.reshape(-1, 8, 8, 1), rows)[0]
    assert np.abs(drifted - true_value).max() > 1e-2
    synced = incremental.sync(X, rows, rows, true_value)
    np.testing.assert_allclose(synced, true_value, rtol=1e-5)


def test_fold_leading_affine_is_the_exact_composition(models, digits):
    layers = models["hinge"].certification_layers()
    first, rest = fold_leading_affine(layers)
    X = digits[0][:5].astype(np.float64)
    np.testing.assert_allclose(
        X @ first.weight + first.bias,
        (X @ layers[0].weight + layers[0].bias) @ layers[1].weight + layers[1].bias,
        rtol=1e-10,
    )
    assert rest == layers[2:]


SCRIPT = """
import hashlib, numpy as np, robustkit
from robustkit_plugins.hinge import HingeNetwork
from sklearn.datasets import load_digits
X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)
model = HingeNetwork(hidden=24, epochs=2, pca=12, random_state=0).fit(X[:600], y[:600])
attack = robustkit.create("attack", "square", n_queries=120)
result = attack.perturb(model, X[1200:1300], y[1200:1300], [0.05, 0.1], bounds=(0, 16),
                        random_state=3, image_shape=(8, 8))
print(hashlib.sha256(result.adversarials.tobytes()).hexdigest())
"""


def test_incremental_square_gives_the_same_result_on_one_or_two_blas_threads():
    digests = set()
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
        )
        digests.add(done.stdout.strip())
    assert len(digests) == 1
