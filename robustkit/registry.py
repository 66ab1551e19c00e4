"""Name → class registries, one per plugin kind, that remember which plugin gave each name.

Registration never raises: a bad name, a class of the wrong kind or a name that is
already taken is refused with a ``PluginWarning`` and recorded in ``problems`` (shown
by ``robustkit plugins``), so one faulty plugin cannot break the others. The first
registration of a name wins; built-ins register first.
"""

from __future__ import annotations

import difflib
import inspect
import re
import warnings
from dataclasses import dataclass
from typing import Any

from .errors import PluginError, PluginWarning
from .interfaces import Attack, Dataset, Defense, Model

KINDS = ("model", "attack", "defense", "dataset")
#: The interface each kind's classes must subclass.
INTERFACES: dict[str, type] = {
    "model": Model,
    "attack": Attack,
    "defense": Defense,
    "dataset": Dataset,
}
#: A valid registered name: lower-case letters, digits, ``.``, ``_`` and ``-``.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True)
class Source:
    """Where a registration came from: the plugin, its distribution and version."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} ({self.distribution} {self.version})"


@dataclass(frozen=True)
class Entry:
    """One registered name."""

    kind: str
    name: str
    cls: type
    source: Source

    @property
    def summary(self) -> str:
        """First line of the class docstring."""
        return (inspect.getdoc(self.cls) or "").splitlines()[0] if self.cls.__doc__ else ""


@dataclass(frozen=True)
class Problem:
    """A refused registration: which plugin tried what, and why it was refused."""

    kind: str
    name: str
    source: Source
    message: str


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """One line naming the unknown value, the known ones and the closest match."""
    message = f"unknown {kind} {name!r}; known: {', '.join(sorted(known)) or 'none'}"
    close = difflib.get_close_matches(name, known, n=1)
    return message + (f" (did you mean {close[0]!r}?)" if close else "")


def accepted_params(cls: type) -> list[str]:
    """The parameter names of ``cls.__init__`` (sklearn's ``get_params`` names)."""
    return sorted(
        name
        for name, param in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
    )


class Registry:
    """The classes of one kind, by name; the first registration of a name wins."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self.problems: list[Problem] = []

    def check(self, name: Any, cls: Any, source: Source) -> str | None:
        """Why ``register(name, cls)`` from ``source`` is refused, or None if it is fine."""
        interface = INTERFACES[self.kind]
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            return (
                f"{source} registered a {self.kind} with an invalid name {name!r}; names "
                "are lower-case letters, digits, '.', '_' and '-', starting with a letter "
                "or digit"
            )
        if not (isinstance(cls, type) and issubclass(cls, interface)):
            return (
                f"{source} registered {self.kind} {name!r} as {cls!r}, which is not a "
                f"subclass of robustkit.{interface.__name__}"
            )
        if name in self._entries:
            kept = self._entries[name].source
            return (
                f"{self.kind} {name!r} is registered twice: by {kept} (kept) and by "
                f"{source} (ignored)"
            )
        return None

    def add(self, name: Any, cls: Any, source: Source) -> bool:
        """Register ``cls`` as ``name``; refuse (warn and record) what ``check`` refuses."""
        problem = self.check(name, cls, source)
        if problem is not None:
            self.problems.append(Problem(self.kind, str(name), source, problem))
            warnings.warn(problem, PluginWarning, stacklevel=2)
            return False
        self._entries[name] = Entry(self.kind, name, cls, source)
        return True

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[name] for name in self.names()]

    def get(self, name: str) -> Entry:
        """The entry for ``name``; unknown names list the known ones and the closest."""
        try:
            return self._entries[name]
        except KeyError:
            raise PluginError(unknown_name_message(self.kind, name, self.names())) from None

    def create(self, name: str, **params: Any) -> Any:
        """Instantiate ``name`` with ``params``; unknown parameters list the accepted ones."""
        from .faults import plugin_call

        cls = self.get(name).cls
        accepted = accepted_params(cls)
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise PluginError(
                f"{self.kind} {name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"accepted: {', '.join(accepted) or 'none'}"
            )
        with plugin_call(f"creating {self.kind} {name!r}"):
            return cls(**params)
