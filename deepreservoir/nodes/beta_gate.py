"""BetaGate: scale a signal by one learned scalar."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from deepreservoir.constraints import Interval
from deepreservoir.kinds import Gated, GradientTrained
from deepreservoir.nodes.base import Node

__all__ = ["BetaGate"]


class BetaGate(Node, GradientTrained, Gated):
    r"""Multiply the input by a trained scalar: ``y = β·x``.

    Shapes: ``(B, T, F)`` → ``(B, T, F)``. ``β`` is an ``nn.Parameter`` named
    ``beta_``, starting at ``init``.

    Parameters
    ----------
    init : float
        Initial value of β.
    name, input_dim, dtype
        As for every node.

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> dr.BetaGate(0.5).run(np.ones((2, 3)))
    array([[0.5, 0.5, 0.5],
           [0.5, 0.5, 0.5]], dtype=float32)
    """

    _constraints: ClassVar[dict] = {"init": Interval(float, None, None)}

    def __init__(self, init: float = 1.0, *, name: str | None = None,
                 input_dim: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        super().__init__(input_dim=input_dim, name=name, dtype=dtype)
        self._validate({"init": init})
        self.init = float(init)

    def hyperparameters(self) -> dict[str, Any]:
        return {"init": self.init}

    def gate(self) -> Tensor | None:
        """The trained scalar β."""
        return self.beta_ if self.built else None

    def _build(self, input_dim: int, target_dim: int | None) -> None:
        self.beta_ = torch.nn.Parameter(self._new_tensor(self.init))

    def forward_sequence(self, x: Tensor, state: None, lengths: Tensor | None = None):
        self._require_built()
        return self.beta_ * x, None
