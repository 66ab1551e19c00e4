"""Certified L∞ robustness: sound bounds on a network's outputs over an ε-ball (IBP, CROWN).

A model that can be certified describes itself as a list of simple layer records
(``Affine``, ``ReLU``, ``GELU``, then a head: ``LinearHead`` or ``RBFHead``); this module
knows nothing else about it. For every input x and radius r it bounds the outputs over
the box {x' : ‖x' − x‖∞ ≤ r} ∩ [low, high]^d with one of two methods:

- ``"ibp"``: interval bound propagation (Gowal et al., 2018); the last affine layer is
  folded into the margins s_y − s_j, which is exact for them over the last box.
- ``"crown"``: linear relaxations of each activation back-substituted to the input
  (CROWN / DeepPoly, Zhang et al. 2018; Singh et al. 2019), intersected with IBP at every
  layer, so it is never looser than IBP.

A sample is *certified correct* when the true class provably beats every other class
(and the reject option, for models that reject), and *certified correct-or-reject* when
every input in the box is classified correctly or rejected.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .errors import RobustkitError
from .interfaces import CERTIFIABLE, require_capabilities
from .metrics import rate

#: The certification methods.
METHODS = ("ibp", "crown")
#: Samples per chunk (bounds on 784-pixel inputs for 21 margins fit in ~40 MB).
CHUNK = 256
#: A margin counts as certified only above this share of the clean scores' magnitude:
#: the bounds are exact float64 arithmetic, the model may compute in float32.
RELATIVE_TOLERANCE = 1e-4

# GELU in its tanh form, 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))), as the rbf network uses.
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715
#: Where the tanh GELU has its minimum: it falls on (−∞, GELU_ARGMIN] and rises after it.
GELU_ARGMIN = -0.7524614220710162
#: An upper bound on |GELU''| over the reals (its maximum is 2·√(2/π)/2 = 0.7979, at 0;
#: checked numerically in tests/test_certify.py).
GELU_CURVATURE = 0.81
#: Grid points per neuron interval used to bound GELU minus a line (CROWN relaxation).
GELU_GRID = 33


# ----------------------------------------------------------------------------- layers


@dataclass(frozen=True, eq=False)
class Affine:
    """x ↦ x @ weight + bias, ``weight`` of shape (d_in, d_out)."""

    weight: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class ReLU:
    """max(x, 0), element-wise."""


@dataclass(frozen=True)
class GELU:
    """GELU in its tanh form (see ``gelu``), element-wise; not monotone below −0.75."""


@dataclass(frozen=True)
class LinearHead:
    """The previous layer's outputs are the class scores, in ``classes_`` order.

    With ``reject``, one more output (the last) is the reject score, plus
    ``reject_offset``; the model rejects where it beats every class score.
    """

    reject: bool = False
    reject_offset: float = 0.0


@dataclass(frozen=True, eq=False)
class RBFHead:
    """Scores −‖h − c_i‖² for the rows c_i of ``centres`` (k, d).

    ``reject_score`` is the constant reject score (the rbf network's −threshold): the
    model rejects where it beats every class score, i.e. every distance exceeds
    −reject_score. None: the model never rejects.
    """

    centres: np.ndarray
    reject_score: float | None = None


Layer = Affine | ReLU | GELU | LinearHead | RBFHead


def with_reject_offset(layers: list[Any], offset: float) -> list[Any]:
    """``layers`` with ``offset`` added to the head's reject score (a calibrated reject)."""
    head = layers[-1]
    if isinstance(head, LinearHead) and head.reject:
        head = replace(head, reject_offset=head.reject_offset + offset)
    elif isinstance(head, RBFHead) and head.reject_score is not None:
        head = replace(head, reject_score=head.reject_score + offset)
    return [*layers[:-1], head]


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form: 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³)))."""
    return 0.5 * x * (1.0 + np.tanh(_GELU_C * (x + _GELU_K * x * x * x)))


def gelu_derivative(x: np.ndarray) -> np.ndarray:
    """d gelu / dx."""
    t = np.tanh(_GELU_C * (x + _GELU_K * x * x * x))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _GELU_C * (1.0 + 3.0 * _GELU_K * x * x)


def fold_leading_affine(layers: list[Any]) -> tuple[Affine, list[Any]]:
    """The leading consecutive ``Affine`` records folded into one (float64), and the rest.

    Attacks that change a few inputs at a time (Square) keep the folded layer's output
    per sample and update it with the changed inputs' rows of its weight only.
    """
    if not isinstance(layers, list | tuple) or not layers or not isinstance(layers[0], Affine):
        raise RobustkitError("the certification layers must start with an Affine layer")
    weight = np.asarray(layers[0].weight, dtype=np.float64)
    bias = np.asarray(layers[0].bias, dtype=np.float64)
    count = 1
    for layer in layers[1:]:
        if not isinstance(layer, Affine):
            break
        next_weight = np.asarray(layer.weight, dtype=np.float64)
        weight, bias = weight @ next_weight, bias @ next_weight + layer.bias
        count += 1
    return Affine(weight, bias), list(layers[count:])


def _gelu_one_array(x: np.ndarray) -> np.ndarray:
    """``gelu`` computed in place on one new array (x (1 + k x²) for x + k x³)."""
    out = x * x
    out *= _GELU_K
    out += 1.0
    out *= x
    out *= _GELU_C
    np.tanh(out, out=out)
    out += 1.0
    out *= x
    out *= 0.5
    return out


def forward(layers: list[Any], H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class scores (n, k) and reject scores (n,) of layer records run on ``H``.

    ``H`` is the input of ``layers[0]``; the arithmetic is in ``H``'s dtype. The reject
    score is −inf for a head that never rejects, as ``Model.reject_score``'s default.
    """
    *body, head = layers
    for layer in body:
        if isinstance(layer, Affine):
            H = H @ np.asarray(layer.weight, dtype=H.dtype) + np.asarray(layer.bias, H.dtype)
        elif isinstance(layer, ReLU):
            H = np.maximum(H, 0.0, dtype=H.dtype)
        elif isinstance(layer, GELU):
            H = _gelu_one_array(H)
        else:
            raise RobustkitError(f"unknown certification layer {layer!r} before the head")
    never = np.full(len(H), -np.inf, dtype=H.dtype)
    if isinstance(head, LinearHead):
        if not head.reject:
            return H, never
        return H[:, :-1], H[:, -1] + H.dtype.type(head.reject_offset)
    if isinstance(head, RBFHead):
        centres = np.asarray(head.centres, dtype=H.dtype)
        scores = 2.0 * (H @ centres.T)
        scores -= np.einsum("ij,ij->i", H, H)[:, None]
        scores -= np.einsum("ij,ij->i", centres, centres)
        if head.reject_score is None:
            return scores, never
        return scores, np.full(len(H), head.reject_score, dtype=H.dtype)
    raise RobustkitError(
        f"the last certification layer must be LinearHead or RBFHead, got {head!r}"
    )


# ----------------------------------------------------------------- activation bounds


def activation_interval(layer: Any, lower: np.ndarray, upper: np.ndarray) -> tuple[Any, Any]:
    """The exact image of [lower, upper] under an element-wise activation."""
    if isinstance(layer, ReLU):
        return np.maximum(lower, 0.0), np.maximum(upper, 0.0)
    at_lower, at_upper = gelu(lower), gelu(upper)
    contains_min = (lower <= GELU_ARGMIN) & (upper >= GELU_ARGMIN)
    low = np.where(contains_min, gelu(np.float64(GELU_ARGMIN)), np.minimum(at_lower, at_upper))
    return low, np.maximum(at_lower, at_upper)


def relaxation(layer: Any, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, ...]:
    """Lines a_l z + b_l ≤ σ(z) ≤ a_u z + b_u valid for z in [lower, upper].

    ReLU: CROWN's (upper: the chord; lower: slope 0 or 1, whichever is tighter by area).
    GELU: both lines parallel to the chord, shifted by the min and max of σ(z) − a z,
    which are bounded soundly on a grid with the curvature term GELU_CURVATURE·h²/8.
    """
    width = upper - lower
    if isinstance(layer, ReLU):
        crossing = (lower < 0) & (upper > 0)
        chord = np.where(crossing, upper / np.where(crossing, width, 1.0), 0.0)
        slope_upper = np.where(lower >= 0, 1.0, chord)
        offset_upper = np.where(crossing, -lower * chord, 0.0)
        slope_lower = np.where(lower >= 0, 1.0, np.where(crossing & (upper > -lower), 1.0, 0.0))
        return slope_lower, np.zeros_like(lower), slope_upper, offset_upper
    wide = width > 1e-9
    safe_width = np.where(wide, width, 1.0)
    chord = (gelu(upper) - gelu(lower)) / safe_width
    slope = np.where(wide, chord, gelu_derivative((lower + upper) / 2))
    steps = np.linspace(0.0, 1.0, GELU_GRID)
    grid = lower[..., None] + width[..., None] * steps
    gap = gelu(grid) - slope[..., None] * grid
    slack = GELU_CURVATURE * (width / (GELU_GRID - 1)) ** 2 / 8
    return slope, gap.min(axis=-1) - slack, slope, gap.max(axis=-1) + slack


# ------------------------------------------------------------------------ the network


@dataclass
class _Network:
    """A checked layer list: the body (affines fused) and the head's linear parts."""

    body: list[Any]
    head: Any
    score_layer: Affine | None  # the linear head's score layer, taken out of the body
    n_classes: int
    rejects: bool
    n_inputs: int


def _as_network(layers: Any) -> _Network:
    """Check the layer records and fuse consecutive affine layers (exact, and tighter)."""
    if not isinstance(layers, list | tuple) or not layers:
        raise RobustkitError("certification_layers() must return a non-empty list of layers")
    *body_layers, head = layers
    if not isinstance(head, LinearHead | RBFHead):
        raise RobustkitError(
            f"the last certification layer must be LinearHead or RBFHead, got {head!r}"
        )
    body: list[Any] = []
    width = None
    for layer in body_layers:
        if isinstance(layer, Affine):
            weight = np.asarray(layer.weight, dtype=np.float64)
            bias = np.asarray(layer.bias, dtype=np.float64)
            if weight.ndim != 2 or bias.shape != (weight.shape[1],):
                raise RobustkitError(
                    f"an Affine layer needs weight (d_in, d_out) and bias (d_out,); "
                    f"got {weight.shape} and {bias.shape}"
                )
            if width is not None and weight.shape[0] != width:
                raise RobustkitError(
                    f"an Affine layer takes {weight.shape[0]} inputs after {width} outputs"
                )
            if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
                raise RobustkitError("an Affine layer holds NaN or infinite values")
            width = weight.shape[1]
            if body and isinstance(body[-1], Affine):
                last = body.pop()
                weight, bias = last.weight @ weight, last.bias @ weight + bias
            body.append(Affine(weight, bias))
        elif isinstance(layer, ReLU | GELU):
            body.append(layer)
        else:
            raise RobustkitError(
                f"unknown certification layer {layer!r}; accepted: Affine, ReLU, GELU, "
                "then LinearHead or RBFHead"
            )
    if not body or not isinstance(body[0], Affine):
        raise RobustkitError("the certification layers must start with an Affine layer")
    if isinstance(head, LinearHead):
        if not isinstance(body[-1], Affine):
            raise RobustkitError("a LinearHead must follow an Affine layer (the scores)")
        score_layer = body.pop()
        n_classes = score_layer.weight.shape[1] - (1 if head.reject else 0)
        n_inputs = (body or [score_layer])[0].weight.shape[0]
        return _Network(body, head, score_layer, n_classes, bool(head.reject), n_inputs)
    centres = np.asarray(head.centres, dtype=np.float64)
    if centres.ndim != 2 or centres.shape[1] != width:
        raise RobustkitError(
            f"RBFHead centres must have shape (n_classes, {width}); got {centres.shape}"
        )
    head = replace(head, centres=centres)
    n_inputs = body[0].weight.shape[0]
    return _Network(body, head, None, len(centres), head.reject_score is not None, n_inputs)


class _Propagation:
    """Bounds of every layer of the body for one chunk of input boxes, by IBP or CROWN."""

    def __init__(self, body: list[Any], low: np.ndarray, high: np.ndarray, method: str):
        self.body = body
        self.centre, self.radius = (low + high) / 2, (high - low) / 2
        self.crown = method == "crown"
        self.relaxations: dict[int, tuple[np.ndarray, ...]] = {}
        lower, upper = low, high
        for i, layer in enumerate(body):
            if isinstance(layer, Affine):
                centre = (lower + upper) / 2 @ layer.weight + layer.bias
                spread = (upper - lower) / 2 @ np.abs(layer.weight)
                lower, upper = centre - spread, centre + spread
                continue
            if self.crown:
                if i > 1:  # after another activation: back-substitute the pre-activations
                    n, d = lower.shape
                    identity, zero = np.broadcast_to(np.eye(d), (n, d, d)), np.zeros((n, d))
                    lower = np.maximum(lower, self._back_substitute(identity, zero, i))
                    upper = np.minimum(upper, -self._back_substitute(-identity, zero, i))
                self.relaxations[i] = relaxation(layer, lower, upper)
            lower, upper = activation_interval(layer, lower, upper)
        self.lower, self.upper = lower, upper  # of the body's output

    def _back_substitute(self, C: np.ndarray, offset: np.ndarray, end: int) -> np.ndarray:
        """Lower bound over the input box of C·v + offset, v the output of body[:end].

        C has shape (n, m, d), offset (n, m); a positive coefficient takes an
        activation's lower line, a negative one its upper line.
        """
        for i in range(end - 1, -1, -1):
            layer = self.body[i]
            if isinstance(layer, Affine):
                offset = offset + C @ layer.bias
                n, m, d = C.shape
                C = (C.reshape(n * m, d) @ layer.weight.T).reshape(n, m, -1)
                continue
            slope_l, off_l, slope_u, off_u = (a[:, None, :] for a in self.relaxations[i])
            positive, negative = np.maximum(C, 0.0), np.minimum(C, 0.0)
            offset = offset + (positive * off_l).sum(-1) + (negative * off_u).sum(-1)
            C = positive * slope_l + negative * slope_u
        centre, radius = self.centre[:, :, None], self.radius[:, :, None]
        return offset + (C @ centre)[..., 0] - (np.abs(C) @ radius)[..., 0]

    def minimum(self, C: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Lower bound of C·h + offset over the box (h: the body's output), shape (n, m)."""
        centre = ((self.lower + self.upper) / 2)[:, :, None]
        spread = ((self.upper - self.lower) / 2)[:, :, None]
        bound = offset + (C @ centre)[..., 0] - (np.abs(C) @ spread)[..., 0]
        if self.crown:
            bound = np.maximum(bound, self._back_substitute(C, offset, len(self.body)))
        return bound


# --------------------------------------------------------------------------- the head


def _rbf_distance_bounds(
    propagation: _Propagation, centres: np.ndarray, rows: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds (n, k) of ‖h − c_j‖² (centre per row when ``rows`` is given).

    IBP: per coordinate, the min and max of (h_i − c_i)² over [l_i, u_i]. CROWN adds a
    tangent plane at the box point nearest the centre (below the convex quadratic
    everywhere) and the per-coordinate chords (above it on the box), back-substituted.
    """
    lower, upper = propagation.lower[:, None, :], propagation.upper[:, None, :]
    c = centres[None, :, :] if rows is None else centres[rows][:, None, :]
    below, above = lower - c, upper - c
    nearest = np.maximum(np.maximum(below, -above), 0.0)
    low = (nearest * nearest).sum(-1)
    high = np.maximum(below * below, above * above).sum(-1)
    if propagation.crown:
        n, k = low.shape
        touch = np.clip(c, lower, upper)  # h0: the box point nearest c
        tangent = 2.0 * (touch - c)
        tangent_offset = ((touch - c) ** 2).sum(-1) - (tangent * touch).sum(-1)
        shape = (n, k, c.shape[-1])
        tangent_bound = propagation.minimum(
            np.broadcast_to(tangent, shape), np.broadcast_to(tangent_offset, (n, k))
        )
        low = np.maximum(low, tangent_bound)
        chord = lower + upper - 2.0 * c
        chord_offset = (below * below).sum(-1) - (chord * lower).sum(-1)
        chord_bound = -propagation.minimum(
            -np.broadcast_to(chord, shape), -np.broadcast_to(chord_offset, (n, k))
        )
        high = np.minimum(high, chord_bound)
    return low, high


@dataclass
class MarginBounds:
    """Lower bounds of the margins that decide a prediction, over each sample's box.

    ``class_margin`` (n, k): s_y − s_j (+inf at j = y); ``reject_margin`` (n,): s_y − r
    (+inf for models that never reject); ``reject_over_class`` (n, k): r − s_j (−inf for
    models that never reject).
    """

    class_margin: np.ndarray
    reject_margin: np.ndarray
    reject_over_class: np.ndarray
    tolerance: np.ndarray  # (n,) what a margin must exceed to count

    @property
    def correct(self) -> np.ndarray:
        """Every input in the box is classified as y and not rejected."""
        tol = self.tolerance
        return (self.class_margin > tol[:, None]).all(axis=1) & (self.reject_margin > tol)

    @property
    def correct_or_reject(self) -> np.ndarray:
        """Every input in the box is classified as y or rejected: no j ≠ y ever wins.

        j cannot win where s_y > s_j or r > s_j (then the reject beats the top score).
        """
        beaten = np.maximum(self.class_margin, self.reject_over_class)
        return (beaten > self.tolerance[:, None]).all(axis=1)


def _linear_specs(net: _Network, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Margins of a linear head as linear functions C·h + offset of the body's output.

    Rows: s_y − s_j for every j, then (with reject) s_y − r, then r − s_j for every j.
    """
    W, b, k = net.score_layer.weight.T, net.score_layer.bias, net.n_classes
    C = [W[y][:, None, :] - W[None, :k, :]]
    offset = [b[y][:, None] - b[None, :k]]
    if net.rejects:
        r_w, r_b = W[k], b[k] + net.head.reject_offset
        C += [(W[y] - r_w)[:, None, :], np.broadcast_to(r_w - W[:k], (len(y), k, len(r_w)))]
        offset += [(b[y] - r_b)[:, None], np.broadcast_to(r_b - b[:k], (len(y), k))]
    return np.concatenate(C, axis=1), np.concatenate(offset, axis=1)


def _chunk_margins(
    net: _Network, low: np.ndarray, high: np.ndarray, y: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    propagation = _Propagation(net.body, low, high, method)
    n, k = len(y), net.n_classes
    rows = np.arange(n)
    never = np.full(n, np.inf), np.full((n, k), -np.inf)
    if net.score_layer is not None:
        margins = propagation.minimum(*_linear_specs(net, y))
        class_margin = margins[:, :k]
        if not net.rejects:
            reject_margin, reject_over_class = never
        else:
            reject_margin, reject_over_class = margins[:, k], margins[:, k + 1 :]
    else:
        centres = net.head.centres
        C = 2.0 * (centres[y][:, None, :] - centres[None, :, :])
        sq = (centres * centres).sum(axis=1)
        class_margin = propagation.minimum(C, sq[None, :] - sq[y][:, None])
        if not net.rejects:
            reject_margin, reject_over_class = never
        else:
            r = float(net.head.reject_score)
            reject_margin = -r - _rbf_distance_bounds(propagation, centres, y)[1][:, 0]
            reject_over_class = r + _rbf_distance_bounds(propagation, centres, None)[0]
    class_margin = class_margin.copy()
    class_margin[rows, y] = np.inf
    reject_over_class = np.array(reject_over_class, dtype=np.float64)
    reject_over_class[rows, y] = np.inf
    return class_margin, np.asarray(reject_margin, dtype=np.float64), reject_over_class


def _clean_scale(net: _Network, X: np.ndarray) -> np.ndarray:
    """The largest |output| at the clean point, per sample (sets the float tolerance)."""
    propagation = _Propagation(net.body, X, X, "ibp")
    h = propagation.lower
    if net.score_layer is not None:
        out = h @ net.score_layer.weight + net.score_layer.bias
    else:
        c = net.head.centres
        out = (h * h).sum(1)[:, None] - 2 * h @ c.T + (c * c).sum(1)
    return np.abs(out).max(axis=1)


# ------------------------------------------------------------------------- entry points


def input_box(
    X: np.ndarray, radius: float, bounds: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The L∞ ball of ``radius`` around each row of X, intersected with [low, high]."""
    radius = _check_radius(radius)
    lo, hi = map(float, bounds)
    if not hi > lo:
        raise RobustkitError(f"bounds must be (low, high) with low < high, got {bounds}")
    X = np.asarray(X, dtype=np.float64)
    return np.maximum(X - radius, lo), np.minimum(X + radius, hi)


def _check_radius(radius: Any) -> float:
    try:
        radius = float(radius)
    except (TypeError, ValueError):
        radius = float("nan")
    if not (math.isfinite(radius) and radius >= 0):
        raise RobustkitError(f"the certification radius must be a finite number >= 0, got {radius}")
    return radius


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise RobustkitError(
            f"certification method must be one of {', '.join(METHODS)}; got {method!r}"
        )


def margin_bounds(
    layers: list[Any],
    X: np.ndarray,
    y_index: np.ndarray,
    radius: float,
    bounds: tuple[float, float],
    method: str = "ibp",
) -> MarginBounds:
    """Lower bounds of the deciding margins over each sample's box; y_index: class columns."""
    _check_method(method)
    net = _as_network(layers)
    X = np.asarray(X, dtype=np.float64)
    y_index = np.asarray(y_index, dtype=np.intp)
    if X.ndim != 2 or X.shape[1] != net.n_inputs:
        raise RobustkitError(
            f"X must have shape (n, {net.n_inputs}) for these layers; got {X.shape}"
        )
    if y_index.shape != (len(X),) or ((y_index < 0) | (y_index >= net.n_classes)).any():
        raise RobustkitError(f"y_index must hold {len(X)} class columns in [0, {net.n_classes})")
    low, high = input_box(X, radius, bounds)
    parts = [
        _chunk_margins(net, low[s], high[s], y_index[s], method)
        for s in (slice(start, start + CHUNK) for start in range(0, max(len(X), 1), CHUNK))
    ]
    class_margin, reject_margin, reject_over_class = (
        np.concatenate([p[i] for p in parts]) for i in range(3)
    )
    tolerance = RELATIVE_TOLERANCE * (1.0 + _clean_scale(net, X))
    return MarginBounds(class_margin, reject_margin, reject_over_class, tolerance)


def output_bounds(
    layers: list[Any],
    X: np.ndarray,
    radius: float,
    bounds: tuple[float, float],
    method: str = "ibp",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper bounds of the class scores (n, k) and the reject score (n,)."""
    _check_method(method)
    net = _as_network(layers)
    low, high = input_box(X, radius, bounds)
    propagation = _Propagation(net.body, low, high, method)
    n, k = len(low), net.n_classes
    if net.score_layer is not None:
        W, b = net.score_layer.weight.T, net.score_layer.bias
        C = np.broadcast_to(W, (n, *W.shape))
        offset = np.broadcast_to(b, (n, len(b)))
        lower, upper = propagation.minimum(C, offset), -propagation.minimum(-C, -offset)
        if not net.rejects:
            return lower, upper, np.full(n, -np.inf), np.full(n, -np.inf)
        shift = net.head.reject_offset
        return lower[:, :k], upper[:, :k], lower[:, k] + shift, upper[:, k] + shift
    low_d, high_d = _rbf_distance_bounds(propagation, net.head.centres, None)
    r = -np.inf if not net.rejects else float(net.head.reject_score)
    return -high_d, -low_d, np.full(n, r), np.full(n, r)


@dataclass
class Certificate:
    """Per sample: certified correct, and certified correct-or-reject."""

    correct: np.ndarray
    correct_or_reject: np.ndarray


def certify_model(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    radius: float,
    *,
    bounds: tuple[float, float],
    method: str = "ibp",
) -> Certificate:
    """Certify a model with the ``certifiable`` capability on (X, y) at an L∞ radius.

    ``radius`` is in input units; labels the model does not know are never certified.
    """
    _check_method(method)
    _check_radius(radius)
    require_capabilities(model, frozenset({CERTIFIABLE}), "certification")
    classes = np.asarray(model.classes_)
    y = np.asarray(y)
    columns = np.searchsorted(classes, y).clip(0, len(classes) - 1)
    known = classes[columns] == y
    X = np.asarray(X).reshape(len(X), -1)
    result = margin_bounds(model.certification_layers(), X, columns, radius, bounds, method)
    return Certificate(result.correct & known, result.correct_or_reject & known)


#: A bracket [certified, robust] wider than this is flagged as inconclusive.
INCONCLUSIVE_GAP = 0.2


def _rate_with_interval(name: str, hits: np.ndarray) -> dict[str, float]:
    """``name``, ``name_low`` and ``name_high``: the share of hits and its 95 % Wilson interval."""
    return rate(name, int(np.count_nonzero(hits)), len(hits))


def certification_metrics(
    model: Any,
    X: np.ndarray,
    y: np.ndarray,
    radius: float,
    *,
    bounds: tuple[float, float],
    method: str,
    rejects: bool,
) -> dict[str, Any]:
    """The row columns of a certificate: ``certified_accuracy`` (with its Wilson interval),
    ``certified_correct_or_reject`` for models that reject (else None), method and seconds."""
    start = time.perf_counter()
    certificate = certify_model(model, X, y, radius, bounds=bounds, method=method)
    metrics: dict[str, Any] = {"certify_method": method}
    metrics.update(_rate_with_interval("certified_accuracy", certificate.correct))
    either = _rate_with_interval("certified_correct_or_reject", certificate.correct_or_reject)
    metrics.update(either if rejects else dict.fromkeys(either))
    metrics["certify_seconds"] = time.perf_counter() - start
    return metrics


def bracket_gap(row: dict[str, Any]) -> float | None:
    """Robust accuracy (what the attack left) minus certified accuracy, or None."""
    if row.get("certified_accuracy") is None:
        return None
    robust = row.get("robust_accuracy")
    if robust is None:  # 0.1 rows: the attacked samples are all clean-correct
        robust = 1.0 - row["attack_success_rate"]
    return float(robust) - float(row["certified_accuracy"])


def inconclusive(row: dict[str, Any]) -> bool:
    """True where the bracket [certified, robust] is wider than ``INCONCLUSIVE_GAP``."""
    gap = bracket_gap(row)
    return gap is not None and gap > INCONCLUSIVE_GAP


def check_certification(models: list[Any], method: str, eps_fractions: list[float]) -> None:
    """Before any training: a known method, certifiable models, ε within the input range."""
    _check_method(method)
    for model in models:
        require_capabilities(model, frozenset({CERTIFIABLE}), f"--certify {method}")
    outside = [e for e in eps_fractions if not 0 <= e <= 1]
    if outside:
        raise RobustkitError(
            f"certification takes ε within the input range (0 to 1 of it); got {outside}"
        )
