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
from numbers import Integral
from pathlib import Path
from typing import Any

from .certify import METHODS as CERTIFY_METHODS
from .errors import RobustkitError
from .faults import plugin_call
from .parallel import BACKENDS
from .params import check_int, parse_float_list, parse_spec, typed_params
from .persistence import Recipe
from .plugins import registry
from .registry import KINDS
from .samples import check_sample_set

#: ε as a fraction of the input range (default), or in the input's own units.
EPS_UNITS = ("range", "absolute")


@dataclass(frozen=True)
class PluginSpec:
    """A plugin name with parameters; list-valued parameters expand into several specs."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, value: Any, what: str) -> PluginSpec:
        """From ``"rbf"``, ``"rbf:lr=0.05"``, ``("rbf", {...})``, ``{"name": "rbf", ...}``.

        Text values are converted to the types of the plugin's ``__init__`` parameters
        (``typed_params``) when ``what`` is a plugin kind.
        """
        if isinstance(value, PluginSpec):
            return value
        if isinstance(value, str):
            spec = cls(*parse_spec(value))
        elif isinstance(value, dict):
            params = dict(value)
            name = params.pop("name", None)
            if not isinstance(name, str):
                raise RobustkitError(f"each {what} entry needs a name, got {value!r}")
            spec = cls(name, params)
        elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict):
            spec = cls(str(value[0]), dict(value[1]))
        else:
            raise RobustkitError(f"cannot read {what} {value!r}; expected 'name[:key=value,...]'")
        if what not in KINDS or not spec.params:
            return spec
        entry = registry(what).get(spec.name)
        return cls(spec.name, typed_params(entry.cls, spec.params, f"{what} {spec.name!r}"))

    def expand(self) -> list[PluginSpec]:
        """One spec per combination of list-valued parameters (an empty list is an error)."""
        for key, value in self.params.items():
            if isinstance(value, list) and not value:
                raise RobustkitError(
                    f"{self.name}: {key} = [] is an empty list; give at least one value"
                )
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
    if not isinstance(values, (list, tuple)):
        raise RobustkitError(
            f"{what} must be a plugin name (optionally 'name:key=value,...'), a table with "
            f"a name, or a list of these; got {values!r}"
        )
    if not values:
        raise RobustkitError(f"{what} is an empty list; give at least one {what}")
    specs = [PluginSpec.coerce(value, what) for value in values]
    return [expanded for spec in specs for expanded in spec.expand()]


def _numbers(values: Any, what: str, minimum: float | None) -> list[float]:
    """Numbers from a number, a comma-separated string, or a list of either (repeated
    command-line options arrive as a list); an empty list or list item is an error."""
    if isinstance(values, (str, int, float)) and not isinstance(values, bool):
        values = [values]
    if not isinstance(values, (list, tuple)) or not values:
        raise RobustkitError(f"{what} must be a number or a non-empty list of numbers")
    items = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise RobustkitError(f"{what} must hold numbers; got {value!r}")
        parts = str(value).split(",")
        if any(not part.strip() for part in parts):
            raise RobustkitError(f"{what} has an empty item in {str(value)!r}; expected 0.05,0.1")
        items.extend(part.strip() for part in parts)
    return parse_float_list(",".join(items), what, minimum=minimum)


def check_jobs(jobs: Any) -> int:
    """``jobs`` as -1 (every core) or an integer >= 1."""
    if isinstance(jobs, bool) or not isinstance(jobs, Integral) or (jobs < 1 and jobs != -1):
        raise RobustkitError(f"jobs must be -1 (every core) or an integer >= 1, got {jobs!r}")
    return int(jobs)


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
    samples: str = "first"
    seed: int = 0
    jobs: int = 1
    backend: str = "local"
    scheduler: str | None = None
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
        samples: str | None = None,
        seed: int | None = None,
        jobs: int | None = None,
        backend: str | None = None,
        scheduler: str | None = None,
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
            if not isinstance(data_dir, (str, Path)):
                raise RobustkitError(f"data_dir must be a folder path, got {data_dir!r}")
            grid.data_dir = Path(data_dir)
        for name, value in (
            ("n_samples", n_samples),
            ("samples", samples),
            ("seed", seed),
            ("jobs", jobs),
            ("eps_unit", eps_unit),
            ("backend", backend),
            ("scheduler", scheduler),
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
            if not isinstance(data["data_dir"], str):
                raise RobustkitError(
                    f"grid file {path}: data_dir must be a folder path (text), "
                    f"got {data['data_dir']!r}"
                )
            values["data_dir"] = path.parent / data["data_dir"]
        try:
            return cls.build(**values)
        except RobustkitError as exc:
            raise RobustkitError(f"grid file {path}: {exc}") from None

    def validate(self) -> None:
        """Check names, parameter names and numbers before anything trains."""
        check_int("n_samples", self.n_samples)
        check_sample_set(self.samples)
        check_jobs(self.jobs)
        check_int("seed", self.seed, 0)
        self._validate_backend()
        if self.certify is not None and self.certify not in CERTIFY_METHODS:
            raise RobustkitError(
                f"certify must be one of {', '.join(CERTIFY_METHODS)}, got {self.certify!r}"
            )
        if not isinstance(self.eps_unit, str) or self.eps_unit not in EPS_UNITS:
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
                plugin = registry(kind).create(spec.name, **spec.params)  # names, parameters
                with plugin_call("validate", plugin):  # and the plugin's own checks
                    plugin.validate()
        if self.eps_unit == "range" and max(self.epsilons) > 1:
            raise RobustkitError(
                f"eps {max(self.epsilons):g} is more than the whole input range; with "
                "eps_unit 'range' ε is a fraction of the range, from 0 to 1"
            )
        if self.lams and not any(_accepts("model", m.name, "lam") for m in self.models):
            names = ", ".join(sorted({m.name for m in self.models}))
            raise RobustkitError(
                f"lam is given, but no model in the grid takes λ ({names}); "
                "drop --lam / lam or add a model with a lam parameter such as rbf"
            )

    def check_budgets(self, bounds: tuple[float, float]) -> None:
        """With absolute ε, no budget may exceed the data's range (checked once loaded)."""
        span = float(bounds[1]) - float(bounds[0])
        if self.eps_unit == "absolute" and max(self.epsilons) > span:
            raise RobustkitError(
                f"eps {max(self.epsilons):g} (absolute) is more than the data's whole input "
                f"range {span:g} ([{bounds[0]:g}, {bounds[1]:g}])"
            )

    def _validate_backend(self) -> None:
        if self.backend not in BACKENDS:
            raise RobustkitError(
                f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if self.scheduler is not None:
            if not isinstance(self.scheduler, str) or not self.scheduler:
                raise RobustkitError(
                    f"scheduler must be a Dask scheduler address such as tcp://host:8786, "
                    f"got {self.scheduler!r}"
                )
            if self.backend != "dask":
                raise RobustkitError(
                    "scheduler is given but backend is not 'dask'; add backend dask"
                )
        if self.backend == "dask":
            from .dask_backend import require_dask

            require_dask()

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
