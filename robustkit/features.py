"""Feature-space views of a data set, for threat models where ε is measured in features."""

from __future__ import annotations

from dataclasses import replace
from numbers import Integral

import numpy as np

from .errors import DataError
from .interfaces import DataSplit


def pca_split(split: DataSplit, n_components: int, random_state: int = 0) -> DataSplit:
    """``split`` projected onto the first PCA components of its [0, 1]-scaled training inputs.

    This is the study's data (Fashion-MNIST reduced to 128 dimensions): models then see
    the features as their raw input, and attacks perturb the features, not the pixels.
    The bounds become the features' observed range over train and test.
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
    from sklearn.decomposition import PCA

    low, high = split.bounds
    scale = 1.0 / (high - low)
    train = split.X_train.reshape(len(split.X_train), -1)
    test = split.X_test.reshape(len(split.X_test), -1)
    pca = PCA(n_components=int(n_components), random_state=random_state)
    train = pca.fit_transform((train - low) * scale).astype(np.float32)
    test = pca.transform((test - low) * scale).astype(np.float32)
    bounds = (float(min(train.min(), test.min())), float(max(train.max(), test.max())))
    return replace(
        split,
        name=f"{split.name}-pca{n_components}",
        X_train=train,
        X_test=test,
        bounds=bounds,
        image_shape=None,
    )
