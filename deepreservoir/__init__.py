"""deepreservoir: reservoir computing generalized to depth.

Frozen random layers drawn from a seed, composed into graphs with ``>>``,
trained only through small readouts and adapters.

``import deepreservoir`` loads the core only; ``analysis`` (xarray, plotting)
and the other heavy submodules load on first use.
"""

from importlib import import_module
from typing import Any

from torch import float32, float64

from deepreservoir._version import __version__
from deepreservoir.adapt import adapt, adapt_config, merge
from deepreservoir.adapt import parameter_groups as adapt_parameter_groups
from deepreservoir.adapt_io import load_adapted, save_adapted
from deepreservoir.constraints import finite_check, set_finite_check
from deepreservoir.errors import (
    ArtifactError,
    DataError,
    DeepReservoirError,
    GraphError,
    NonFiniteError,
    NotFittedError,
    ParameterError,
    TrainingError,
)
from deepreservoir.esn import ESN
from deepreservoir.footprint import footprint, paper_param_count
from deepreservoir.io import load, save
from deepreservoir.lora import RankCappedWarning
from deepreservoir.model import Model
from deepreservoir.nodes import (
    ES2N,
    LMS,
    NVAR,
    PRESETS,
    RLS,
    SCAFFOLD_SCALES,
    Activation,
    BetaGate,
    Dense,
    Identity,
    Input,
    IPReservoir,
    LoRAReadout,
    Node,
    Output,
    ReLU,
    Reservoir,
    Ridge,
    Scaffold,
    Sigmoid,
    Softmax,
    Tanh,
    scaffold_mlp,
)
from deepreservoir.nodes.reservoir import TinyLeakWarning

_LAZY_SUBMODULES = ("analysis", "datasets", "distributed", "families", "frozen_weight",
                    "functional", "io", "kinds", "lora", "seeding", "seeding_torch", "spectral",
                    "step_kernels", "threads", "training")

__all__ = [
    "ES2N",
    "ESN",
    "LMS",
    "NVAR",
    "PRESETS",
    "RLS",
    "SCAFFOLD_SCALES",
    "Activation",
    "ArtifactError",
    "BetaGate",
    "DataError",
    "DeepReservoirError",
    "Dense",
    "GraphError",
    "IPReservoir",
    "Identity",
    "Input",
    "LoRAReadout",
    "Model",
    "Node",
    "NonFiniteError",
    "NotFittedError",
    "Output",
    "ParameterError",
    "RankCappedWarning",
    "ReLU",
    "Reservoir",
    "Ridge",
    "Scaffold",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "TinyLeakWarning",
    "TrainingError",
    "__version__",
    "adapt",
    "adapt_config",
    "adapt_parameter_groups",
    "analysis",
    "datasets",
    "distributed",
    "families",
    "finite_check",
    "float32",
    "float64",
    "footprint",
    "frozen_weight",
    "functional",
    "io",
    "kinds",
    "load",
    "load_adapted",
    "lora",
    "merge",
    "paper_param_count",
    "save",
    "save_adapted",
    "scaffold_mlp",
    "seeding",
    "seeding_torch",
    "set_finite_check",
    "spectral",
    "step_kernels",
    "threads",
    "training",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        module = import_module(f"deepreservoir.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'deepreservoir' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
