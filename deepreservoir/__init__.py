"""deepreservoir: reservoir computing generalized to depth.

Frozen random layers drawn from a seed, composed into graphs with ``>>``,
trained only through small readouts and adapters.
"""

from torch import float32, float64

from deepreservoir import analysis, families, functional, io, seeding, training
from deepreservoir._version import __version__
from deepreservoir.adapt import adapt, merge
from deepreservoir.errors import (
    ArtifactError,
    DataError,
    DeepReservoirError,
    GraphError,
    NotFittedError,
    ParameterError,
)
from deepreservoir.footprint import footprint, paper_param_count
from deepreservoir.graph import Model
from deepreservoir.io import load, save
from deepreservoir.nodes import (
    PRESETS,
    Activation,
    BetaGate,
    Dense,
    Identity,
    Input,
    LoRAReadout,
    Node,
    ReLU,
    Reservoir,
    Ridge,
    Scaffold,
    Sigmoid,
    Softmax,
    Tanh,
    scaffold_mlp,
)
from deepreservoir.training import TrainingError

__all__ = [
    "PRESETS",
    "Activation",
    "ArtifactError",
    "BetaGate",
    "DataError",
    "DeepReservoirError",
    "Dense",
    "GraphError",
    "Identity",
    "Input",
    "LoRAReadout",
    "Model",
    "Node",
    "NotFittedError",
    "ParameterError",
    "ReLU",
    "Reservoir",
    "Ridge",
    "Scaffold",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "TrainingError",
    "__version__",
    "adapt",
    "analysis",
    "families",
    "float32",
    "float64",
    "footprint",
    "functional",
    "io",
    "load",
    "merge",
    "paper_param_count",
    "save",
    "scaffold_mlp",
    "seeding",
    "training",
]
