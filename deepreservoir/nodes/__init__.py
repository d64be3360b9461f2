"""Graph nodes, one per module."""

from deepreservoir.nodes.activation import Activation, Identity, ReLU, Sigmoid, Softmax, Tanh
from deepreservoir.nodes.base import Node
from deepreservoir.nodes.beta_gate import BetaGate
from deepreservoir.nodes.dense import Dense
from deepreservoir.nodes.es2n import ES2N
from deepreservoir.nodes.input import Input
from deepreservoir.nodes.ip_reservoir import IPReservoir
from deepreservoir.nodes.lms import LMS
from deepreservoir.nodes.lora_readout import LoRAReadout
from deepreservoir.nodes.nvar import NVAR
from deepreservoir.nodes.output import Output
from deepreservoir.nodes.reservoir import Reservoir
from deepreservoir.nodes.ridge import Ridge
from deepreservoir.nodes.rls import RLS
from deepreservoir.nodes.scaffold import PRESETS, SCAFFOLD_SCALES, Scaffold, scaffold_mlp

__all__ = [
    "ES2N",
    "LMS",
    "NVAR",
    "PRESETS",
    "RLS",
    "SCAFFOLD_SCALES",
    "Activation",
    "BetaGate",
    "Dense",
    "IPReservoir",
    "Identity",
    "Input",
    "LoRAReadout",
    "Node",
    "Output",
    "ReLU",
    "Reservoir",
    "Ridge",
    "Scaffold",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "scaffold_mlp",
]
