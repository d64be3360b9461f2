"""Least mean squares: an online readout that takes a gradient step at every step."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from deepreservoir.constraints import Interval
from deepreservoir.nodes._online_readout import OnlineReadout

__all__ = ["LMS"]


class LMS(OnlineReadout):
    r"""Linear readout ``y = Wout x + b`` learned online by least mean squares.

    At every step with a target :math:`y`, for input :math:`x` (F,) and learning
    rate :math:`\eta`:

    .. math::

        e_t = W_{t-1}x + b_{t-1} - y,\qquad
        W_t = W_{t-1} - \eta\, e_t x^\top,\qquad
        b_t = b_{t-1} - \eta\, e_t\ \ (\text{if } \texttt{fit\_bias}),

    and the step's output is :math:`W_t x + b_{t-1}`, as in reservoirpy 0.4.

    Shapes: ``(B, T, F)`` → ``(B, T, O)``; tensors ``Wout_`` (L, O, F) and
    ``bias_`` (L, O) (persistent buffers), with L the number of independent
    learners (see :mod:`deepreservoir.nodes._online_readout`).

    Parameters
    ----------
    learning_rate : float > 0
        η (reservoirpy's name and default). reservoirpy also takes an iterable of
        rates; here it is one number.
    Wout, bias, fit_bias, output_dim
        See :class:`~deepreservoir.nodes._online_readout.OnlineReadout`.

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> x = np.random.default_rng(0).normal(size=(2000, 3))
    >>> lms = dr.LMS(learning_rate=0.05, dtype=dr.float64).fit(x, x @ [[2.0], [-1.0], [0.5]])
    >>> np.round(lms.Wout_[0].numpy(), 3)
    array([[ 2. , -1. ,  0.5]])
    """

    _constraints: ClassVar[dict] = {
        "learning_rate": Interval(float, 0, None, closed="neither"),
    }

    def __init__(self, learning_rate: float = 1e-6, *, Wout: Any = None, bias: Any = None,
                 fit_bias: bool = True, output_dim: int | None = None,
                 input_dim: int | None = None, name: str | None = None,
                 dtype: Any = torch.float32) -> None:
        super().__init__(Wout=Wout, bias=bias, fit_bias=fit_bias, output_dim=output_dim,
                         input_dim=input_dim, name=name, dtype=dtype)
        self._validate({"learning_rate": learning_rate})
        self.learning_rate = float(learning_rate)

    def hyperparameters(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, **self._common_hyperparameters()}

    def learning_step(self, x: Tensor, y_target: Tensor | None,
                      learner_state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """One LMS update of B learners: ``x`` (B, F), ``y_target`` (B, O) → (B, O)."""
        W, b = learner_state["Wout_"], learner_state["bias_"]
        if y_target is None:
            return self._predict(W, b, x), learner_state
        error = self._predict(W, b, x) - y_target
        W_next = W - self.learning_rate * error.unsqueeze(-1) * x.unsqueeze(1)
        b_next = b - self.learning_rate * error if self.fit_bias else b
        return self._predict(W_next, b, x), {"Wout_": W_next, "bias_": b_next}
