"""What to evaluate: models × defenses × attacks × ε (× λ and any plugin parameter).

A ``Grid`` comes from Python arguments, command-line options or a ``grid.toml`` file;
``Grid.run()`` (in ``robustkit.harness``) evaluates it.
"""

from __future__ import annotations

import inspect
import itertools
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .certify import METHODS as CERTIFY_METHODS
from .errors import RobustkitError
from .params import check_int, parse_float_list, parse_spec
from .persistence import Recipe
from .plugins import registry

#: ε as a fraction of the input range (default), or in the input's own units.
EPS_UNITS = ("range", "absolute")


@dataclass(frozen=True)
class PluginSpec:
    """A plugin name with parameters; list-valued parameters expand into several specs."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, value: Any, what: str) -> PluginSpec:
        """From ``"rbf"``, ``"rbf:lr=0.05"``, ``("rbf", {...})``, ``{"name": "rbf", ...}``."""
        if isinstance(value, PluginSpec):
            return value
        if isinstance(value, str):
            return cls(*parse_spec(value))
        if isinstance(value, dict):
            params = dict(value)
            name = params.pop("name", None)
            if not isinstance(name, str):
                raise RobustkitError(f"each {what} entry needs a name, got {value!r}")
            return cls(name, params)
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
            return cls(str(value[0]), dict(value[1]))
        raise RobustkitError(f"cannot read {what} {value!r}; expected 'name[:key=value,...]'")

    def expand(self) -> list[PluginSpec]:
        """One spec per combination of list-valued parameters."""
        keys = list(self.params)
        choices = [v if isinstance(v, list) else [v] for v in self.params.values()]
        return [
            PluginSpec(self.name, dict(zip(keys, combo, strict=True)))
            for combo in itertools.product(*choices)
        ]

    @property
    def label(self) -> str:
        """``name`` or ``name(key=value, ...)`` for tables."""
        if not self.params:
            return self.name
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}({inner})"


def _specs(values: Any, what: str) -> list[PluginSpec]:
    if values is None:
        return []
    if isinstance(values, (str, dict, PluginSpec)) or (
        isinstance(values, tuple) and len(values) == 2 and isinstance(values[1], dict)
    ):
        values = [values]
    specs = [PluginSpec.coerce(value, what) for value in values]
    return [expanded for spec in specs for expanded in spec.expand()]


def _numbers(values: Any, what: str, minimum: float | None) -> list[float]:
    if isinstance(values, str):
        return parse_float_list(values, what, minimum=minimum)
    if isinstance(values, (int, float)):
        values = [values]
    return parse_float_list(",".join(str(v) for v in values), what, minimum=minimum)


def _accepts(kind: str, name: str, param: str) -> bool:
    return param in registry(kind).get(name).cls().get_params(deep=False)


@dataclass
class Grid:
    """An evaluation grid; every option has a default that runs in seconds on ``digits``."""

    models: list[PluginSpec] = field(default_factory=lambda: [PluginSpec("rbf")])
    defenses: list[PluginSpec] = field(default_factory=lambda: [PluginSpec("none")])
    attacks: list[PluginSpec] = field(default_factory=lambda: [PluginSpec("fgsm")])
    epsilons: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.3])
    lams: list[float] | None = None
    eps_unit: str = "range"
    dataset: PluginSpec = field(default_factory=lambda: PluginSpec("digits"))
    data_dir: Path | None = None
    n_samples: int = 100
    seed: int = 0
    jobs: int = 1
    certify: str | None = None  # "ibp" or "crown": certified accuracy beside every row

    @classmethod
    def build(
        cls,
        *,
        model: Any = None,
        defense: Any = None,
        attack: Any = None,
        eps: Any = None,
        lam: Any = None,
        eps_unit: str | None = None,
        dataset: Any = None,
        data_dir: str | Path | None = None,
        n_samples: int | None = None,
        seed: int | None = None,
        jobs: int | None = None,
        certify: str | None = None,
    ) -> Grid:
        """A validated grid from loose values (names, specs, lists, comma-separated numbers)."""
        grid = cls()
        if model is not None:
            grid.models = _specs(model, "model")
        if defense is not None:
            grid.defenses = _specs(defense, "defense")
        if attack is not None:
            grid.attacks = _specs(attack, "attack")
        if eps is not None:
            grid.epsilons = _numbers(eps, "eps", 0.0)
        if lam is not None:
            grid.lams = _numbers(lam, "lam", 0.0)
        if dataset is not None:
            grid.dataset = PluginSpec.coerce(dataset, "dataset")
        if data_dir is not None:
            grid.data_dir = Path(data_dir)
        for name, value in (
            ("n_samples", n_samples),
            ("seed", seed),
            ("jobs", jobs),
            ("eps_unit", eps_unit),
            ("certify", certify),
        ):
            if value is not None:
                setattr(grid, name, value)
        grid.validate()
        return grid

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: Any) -> Grid:
        """Read a ``grid.toml``; keyword overrides (e.g. from the CLI) win over the file."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RobustkitError(f"grid file {path} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise RobustkitError(f"grid file {path} is not valid TOML: {exc}") from None
        keys = set(inspect.signature(cls.build).parameters)
        unknown = sorted(set(data) - keys)
        if unknown:
            raise RobustkitError(
                f"grid file {path}: unknown key {', '.join(unknown)}; accepted: "
                f"{', '.join(sorted(keys))}"
            )
        values = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        if "data_dir" in data and overrides.get("data_dir") is None:
            values["data_dir"] = path.parent / data["data_dir"]
        try:
            return cls.build(**values)
        except RobustkitError as exc:
            raise RobustkitError(f"grid file {path}: {exc}") from None

    def validate(self) -> None:
        """Check names, parameter names and numbers before anything trains."""
        check_int("n_samples", self.n_samples)
        check_int("jobs", self.jobs)
        check_int("seed", self.seed, 0)
        if self.certify is not None and self.certify not in CERTIFY_METHODS:
            raise RobustkitError(
                f"certify must be one of {', '.join(CERTIFY_METHODS)}, got {self.certify!r}"
            )
        if self.eps_unit not in EPS_UNITS:
            raise RobustkitError(
                f"eps_unit must be one of {', '.join(EPS_UNITS)}, got {self.eps_unit!r}"
            )
        for kind, specs in (
            ("model", self.models),
            ("defense", self.defenses),
            ("attack", self.attacks),
            ("dataset", [self.dataset]),
        ):
            if not specs:
                raise RobustkitError(f"the grid needs at least one {kind}")
            for spec in specs:
                registry(kind).create(spec.name, **spec.params)  # names and parameters

    def recipes(self) -> list[Recipe]:
        """One recipe per (model, defense, λ), seeded, without duplicates."""
        recipes: list[Recipe] = []
        for model, defense, lam in itertools.product(
            self.models, self.defenses, self.lams or [None]
        ):
            model_params, defense_params = dict(model.params), dict(defense.params)
            if lam is not None and _accepts("model", model.name, "lam"):  # else λ means nothing
                if _accepts("defense", defense.name, "lam"):
                    defense_params["lam"] = lam
                else:
                    model_params["lam"] = lam
            for kind, name, params in (
                ("model", model.name, model_params),
                ("defense", defense.name, defense_params),
            ):
                if _accepts(kind, name, "random_state"):
                    params.setdefault("random_state", self.seed)
            recipe = Recipe(model.name, model_params, defense.name, defense_params)
            if recipe not in recipes:
                recipes.append(recipe)
        return recipes

    def describe(self) -> dict[str, Any]:
        """The grid as plain data, for the report's metadata."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, PluginSpec):
                value = {"name": value.name, "params": value.params}
            elif isinstance(value, list) and value and isinstance(value[0], PluginSpec):
                value = [{"name": s.name, "params": s.params} for s in value]
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out


def as_list(values: Iterable[Any] | None) -> list[Any] | None:
    """``None`` for an empty option tuple (click's ``multiple=True``), else a list."""
    values = list(values or [])
    return values or None
