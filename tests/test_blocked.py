"""Row-blocked work: the same bits on any number of threads and any cut, and a core budget
that follows the environment joblib's and Dask's workers set."""

import os

import numpy as np
import pytest
from robustkit_plugins import _blocked as blocked
from robustkit_plugins import apgd
from robustkit_plugins.apgd import APGD

from robustkit import create

SIZES = [5, blocked.BLOCKED_ROWS - 1, blocked.BLOCKED_ROWS, 5 * blocked.ROW_BLOCK + 17]


def _with_threads(monkeypatch, threads: int) -> None:
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", str(threads))


@pytest.mark.parametrize("rows", SIZES)
def test_a_blocked_product_is_the_same_bits_on_one_or_two_threads(monkeypatch, rows):
    rng = np.random.default_rng(rows)
    A = rng.standard_normal((rows, 784)).astype(np.float32)
    B = rng.standard_normal((784, 128)).astype(np.float32)
    products = []
    for threads in (1, 2):
        _with_threads(monkeypatch, threads)
        products.append(blocked.matmul(A, B))
        into = np.empty((rows, 128), np.float32)
        assert blocked.matmul(A, B, out=into) is into
        np.testing.assert_array_equal(into, products[-1])
    np.testing.assert_array_equal(products[0], products[1])
    exact = A.astype(np.float64) @ B.astype(np.float64)
    np.testing.assert_allclose(products[0], exact, rtol=1e-4, atol=1e-3)


def test_a_blocked_product_computes_in_the_dtype_asked_for():
    A = np.arange(2 * blocked.BLOCKED_ROWS * 3, dtype=np.float64).reshape(-1, 3)
    B = np.eye(3)
    product = blocked.matmul(A, B, dtype=np.float32)
    assert product.dtype == np.float32
    np.testing.assert_array_equal(product, A.astype(np.float32))


def test_the_core_budget_follows_the_environment(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert blocked.core_budget() == 3
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "many")  # not a count: the next one is used
    assert blocked.core_budget() == 1
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert blocked.core_budget() == len(os.sched_getaffinity(0))


def test_targeted_apgd_through_pca_is_the_same_on_one_or_two_threads(monkeypatch):
    # 9 targets × 150 samples go in as one search of 1350 rows: blocked products.
    split = create("dataset", "digits").load()
    model = create("model", "hinge", pca=32, hidden=32, epochs=3, random_state=0)
    model.fit(split.X_train, split.y_train)
    X, y = split.X_test[:150], split.y_test[:150]
    attack = APGD(loss="dlr", targeted=True, steps=5)
    results = []
    for threads in (1, 2):
        _with_threads(monkeypatch, threads)
        result = attack.perturb(model, X, y, [1.0, 2.0], bounds=split.bounds, random_state=0)
        results.append(result.adversarials)
    np.testing.assert_array_equal(results[0], results[1])


def test_apgds_update_on_row_blocks_gives_the_one_pass_iterates(monkeypatch):
    """APGD's element-wise update and best-point copies on small row blocks, on two
    threads, give the same adversarials as one pass over all rows (L∞ and L2)."""
    split = create("dataset", "digits").load()
    model = create("model", "hinge", hidden=16, epochs=3, random_state=0)
    model.fit(split.X_train, split.y_train)
    X, y = split.X_test[:60], split.y_test[:60]
    _with_threads(monkeypatch, 2)
    for norm, eps in (("linf", [0.05, 0.1]), ("l2", [0.5])):
        attack = APGD(norm=norm, loss="dlr", targeted=True, n_target_classes=3, steps=8)
        results = []
        for rows in (10**9, 1):  # one pass, then blocks of 7 rows from the first row on
            monkeypatch.setattr(apgd, "PARALLEL_ROWS", rows)
            monkeypatch.setattr(apgd, "UPDATE_ROWS", 7)
            result = attack.perturb(model, X, y, eps, bounds=split.bounds, random_state=0)
            results.append(result.adversarials)
        np.testing.assert_array_equal(results[0], results[1])
        assert not np.array_equal(results[0][0], X)  # the attack moved the inputs
