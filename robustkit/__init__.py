"""robustkit: a plugin-based adversarial robustness toolkit.

The core defines the Model, Attack, Defense and Dataset interfaces, the plugin system
and the evaluation harness; every concrete network, attack, defense and data set is a
plugin registered through the ``robustkit`` entry-point group.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("robustkit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

from .errors import CapabilityError, DataError, PluginError, RobustkitError
from .hookspecs import hookimpl
from .interfaces import (
    INPUT_GRADIENT,
    REJECT,
    REJECTION,
    Attack,
    AttackResult,
    DataSplit,
    Dataset,
    Defense,
    Model,
)
from .persistence import Recipe, load_model, save_model
from .plugins import (
    create,
    get_plugin_manager,
    register_plugin,
    registry,
    unregister_plugin,
)

__all__ = [
    "INPUT_GRADIENT",
    "REJECT",
    "REJECTION",
    "Attack",
    "AttackResult",
    "CapabilityError",
    "DataError",
    "DataSplit",
    "Dataset",
    "Defense",
    "Model",
    "PluginError",
    "Recipe",
    "RobustkitError",
    "__version__",
    "create",
    "get_plugin_manager",
    "hookimpl",
    "load_model",
    "register_plugin",
    "registry",
    "save_model",
    "unregister_plugin",
]
