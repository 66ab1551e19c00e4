"""Deterministic PCA and feature-space views of a data set.

``fit_pca`` gives the same components bit for bit whatever the BLAS thread count: the
covariance is accumulated in float64 over fixed-size row chunks in a fixed order on one
BLAS thread, then diagonalised by ``numpy.linalg.eigh`` with a sign convention. It never
holds more than one float64 chunk besides the data (scikit-learn's PCA copies the data
several times, and its randomized solver changes with the thread count).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from numbers import Integral

import numpy as np

from .errors import DataError
from .interfaces import DataSplit

#: Rows per chunk when accumulating the covariance or projecting a data set: bounded
#: memory (4096 × 784 float64 rows are 26 MB) and a fixed summation order.
CHUNK_ROWS = 4096


def row_chunks(n_rows: int, chunk: int = CHUNK_ROWS) -> Iterator[slice]:
    """Consecutive row slices of at most ``chunk`` rows covering ``range(n_rows)``."""
    for start in range(0, n_rows, chunk):
        yield slice(start, min(start + chunk, n_rows))


def _single_thread():
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    return threadpool_limits(limits=1, user_api="blas")


def fit_pca(
    X: np.ndarray, n_components: int, *, low: float = 0.0, scale: float | np.ndarray = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and first ``n_components`` principal axes (k, d) of ``(X - low) * scale``.

    Both float64. ``scale`` may be per feature. Each axis is signed so that its
    largest-magnitude entry is positive. The result depends only on the data, never on
    the thread count: every BLAS call runs on one thread over fixed chunks.
    """
    X = X.reshape(len(X), -1)
    d = X.shape[1]
    low = np.asarray(low, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    mean = scaled_mean(X, low, scale)
    with _single_thread():
        scatter = np.zeros((d, d))
        for rows in row_chunks(len(X)):
            centred = _scaled_chunk(X[rows], low, scale)
            centred -= mean
            scatter += centred.T @ centred
        # eigh's values ascend: take the last k, largest first.
        _, vectors = np.linalg.eigh(scatter)
    components = np.ascontiguousarray(vectors[:, ::-1][:, :n_components].T)
    peak = np.abs(components).argmax(axis=1)
    signs = np.sign(components[np.arange(len(components)), peak])
    components *= signs[:, None]
    return mean, components


def pca_split(split: DataSplit, n_components: int, random_state: int = 0) -> DataSplit:
    """``split`` projected onto the first PCA components of its [0, 1]-scaled training inputs.

    This is the study's data (Fashion-MNIST reduced to 128 dimensions): models then see
    the features as their raw input, and attacks perturb the features, not the pixels.
    The bounds become the features' observed range over train and test. The PCA is
    deterministic (``fit_pca``); ``random_state`` is kept for compatibility and unused.
    """
    n_features = int(np.prod(split.X_train.shape[1:]))
    if (
        isinstance(n_components, bool)
        or not isinstance(n_components, Integral)
        or not (1 <= n_components <= min(n_features, len(split.X_train)))
    ):
        raise DataError(
            f"pca must be a whole number from 1 to {min(n_features, len(split.X_train))} "
            f"for data set {split.name!r}, got {n_components!r}"
        )
    low, high = split.bounds
    scale = 1.0 / (high - low)
    mean, components = fit_pca(split.X_train, int(n_components), low=low, scale=scale)
    train = project(split.X_train, low, scale, mean, components)
    test = project(split.X_test, low, scale, mean, components)
    bounds = (float(min(train.min(), test.min())), float(max(train.max(), test.max())))
    return replace(
        split,
        name=f"{split.name}-pca{n_components}",
        X_train=train,
        X_test=test,
        bounds=bounds,
        image_shape=None,
    )


def project(
    X: np.ndarray, low: float, scale: float, mean: np.ndarray, components: np.ndarray
) -> np.ndarray:
    """``((X - low) * scale - mean) @ components.T`` as float32, chunk by chunk (float64
    arithmetic on one chunk at a time, so no float64 copy of the whole data set)."""
    X = X.reshape(len(X), -1)
    out = np.empty((len(X), len(components)), dtype=np.float32)
    with _single_thread():
        for rows in row_chunks(len(X)):
            centred = _scaled_chunk(X[rows], low, scale)
            centred -= mean
            np.matmul(centred, components.T, out=out[rows], casting="same_kind")
    return out


def scaled_mean(X: np.ndarray, low: float | np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    """Mean (d,) of ``(X - low) * scale`` in float64, summed chunk by chunk in a fixed order."""
    X = X.reshape(len(X), -1)
    low = np.asarray(low, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    total = np.zeros(X.shape[1])
    for rows in row_chunks(len(X)):
        total += _scaled_chunk(X[rows], low, scale).sum(axis=0)
    return total / len(X)


def _scaled_chunk(chunk: np.ndarray, low: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(chunk - low) * scale`` as one new float64 array (the only temporary)."""
    scaled = np.subtract(chunk, low, dtype=np.float64)
    scaled *= scale
    return scaled
