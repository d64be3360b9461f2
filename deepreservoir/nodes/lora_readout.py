"""LoRAReadout: a linear readout made of a frozen seeded matrix, an adapter and a gate."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from deepreservoir.constraints import AnyOf, Interval, OneOf
from deepreservoir.errors import ParameterError
from deepreservoir.families import Uniform, get_family, make_weight
from deepreservoir.nodes.dense import infer_units
from deepreservoir.nodes.low_rank import LowRankNode

__all__ = ["LoRAReadout"]


class LoRAReadout(LowRankNode):
    r"""Linear readout ``y = (β·W_seed + scale·B·A)·x + b`` trained by gradient descent.

    ``W_seed`` (units, F) is frozen and drawn from ``family``; ``A`` (r, F) starts
    Kaiming-uniform (a = √5, from the seed), ``B`` (units, r) at 0, ``β`` at 1 and
    the trained bias ``b`` at 0. ``units`` is inferred from the targets when
    omitted (the number of classes for ``loss="cross_entropy"``).

    ``LoRAReadout(r=0, full=True)`` is a fully trained head instead: ``W`` is an
    ``nn.Parameter`` initialised like torch's ``nn.Linear`` (from the seed).

    Shapes: ``(B, T, F)`` → ``(B, T, units)``; stateless.

    Parameters
    ----------
    units : int, optional
    r : int >= 0
        Adapter rank (default 4). A rank above ``min(F, units)`` cannot add
        anything: the layer is built with that limit and a
        :class:`~deepreservoir.lora.RankCappedWarning` states the effective rank.
    alpha : float > 0, optional
        ``None`` means α = r (scale 1; √r with rsLoRA).
    rslora : bool
        Scale by ``α/√r`` instead of ``α/r``.
    family : str, Family, dict or None
        Distribution of ``W_seed``; ``None`` means ``W_seed = 0``.
    bias : bool or "seeded"
        Train a bias (``True``), or add a frozen one drawn from the seed (``"seeded"``).
    beta : bool
        Train the gate β (when r > 0).
    b_init : {"zeros", "kaiming"}
        How ``B`` starts (see :class:`~deepreservoir.Scaffold`).
    full : bool
        Train the whole matrix (requires ``r = 0``).
    seed, name, input_dim, dtype
        As for every node.

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> head = dr.LoRAReadout(3, r=2, seed=0)
    >>> head.run(np.ones((4, 6))).shape
    (4, 3)
    """

    _constraints: ClassVar[dict] = {
        "units": AnyOf((None, Interval(int, 1, None))),
        **LowRankNode._lora_constraints,
        "full": OneOf((True, False)),
    }

    def __init__(self, units: int | None = None, *, r: int = 4, alpha: float | None = None,
                 rslora: bool = False, family: Any = "normal", bias: bool = True,
                 beta: bool = True, b_init: str = "zeros", full: bool = False,
                 seed: int | None = None,
                 name: str | None = None, input_dim: int | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__(input_dim=input_dim, name=name, seed=seed, dtype=dtype)
        if isinstance(family, (str, dict)):
            get_family(family, "family")
        self._validate(dict(units=units, r=r, alpha=alpha, rslora=rslora, family=family,
                            bias=bias, beta=beta, b_init=b_init, full=full))
        if full and r != 0:
            raise ParameterError(
                f"The 'r' parameter of LoRAReadout must be 0 when full=True (the whole matrix "
                f"is trained). Got {r}.")
        self.units = units
        self._init_lora(r, alpha, rslora, family, bias, beta, b_init)
        self.full = bool(full)
        self.output_dim = units

    def hyperparameters(self) -> dict[str, Any]:
        return {"units": self.units, **self._lora_hyperparameters(), "full": self.full,
                "seed": self.seed}

    def infer_output_dim(self, input_dim: int, target_dim: int | None = None) -> int:
        return infer_units(self, target_dim)

    def _build(self, input_dim: int, target_dim: int | None) -> None:
        out = int(self.output_dim)
        if self.full:
            W = make_weight("kaiming_uniform", self.seed_key_, "W", (out, input_dim),
                            fan_in=input_dim, fan_out=out)
            self.W_ = torch.nn.Parameter(self._new_tensor(W))
            self.beta_ = None
        else:
            self._build_lora(input_dim, out)
        if not self.use_bias or self.use_bias == "seeded":
            self._build_bias(input_dim, out)
        elif self.full:
            b = make_weight(Uniform(a=1.0 / math.sqrt(input_dim)), self.seed_key_, "bias",
                            (out,), fan_in=input_dim, fan_out=out)
            self.bias_ = torch.nn.Parameter(self._new_tensor(b))
        else:
            self.bias_ = torch.nn.Parameter(self._new_tensor(np.zeros(out)))

    def _redraw(self) -> None:
        if not self.full:
            super()._redraw()

    def effective_weight(self) -> Tensor:
        """The dense weight the readout applies, shape (units, F)."""
        if self.full:
            self._require_built()
            return self.W_
        return super().effective_weight()

    def has_scaffold(self) -> bool:
        """A fully trained head (``full=True``) has no scaffold."""
        return not self.full

    def frozen_tensors(self) -> dict[str, Tensor]:
        """The scaffold and seeded bias; a fully trained head has none."""
        if self.full:
            return {"bias_": self.bias_} if self.use_bias == "seeded" and self.built else {}
        return super().frozen_tensors()

    def forward_sequence(self, x: Tensor, state: None, lengths: Tensor | None = None):
        self._require_built()
        if self.full:
            return torch.nn.functional.linear(x, self.W_, self.bias_), None
        return self._linear(x, self.bias_), None
