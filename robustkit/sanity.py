"""Sanity checks on evaluation rows, after the "On Evaluating Adversarial Robustness" checklist.

Each returns human-readable warnings; an empty list means nothing looked suspicious.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

#: Above this share of zero input gradients, a gradient attack has little to follow.
ZERO_GRADIENT_WARN = 0.2
#: An unbounded iterative attack (ε ≥ the whole input range) should reach this success.
UNBOUNDED_SUCCESS = 0.95


def _where(row: dict[str, Any]) -> str:
    lam = f", λ={row['lam']:g}" if row.get("lam") is not None else ""
    return f"{row['model']} + {row['defense']}{lam}"


def _groups(rows: Iterable[dict[str, Any]], *keys: str) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row)
    return groups


def non_monotonic(rows: list[dict[str, Any]]) -> list[str]:
    """Success should not fall as ε grows: if it does, the attack is not converging."""
    out = []
    for group in _groups(rows, "model", "defense", "lam", "attack").values():
        ordered = sorted(group, key=lambda r: r["eps"])
        for before, after in itertools.pairwise(ordered):
            if after["attack_success_rate"] < before["attack_success_rate"]:
                out.append(
                    f"{after['attack']} on {_where(after)}: success falls from "
                    f"{before['attack_success_rate']:.0%} at ε={before['eps']:g} to "
                    f"{after['attack_success_rate']:.0%} at ε={after['eps']:g}; "
                    "the attack is not converging (more steps or restarts?)"
                )
    return out


def noise_beats_gradient(rows: list[dict[str, Any]]) -> list[str]:
    """Random noise must do worse than a gradient attack, else the gradients mislead it."""
    out = []
    for group in _groups(rows, "model", "defense", "lam", "eps").values():
        noise = [r for r in group if not r["gradient_based"]]
        for gradient in (r for r in group if r["gradient_based"]):
            for baseline in noise:
                if (
                    baseline["attack_success_rate"] > 0
                    and baseline["attack_success_rate"] >= gradient["attack_success_rate"]
                    and gradient["attack_success_rate"] < 1.0
                ):
                    out.append(
                        f"{baseline['attack']} does as well as {gradient['attack']} on "
                        f"{_where(gradient)} at ε={gradient['eps']:g} "
                        f"({baseline['attack_success_rate']:.0%} vs "
                        f"{gradient['attack_success_rate']:.0%}): suspect gradient masking"
                    )
    return out


def zero_gradients(rows: list[dict[str, Any]]) -> list[str]:
    """Many zero input gradients leave a loss-following attack nothing to follow."""
    out = []
    for group in _groups(rows, "model", "defense", "lam", "attack").values():
        row = group[0]
        if row["gradient_based"] and row["zero_gradient_rate"] > ZERO_GRADIENT_WARN:
            out.append(
                f"{row['attack']} on {_where(row)}: {row['zero_gradient_rate']:.0%} of the "
                "attacked samples have an exactly zero input gradient (saturated loss); "
                "success is capped there, try a margin loss (loss=margin)"
            )
    return out


def unbounded_not_reaching(rows: list[dict[str, Any]]) -> list[str]:
    """An iterative attack with ε covering the whole input range should (nearly) always win."""
    out = []
    for row in rows:
        if (
            row["iterative"]
            and row["eps_fraction"] >= 1.0
            and (row["attack_success_rate"] < UNBOUNDED_SUCCESS)
        ):
            out.append(
                f"{row['attack']} on {_where(row)} at ε={row['eps']:g} (unbounded) succeeds on "
                f"only {row['attack_success_rate']:.0%}: a sign of gradient masking"
            )
    return out


def inconclusive_certificates(rows: list[dict[str, Any]]) -> list[str]:
    """With certified bounds: a wide bracket [certified, robust] leaves the truth open."""
    from .certify import INCONCLUSIVE_GAP, bracket_gap, inconclusive

    return [
        f"{row['attack']} on {_where(row)} at ε={row['eps']:g}: certified "
        f"{row['certified_accuracy']:.0%} vs robust {row['certified_accuracy'] + gap:.0%} "
        f"({row['certify_method']}), a bracket wider than {INCONCLUSIVE_GAP:.0%}: inconclusive"
        for row in rows
        if inconclusive(row) and (gap := bracket_gap(row)) is not None
    ]


def sanity_warnings(rows: list[dict[str, Any]]) -> list[str]:
    """All checks, in the order of the checklist."""
    return [
        *non_monotonic(rows),
        *noise_beats_gradient(rows),
        *zero_gradients(rows),
        *unbounded_not_reaching(rows),
        *inconclusive_certificates(rows),
    ]
