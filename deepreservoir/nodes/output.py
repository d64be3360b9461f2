"""The Output node: a named exit that exposes what it receives as a model output."""

from __future__ import annotations

from torch import Tensor

from deepreservoir.kinds import TensorFree
from deepreservoir.nodes.base import Node

__all__ = ["Output"]


class Output(Node, TensorFree):
    """Pass its input through unchanged, as a model output under its own name.

    Shapes: ``(B, T, F)`` → ``(B, T, F)``. ``reservoir >> Output(name="states")``
    makes a model return the reservoir's states next to its readout's output
    (a dict by name), as reservoirpy's ``Output`` does.

    Parameters
    ----------
    name : str, optional

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> res = dr.Reservoir(20, seed=1)
    >>> model = (res >> dr.Ridge(name="readout")) & (res >> dr.Output(name="states"))
    >>> x = np.sin(np.linspace(0, 6, 30))[:, None]
    >>> outputs = model.fit(x, x).run(x)
    >>> outputs["readout"].shape, outputs["states"].shape
    ((30, 1), (30, 20))
    """

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)

    def forward_sequence(self, x: Tensor, state: None, lengths: Tensor | None = None):
        return x, None
