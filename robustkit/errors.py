"""Errors that robustkit shows to users as one line, without a traceback."""


class RobustkitError(ValueError):
    """A user error (bad input, bad option, bad file): the CLI prints it on one line, exit 2."""


class PluginError(RobustkitError):
    """A plugin could not be loaded, registered or found."""


class CapabilityError(RobustkitError):
    """An attack or defense needs a capability that the model does not have."""


class DataError(RobustkitError):
    """A data set or data file is missing, malformed or holds bad values."""


class PluginFault(Exception):
    """Plugin code raised or broke the contract (a bug, not a user error): one line, exit 1."""


class PluginWarning(RuntimeWarning):
    """A plugin was skipped or one of its registrations refused; the rest keep working."""
