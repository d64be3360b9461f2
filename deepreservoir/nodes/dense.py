"""Dense: a fully trained linear layer (the baseline LottaLoRA is compared with)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from deepreservoir import functional as F
from deepreservoir.constraints import AnyOf, Interval, OneOf
from deepreservoir.errors import NotFittedError
from deepreservoir.families import Uniform, make_weight
from deepreservoir.kinds import GradientTrained, LayerView, WeightedLayer
from deepreservoir.nodes.base import Node

__all__ = ["Dense"]


def infer_units(node: Node, target_dim: int | None) -> int:
    """Output size of a trained node: its ``units``, else the target size."""
    if node.output_dim is not None:
        return int(node.output_dim)
    if target_dim is None:
        raise NotFittedError(
            f"{type(node).__name__} '{node.name}' does not know its output size: train it on "
            f"targets first or give units=."
        )
    return int(target_dim)


class Dense(Node, GradientTrained, WeightedLayer):
    r"""A fully trained layer ``h = act(W x + b)``.

    ``W`` (units, F) starts Kaiming-uniform with a = √5 and ``b`` uniform in
    ±1/√F, as torch's ``nn.Linear``, but both are drawn from the node's seed, so
    training is reproducible without touching torch's global generator.

    Shapes: ``(B, T, F)`` → ``(B, T, units)``. ``units`` may be inferred from the
    targets (for a head).

    Parameters
    ----------
    units : int, optional
    activation : str
        Default ``"identity"``.
    bias : bool
    dropout : float in [0, 1)
        Dropout on the output during training.
    seed, name, input_dim, dtype
        As for every node.

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> dr.Dense(3, seed=0).run(np.ones((4, 5))).shape
    (4, 3)
    """

    _constraints: ClassVar[dict] = {
        "units": AnyOf((None, Interval(int, 1, None))),
        "activation": OneOf(tuple(sorted(F.ACTIVATIONS))),
        "bias": OneOf((True, False)),
        "dropout": Interval(float, 0, 1, closed="left"),
    }

    def __init__(self, units: int | None = None, *, activation: str = "identity",
                 bias: bool = True, dropout: float = 0.0, seed: int | None = None,
                 name: str | None = None, input_dim: int | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__(input_dim=input_dim, name=name, seed=seed, dtype=dtype)
        self._validate(dict(units=units, activation=activation, bias=bias, dropout=dropout))
        self.units = units
        self.activation = activation
        self.use_bias = bool(bias)
        self.dropout = float(dropout)
        self.output_dim = units

    def hyperparameters(self) -> dict[str, Any]:
        return {"units": self.units, "activation": self.activation, "bias": self.use_bias,
                "dropout": self.dropout, "seed": self.seed}

    def infer_output_dim(self, input_dim: int, target_dim: int | None = None) -> int:
        return infer_units(self, target_dim)

    def _build(self, input_dim: int, target_dim: int | None) -> None:
        out = int(self.output_dim)
        W = make_weight("kaiming_uniform", self.seed_key_, "W", (out, input_dim),
                        fan_in=input_dim, fan_out=out)
        self.W_ = torch.nn.Parameter(self._new_tensor(W))
        if self.use_bias:
            b = make_weight(Uniform(a=1.0 / math.sqrt(input_dim)), self.seed_key_, "bias",
                            (out,), fan_in=input_dim, fan_out=out)
            self.bias_ = torch.nn.Parameter(self._new_tensor(b))
        else:
            self.bias_ = None

    def effective_weight(self) -> Tensor:
        """The weight ``W`` (units, F)."""
        self._require_built()
        return self.W_

    def layer_view(self) -> LayerView:
        """The trained weight and bias."""
        self._require_built()
        bias = None if self.bias_ is None else self.bias_.detach()
        return LayerView(weight=self.W_.detach(), bias=bias, activation=self.activation)

    def forward_sequence(self, x: Tensor, state: None, lengths: Tensor | None = None):
        self._require_built()
        h = F.get_activation(self.activation)(torch.nn.functional.linear(x, self.W_, self.bias_))
        return F.seeded_dropout(h, self.dropout, self.training), None


