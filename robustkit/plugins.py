"""Plugin discovery: one pluggy manager per process, entry points loaded one at a time.

Built-in plugins come through the same ``robustkit`` entry-point group as third-party
ones. A plugin that fails to import is recorded and warned about, and the rest keep
working; ``ROBUSTKIT_STRICT_PLUGINS=1`` makes such a failure fatal.
``ROBUSTKIT_LOAD_PLUGINS`` (comma-separated distribution names) limits which
third-party distributions load; robustkit's own built-ins always load.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError
from .registry import KINDS, Registry, Source

ENTRY_POINT_GROUP = "robustkit"
BUILTIN_DISTRIBUTION = "robustkit"
_HOOK_OF_KIND = {kind: f"register_{kind}s" for kind in KINDS}
_HOOK_NAMES = (*_HOOK_OF_KIND.values(), "register_commands")


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin: an entry point or an in-process registration."""

    name: str
    distribution: str
    version: str
    module: str
    error: str | None = None

    @property
    def source(self) -> Source:
        return Source(self.name, self.distribution, self.version)


class PluginHost:
    """A pluggy manager plus what was loaded, what failed, and the registries built from it."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("robustkit")
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self._registries: dict[str, Registry] | None = None

    def load_entry_points(self, entry_points: Any = None) -> None:
        """Import every entry point in the group once, recording failures instead of crashing."""
        if entry_points is None:
            entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        allowed = _allowed_distributions()
        strict = os.environ.get("ROBUSTKIT_STRICT_PLUGINS", "") not in ("", "0")
        for ep in entry_points:
            dist = ep.dist.name if ep.dist is not None else "unknown"
            version = ep.dist.version if ep.dist is not None else "?"
            key = f"{dist}:{ep.name}"
            if key in self.infos:  # the same dist-info seen twice (symlinked site dirs)
                continue
            if allowed is not None and dist != BUILTIN_DISTRIBUTION and dist not in allowed:
                continue
            info = PluginInfo(ep.name, dist, version, ep.value)
            self.infos[key] = info
            try:
                self.pm.register(ep.load(), name=key)
                self._check_hooks(key)
            except Exception as exc:  # a broken plugin must not break the others
                info.error = f"{type(exc).__name__}: {exc}"
                message = f"robustkit plugin {ep.name!r} from {dist} {version} failed to load: "
                if strict:
                    raise PluginError(message + info.error) from exc
                warnings.warn(message + info.error, RuntimeWarning, stacklevel=2)

    def _check_hooks(self, key: str) -> None:
        """Unregister plugin ``key`` and raise if it implements a hook that does not exist."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=key)
            raise PluginError(f"{exc} (known hooks: {', '.join(_HOOK_NAMES)})") from None

    def register(self, plugin: Any, name: str | None = None) -> str:
        """Register an in-process plugin object or module (for scripts and tests)."""
        name = name or getattr(plugin, "__name__", type(plugin).__name__)
        if name in self.infos or self.pm.has_plugin(name):
            raise PluginError(f"a plugin named {name!r} is already registered")
        self.pm.register(plugin, name=name)
        self._check_hooks(name)
        self.infos[name] = PluginInfo(name, "(in-process)", "-", getattr(plugin, "__name__", name))
        self._registries = None
        return name

    def unregister(self, name: str) -> None:
        """Remove an in-process plugin registered with ``register``."""
        self.pm.unregister(name=name)
        self.infos.pop(name, None)
        self._registries = None

    def registry(self, kind: str) -> Registry:
        """The registry of ``kind``, built on first use by calling each plugin's hook."""
        if self._registries is None:
            self._registries = self._build_registries()
        return self._registries[kind]

    def _build_registries(self) -> dict[str, Registry]:
        registries = {kind: Registry(kind) for kind in KINDS}
        for kind, hook_name in _HOOK_OF_KIND.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                info = self.infos.get(impl.plugin_name) or PluginInfo(
                    impl.plugin_name, "(in-process)", "-", impl.plugin_name
                )
                impl.function(register=partial(registries[kind].add, source=info.source))
        return registries


def _allowed_distributions() -> set[str] | None:
    value = os.environ.get("ROBUSTKIT_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


_host: PluginHost | None = None


def get_plugin_host() -> PluginHost:
    """The process-wide plugin host, loading entry points on first call only."""
    global _host
    if _host is None:
        host = PluginHost()
        host.load_entry_points()
        _host = host
    return _host


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide pluggy manager with every installed plugin loaded."""
    return get_plugin_host().pm


def reset_plugins() -> None:
    """Forget the loaded plugins, so the next call discovers them again (for tests)."""
    global _host
    _host = None


def registry(kind: str) -> Registry:
    """The registry of ``kind`` ("model", "attack", "defense" or "dataset")."""
    if kind not in KINDS:
        raise PluginError(f"unknown plugin kind {kind!r}; known: {', '.join(KINDS)}")
    return get_plugin_host().registry(kind)


def create(kind: str, name: str, **params: Any) -> Any:
    """Instantiate the ``kind`` plugin called ``name`` with ``params``."""
    return registry(kind).create(name, **params)


def register_plugin(plugin: Any, name: str | None = None) -> str:
    """Register an in-process plugin (an object or module with ``@hookimpl`` functions)."""
    return get_plugin_host().register(plugin, name)


def unregister_plugin(name: str) -> None:
    """Remove a plugin added with ``register_plugin``."""
    get_plugin_host().unregister(name)


def interpreter() -> str:
    """The Python that robustkit runs in: plugins must be installed into it."""
    return sys.executable
