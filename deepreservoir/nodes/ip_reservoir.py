"""Intrinsic plasticity: a leaky reservoir whose units adapt their gain and bias without targets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import Tensor

from deepreservoir import functional as F
from deepreservoir.constraints import Interval, validate_params
from deepreservoir.errors import DataError, ParameterError, TrainingError, format_value
from deepreservoir.kinds import LayerView, Unsupervised
from deepreservoir.nodes import _reservoir_specs as S
from deepreservoir.nodes.reservoir import Reservoir

__all__ = ["IPReservoir", "ip_gradients", "ip_step", "run_ip"]

IP_ACTIVATIONS = ("tanh", "sigmoid")


@contextmanager
def errors_named_for(owner: str) -> Iterator[None]:
    """Re-raise the :class:`ParameterError` of :class:`Reservoir`'s helpers under ``owner``."""
    try:
        yield
    except ParameterError as error:
        raise ParameterError(str(error).replace("of Reservoir", f"of {owner}")) from None


def _full_rate(lr: float | Tensor) -> bool:
    return not isinstance(lr, Tensor) and lr == 1.0


# ----------------------------------------------------------------- functions
def ip_step(state: Tensor, drive: Tensor, W: Tensor, lr: float | Tensor, gain: Tensor,
            offset: Tensor, activation: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    r"""One step of an intrinsic-plasticity reservoir.

    .. math::

        r[t] = (1 - \mathrm{lr}) \odot r[t-1] + \mathrm{lr} \odot (W x[t-1] + d[t]),
        \qquad x[t] = f(a \odot r[t] + b)

    Parameters
    ----------
    state : Tensor, shape (B, 2N)
        ``[r, x]``: the leaky-integrated pre-activation and the output.
    drive : Tensor, shape (B, N)
        ``d[t] = Win·u[t] + bias``.
    W : Tensor, shape (N, N), strided or sparse CSR
    lr : float or Tensor (N,)
    gain, offset : Tensor, shape (N,)
        The per-unit gain ``a`` and bias ``b`` that intrinsic plasticity adapts.
    activation : callable

    Returns
    -------
    out : Tensor, shape (B, N)
    state : Tensor, shape (B, 2N)
    """
    n = gain.shape[0]
    internal, out = state[:, :n], state[:, n:]
    pre = F.recurrent_matmul(out, W) + drive
    internal = pre if _full_rate(lr) else (1.0 - lr) * internal + lr * pre
    out = activation(gain * internal + offset)
    return out, torch.cat([internal, out], dim=1)


def run_ip(state: Tensor, drive: Tensor, W: Tensor, lr: float | Tensor, gain: Tensor,
           offset: Tensor, activation: Callable[[Tensor], Tensor],
           lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Iterate :func:`ip_step` over ``drive`` (B, T, N); series ``b`` stops after ``lengths[b]``.

    Returns
    -------
    outputs : Tensor, shape (B, T, N)
    state : Tensor, shape (B, 2N)
        After each series' last valid step.
    """
    steps = drive.shape[1]
    valid = None
    if lengths is not None:
        time = torch.arange(steps, device=drive.device)
        valid = (time[None, :] < lengths.to(drive.device)[:, None]).unsqueeze(-1)
    outputs = []
    n = gain.shape[0]
    for t in range(steps):
        _, new_state = ip_step(state, drive[:, t], W, lr, gain, offset, activation)
        state = new_state if valid is None else torch.where(valid[:, t], new_state, state)
        outputs.append(state[:, n:])
    if not outputs:
        return drive.new_zeros(drive.shape), state
    return torch.stack(outputs, dim=1), state


def ip_gradients(activation: str, internal: Tensor, out: Tensor, gain: Tensor, mu: float,
                 sigma: float) -> tuple[Tensor, Tensor]:
    r"""Directions of the gain and bias updates that pull the output toward its target law.

    They descend the Kullback-Leibler divergence between the output distribution
    and the target (Triesch 2005; Schrauwen et al. 2008), for pre-activation
    ``r`` (``internal``), output ``y`` and gain ``a``:

    * ``"tanh"``, Gaussian target N(μ, σ²):
      :math:`\delta b = \mu/\sigma^2 - (y/\sigma^2)(2\sigma^2 + 1 - y^2 + \mu y)`;
    * ``"sigmoid"``, exponential target of mean μ:
      :math:`\delta b = 1 - (2 + 1/\mu) y + y^2/\mu`;

    and in both cases :math:`\delta a = 1/a + \delta b \, r`. The update is
    ``a += η·δa``, ``b += η·δb``.

    Returns
    -------
    d_gain, d_offset : Tensor, shape of ``out``
    """
    if activation == "tanh":
        var = sigma * sigma
        d_offset = mu / var - (out / var) * (2.0 * var + 1.0 - out * out + mu * out)
    else:
        d_offset = 1.0 - (2.0 + 1.0 / mu) * out + out * out / mu
    return 1.0 / gain + d_offset * internal, d_offset


# ---------------------------------------------------------------------- node
class IPReservoir(Reservoir, Unsupervised):
    r"""A leaky reservoir tuned by intrinsic plasticity (reservoirpy's ``IPReservoir``).

    Each unit ``i`` has a gain ``a_i`` and a bias ``b_i`` on its activation,
    which :meth:`adapt` (called by ``fit`` before anything downstream trains)
    moves so that the unit's output follows a target distribution: N(μ, σ²)
    for ``tanh``, exponential of mean μ for ``sigmoid`` (Triesch 2005;
    Schrauwen et al. 2008). With input ``u[t]`` (F,):

    .. math::

        r[t] &= (1 - \mathrm{lr}) \odot r[t-1]
               + \mathrm{lr} \odot (W x[t-1] + W_{in} u[t] + \mathrm{bias}) \\
        x[t] &= f(a \odot r[t] + b)

    and after every adaptation step, with η = ``learning_rate``,
    ``a += η (1/a + δb ⊙ r[t])``, ``b += η δb`` (δb: :func:`ip_gradients`).

    Shapes: input ``(B, T, F)`` → outputs ``x`` ``(B, T, N)``; the state is
    ``(B, 2N)``, ``[r, x]``; ``a_`` and ``b_`` are (N,) persistent buffers
    (saved with the model; 1 and 0 before adaptation, when the node already
    runs as reservoirpy's does).

    **Adaptation** (:meth:`adapt`) follows reservoirpy 0.4 exactly: ``epochs``
    passes over the data; in each pass the series are processed one after
    another with *one* shared (a, b), from the zero state at the first step of
    the first pass, the state carrying on from series to series and from pass
    to pass; the first ``warmup`` steps of every series are skipped (not run at
    all); a and b are updated after every step. It is sequential by nature: a
    batch is not learned in parallel. It runs in float64 whatever the node's dtype.

    W, Win, bias, ``units``, ``sr``, ``scaling``, ``input_scaling``,
    ``bias_scaling``, the connectivities and their seeded families are those of
    :class:`~deepreservoir.Reservoir` (an explicit array is used as is).
    The first seven parameters may be given positionally in reservoirpy's order,
    ``IPReservoir(units, sr, lr, mu, sigma, learning_rate, epochs)`` (note: sr
    before lr, unlike ``Reservoir``).

    Parameters
    ----------
    units : int, optional
        Number of neurons N (default 100, or ``W.shape[0]``).
    sr : float or None
        Scale target of W (default 0.9; reservoirpy: ``None``).
    lr : float in (0, 1] or array (N,)
        Leak rate of the pre-activation ``r``.
    mu : float
        Mean of the target distribution (> 0 for ``"sigmoid"``).
    sigma : float > 0
        Standard deviation of the Gaussian target (``"tanh"`` only).
    learning_rate : float > 0
        η, the step of the gain and bias updates.
    epochs : int >= 1
        Passes over the data in :meth:`adapt`.
    activation : {"tanh", "sigmoid"}
        The activations intrinsic plasticity has a rule for.
    scaling, input_scaling, bias_scaling, rc_connectivity, input_connectivity, W, Win, bias,
    seed, name, input_dim, dtype
        As in :class:`~deepreservoir.Reservoir` (no LoRA adapter: ``r`` is 0).

    Examples
    --------
    >>> import numpy as np
    >>> from deepreservoir.nodes.ip_reservoir import IPReservoir
    >>> node = IPReservoir(50, sigma=0.2, learning_rate=1e-3, epochs=2, seed=1)
    >>> x = np.sin(np.linspace(0, 20, 300))[:, None]
    >>> node.run(x).shape
    (300, 50)
    >>> node.adapt(torch.as_tensor(x[None]), None, warmup=50)
    >>> node.is_adapted(), bool((node.a_ != 1).all())
    (True, True)
    """

    _constraints: ClassVar[dict] = {
        **{k: v for k, v in Reservoir._constraints.items() if k not in ("r", "alpha", "rslora")},
        "mu": Interval(float, None, None),
        "sigma": Interval(float, 0, None, closed="neither"),
        "learning_rate": Interval(float, 0, None, closed="neither"),
        "epochs": Interval(int, 1, None),
    }

    def __init__(self, units: int | None = None, sr: float | None = 0.9, lr: Any = 1.0,
                 mu: float = 0.0, sigma: float = 1.0, learning_rate: float = 5e-4,
                 epochs: int = 1, *, scaling: str | None = "spectral_radius",
                 input_scaling: Any = 1.0, bias_scaling: float = 0.0,
                 rc_connectivity: float = 0.1, input_connectivity: float = 0.1,
                 W: Any = "normal", Win: Any = None, bias: Any = None,
                 activation: Any = "tanh", seed: int | None = None, name: str | None = None,
                 input_dim: int | None = None, dtype: Any = torch.float32) -> None:
        owner = type(self).__name__
        with errors_named_for(owner):
            activation = S.activation_name(activation)
        validate_params(owner, {"mu": mu, "sigma": sigma, "learning_rate": learning_rate,
                                "epochs": epochs}, self._constraints)
        if not isinstance(activation, str) or activation not in IP_ACTIVATIONS:
            raise ParameterError(
                f"The 'activation' parameter of {owner} must be 'tanh' or 'sigmoid', the "
                f"activations intrinsic plasticity has a learning rule for (a Gaussian target "
                f"for tanh, an exponential one for sigmoid). Got {format_value(activation)}.")
        if activation == "sigmoid" and mu <= 0:
            raise ParameterError(
                f"The 'mu' parameter of {owner} must be > 0 with activation='sigmoid': it is "
                f"the mean of the exponential target distribution. Got {format_value(mu)}.")
        with errors_named_for(owner):
            super().__init__(units, lr, sr, scaling=scaling, input_scaling=input_scaling,
                             bias_scaling=bias_scaling, rc_connectivity=rc_connectivity,
                             input_connectivity=input_connectivity, W=W, Win=Win, bias=bias,
                             activation=activation, seed=seed, name=name, input_dim=input_dim,
                             dtype=dtype)
        self.mu = float(mu)
        self.sigma = float(sigma)
        self.learning_rate = float(learning_rate)
        self.epochs = int(epochs)
        self.adapted = False

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "mu": self.mu, "sigma": self.sigma,
                "learning_rate": self.learning_rate, "epochs": self.epochs}

    def _build(self, input_dim: int, target_dim: int | None) -> None:
        with errors_named_for(type(self).__name__):
            super()._build(input_dim, target_dim)
        n = self.units
        self.register_buffer("a_", torch.ones(n, dtype=self.dtype, device=self.device))
        self.register_buffer("b_", torch.zeros(n, dtype=self.dtype, device=self.device))

    # ------------------------------------------------------------------- kinds
    def is_adapted(self) -> bool:
        """Whether :meth:`adapt` has run (or ``a_`` and ``b_`` were loaded)."""
        return self.adapted

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "a_" in state_dict:
            self.adapted = True

    def layer_view(self) -> LayerView:
        """W, Win and bias with the gain and bias folded in: ``diag(a)·W``, ``diag(a)·Win``,
        ``a ⊙ bias + b``. Exact for ``lr = 1``; with leak, an approximation (the
        leak acts on the pre-activation ``r``, not on the output)."""
        self._require_built()
        gain = self.a_.detach()
        return LayerView(weight=gain[:, None] * self.W_.detach(),
                         Win=gain[:, None] * self.Win_.detach(),
                         bias=gain * self.bias_.detach() + self.b_.detach(),
                         lr=self.leak_rate(), activation=self.activation, recurrent=True)

    # ---------------------------------------------------------------- execution
    def initial_state(self, batch_size: int) -> Tensor:
        """Zeros of shape ``(batch_size, 2N)``: ``[r, x]``."""
        return torch.zeros(batch_size, 2 * self.units, dtype=self.dtype, device=self.device)

    def forward_sequence(self, x: Tensor, state: Tensor | None,
                         lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._require_built()
        if state is None:
            state = self.initial_state(x.shape[0])
        drive = F.reservoir_drive(x, self.Win_, self.bias_)
        W = self.W_ if F._needs_grad(x, state) else self.recurrent_operator(x.shape[0])
        return run_ip(state, drive, W, self.leak_rate(), self.a_, self.b_,
                      self._activation_fn(), lengths)

    def forward_step(self, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        self._require_built()
        if state is None:
            state = self.initial_state(x.shape[0])
        W = self.W_ if F._needs_grad(x, state) else self.recurrent_operator(x.shape[0])
        return ip_step(state, F.reservoir_drive(x, self.Win_, self.bias_), W, self.leak_rate(),
                       self.a_, self.b_, self._activation_fn())

    # ---------------------------------------------------------------- adaptation
    def _check_adapt_input(self, x: Any, lengths: Any, warmup: Any) -> list[int]:
        owner = f"{type(self).__name__} '{self.name}'"
        if not isinstance(x, Tensor) or x.ndim != 3 or not x.is_floating_point():
            raise DataError(f"{owner} adapts to a float tensor of shape (B, T, F). "
                            f"Got {format_value(x)}.")
        if x.shape[-1] != self.input_dim:
            raise DataError(f"{owner} expects {self.input_dim} input features. Got "
                            f"{x.shape[-1]} (x of shape {tuple(x.shape)}).")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ParameterError(f"The 'warmup' parameter of {type(self).__name__}.adapt must "
                                 f"be an int >= 0. Got {format_value(warmup)}.")
        batch, steps = int(x.shape[0]), int(x.shape[1])
        if lengths is None:
            sizes = [steps] * batch
        else:
            sizes = [int(n) for n in torch.as_tensor(lengths).reshape(-1).tolist()]
            if len(sizes) != batch or any(n < 0 or n > steps for n in sizes):
                raise DataError(f"The 'lengths' of {owner}.adapt must be {batch} ints in "
                                f"[0, {steps}]. Got {sizes}.")
        for b, n in enumerate(sizes):
            if not bool(torch.isfinite(x[b, :n]).all()):
                raise DataError(f"{owner} cannot adapt to non-finite data: series {b} holds "
                                f"NaN or Inf.")
        if sum(max(n - warmup, 0) for n in sizes) == 0:
            raise DataError(f"The 'warmup' parameter ({warmup}) leaves {owner} no step to adapt "
                            f"on: the series have {sorted(set(sizes))} steps.")
        return sizes

    def adapt(self, x: Tensor, lengths: Tensor | None = None, warmup: int = 0) -> None:
        """Adapt the gains ``a_`` and biases ``b_`` to input sequences (see the class notes).

        Parameters
        ----------
        x : Tensor, shape (B, T, F)
            The series, padded after ``lengths[b]`` steps.
        lengths : Tensor of int (B,), optional
        warmup : int
            Steps at the start of every series that are neither run nor learned from.

        Raises
        ------
        DataError
            Wrong shape or features, non-finite data, or no step left after warmup.
        TrainingError
            The gains or biases became NaN or Inf (``learning_rate`` too large);
            ``a_`` and ``b_`` are then left as they were.
        """
        self._require_built()
        sizes = self._check_adapt_input(x, lengths, warmup)
        dt = torch.float64
        with torch.no_grad():
            drive = F.reservoir_drive(x.to(device=self.device, dtype=dt), self.Win_.to(dt),
                                      self.bias_.to(dt))
            W = self.recurrent_operator(1) if self.dtype == dt else self.W_.to(dt)
            lr = self.leak_rate()
            lr = lr.to(dt) if isinstance(lr, Tensor) else lr
            gain, offset = self.a_.to(dt).clone(), self.b_.to(dt).clone()
            activation, rule = self._activation_fn(), self.activation
            eta = self.learning_rate
            state = torch.zeros(1, 2 * self.units, dtype=dt, device=self.device)
            n = self.units
            for _ in range(self.epochs):
                for b, size in enumerate(sizes):
                    for t in range(warmup, size):
                        out, state = ip_step(state, drive[b:b + 1, t], W, lr, gain, offset,
                                             activation)
                        d_gain, d_offset = ip_gradients(rule, state[0, :n], out[0], gain,
                                                        self.mu, self.sigma)
                        gain += eta * d_gain
                        offset += eta * d_offset
            if not bool(torch.isfinite(gain).all() and torch.isfinite(offset).all()):
                raise TrainingError(
                    f"Intrinsic plasticity of {type(self).__name__} '{self.name}' diverged: the "
                    f"gains or biases became NaN or Inf. Lower learning_rate "
                    f"(now {self.learning_rate:g}).")
            self.a_.copy_(gain.to(self.dtype))
            self.b_.copy_(offset.to(self.dtype))
        self.adapted = True
