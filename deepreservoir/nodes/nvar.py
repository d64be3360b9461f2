"""NVAR: the nonlinear vector autoregression of next-generation reservoir computing."""

from __future__ import annotations

import itertools
from math import comb
from typing import Any, ClassVar

import torch
from torch import Tensor

from deepreservoir.constraints import Interval
from deepreservoir.kinds import Stateful
from deepreservoir.nodes.base import Node

__all__ = ["NVAR"]


class NVAR(Node, Stateful):
    r"""Nonlinear vector autoregression (next-generation reservoir computing).

    The features of Gauthier et al. (2021), as reservoirpy 0.4's ``NVAR`` builds
    them, with a batch axis. For input ``x[t]`` of shape (F,), delay ``k``,
    strides ``s`` and order ``n``, the linear part stacks the current input and
    ``k - 1`` delayed ones, newest first:

    .. math::

        o_{lin}[t] = x[t] \oplus x[t - s] \oplus x[t - 2s] \oplus \dots
        \oplus x[t - (k - 1)s] \quad \in \mathbb{R}^{kF}

    (``x[t - j]`` is zero before the first step), and the nonlinear part is
    every unique monomial of degree exactly ``n`` of those ``kF`` features,

    .. math::

        o_{nonlin}[t] = \Bigl(\prod_{m=1}^{n} o_{lin}[t]_{i_m}\Bigr)_{i_1 \le i_2
        \le \dots \le i_n}, \qquad y[t] = o_{lin}[t] \oplus o_{nonlin}[t],

    with the index tuples in the order of
    ``itertools.combinations_with_replacement(range(k*F), n)``. No constant
    feature is added (``Ridge(fit_bias=True)`` supplies it).

    Shapes: input ``(B, T, F)`` → output ``(B, T, kF + C(kF + n - 1, n))``.
    The state is the store of the last ``k·s`` inputs, newest first, flattened:
    ``(B, k·s·F)`` (reservoirpy's ``store`` of shape ``(k·s, F)``, raveled).
    It is kept between calls to ``run`` like a reservoir's state.

    The first three parameters may be given positionally in reservoirpy's order,
    ``NVAR(delay, order, strides)``.

    Parameters
    ----------
    delay : int >= 1
        Number ``k`` of inputs in the linear part (the current one included).
        Default 2 (reservoirpy has no default).
    order : int >= 1
        Degree ``n`` of the monomials. Default 2 (reservoirpy has no default).
    strides : int >= 1
        Steps ``s`` between two inputs of the linear part. Default 1.
    input_dim : int, optional
    name : str, optional
    dtype : torch.dtype
        Default ``torch.float32``.

    References
    ----------
    Gauthier, D. J., Bollt, E., Griffith, A., & Barbosa, W. A. S. (2021). Next
    generation reservoir computing. Nature Communications, 12, 5564.

    Examples
    --------
    >>> import numpy as np
    >>> from deepreservoir.nodes.nvar import NVAR
    >>> nvar = NVAR(2, 2)
    >>> nvar.run(np.ones((5, 3))).shape  # 2*3 linear + C(7, 2) = 21 quadratic
    (5, 27)
    >>> NVAR(2, 2, input_dim=3).output_dim
    27
    """

    _constraints: ClassVar[dict] = {
        "delay": Interval(int, 1, None),
        "order": Interval(int, 1, None),
        "strides": Interval(int, 1, None),
    }

    def __init__(self, delay: int = 2, order: int = 2, strides: int = 1, *,
                 input_dim: int | None = None, name: str | None = None,
                 dtype: Any = torch.float32) -> None:
        super().__init__(input_dim=input_dim, name=name, dtype=dtype)
        self._validate({"delay": delay, "order": order, "strides": strides})
        self.delay = int(delay)
        self.order = int(order)
        self.strides = int(strides)
        if input_dim is not None:
            self.output_dim = self.infer_output_dim(int(input_dim))

    def hyperparameters(self) -> dict[str, Any]:
        return {"delay": self.delay, "order": self.order, "strides": self.strides}

    # -------------------------------------------------------------------- build
    @property
    def window(self) -> int:
        """Number of past inputs the store holds, ``delay · strides``."""
        return self.delay * self.strides

    def linear_dim(self, input_dim: int) -> int:
        """Size ``k·F`` of the linear part for ``input_dim`` features."""
        return self.delay * input_dim

    def infer_output_dim(self, input_dim: int, target_dim: int | None = None) -> int:
        linear = self.linear_dim(input_dim)
        return linear + comb(linear + self.order - 1, self.order)

    def _build(self, input_dim: int, target_dim: int | None) -> None:
        linear = self.linear_dim(input_dim)
        combos = list(itertools.combinations_with_replacement(range(linear), self.order))
        index = torch.tensor(combos, dtype=torch.long, device=self.device)
        # One column per factor: monomial m is the product of lin[index[m, j]] over j.
        self.register_buffer("monomials_", index.reshape(len(combos), self.order),
                             persistent=False)

    # ---------------------------------------------------------------- execution
    def initial_state(self, batch_size: int) -> Tensor:
        return torch.zeros(batch_size, self.window * self.input_dim, dtype=self.dtype,
                           device=self.device)

    def step_cost(self) -> int:
        """Multiplications of one step for one series: ``(order - 1)`` per monomial."""
        self._require_built()
        return int(self.monomials_.shape[0] * max(self.order - 1, 1))

    def _features(self, linear: Tensor) -> Tensor:
        """``linear`` (..., kF) followed by its monomials (..., M): (..., out)."""
        index = self.monomials_
        product = linear[..., index[:, 0]]
        for j in range(1, self.order):  # left to right, as numpy's prod reduces
            product = product * linear[..., index[:, j]]
        return torch.cat([linear, product], dim=-1)

    def _store(self, state: Tensor | None, batch_size: int) -> Tensor:
        if state is None:
            state = self.initial_state(batch_size)
        return state.reshape(batch_size, self.window, self.input_dim)

    def forward_sequence(self, x: Tensor, state: Tensor | None,
                         lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Features of a batch ``x`` (B, T, F) from ``state`` (B, k·s·F).

        Returns ``y`` (B, T, out) and the store after each series' last valid
        step (``lengths`` (B,) for a ragged batch; a length of 0 keeps the state).
        """
        self._require_built()
        batch, steps, features = x.shape
        window = self.window
        store = self._store(state, batch)
        # Oldest first: the past window, then the new inputs; x[t] sits at window + t.
        history = torch.cat([store.flip(1).to(x.dtype), x], dim=1)
        lags = [history[:, window - j * self.strides: window - j * self.strides + steps]
                for j in range(self.delay)]
        linear = torch.stack(lags, dim=2).reshape(batch, steps, self.delay * features)
        y = self._features(linear)
        if lengths is None:
            last = history[:, steps:]
        else:
            rows = lengths.to(device=x.device, dtype=torch.long)[:, None] + torch.arange(
                window, device=x.device)[None, :]
            last = history[torch.arange(batch, device=x.device)[:, None], rows]
        return y, last.flip(1).reshape(batch, window * features)

    def forward_step(self, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        """One step: ``x`` (B, F) and the store (B, k·s·F) to ``(y (B, out), store)``."""
        self._require_built()
        batch, features = x.shape
        store = self._store(state, batch).to(x.dtype)
        store = torch.cat([x.unsqueeze(1), store[:, :-1]], dim=1)
        linear = store[:, ::self.strides].reshape(batch, self.delay * features)
        return self._features(linear), store.reshape(batch, self.window * features)
