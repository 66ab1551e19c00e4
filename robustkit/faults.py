"""Turning exceptions from plugin code into one line that names the plugin.

``plugin_call(action, obj)`` wraps every place the core calls plugin code (construction,
``validate``, ``fit``, ``predict``, ``perturb``, ``apply``, ``load``). A ``RobustkitError``
is the plugin rejecting bad input and passes through (a user error, exit 2); any other
exception is a plugin bug and becomes a ``PluginFault`` (exit 1) naming the plugin, its
distribution and version, what it was doing and the error. The original exception is
kept as ``__cause__`` for ``--debug``.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from typing import Any

from .errors import PluginFault, RobustkitError
from .registry import Source


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (just the type for an empty message)."""
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text.splitlines()[0]}" if text else name


def _host() -> Any:
    from .plugins import get_plugin_host

    return get_plugin_host()


def source_of_traceback(exc: BaseException) -> Source | None:
    """The plugin whose module raised ``exc``: the deepest frame in a plugin's module."""
    infos = list(_host().infos.values())
    for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
        module = str(frame.f_globals.get("__name__", ""))
        for info in infos:
            if module == info.module or module.startswith(info.module + "."):
                return info.source
        package = module.partition(".")[0]
        for info in infos:  # a helper module of a plugin's package (e.g. a private module)
            if package and info.module.partition(".")[0] == package and package != "robustkit":
                return Source(module, info.distribution, info.version)
    return None


def registered_name(obj: Any) -> tuple[str, str, Source] | None:
    """``(kind, name, source)`` of the registered class ``obj`` is an instance of."""
    host = _host()
    from .registry import KINDS

    for kind in KINDS:
        for entry in host.registry(kind).entries():
            if entry.cls is type(obj):
                return kind, entry.name, entry.source
    return None


def describe(obj: Any) -> str:
    """``model 'rbf'``, ``NoiseClassRejection around model 'rbf'`` or the class name."""
    if obj is None:
        return "plugin code"
    found = registered_name(obj)
    if found is not None:
        return f"{found[0]} {found[1]!r}"
    inner = getattr(obj, "model", None)
    if inner is not None and inner is not obj and hasattr(inner, "fit"):
        return f"{type(obj).__name__} around {describe(inner)}"
    return type(obj).__name__


def fault_message(exc: BaseException, action: str, obj: Any = None) -> str:
    """One line: which plugin failed, doing what, with which error."""
    source = source_of_traceback(exc)
    if source is None and obj is not None:
        found = registered_name(obj)
        source = found[2] if found else None
    if source is None and obj is None:
        return f"unexpected error in {action}: {first_line(exc)}"
    who = str(source) if source is not None else "plugin code"
    doing = f"{action} of {describe(obj)}" if obj is not None else action
    return f"{who} failed in {doing}: {first_line(exc)}"


@contextlib.contextmanager
def plugin_call(action: str, obj: Any = None) -> Iterator[None]:
    """Re-raise any non-robustkit exception from the block as a one-line ``PluginFault``."""
    try:
        yield
    except (RobustkitError, PluginFault):
        raise
    except Exception as exc:
        raise PluginFault(fault_message(exc, action, obj)) from exc
