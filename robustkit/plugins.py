"""Plugin discovery: one pluggy manager per process, each plugin loaded in isolation.

Built-in plugins come through the same ``robustkit`` entry-point group as third-party
ones, and register first, so a third-party name clash never replaces a built-in. A
plugin that fails to import, or whose hook raises, is disabled with a warning and the
rest keep working (``robustkit plugins`` lists what failed and why);
``ROBUSTKIT_STRICT_PLUGINS=1`` makes such a failure fatal. ``ROBUSTKIT_LOAD_PLUGINS``
(comma-separated distribution names, compared PEP 503-normalised) limits which
third-party distributions load; robustkit's own built-ins always load. Anything a
plugin prints while it is imported or registers goes to stderr, never to stdout.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, PluginFault, PluginWarning
from .faults import first_line
from .registry import KINDS, Problem, Registry, Source

ENTRY_POINT_GROUP = "robustkit"
BUILTIN_DISTRIBUTION = "robustkit"
_HOOK_OF_KIND = {kind: f"register_{kind}s" for kind in KINDS}
_HOOK_NAMES = (*_HOOK_OF_KIND.values(), "register_commands", "wrap_estimator")


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

    @property
    def builtin(self) -> bool:
        return self.distribution == BUILTIN_DISTRIBUTION


def normalise_distribution(name: str) -> str:
    """PEP 503 normalised form: ``My.Pkg`` and ``my_pkg`` both become ``my-pkg``."""
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def strict() -> bool:
    """True when ``ROBUSTKIT_STRICT_PLUGINS`` asks for load failures to be fatal."""
    return os.environ.get("ROBUSTKIT_STRICT_PLUGINS", "") not in ("", "0")


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what plugin code prints to stderr, so ``--json`` output on stdout stays clean."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


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
        seen: set[str] = set()
        for ep in entry_points:
            dist = ep.dist.name if ep.dist is not None else "unknown"
            version = ep.dist.version if ep.dist is not None else "?"
            seen.add(normalise_distribution(dist))
            key = f"{dist}:{ep.name}"
            if key in self.infos:  # the same dist-info seen twice (symlinked site dirs)
                continue
            builtin = dist == BUILTIN_DISTRIBUTION
            if allowed is not None and not builtin and normalise_distribution(dist) not in allowed:
                continue
            info = PluginInfo(ep.name, dist, version, ep.value.partition(":")[0])
            self.infos[key] = info
            try:
                with stdout_to_stderr():
                    self.pm.register(ep.load(), name=key)
                self._check_hooks(key)
            except Exception as exc:  # a broken plugin must not break the others
                info.error = first_line(exc)
                self._fail(info, f"failed to load: {info.error}", exc, PluginError)
        for name in sorted((allowed or set()) - seen):
            warnings.warn(
                f"ROBUSTKIT_LOAD_PLUGINS names {name!r}, but no installed distribution of "
                f"that name has robustkit plugins (installed: {', '.join(sorted(seen))})",
                PluginWarning,
                stacklevel=2,
            )

    def _fail(self, info: PluginInfo, what: str, exc: Exception, error: type[Exception]) -> None:
        """Warn that ``info``'s plugin is disabled, or raise ``error`` in strict mode."""
        message = f"robustkit plugin {info.name!r} from {info.distribution} {info.version} {what}"
        if strict():
            raise error(message) from exc
        warnings.warn(message + "; it is disabled", PluginWarning, stacklevel=3)

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

    def problems(self) -> list[Problem]:
        """Every refused registration (bad name, wrong class, name taken), in order."""
        return [p for kind in KINDS for p in self.registry(kind).problems]

    def _ordered_plugins(self) -> list[str]:
        """Plugin names in registration order: built-ins first, then by distribution."""
        names = [name for name, _ in self.pm.list_name_plugin()]
        names = [name for name in names if self.pm.get_plugin(name) is not None]

        def order(name: str) -> tuple[int, str]:
            info = self.infos.get(name)
            return (0 if info is not None and info.builtin else 1, name)

        return sorted(names, key=order)

    def _info(self, name: str) -> PluginInfo:
        return self.infos.get(name) or PluginInfo(name, "(in-process)", "-", name)

    def _build_registries(self) -> dict[str, Registry]:
        """Call each plugin's hooks in isolation; a hook that raises disables its plugin."""
        registries = {kind: Registry(kind) for kind in KINDS}
        for plugin_name in self._ordered_plugins():
            info = self._info(plugin_name)
            calls: list[tuple[str, Any, Any]] = []
            try:
                for kind, hook_name in _HOOK_OF_KIND.items():
                    for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                        if impl.plugin_name != plugin_name:
                            continue

                        with stdout_to_stderr():
                            impl.function(register=partial(_collect, calls, kind))
            except Exception as exc:
                info.error = f"{hook_name} raised {first_line(exc)}"
                self.pm.unregister(name=plugin_name)
                self._fail(info, f"failed: {info.error}", exc, PluginFault)
                continue
            for kind, name, cls in calls:
                registries[kind].add(name, cls, info.source)
        return registries

    def add_commands(self, cli: Any) -> None:
        """Call every ``register_commands`` hook; one that raises is skipped with a warning."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self._info(impl.plugin_name)
            try:
                with stdout_to_stderr():
                    impl.function(cli=cli)
            except Exception as exc:
                info.error = f"register_commands raised {first_line(exc)}"
                self.pm.unregister(name=impl.plugin_name)
                self._registries = None
                self._fail(info, f"failed: {info.error}", exc, PluginFault)


def _collect(calls: list[tuple[str, Any, Any]], kind: str, name: Any, cls: Any) -> None:
    """The ``register`` callback: remember the call; it is checked once the hook returns."""
    calls.append((kind, name, cls))


def _allowed_distributions() -> set[str] | None:
    value = os.environ.get("ROBUSTKIT_LOAD_PLUGINS")
    if value is None:
        return None
    return {normalise_distribution(name) for name in value.split(",") if name.strip()}


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
