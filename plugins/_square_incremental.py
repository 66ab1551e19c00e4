"""Square's L∞ queries on models whose first layers are affine, updated window by window.

A Square proposal changes one small window of a sample's best point. When the model has
the ``certifiable`` capability and its layer records (``robustkit.certify``) start with
``Affine`` ones, those are folded into one map x ↦ x·W + b (d_in × hidden, float64) and
each sample's pre-activation at its best point is kept: a candidate's is that plus
(new − old window values) · W[window rows], a sparse product of a few hundred
multiply-adds instead of the model's full d_in × hidden one. The records after it run
in the attack's dtype.

The model stays the judge: a candidate whose margin is within ``CONFIRM_TOLERANCE`` of a
win is confirmed with its own ``decision_function`` and ``reject_score``. The float64
pre-activations are recomputed exactly every ``RESYNC`` queries, so rounding cannot
build up, and the first exact recomputation must agree with the model's own margins
(``AGREEMENT``), else the search falls back to querying the model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.sparse import csr_array

from robustkit.certify import Affine, RBFHead, fold_leading_affine, forward
from robustkit.interfaces import CERTIFIABLE, capabilities_of

#: Queries between two exact recomputations of the pre-activations.
RESYNC = 100
#: Windows of more than this share of the input's values go to the model: its dense
#: product is cheaper than a sparse update that large.
MAX_WINDOW_SHARE = 1 / 16
#: Margins above −(this × the scores' magnitude) may be wins: the model confirms them.
CONFIRM_TOLERANCE = 1e-4
#: The layers' margins must match the model's within this share of the scores' magnitude.
AGREEMENT = 1e-3


@dataclass
class WindowChange:
    """One changed window per sample: flat indices into an input (n, k), the new values
    (n, k) and new − old (in float64)."""

    pixels: np.ndarray
    new: np.ndarray
    delta: np.ndarray

    def applied(
        self, best: np.ndarray, positions: np.ndarray, subset: Any = slice(None)
    ) -> np.ndarray:
        """Copies of ``best[positions[subset]]`` with their windows changed: the candidates."""
        candidates = best[positions[subset]]
        at = np.arange(len(candidates))[:, None] * best[0].size + self.pixels[subset]
        candidates.reshape(-1)[at] = self.new[subset]
        return candidates

    def write(self, best: np.ndarray, positions: np.ndarray, subset: np.ndarray) -> None:
        """Change the windows of ``best[positions[subset]]`` in place (``subset`` a mask)."""
        at = positions[subset][:, None] * best[0].size + self.pixels[subset]
        best.reshape(-1)[at] = self.new[subset]


def window_pixels(
    tops: np.ndarray, lefts: np.ndarray, side: int, layout: tuple[int, int, int]
) -> np.ndarray:
    """Flat indices (n, c·side·side) into an (h, w, c) input of each sample's window,
    ordered (channel, row, column)."""
    _, width, channels = layout
    return ((tops * width + lefts) * channels)[:, None] + _window_offsets(side, width, channels)


@functools.cache
def _window_offsets(side: int, width: int, channels: int) -> np.ndarray:
    """Flat offsets (1, c·side·side) of a window's values from its top-left corner."""
    rows = np.arange(side)[None, :, None]
    cols = np.arange(side)[None, None, :]
    offsets = (rows * width + cols) * channels + np.arange(channels)[:, None, None]
    offsets = offsets.reshape(1, -1)
    offsets.flags.writeable = False
    return offsets


class IncrementalMargins:
    """Pre-activations of the first folded affine layer per sample, updated by windows.

    ``queries`` is the attack's ``_MarginQueries`` (it turns scores into margins and asks
    the model to confirm wins); ``runs`` index the (sample, budget) pairs of one search
    and ``rows`` the samples in the batch. ``usable`` turns False, for good, if the
    layers' margins do not match the model's.
    """

    def __init__(self, first: Affine, rest: list[Any], queries: Any, dtype: np.dtype) -> None:
        self.weight = np.ascontiguousarray(first.weight)
        self.bias = first.bias
        self.rest = [_cast(layer, dtype) for layer in rest]
        self.queries = queries
        self.dtype = dtype
        self.checked = False
        self.usable = True
        self.reset(0)

    def reset(self, n_runs: int) -> bool:
        """Fresh state for a search of ``n_runs`` (sample, budget) pairs; ``usable``."""
        self.pre = np.zeros((n_runs, self.weight.shape[1]))
        self.scale = np.ones(n_runs)  # 1 + the largest |score| at the last sync
        self.candidate = self.pre[:0]
        self.matrix: csr_array | None = None
        return self.usable

    @classmethod
    def for_model(
        cls, model: Any, queries: Any, n_inputs: int, dtype: np.dtype
    ) -> IncrementalMargins | None:
        """The incremental scorer, or None where the model's layers do not allow it."""
        if CERTIFIABLE not in capabilities_of(model):
            return None
        try:
            layers = model.certification_layers()
            first, rest = fold_leading_affine(layers)
        except Exception:  # a model that cannot describe itself is queried as it is
            return None
        if first.weight.ndim != 2 or first.weight.shape[0] != n_inputs or not rest:
            return None
        return cls(first, rest, queries, dtype)

    def worth(self, side: int, channels: int) -> bool:
        """Whether a window of ``side`` is small enough for a sparse update."""
        return side * side * channels <= MAX_WINDOW_SHARE * self.weight.shape[0]

    def sync(
        self, best: np.ndarray, runs: np.ndarray, rows: np.ndarray, model_value: np.ndarray
    ) -> np.ndarray:
        """Recompute the pre-activations of ``best`` (search runs ``runs``, batch samples
        ``rows``) exactly; their margins.

        The first time, ``model_value`` (the model's margins at ``best``) must match, else
        ``usable`` turns False (the layers do not describe the model) and it is returned.
        """
        pre = best.reshape(len(best), -1).astype(np.float64) @ self.weight
        pre += self.bias
        self.pre[runs] = pre
        scores, reject = forward(self.rest, pre.astype(self.dtype))
        value = self.queries.margins(scores, reject, rows)
        scale = 1.0 + np.abs(scores).max(axis=1)
        finite = np.isfinite(reject)
        scale[finite] = np.maximum(scale[finite], 1.0 + np.abs(reject[finite]))
        self.scale[runs] = scale
        if not self.checked:
            self.checked = True
            if not np.all(np.abs(value - model_value) <= AGREEMENT * scale):
                self.usable = False
                return model_value
        return value

    def query(
        self,
        change: WindowChange,
        runs: np.ndarray,
        rows: np.ndarray,
        best: np.ndarray,
        slots: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Margins of ``best[slots]`` (runs ``runs``, batch samples ``rows``) with
        ``change`` made, and where they break the sample, as the model confirms."""
        self.candidate = self.pre[runs] + self._update(change)
        scores, reject = forward(self.rest, self.candidate.astype(self.dtype))
        value = self.queries.margins(scores, reject, rows)
        maybe = np.flatnonzero(value > -CONFIRM_TOLERANCE * self.scale[runs])
        won = np.zeros(len(rows), dtype=bool)
        if maybe.size:
            candidates = change.applied(best, slots, maybe)
            won[maybe] = self.queries.confirm(candidates, rows[maybe])
        self.queries.count += len(rows)
        return value, won

    def _update(self, change: WindowChange) -> np.ndarray:
        """(new − old) · W[window rows] per sample, as one sparse product; the sparse
        matrix is reused (its values overwritten) while the windows' count and size hold."""
        n, k = change.pixels.shape
        matrix = self.matrix
        if matrix is None or matrix.shape[0] != n or matrix.nnz != n * k:
            matrix = csr_array(
                (change.delta.ravel(), change.pixels.ravel(), np.arange(0, n * k + 1, k)),
                shape=(n, self.weight.shape[0]),
                copy=True,
            )
            self.matrix = matrix
        else:
            matrix.data[:] = change.delta.ravel()
            matrix.indices[:] = change.pixels.ravel()
        return matrix @ self.weight

    def accept(self, runs: np.ndarray, better: np.ndarray) -> None:
        """The last query's candidates where ``better`` become those runs' best points."""
        self.pre[runs[better]] = self.candidate[better]


def _cast(layer: Any, dtype: np.dtype) -> Any:
    """A record's arrays in ``dtype`` (cast once, not at every query)."""
    if isinstance(layer, Affine):
        return Affine(np.asarray(layer.weight, dtype=dtype), np.asarray(layer.bias, dtype=dtype))
    if isinstance(layer, RBFHead):
        return replace(layer, centres=np.asarray(layer.centres, dtype=dtype))
    return layer
