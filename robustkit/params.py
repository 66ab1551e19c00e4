"""Parsing of command-line plugin specs (``rbf:lr=0.05,epochs=10``) and number lists."""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any

from .errors import RobustkitError


def parse_value(text: str) -> Any:
    """A parameter value from text: int, float, bool, none, or the string itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text.strip()


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
    """Split ``name:key=value,key=value`` into the name and a parameter dict."""
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
        params[key.strip()] = parse_value(value)
    return name, params


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
