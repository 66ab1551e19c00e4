"""Name → class registries, one per plugin kind, that remember which plugin gave each name."""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any

from .errors import PluginError

KINDS = ("model", "attack", "defense", "dataset")


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


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """One line naming the unknown value, the known ones and the closest match."""
    message = f"unknown {kind} {name!r}; known: {', '.join(sorted(known)) or 'none'}"
    close = difflib.get_close_matches(name, known, n=1)
    return message + (f" (did you mean {close[0]!r}?)" if close else "")


class Registry:
    """The classes of one kind, by name; a name registered twice is an error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, name: str, cls: type, source: Source) -> None:
        """Register ``cls`` as ``name``; raise PluginError naming both sources on a clash."""
        if not isinstance(name, str) or not name:
            raise PluginError(f"{source} registered a {self.kind} with an invalid name {name!r}")
        if name in self._entries:
            other = self._entries[name].source
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by {other} and by {source}"
            )
        self._entries[name] = Entry(self.kind, name, cls, source)

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
        cls = self.get(name).cls
        accepted = sorted(cls().get_params(deep=False)) if hasattr(cls, "get_params") else []
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise PluginError(
                f"{self.kind} {name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"accepted: {', '.join(accepted) or 'none'}"
            )
        return cls(**params)
