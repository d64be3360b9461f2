"""deepreservoir: reservoir computing generalized to depth.

Frozen random layers drawn from a seed, composed into graphs with ``>>``,
trained only through small readouts and adapters.
"""

from torch import float32, float64

from deepreservoir import families, functional, seeding
from deepreservoir._version import __version__
from deepreservoir.errors import (
    ArtifactError,
    DataError,
    DeepReservoirError,
    GraphError,
    NotFittedError,
    ParameterError,
)
from deepreservoir.graph import Model
from deepreservoir.nodes import (
    Activation,
    Identity,
    Input,
    Node,
    ReLU,
    Reservoir,
    Ridge,
    Sigmoid,
    Softmax,
    Tanh,
)

__all__ = [
    "Activation",
    "ArtifactError",
    "DataError",
    "DeepReservoirError",
    "GraphError",
    "Identity",
    "Input",
    "Model",
    "Node",
    "NotFittedError",
    "ParameterError",
    "ReLU",
    "Reservoir",
    "Ridge",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "__version__",
    "families",
    "float32",
    "float64",
    "functional",
    "seeding",
]
