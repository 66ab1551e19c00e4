"""Looking up evaluation rows: by model, attack, ε and λ; grouped into curves."""

from __future__ import annotations

import math
from typing import Any


def model_name(row: dict[str, Any]) -> str:
    """The model plugin of a result row: ``hinge`` or ``rbf``."""
    return str(row["model"]).split("(")[0]


def find(
    rows: list[dict[str, Any]],
    *,
    model: str,
    eps: float,
    attack: str = "fgsm",
    pca: Any = "any",
    lam: float | None = None,
) -> dict[str, Any]:
    """The one row of ``model`` (with model parameter ``pca``, unless "any") under
    ``attack`` (an ``attack_key``) at ``eps`` (and λ)."""
    found = [
        row
        for row in rows
        if model_name(row) == model
        and attack_key(row) == attack
        and math.isclose(row["eps"], eps)
        and (pca == "any" or row["params"]["model"].get("pca") == pca)
        and (lam is None or math.isclose(row["lam"], lam))
    ]
    if len(found) != 1:
        raise KeyError(f"{len(found)} rows for {model} pca={pca} {attack} ε={eps} λ={lam}")
    return found[0]


#: Attack keys, in table order, and their names (``{steps}`` filled from the row).
ATTACK_NAMES = {
    "fgsm": "FGSM",
    "pgd": "PGD-{steps}, training loss",
    "pgd-margin": "PGD-{steps}, margin",
    "pgd-aware": "PGD-{steps}, rejection-aware",
    "auto": "AutoAttack ensemble (auto)",
    "auto-aware": "AutoAttack ensemble, rejection-aware",
    "noise": "random signs",
    "worst case": "worst case (any attack)",
}


def attack_key(row: dict[str, Any]) -> str:
    """``fgsm``, ``pgd``, ``pgd-margin``, ``pgd-aware``, ``auto``, ``auto-aware``, ``noise``
    or ``worst case`` (the per-sample worst case over a grid's attacks) for a result row."""
    if row.get("worst_case"):
        return "worst case"
    name, params = str(row["attack"]).split("(")[0], row["params"]["attack"]
    if name == "auto":
        return "auto-aware" if params.get("reject_aware") else "auto"
    if name != "pgd":
        return name
    if params.get("reject_aware"):
        return "pgd-aware"
    return "pgd-margin" if params.get("loss") == "margin" else "pgd"


def attack_name(row: dict[str, Any]) -> str:
    """The attack's name in tables and legends, e.g. ``PGD-50, margin``."""
    key = attack_key(row)
    if row.get("worst_case"):
        return ATTACK_NAMES[key]
    return ATTACK_NAMES.get(key, key).format(steps=row["params"]["attack"].get("steps"))


def model_label(row: dict[str, Any]) -> str:
    """The network and its input, e.g. ``rbf, PCA 128`` or ``hinge, 784 pixels``."""
    params = row["params"]["model"]
    inputs = f"PCA {params['pca']}" if params.get("pca") else None
    if inputs is None:
        inputs = "PCA 128" if "pca" in row["dataset"] else "784 pixels"
    return f"{model_name(row)}, {inputs}"


def group_curves(
    rows: list[dict[str, Any]], attack: str | None = None, lam: float | None = None
) -> list[list[dict[str, Any]]]:
    """Rows (of one attack key and λ, if given) grouped by (model, defense, λ, attack),
    each sorted by ε."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        if (attack is None or attack_key(row) == attack) and (lam is None or row["lam"] == lam):
            key = (row["model"], row["defense"], row["lam"], row["attack"])
            groups.setdefault(key, []).append(row)
    return [sorted(group, key=lambda r: r["eps"]) for group in groups.values()]
