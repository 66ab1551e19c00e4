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

from .errors import CapabilityError, DataError, PluginError, PluginFault, RobustkitError
from .grid import Grid, PluginSpec
from .harness import Harness, evaluate
from .hookspecs import hookimpl
from .interfaces import (
    BATCH_TRANSFORM,
    CERTIFIABLE,
    INPUT_GRADIENT,
    NOISE_CLASS,
    REJECT,
    REJECTION,
    STRAIGHT_THROUGH,
    Attack,
    AttackResult,
    Dataset,
    DataSplit,
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
from .result import EvaluationResult
from .training import TrainingRun, train
from .wrapping import wrap

__all__ = [
    "BATCH_TRANSFORM",
    "CERTIFIABLE",
    "INPUT_GRADIENT",
    "NOISE_CLASS",
    "REJECT",
    "REJECTION",
    "STRAIGHT_THROUGH",
    "Attack",
    "AttackResult",
    "CapabilityError",
    "DataError",
    "DataSplit",
    "Dataset",
    "Defense",
    "EvaluationResult",
    "Grid",
    "Harness",
    "Model",
    "PluginError",
    "PluginFault",
    "PluginSpec",
    "Recipe",
    "RobustkitError",
    "TrainingRun",
    "__version__",
    "create",
    "evaluate",
    "get_plugin_manager",
    "hookimpl",
    "load_model",
    "register_plugin",
    "registry",
    "save_model",
    "train",
    "unregister_plugin",
    "wrap",
]
