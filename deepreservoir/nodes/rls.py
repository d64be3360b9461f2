"""Recursive least squares: an online readout that learns at every step."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from deepreservoir.constraints import Interval
from deepreservoir.nodes._online_readout import OnlineReadout

__all__ = ["RLS"]


class RLS(OnlineReadout):
    r"""Linear readout ``y = Wout x + b`` learned online by recursive least squares.

    At every step with a target :math:`y`, for input :math:`x` (F,), with
    forgetting factor :math:`\lambda` and :math:`P_0 = I/\alpha`, :math:`S_0 = 0`:

    .. math::

        P_t &= \frac{1}{\lambda}\Big(P_{t-1}
               - \frac{P_{t-1}x\,(P_{t-1}x)^\top}{\lambda + x^\top P_{t-1}x}\Big),\qquad
        S_t = \lambda S_{t-1} + 1,\\
        e_t &= W_{t-1}x + b_{t-1} - y,\\
        W_t &= W_{t-1} - e_t\,(P_t x)^\top,\qquad
        b_t = \frac{S_t b_{t-1} - e_t}{S_t}\ \ (\text{if } \texttt{fit\_bias}),

    and the step's output is :math:`W_t x + b_{t-1}`, as in reservoirpy 0.4
    (Sussillo & Abbott 2009; the forgetting form of Waegeman et al. 2012). ``P``
    stays exactly symmetric: its update adds an outer product of one vector with
    itself. Inside a model whose output feeds back (``reservoir << rls``), this
    is FORCE learning.

    Shapes: ``(B, T, F)`` → ``(B, T, O)``. Tensors (persistent buffers, saved with a
    model): ``Wout_`` (L, O, F), ``bias_`` (L, O), ``P_`` (L, F, F), ``count_`` (L,),
    with L the number of independent learners (see
    :mod:`deepreservoir.nodes._online_readout`). B series fitted at once are B
    learners, each with its own P: reservoirpy runs them one after another
    through one learner (``fit(..., learners="shared")`` does that here).

    Parameters
    ----------
    alpha : float > 0
        ``P`` starts at ``I / alpha`` (reservoirpy's name and default).
    forgetting : float in (0, 1]
        Forgetting factor λ; below 1 recent steps weigh more.
    Wout, bias, fit_bias, output_dim
        See :class:`~deepreservoir.nodes._online_readout.OnlineReadout`.

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> x = np.random.default_rng(0).normal(size=(500, 3))
    >>> rls = dr.RLS(alpha=1e-6, dtype=dr.float64).fit(x, x @ [[2.0], [-1.0], [0.5]] + 1.0)
    >>> np.round(rls.Wout_[0].numpy(), 2), np.round(rls.bias_[0].numpy(), 2)
    (array([[ 2. , -1. ,  0.5]]), array([1.]))
    """

    _constraints: ClassVar[dict] = {
        "alpha": Interval(float, 0, None, closed="neither"),
        "forgetting": Interval(float, 0, 1, closed="right"),
    }

    def __init__(self, alpha: float = 1e-6, *, forgetting: float = 1.0, Wout: Any = None,
                 bias: Any = None, fit_bias: bool = True, output_dim: int | None = None,
                 input_dim: int | None = None, name: str | None = None,
                 dtype: Any = torch.float32) -> None:
        super().__init__(Wout=Wout, bias=bias, fit_bias=fit_bias, output_dim=output_dim,
                         input_dim=input_dim, name=name, dtype=dtype)
        self._validate({"alpha": alpha, "forgetting": forgetting})
        self.alpha = float(alpha)
        self.forgetting = float(forgetting)

    def hyperparameters(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "forgetting": self.forgetting,
                **self._common_hyperparameters()}

    def _learner_extras(self) -> dict[str, Tensor]:
        features = self.input_dim
        P = torch.eye(features, dtype=torch.float64) / self.alpha
        return {"P_": P.to(device=self.device, dtype=self.dtype),
                "count_": torch.zeros((), dtype=self.dtype, device=self.device)}

    def learning_step(self, x: Tensor, y_target: Tensor | None,
                      learner_state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """One RLS update of B learners: ``x`` (B, F), ``y_target`` (B, O) → (B, O)."""
        W, b = learner_state["Wout_"], learner_state["bias_"]
        if y_target is None:
            return self._predict(W, b, x), learner_state
        P, count = learner_state["P_"], learner_state["count_"]
        forgetting = self.forgetting
        Px = torch.bmm(P, x.unsqueeze(-1)).squeeze(-1)
        u = Px / (forgetting + (x * Px).sum(-1, keepdim=True)).sqrt()
        # P - Px·Pxᵀ/gain as one rank-one update u·uᵀ: one new (B, F, F) tensor per
        # step, exactly symmetric (entry (i, j) and (j, i) are the same products)
        spare = learner_state.get("_spare")
        if spare is None or spare.shape != P.shape or spare.dtype != P.dtype:
            spare = torch.empty_like(P)
        # written into the spare buffer, and this P becomes the next step's spare: no
        # (B, F, F) allocation per step (at B = 32, F = 300 each would be 23 MB, fresh
        # pages from the system every step)
        P_next = torch.addcmul(P, u.unsqueeze(-1), u.unsqueeze(-2), value=-1, out=spare)
        gain_x = Px - u * (u * x).sum(-1, keepdim=True)          # P_next·x, without a bmm
        if forgetting != 1.0:
            P_next.div_(forgetting)
            gain_x = gain_x / forgetting
        count_next = forgetting * count + 1
        error = self._predict(W, b, x) - y_target
        W_next = torch.baddbmm(W, error.unsqueeze(-1), gain_x.unsqueeze(-2), alpha=-1)
        b_next = (count_next[:, None] * b - error) / count_next[:, None] if self.fit_bias else b
        output = self._predict(W_next, b, x)
        return output, {"Wout_": W_next, "bias_": b_next, "P_": P_next, "count_": count_next,
                        "_spare": P}
