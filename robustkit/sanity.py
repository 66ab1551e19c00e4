"""Sanity checks on evaluation rows, after the "On Evaluating Adversarial Robustness" checklist.

Each check returns human-readable warnings, at most one per check and (model, defense):
the attacks, λ and ε concerned are listed in that one line. An empty list means nothing
looked suspicious. The checks use each row's ``attack_kind`` and ``iterative`` flag, not
attack names, and skip the ``worst case`` rows. An attack's strength is its evasion
among the attacked samples (wrong and not rejected), so a defense's rejects count for it.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from .interfaces import BASELINE_ATTACK, GRADIENT_ATTACK, SCORE_ATTACK

#: Above this share of zero input gradients, a gradient attack has little to follow.
ZERO_GRADIENT_WARN = 0.2
#: An unbounded iterative attack (ε ≥ the whole input range) should reach this success.
UNBOUNDED_SUCCESS = 0.95


def _where(row: dict[str, Any]) -> str:
    return f"{row['model']} + {row['defense']}"


def _at(row: dict[str, Any]) -> str:
    lam = f", λ={row['lam']:g}" if row.get("lam") is not None else ""
    return f"ε={row['eps']:g}{lam}"


def _groups(rows: Iterable[dict[str, Any]], *keys: str) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if not row.get("worst_case"):
            groups[tuple(row.get(k) for k in keys)].append(row)
    return groups


def _strength(row: dict[str, Any]) -> float:
    """Evasion among the attacked samples (0 when none was attacked)."""
    return row["evaded"] / row["n_attacked"] if row["n_attacked"] else 0.0


def _per_model(found: list[tuple[dict[str, Any], str]]) -> dict[str, list[str]]:
    """(row, item) pairs gathered per (model, defense), in order and without repeats."""
    out: dict[str, list[str]] = {}
    for row, item in found:
        items = out.setdefault(_where(row), [])
        if item not in items:
            items.append(item)
    return out


def _budgets(rows: list[dict[str, Any]]) -> str:
    """``ε=0.3, 0.5 (λ=100); ε=1 (λ=400)``: the cells of ``rows``, grouped by λ."""
    by_lam: dict[Any, list[str]] = {}
    for row in rows:
        by_lam.setdefault(row.get("lam"), []).append(f"{row['eps']:g}")
    return "; ".join(
        f"ε={', '.join(eps)}" + ("" if lam is None else f" (λ={lam:g})")
        for lam, eps in by_lam.items()
    )


def _summarised(found: list[tuple[dict[str, Any], str, float, str]]) -> dict[str, list[str]]:
    """(row, label, gap, figures) findings as one item per (model, defense) and label:
    ``label at <cells> (<figures of the largest gap>)``."""
    grouped: dict[str, dict[str, list[tuple[dict[str, Any], float, str]]]] = {}
    for row, label, gap, figures in found:
        grouped.setdefault(_where(row), {}).setdefault(label, []).append((row, gap, figures))
    return {
        where: [
            f"{label} at {_budgets([row for row, _, _ in cells])} "
            f"({max(cells, key=lambda cell: cell[1])[2]})"
            for label, cells in labels.items()
        ]
        for where, labels in grouped.items()
    }


def non_monotonic(rows: list[dict[str, Any]]) -> list[str]:
    """Success should not fall as ε grows; a drop of one sample is noise, more is not."""
    found, iterative = [], defaultdict(set)
    for group in _groups(rows, "model", "defense", "lam", "attack").values():
        if group[0]["attack_kind"] == BASELINE_ATTACK:
            continue
        ordered = sorted(group, key=lambda r: r["eps"])
        for before, after in itertools.pairwise(ordered):
            if before["flipped"] - after["flipped"] > 1:  # more than 1/n
                found.append(
                    (
                        after,
                        f"{after['attack']} from {before['attack_success_rate']:.0%} at "
                        f"{_at(before)} to {after['attack_success_rate']:.0%} at ε="
                        f"{after['eps']:g}",
                    )
                )
                iterative[_where(after)].add(bool(after["iterative"]))
    out = []
    for where, items in _per_model(found).items():
        advice = []
        if False in iterative[where]:
            advice.append("a one-step attack overshoots (use an iterative one)")
        if True in iterative[where]:
            advice.append("an iterative attack is not converging (more steps or restarts?)")
        out.append(
            f"success falls as ε grows on {where}: {'; '.join(items)}; {' and '.join(advice)}"
        )
    return out


def score_beats_gradient(rows: list[dict[str, Any]]) -> list[str]:
    """A score-based (gradient-free) attack evading more than every gradient attack on the
    same cell means the gradients mislead: the classic sign of gradient masking."""
    found = []
    for group in _groups(rows, "model", "defense", "lam", "eps").values():
        gradient = [r for r in group if r["attack_kind"] == GRADIENT_ATTACK]
        score = [r for r in group if r["attack_kind"] == SCORE_ATTACK]
        if not gradient or not score:
            continue
        best_gradient = max(gradient, key=_strength)
        for row in score:
            if _strength(row) > _strength(best_gradient):
                found.append(
                    (
                        row,
                        row["attack"],
                        _strength(row) - _strength(best_gradient),
                        f"up to {_strength(row):.0%} vs {_strength(best_gradient):.0%} for "
                        f"{best_gradient['attack']}",
                    )
                )
    return [
        f"a score-based attack evades more than every gradient attack on {where}: "
        f"{', '.join(items)}: suspect gradient masking (the gradients mislead)"
        for where, items in _summarised(found).items()
    ]


def noise_beats_gradient(rows: list[dict[str, Any]]) -> list[str]:
    """A baseline (random noise) must do worse than a gradient attack, else the gradients
    mislead it; a baseline evading on a single sample is no evidence."""
    found = []
    for group in _groups(rows, "model", "defense", "lam", "eps").values():
        baselines = [r for r in group if r["attack_kind"] == BASELINE_ATTACK]
        for gradient in (r for r in group if r["attack_kind"] == GRADIENT_ATTACK):
            for baseline in baselines:
                if (
                    baseline["evaded"] > 1
                    and _strength(baseline) >= _strength(gradient)
                    and _strength(gradient) < 1
                ):
                    found.append(
                        (
                            gradient,
                            f"{baseline['attack']} vs {gradient['attack']}",
                            _strength(baseline) - _strength(gradient),
                            f"up to {_strength(baseline):.0%} vs {_strength(gradient):.0%}",
                        )
                    )
    return [
        f"a baseline does as well as a gradient attack on {where}: {', '.join(items)}: "
        "suspect gradient masking"
        for where, items in _summarised(found).items()
    ]


def zero_gradients(rows: list[dict[str, Any]]) -> list[str]:
    """Many zero input gradients leave a loss-following attack nothing to follow."""
    found = []
    for group in _groups(rows, "model", "defense", "lam", "attack").values():
        row = group[0]
        if row["attack_kind"] == GRADIENT_ATTACK and row["zero_gradient_rate"] > ZERO_GRADIENT_WARN:
            lam = f" at λ={row['lam']:g}" if row.get("lam") is not None else ""
            found.append((row, f"{row['attack']}{lam} ({row['zero_gradient_rate']:.0%})"))
    return [
        f"exactly zero input gradients (saturated loss) on {where}: {', '.join(items)} of "
        "the attacked samples; success is capped there, try a margin loss (loss=margin)"
        for where, items in _per_model(found).items()
    ]


def unbounded_not_reaching(rows: list[dict[str, Any]]) -> list[str]:
    """An iterative attack with ε covering the whole input range should (nearly) always win."""
    found = [
        (
            row,
            row["attack"],
            -row["attack_success_rate"],
            f"as low as {row['attack_success_rate']:.0%}",
        )
        for row in rows
        if not row.get("worst_case")
        and row["iterative"]
        and row["attack_kind"] != BASELINE_ATTACK
        and row["eps_fraction"] >= 1.0
        and row["attack_success_rate"] < UNBOUNDED_SUCCESS
    ]
    return [
        f"unbounded iterative attacks fall short on {where}: {', '.join(items)} success "
        f"(expected ≥ {UNBOUNDED_SUCCESS:.0%}): a sign of gradient masking"
        for where, items in _summarised(found).items()
    ]


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
        *score_beats_gradient(rows),
        *noise_beats_gradient(rows),
        *zero_gradients(rows),
        *unbounded_not_reaching(rows),
        *inconclusive_certificates(rows),
    ]
