"""Activation nodes: elementwise functions (and softmax) as graph nodes."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from deepreservoir import functional as F
from deepreservoir.constraints import OneOf
from deepreservoir.kinds import TensorFree
from deepreservoir.nodes.base import Node

__all__ = ["Activation", "Identity", "ReLU", "Sigmoid", "Softmax", "Tanh"]


class Activation(Node, TensorFree):
    """Apply an activation function to every feature.

    Shapes: ``(B, T, F)`` → ``(B, T, F)``. Softmax acts over the feature axis.

    Parameters
    ----------
    function : {"tanh", "relu", "sigmoid", "identity", "softmax"}
        Default ``"identity"`` (each subclass sets its own).
    name : str, optional

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> dr.Activation("relu").run(np.array([[-1.0, 2.0]]))
    array([[0., 2.]], dtype=float32)
    """

    _constraints: ClassVar[dict] = {"function": OneOf(tuple(sorted(F.ACTIVATIONS)))}
    default_function: ClassVar[str] = "identity"

    def __init__(self, function: str | None = None, *, name: str | None = None) -> None:
        super().__init__(name=name)
        function = self.default_function if function is None else function
        self._validate({"function": function})
        self.function = function

    def hyperparameters(self) -> dict:
        return {"function": self.function}

    def forward_sequence(self, x: Tensor, state: None, lengths: Tensor | None = None):
        return F.get_activation(self.function)(x), None


class Tanh(Activation):
    """Hyperbolic tangent node."""

    default_function: ClassVar[str] = "tanh"


class ReLU(Activation):
    """Rectified linear node."""

    default_function: ClassVar[str] = "relu"


class Sigmoid(Activation):
    """Logistic sigmoid node."""

    default_function: ClassVar[str] = "sigmoid"


class Identity(Activation):
    """Identity node."""

    default_function: ClassVar[str] = "identity"


class Softmax(Activation):
    """Softmax over the feature axis."""

    default_function: ClassVar[str] = "softmax"
