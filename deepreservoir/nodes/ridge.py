"""Ridge regression readout, trained in closed form from streamed statistics."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from deepreservoir import functional as F
from deepreservoir.constraints import AnyOf, Interval, OneOf
from deepreservoir.errors import NotFittedError
from deepreservoir.nodes.base import Node

__all__ = ["Ridge"]


class Ridge(Node):
    r"""Linear readout ``y = W x + b`` fitted by ridge regression.

    ``fit`` streams over the data once, accumulating in float64

    .. math::

        X^\top X,\quad X^\top Y,\quad \textstyle\sum x,\quad \sum y,\quad n

    and then solves :math:`W^\top = (C + \lambda I)^{-1} D` with the centred
    :math:`C = X^\top X - n\bar x\bar x^\top`, :math:`D = X^\top Y - n\bar x\bar y^\top`,
    and :math:`b = \bar y - W\bar x`: the bias is not penalised (as in reservoirpy).

    Shapes: ``(B, T, F)`` → ``(B, T, O)``; ``Wout_`` (O, F), ``bias_`` (O,).
    ``O`` is inferred from the targets. The fitted tensors are persistent
    buffers: saved with the model, but not returned by ``parameters()``.

    Parameters
    ----------
    ridge : float >= 0
        L2 penalty λ.
    fit_bias : bool
        Whether to fit an intercept.
    name : str, optional
    input_dim : int, optional

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> x = np.linspace(0, 1, 50)[:, None]
    >>> readout = dr.Ridge(ridge=0.0, dtype=dr.float64).fit(x, 3 * x + 1)
    >>> np.round(readout.run(np.array([[2.0]])), 6)
    array([[7.]])
    """

    closed_form: ClassVar[bool] = True
    _constraints: ClassVar[dict] = {
        "ridge": Interval(float, 0, None),
        "fit_bias": OneOf((True, False)),
        "units": AnyOf((None, Interval(int, 1, None))),
    }

    def __init__(self, ridge: float = 0.0, fit_bias: bool = True, *, units: int | None = None,
                 name: str | None = None, input_dim: int | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__(input_dim=input_dim, name=name, dtype=dtype)
        self._validate({"ridge": ridge, "fit_bias": fit_bias, "units": units})
        self.ridge = float(ridge)
        self.fit_bias = bool(fit_bias)
        self.units = units
        self.output_dim = units
        self.fitted = False
        self._stats: dict | None = None

    def hyperparameters(self) -> dict:
        return {"ridge": self.ridge, "fit_bias": self.fit_bias, "units": self.units}

    def infer_output_dim(self, input_dim: int, target_dim: int | None = None) -> int:
        if self.output_dim is not None:
            return self.output_dim
        if target_dim is None:
            raise NotFittedError(
                f"Ridge '{self.name}' does not know its output size: fit it on targets first "
                f"or give units=."
            )
        return int(target_dim)

    def _build(self, input_dim: int, target_dim: int | None) -> None:
        out = self.output_dim
        self.register_buffer("Wout_", torch.zeros(out, input_dim, dtype=self.dtype,
                                                  device=self.device))
        self.register_buffer("bias_", torch.zeros(out, dtype=self.dtype, device=self.device))

    # ------------------------------------------------------------ closed form
    def begin_fit(self) -> None:
        """Start a new accumulation of sufficient statistics."""
        self._require_built()
        f, o = self.input_dim, self.output_dim
        zeros = dict(dtype=torch.float64, device=self.device)
        self._stats = {"xtx": torch.zeros(f, f, **zeros), "xty": torch.zeros(f, o, **zeros),
                       "x_sum": torch.zeros(f, **zeros), "y_sum": torch.zeros(o, **zeros),
                       "count": 0}

    def accumulate(self, x: Tensor, y: Tensor) -> None:
        """Add rows ``x`` (n, F) with targets ``y`` (n, O) to the statistics."""
        if self._stats is None:
            self.begin_fit()
        x = x.to(torch.float64)
        y = y.to(torch.float64)
        stats = self._stats
        stats["xtx"] += x.T @ x
        stats["xty"] += x.T @ y
        stats["x_sum"] += x.sum(0)
        stats["y_sum"] += y.sum(0)
        stats["count"] += int(x.shape[0])

    def finish_fit(self) -> None:
        """Solve for ``Wout_`` and ``bias_`` from the accumulated statistics."""
        stats = self._stats
        if stats is None or stats["count"] == 0:
            raise NotFittedError(
                f"Ridge '{self.name}' cannot be fitted: it received no training steps "
                f"(check warmup and data lengths)."
            )
        weights, bias = F.ridge_solve(stats["xtx"], stats["xty"], stats["x_sum"],
                                      stats["y_sum"], stats["count"], self.ridge, self.fit_bias)
        with torch.no_grad():
            self.Wout_.copy_(weights.to(self.dtype))
            self.bias_.copy_(bias.to(self.dtype))
        self._stats = None
        self.fitted = True

    # -------------------------------------------------------------- execution
    def forward_sequence(self, x: Tensor, state: None, lengths: Tensor | None = None):
        if not self.fitted:
            raise NotFittedError(
                f"Ridge '{self.name}' is not fitted yet: call fit(X, Y) before run()."
            )
        return torch.nn.functional.linear(x, self.Wout_, self.bias_), None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "Wout_" in state_dict:
            self.fitted = True
