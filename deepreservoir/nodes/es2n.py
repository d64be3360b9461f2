"""The edge-of-stability echo state network: a reservoir mixed with an orthogonal map."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from deepreservoir import functional as F
from deepreservoir.constraints import Interval, Predicate, is_array_like
from deepreservoir.errors import ParameterError, format_value
from deepreservoir.families import get_family, make_weight
from deepreservoir.kinds import LayerView
from deepreservoir.nodes import _reservoir_specs as S
from deepreservoir.nodes.ip_reservoir import errors_named_for
from deepreservoir.nodes.reservoir import Reservoir

__all__ = ["ES2N", "es2n_mixing", "es2n_step", "run_es2n"]


# ----------------------------------------------------------------- functions
def es2n_mixing(O: Tensor, proximity: float | Tensor) -> Tensor:
    """``M = O·diag(1 − β)``, the linear part of the ES2N update (N, N).

    For a per-unit β this scales O's *columns*, as reservoirpy 0.4 computes
    ``(1 - β) * O @ x`` (numpy evaluates ``((1 - β) * O) @ x``).
    """
    return O * (1.0 - proximity)


def es2n_step(state: Tensor, drive: Tensor, W: Tensor, M: Tensor, proximity: float | Tensor,
              activation: Callable[[Tensor], Tensor]) -> Tensor:
    r"""One ES2N step: :math:`x[t] = M x[t-1] + \beta \odot f(W x[t-1] + d[t])`.

    Parameters
    ----------
    state : Tensor, shape (B, N)
    drive : Tensor, shape (B, N)
        ``d[t] = Win·u[t] + bias``.
    W : Tensor, shape (N, N), strided or sparse CSR
    M : Tensor, shape (N, N)
        :func:`es2n_mixing` of O and β.
    proximity : float or Tensor (N,)
        β.
    activation : callable

    Returns
    -------
    Tensor, shape (B, N)
    """
    return state @ M.T + proximity * activation(F.recurrent_matmul(state, W) + drive)


def run_es2n(state: Tensor, drive: Tensor, W: Tensor, M: Tensor, proximity: float | Tensor,
             activation: Callable[[Tensor], Tensor],
             lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Iterate :func:`es2n_step` over ``drive`` (B, T, N); series ``b`` stops after ``lengths[b]``.

    Returns
    -------
    states : Tensor, shape (B, T, N)
    final : Tensor, shape (B, N)
    """
    steps = drive.shape[1]
    valid = None
    if lengths is not None:
        time = torch.arange(steps, device=drive.device)
        valid = (time[None, :] < lengths.to(drive.device)[:, None]).unsqueeze(-1)
    outputs = []
    for t in range(steps):
        new_state = es2n_step(state, drive[:, t], W, M, proximity, activation)
        state = new_state if valid is None else torch.where(valid[:, t], new_state, state)
        outputs.append(state)
    if not outputs:
        return drive.new_zeros(drive.shape), state
    return torch.stack(outputs, dim=1), state


def _proximities(value: Any, units: int) -> float | np.ndarray:
    """β as a float, or a float64 array (units,) of per-unit values, all in (0, 1]."""
    if is_array_like(value) or isinstance(value, (list, tuple)):
        if isinstance(value, Tensor):
            value = value.detach().cpu().to(torch.float64).numpy()
        try:
            rates = np.array(value, dtype=np.float64)
        except (TypeError, ValueError):
            rates = None
        if rates is not None and rates.ndim == 0:
            return float(rates)
        if rates is None or rates.shape != (units,) or not np.all(
                np.isfinite(rates) & (rates > 0) & (rates <= 1)):
            raise ParameterError(
                f"The 'proximity' parameter of ES2N must be a float in (0, 1] or an array of "
                f"shape (units,) = ({units},) of per-unit values in (0, 1]. "
                f"Got {format_value(value)}.")
        return rates
    return value  # a number: checked by the constraint table


# ---------------------------------------------------------------------- node
class ES2N(Reservoir):
    r"""Edge of stability echo state network (Ceni & Gallicchio 2024; reservoirpy's ``ES2N``).

    The state mixes an orthogonal map of itself with a reservoir update,
    weighted by the *proximity* β:

    .. math::

        x[t] = O \, ((1 - \beta) \odot x[t-1])
               + \beta \odot f(W x[t-1] + W_{in} u[t] + \mathrm{bias})

    For a scalar β this is :math:`(1-\beta) O x[t-1] + \beta f(\ldots)`. For a
    per-unit β (N,) the factor ``1 − β`` scales O's columns, exactly as
    reservoirpy 0.4 computes it (``(1 - beta) * O @ x``); the nonlinear term is
    scaled per row.

    ``O`` (N, N) is a seeded Haar-orthogonal matrix (the ``"orthogonal"`` family:
    QR of a seeded Gaussian, role ``"O"`` of the node's seed key) or an explicit
    array. W, Win and bias are drawn and scaled as in
    :class:`~deepreservoir.Reservoir` (with the same seed, the same W and Win).

    Shapes: input ``(B, T, F)`` → states ``(B, T, N)``; state ``(B, N)``.
    The first three parameters may be given positionally in reservoirpy's
    order, ``ES2N(units, proximity, sr)``.

    Parameters
    ----------
    units : int, optional
        Number of neurons N (default 100, or ``W.shape[0]``).
    proximity : float in (0, 1], or array (N,)
        β: 1 gives a plain reservoir (lr = 1), small values stay close to the
        orthogonal map. Default 1.0 (reservoirpy's).
    sr : float or None
        Scale target of W (default 1.0, reservoirpy's).
    O : str, Family, dict or array (N, N)
        The orthogonal matrix's family (default ``"orthogonal"``) or the matrix,
        used as is (its orthogonality is not checked).
    scaling, input_scaling, bias_scaling, rc_connectivity, input_connectivity, W, Win, bias,
    activation, seed, name, input_dim, dtype
        As in :class:`~deepreservoir.Reservoir` (no LoRA adapter).

    Examples
    --------
    >>> import numpy as np
    >>> from deepreservoir.nodes.es2n import ES2N
    >>> node = ES2N(50, proximity=0.2, sr=0.8, seed=1)
    >>> node.run(np.sin(np.linspace(0, 6, 100))[:, None]).shape
    (100, 50)
    >>> O = node.O_.double()
    >>> bool(torch.allclose(O @ O.T, torch.eye(50, dtype=torch.float64), atol=1e-6))
    True
    """

    _leak_parameter: ClassVar[str] = "proximity"
    _constraints: ClassVar[dict] = {
        **{k: v for k, v in Reservoir._constraints.items()
           if k not in ("lr", "r", "alpha", "rslora")},
        "proximity": Interval(float, 0, 1, closed="right"),
        "O": Predicate(S.weight_spec, "a family name, a Family, a spec dict or an array"),
    }

    def __init__(self, units: int | None = None, proximity: Any = 1.0, sr: float | None = 1.0,
                 *, scaling: str | None = "spectral_radius", input_scaling: Any = 1.0,
                 bias_scaling: float = 0.0, rc_connectivity: float = 0.1,
                 input_connectivity: float = 0.1, W: Any = "normal", Win: Any = None,
                 O: Any = "orthogonal", bias: Any = None, activation: Any = "tanh",
                 seed: int | None = None, name: str | None = None, input_dim: int | None = None,
                 dtype: Any = torch.float32) -> None:
        owner = type(self).__name__
        with errors_named_for(owner):
            size = S.resolve_units(units, S.dense_explicit(W))
        self._validate({"units": size})
        O = S.dense_explicit(O)
        if callable(O) and not is_array_like(O):
            raise ParameterError(
                f"The 'O' parameter of {owner} must be a family name, a Family, a spec dict or "
                f"an array (N, N). Got the callable {format_value(O)}: pass the matrix it "
                f"returns, or O='orthogonal' (a seeded family).")
        beta = _proximities(proximity, int(size))
        self._validate({"O": O} if isinstance(beta, np.ndarray) else {"O": O, "proximity": beta})
        if isinstance(O, (str, dict)):
            get_family(O, "O")
        if is_array_like(O):
            with errors_named_for(owner):
                S.check_finite_array("O", O)
        if is_array_like(O) and tuple(np.shape(O)) != (size, size):
            raise ParameterError(
                f"The 'O' parameter of {owner} must have shape ({size}, {size}) for "
                f"units={size}. Got shape {tuple(np.shape(O))}.")
        with errors_named_for(owner):
            super().__init__(units, beta, sr, scaling=scaling, input_scaling=input_scaling,
                             bias_scaling=bias_scaling, rc_connectivity=rc_connectivity,
                             input_connectivity=input_connectivity, W=W, Win=Win, bias=bias,
                             activation=activation, seed=seed, name=name, input_dim=input_dim,
                             dtype=dtype)
        self.O = O

    @property
    def proximity(self) -> float | np.ndarray:
        """β, as given (a float, or the (N,) float64 array of per-unit values)."""
        return self.lr

    def hyperparameters(self) -> dict[str, Any]:
        params = super().hyperparameters()
        params["proximity"] = params.pop("lr")
        params["O"] = S.spec_to_json(self.O)
        return params

    def _build(self, input_dim: int, target_dim: int | None) -> None:
        with errors_named_for(type(self).__name__):
            super()._build(input_dim, target_dim)
        n = self.units
        if is_array_like(self.O):
            O = torch.as_tensor(self.O).detach().cpu().double().numpy()
        else:
            O = make_weight(self.O, self.seed_key_, "O", (n, n), fan_in=n, fan_out=n)
        self.register_buffer("O_", self._new_tensor(O), persistent=False)

    # ------------------------------------------------------------------- kinds
    def frozen_tensors(self) -> dict[str, Tensor]:
        """Those of :class:`~deepreservoir.Reservoir` and the orthogonal ``O_``."""
        return {**super().frozen_tensors(), "O_": self.O_}

    def layer_view(self) -> LayerView:
        """W, Win, bias and β as ``lr``. O is not represented: an analysis that steps or
        differentiates the layer sees a leaky reservoir with ``lr = β`` (the identity in
        place of O). Norm bounds are unchanged (‖O‖₂ = 1); Jacobians and Lyapunov
        exponents are those of that leaky reservoir, not of the ES2N."""
        self._require_built()
        return LayerView(weight=self.W_.detach(), Win=self.Win_.detach(),
                         bias=self.bias_.detach(), lr=self.leak_rate(),
                         activation=self.activation, recurrent=True)

    def step_cost(self) -> int:
        """Those of :class:`~deepreservoir.Reservoir` plus the dense ``N²`` of O."""
        return super().step_cost() + self.units * self.units

    # ---------------------------------------------------------------- execution
    def mixing(self) -> Tensor:
        """``O·diag(1 − β)`` (N, N), in the node's dtype and device."""
        self._require_built()
        return es2n_mixing(self.O_, self.leak_rate())

    def forward_sequence(self, x: Tensor, state: Tensor | None,
                         lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._require_built()
        if state is None:
            state = self.initial_state(x.shape[0])
        drive = F.reservoir_drive(x, self.Win_, self.bias_)
        W = self.W_ if F._needs_grad(x, state) else self.recurrent_operator(x.shape[0])
        return run_es2n(state, drive, W, self.mixing(), self.leak_rate(),
                        self._activation_fn(), lengths)

    def forward_step(self, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        self._require_built()
        if state is None:
            state = self.initial_state(x.shape[0])
        W = self.W_ if F._needs_grad(x, state) else self.recurrent_operator(x.shape[0])
        new_state = es2n_step(state, F.reservoir_drive(x, self.Win_, self.bias_), W,
                              self.mixing(), self.leak_rate(), self._activation_fn())
        return new_state, new_state
