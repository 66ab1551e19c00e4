"""Plugin specs (``rbf:lr=0.05,epochs=10``), typed against the plugin's ``__init__``, and
the shared parameter checks.

Values on the command line and in ``grid.toml`` strings are text; ``typed_params``
converts each to the type its ``__init__`` parameter declares (annotation, else the type
of its default): booleans accept ``true/false/yes/no/on/off/1/0``, tuples and lists are
written ``300x150`` (shell-friendly, no brackets or commas), ``none``/``null`` is None
where None is allowed. Anything else is a one-line error before anything trains.
"""

from __future__ import annotations

import inspect
import math
import re
import types
import typing
from numbers import Integral
from typing import Any

from .errors import RobustkitError

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
NONE_WORDS = ("none", "null")
#: Separator of tuple and list items on the command line: ``hidden=300x150``.
ITEM_SEPARATOR = "x"
_INT_SEQUENCE = re.compile(r"^-?\d+(x-?\d+)+$")


def parse_value(text: str) -> Any:
    """A parameter value from text with no declared type: int, float, bool, none, ``AxB``
    (a tuple of ints) or the string itself."""
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in NONE_WORDS:
        return None
    for convert in (int, float):
        try:
            return convert(stripped)
        except ValueError:
            pass
    if _INT_SEQUENCE.match(lowered):
        return tuple(int(part) for part in lowered.split(ITEM_SEPARATOR))
    return stripped


def check_int(
    name: str,
    value: Any,
    minimum: int = 1,
    *,
    allow_none: bool = False,
    error: type[Exception] = RobustkitError,
) -> int | None:
    """``value`` as an int >= ``minimum`` (or None if allowed), else a one-line ``error``.

    Shared by the core and the plugins, so every integer parameter fails the same way.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        accepted = f"None or an integer >= {minimum}" if allow_none else f"an integer >= {minimum}"
        raise error(f"{name} must be {accepted}, got {value!r}")
    return int(value)


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``name:key=value,key=value`` into the name and a dict of raw text values.

    The values stay text here; ``typed_params`` converts them against the plugin's
    ``__init__`` (``PluginSpec.coerce`` does both).
    """
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise RobustkitError(f"plugin spec {spec!r} has no name; expected NAME[:key=value,...]")
    params: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RobustkitError(
                f"plugin spec {spec!r}: {item!r} is not key=value; expected NAME[:key=value,...]"
            )
        params[key.strip()] = value.strip()
    return name, params


# --------------------------------------------------------------------------- typed values


def parameter_types(cls: type) -> dict[str, tuple[Any, Any]]:
    """``{name: (type, default)}`` of ``cls.__init__``'s keyword parameters.

    The type is the resolved annotation, else the default's type, else ``Any``.
    """
    signature = inspect.signature(cls.__init__)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: fall back to the defaults
        hints = {}
    out = {}
    for name, param in signature.parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = None if param.default is param.empty else param.default
        declared = hints.get(name) or (Any if default is None else type(default))
        out[name] = (declared, default)
    return out


def type_name(declared: Any) -> str:
    """A short readable name for a declared type: ``int | None``, ``tuple[int, ...]``."""
    if declared is Any:
        return "any"
    if declared is type(None):
        return "None"
    if isinstance(declared, type) and not typing.get_args(declared):
        return declared.__name__
    return str(declared).replace("typing.", "").replace("NoneType", "None")


def _members(declared: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(declared)
    if origin in (typing.Union, types.UnionType):
        return typing.get_args(declared)
    return (declared,)


def _convert(text: str, declared: Any) -> Any:
    """``text`` as ``declared`` (one type, not a union); ValueError if it does not fit."""
    lowered = text.strip().lower()
    origin = typing.get_origin(declared) or declared
    if declared is Any:
        return parse_value(text)
    if declared is type(None):
        if lowered in NONE_WORDS:
            return None
        raise ValueError
    if origin is bool:
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        raise ValueError
    if origin is int:
        return int(text.strip())
    if origin is float:
        return float(text.strip())
    if origin is str:
        return text
    if origin in (tuple, list):
        args = [a for a in typing.get_args(declared) if a is not Ellipsis] or [Any]
        parts = text.strip().split(ITEM_SEPARATOR) if text.strip() else []
        items = [
            _convert(part, args[0] if len(args) == 1 else args[i]) for i, part in enumerate(parts)
        ]
        return origin(items)
    raise ValueError


def typed_value(text: str, declared: Any) -> Any:
    """``text`` converted to the first member of ``declared`` it fits; ValueError if none."""
    members = _members(declared)
    if type(None) in members and text.strip().lower() in NONE_WORDS:
        return None
    for member in members:
        if member is type(None):
            continue
        try:
            return _convert(text, member)
        except (ValueError, IndexError, TypeError):
            continue
    raise ValueError(text)


def _accepted(declared: Any) -> str:
    words = []
    for member in _members(declared):
        origin = typing.get_origin(member) or member
        if member is type(None):
            words.append("none")
        elif origin is bool:
            words.append("true/false/yes/no/on/off/1/0")
        elif origin is int:
            words.append("an integer")
        elif origin is float:
            words.append("a number")
        elif origin in (tuple, list):
            words.append(f"items separated by {ITEM_SEPARATOR!r} such as 300x150")
        else:
            words.append(type_name(member))
    return " or ".join(words)


def typed_params(cls: type, params: dict[str, Any], who: str) -> dict[str, Any]:
    """``params`` with every text value converted to its ``__init__`` parameter's type.

    Non-text values (from Python or TOML numbers) pass unchanged; a list is a sweep, and
    each of its items is converted. ``who`` (e.g. ``"attack 'pgd'"``) starts the error.
    """
    declared = parameter_types(cls)
    out = {}
    for key, value in params.items():
        if key not in declared:
            out[key] = value  # unknown names are reported with the accepted ones on create
            continue
        kind = declared[key][0]

        def convert(item: Any, key: str = key, kind: Any = kind) -> Any:
            if not isinstance(item, str):
                return item
            try:
                return typed_value(item, kind)
            except ValueError:
                raise RobustkitError(
                    f"{who}: {key} must be {_accepted(kind)}; got {item!r}"
                ) from None

        out[key] = [convert(item) for item in value] if isinstance(value, list) else convert(value)
    return out


def parse_float_list(text: str, what: str, *, minimum: float | None = None) -> list[float]:
    """Comma-separated finite numbers, e.g. ``0.05,0.1,0.3``; ``what`` names the option."""
    values = []
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        try:
            value = float(item)
        except ValueError:
            raise RobustkitError(f"{what} must be numbers like 0.05,0.1; got {item!r}") from None
        if not math.isfinite(value) or (minimum is not None and value < minimum):
            bound = f" >= {minimum:g}" if minimum is not None else ""
            raise RobustkitError(f"{what} must be finite numbers{bound}; got {item!r}")
        values.append(value)
    if not values:
        raise RobustkitError(f"{what} needs at least one number; got {text!r}")
    return values
