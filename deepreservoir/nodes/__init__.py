"""Graph nodes, one per module."""

from deepreservoir.nodes.activation import Activation, Identity, ReLU, Sigmoid, Softmax, Tanh
from deepreservoir.nodes.base import Node
from deepreservoir.nodes.input import Input
from deepreservoir.nodes.reservoir import Reservoir
from deepreservoir.nodes.ridge import Ridge

__all__ = [
    "Activation",
    "Identity",
    "Input",
    "Node",
    "ReLU",
    "Reservoir",
    "Ridge",
    "Sigmoid",
    "Softmax",
    "Tanh",
]
