"""The hooks robustkit plugins implement: each receives a ``register(name, cls)`` callback."""

import pluggy

hookspec = pluggy.HookspecMarker("robustkit")
hookimpl = pluggy.HookimplMarker("robustkit")


@hookspec
def register_models(register):
    """Register model classes (subclasses of ``robustkit.Model``): ``register("name", cls)``."""


@hookspec
def register_attacks(register):
    """Register attack classes (subclasses of ``robustkit.Attack``): ``register("name", cls)``."""


@hookspec
def register_defenses(register):
    """Register defense classes (subclasses of ``robustkit.Defense``): ``register("name", cls)``."""


@hookspec
def register_datasets(register):
    """Register data set classes (``robustkit.Dataset`` subclasses): ``register("name", cls)``."""


@hookspec
def register_commands(cli):
    """Add click commands to the ``robustkit`` command group."""


@hookspec(firstresult=True)
def wrap_estimator(estimator):
    """Return a robustkit Model for a fitted third-party ``estimator``, or None if not yours."""
