"""The Input node: where external data enters a graph."""

from __future__ import annotations

from torch import Tensor

from deepreservoir.kinds import TensorFree
from deepreservoir.nodes.base import Node

__all__ = ["Input"]


class Input(Node, TensorFree):
    """Pass external data through unchanged.

    Shapes: ``(B, T, F)`` → ``(B, T, F)``. Useful as an explicit source when
    several nodes read the same data, e.g. ``Input() >> [r1, r2]``.

    Parameters
    ----------
    input_dim : int, optional
        Expected number of features; checked against the data.
    name : str, optional

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> dr.Input().run(np.ones((3, 2))).shape
    (3, 2)
    """

    def __init__(self, input_dim: int | None = None, *, name: str | None = None) -> None:
        super().__init__(input_dim=input_dim, name=name)

    def hyperparameters(self) -> dict:
        return {"input_dim": self.input_dim}

    def forward_sequence(self, x: Tensor, state: None, lengths: Tensor | None = None):
        return x, None
