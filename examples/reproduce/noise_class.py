"""Question 7's open gap: which noise distribution gives the study's rejects?

The study's noise-class defense rejected 37-56 of 100 FGSM inputs at ε ≥ 0.3 in its
PCA-feature space and does not say how it drew its 200 noise samples. Here the same
grid (question 7: rbf + reject, λ = 400, FGSM, ε in feature units) runs once per noise
distribution of the ``reject`` defense, and the one whose rejects come closest to the
study's range is named, with the reason.

    python examples/reproduce/noise_class.py --data-dir DATA [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cells import Table, pct, pct_ci
from grids import load_grid, run_grid, shrink

from robustkit import EvaluationResult, Grid, PluginSpec

#: The study's correct rejects of 100 FGSM inputs at ε ≥ 0.3 (questions 7 and 8).
STUDY_REJECTS = (37, 56)
#: Distributions whose rejects differ by at most this many per 100 are "the same".
SMALL_SPREAD = 5
#: The budgets of that range, in PCA-feature units.
NOISE_EPS = [0.3, 0.5, 1.0]
#: The reject defense's distributions (``gaussian`` is an alias of ``gaussian-data``).
NOISE_KINDS = ("uniform", "uniform-box", "gaussian-data", "gaussian-isotropic")
#: Noise samples: the study's 200 (of 60,000 training samples), and 10% of the data, to
#: see what each distribution does once the noise class has weight in the loss.
NOISE_COUNTS = (200, 6000)

#: What each distribution draws, in the data's (PCA-feature) coordinates.
DRAWS = {
    "uniform": (
        "uniform over the data's whole range (−8 to 11) in every feature, robustkit 0.1's "
        "default: mostly far from the images in the low-variance features"
    ),
    "uniform-box": (
        "uniform within each feature's own range (the data's bounding box): closer, but "
        "still wide, since the extremes of each feature are rare"
    ),
    "gaussian-data": (
        "Gaussian with each feature's mean and spread, without their correlations: on top "
        "of the data's marginals"
    ),
    "gaussian-isotropic": (
        "Gaussian around the data's mean with one spread for all features, white noise "
        "with the data's energy: what noise images projected onto the PCA basis look "
        "like (an orthonormal projection keeps white noise white), and the direction in "
        "which FGSM's ±ε in every feature moves"
    ),
}


def noise_grid(kind: str, n_noise: int, data_dir: str | Path, *, quick: bool = False) -> Grid:
    """Question 7's PCA-feature grid with the reject defense drawing ``n_noise`` samples of
    ``kind`` noise (scaled to the quick training set in quick mode)."""
    grid = load_grid("q7_reject_pca", data_dir)
    defenses = [
        PluginSpec(d.name, {**d.params, "noise": kind, "n_noise": n_noise}) for d in grid.defenses
    ]
    grid = dataclasses.replace(grid, defenses=defenses, epsilons=list(NOISE_EPS))
    return shrink(grid) if quick else grid


def key(kind: str, n_noise: int) -> str:
    """The results key of one distribution and noise count."""
    return f"noise-{kind}-{n_noise}/pca"


def run_noise_grids(
    data_dir: str | Path, *, quick: bool = False, cache_dir: str | Path | None = None
) -> list[tuple[str, EvaluationResult, float]]:
    """One evaluation per noise distribution and count (quick mode: the study's count
    only): (key, result, seconds)."""
    out = []
    for n_noise in NOISE_COUNTS[:1] if quick else NOISE_COUNTS:
        for kind in NOISE_KINDS:
            grid = noise_grid(kind, n_noise, data_dir, quick=quick)
            result, seconds = run_grid(grid, cache_dir)
            out.append((key(kind, n_noise), result, seconds))
    return out


@dataclass
class NoiseOutcome:
    """One distribution's clean figures and FGSM rejects per 100 attacked inputs."""

    kind: str
    n_noise: int
    rows: list[dict[str, Any]]

    @property
    def rejects(self) -> list[float]:
        """Rejected FGSM inputs per 100 attacked, at each ε of NOISE_EPS."""
        ordered = sorted(self.rows, key=lambda r: r["eps"])
        return [100 * r["rejected"] / r["n_attacked"] for r in ordered]

    @property
    def distance(self) -> float:
        """Mean distance (per 100) of the rejects from the study's range; 0 inside it."""
        low, high = STUDY_REJECTS
        return sum(max(low - r, r - high, 0.0) for r in self.rejects) / len(self.rejects)


def noise_outcomes(grids: dict[str, list[dict[str, Any]]]) -> list[NoiseOutcome]:
    """The outcome of every distribution that ``grids`` holds (``noise-<kind>/pca``)."""
    return [
        NoiseOutcome(kind, n_noise, grids[key(kind, n_noise)])
        for n_noise in NOISE_COUNTS
        for kind in NOISE_KINDS
        if key(kind, n_noise) in grids
    ]


def closest(outcomes: list[NoiseOutcome]) -> NoiseOutcome:
    """The distribution nearest the study's rejects; on a tie, the more accurate one."""
    return min(outcomes, key=lambda o: (o.distance, -o.rows[0]["clean_accuracy"]))


def noise_section(grids: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The report's table of the distributions and the verdict, every number from the run."""
    outcomes = noise_outcomes(grids)
    if not outcomes:
        return []
    n = outcomes[0].rows[0]["n_attacked"]
    table = Table(
        ["Noise", "Noise samples", "Model accuracy (robustkit)", "Clean rejects (robustkit)"]
        + [f"Correct rejects at ε = {e:g}, of {n} (robustkit)" for e in NOISE_EPS]
        + [f"Attack success at ε = {NOISE_EPS[-1]:g} (robustkit)"]
    )
    for outcome in outcomes:
        ordered = sorted(outcome.rows, key=lambda r: r["eps"])
        table.add(
            [f"`{outcome.kind}`", f"{outcome.n_noise:,}", pct(ordered[0]["clean_accuracy"])]
            + [pct(ordered[0]["clean_reject_rate"])]
            + [r["rejected"] for r in ordered]
            + [pct_ci(ordered[-1], "attack_success_rate")]
        )
    best = closest(outcomes)
    low, high = STUDY_REJECTS
    counts = sorted({o.n_noise for o in outcomes})
    few = [o for o in outcomes if o.n_noise == counts[0]]
    spread = max(
        max(o.rejects[i] for o in few) - min(o.rejects[i] for o in few)
        for i in range(len(NOISE_EPS))
    )
    if spread <= SMALL_SPREAD:
        why = (
            f"with {counts[0]} noise samples the distributions differ by at most "
            f"{spread:.0f} rejects per 100 at any ε. The RBF network rejects where every "
            "distance exceeds λ, and a noise sample only pushes its own distances beyond λ "
            "(a hinge, already satisfied far from the data) with a fraction of a percent of "
            "the loss's weight, so the reject region hardly depends on where the noise lies"
        )
    else:
        why = (
            f"with {counts[0]} noise samples the distributions differ by up to {spread:.0f} "
            "rejects per 100, so where the noise lies does shape the reject region here"
        )
    if len(counts) > 1:
        rises = [o.rejects[-1] - f.rejects[-1] for o in outcomes for f in few if o.kind == f.kind]
        why += (
            f"; {counts[-1] // counts[0]} times more noise changes the rejects at ε = "
            f"{NOISE_EPS[-1]:g} by at most {max(rises, key=abs):+.0f} per 100"
        )
    if best.distance == 0:
        verdict = (
            f"inside the study's range of {low}-{high}: the study's noise was likely drawn "
            "like this"
        )
        conclusion = ""
    else:
        verdict = (
            f"still {best.distance:.0f} per 100 on average outside the study's range of "
            f"{low}-{high}: no distribution reproduces the study's rejects"
        )
        conclusion = (
            " The noise distribution is therefore not what separates robustkit from the "
            "study; the scale of the features against λ (the study's unstated feature "
            "scaling, see the gaps of question 7) is the likelier cause."
        )
    quick = " (scaled to the quick training set in quick mode)" if len(counts) == 1 else ""
    sizes = " and ".join(f"{count:,}" for count in counts)
    return [
        "### Which noise did the study draw?",
        "",
        f"The study's defense rejected {low}-{high} of 100 FGSM inputs at ε ≥ 0.3 and does "
        "not say how it drew its noise samples. The same networks (question 7's grid, PCA-"
        "feature space, λ = 400) with the `reject` defense's `noise` parameter set to each "
        f"distribution, with {sizes} noise samples{quick} (the study's {NOISE_COUNTS[0]} are "
        "0.3% of its 60,000 training samples):",
        "",
        table.markdown(),
        "",
        *(f"- `{kind}`: {DRAWS[kind]}." for kind in NOISE_KINDS),
        "",
        f"**Closest: `{best.kind}` with {best.n_noise:,} noise samples**, "
        f"{', '.join(f'{r:.0f}' for r in best.rejects)} rejects per 100 at ε = "
        f"{', '.join(f'{e:g}' for e in NOISE_EPS)}, {verdict}. **Why:** {why}.{conclusion}",
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    """Run every noise distribution in the study's setting and print the section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="folder holding fashion-mnist/")
    parser.add_argument("--quick", action="store_true", help="few samples and epochs")
    args = parser.parse_args(argv)
    grids = {
        key: result.rows for key, result, _ in run_noise_grids(args.data_dir, quick=args.quick)
    }
    print("\n".join(noise_section(grids)))


if __name__ == "__main__":
    main()
