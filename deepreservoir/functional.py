"""The math of every node, as plain functions of tensors.

Nodes and :mod:`deepreservoir.analysis` both call these, so there is one copy
of each update rule. A step takes the state in and returns the new state; no
function here mutates its arguments.

Layout: a state batch is ``(B, N)``, a sequence batch ``(B, T, F)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from deepreservoir import step_kernels
from deepreservoir.constraints import all_finite
from deepreservoir.errors import DataError, ParameterError
from deepreservoir.lora import lora_convention, lora_scale

__all__ = [
    "ACTIVATIONS",
    "activation_derivative",
    "csr_operator",
    "first_nonfinite",
    "get_activation",
    "gram",
    "leaky_update",
    "lora_convention",
    "lora_delta",
    "lora_linear",
    "lora_recurrent_matmul",
    "lora_scale",
    "recurrent_matmul",
    "reservoir_drive",
    "reservoir_jacobian",
    "reservoir_step",
    "ridge_solve",
    "run_lora_reservoir",
    "run_reservoir",
    "seeded_dropout",
]


_identity = step_kernels.identity


def _softmax(x: Tensor) -> Tensor:
    return torch.softmax(x, dim=-1)


#: Activation functions by name.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": _identity,
    "softmax": _softmax,
}


def get_activation(name: str, parameter: str = "activation") -> Callable[[Tensor], Tensor]:
    """Look up an activation function by name.

    Raises
    ------
    ParameterError
        If ``name`` is not one of :data:`ACTIVATIONS`.
    """
    if name not in ACTIVATIONS:
        raise ParameterError(
            f"The '{parameter}' parameter must be one of {', '.join(sorted(ACTIVATIONS))}. "
            f"Got {name!r}."
        )
    return ACTIVATIONS[name]


def activation_derivative(name: str, preactivation: Tensor) -> Tensor:
    """Elementwise derivative f'(pre) of an elementwise activation.

    Parameters
    ----------
    name : {"tanh", "relu", "sigmoid", "identity"}
    preactivation : Tensor, any shape

    Returns
    -------
    Tensor, same shape
    """
    if name == "tanh":
        return 1.0 - torch.tanh(preactivation) ** 2
    if name == "relu":
        return (preactivation > 0).to(preactivation.dtype)
    if name == "sigmoid":
        s = torch.sigmoid(preactivation)
        return s * (1.0 - s)
    if name == "identity":
        return torch.ones_like(preactivation)
    raise ParameterError(
        f"The 'activation' parameter must be elementwise (tanh, relu, sigmoid, identity) "
        f"for a Jacobian. Got {name!r}."
    )


def reservoir_drive(inputs: Tensor, Win: Tensor, bias: Tensor | None) -> Tensor:
    """Input part of the pre-activation, for every time step at once.

    Parameters
    ----------
    inputs : Tensor, shape (..., F)
    Win : Tensor, shape (N, F)
    bias : Tensor of shape (N,) or None

    Returns
    -------
    Tensor, shape (..., N)
        ``u · Winᵀ + b``.
    """
    drive = inputs @ Win.T
    return drive if bias is None else drive + bias


def recurrent_matmul(state: Tensor, W: Tensor) -> Tensor:
    """``state · Wᵀ`` for a dense or sparse-CSR ``W``.

    Parameters
    ----------
    state : Tensor, shape (B, N)
    W : Tensor, shape (N, N), strided, sparse CSR or sparse BSR

    Returns
    -------
    Tensor, shape (B, N)
    """
    if W.layout != torch.strided:  # CSR or BSR (what Reservoir.recurrent_operator gives)
        if state.shape[0] == 1:
            return torch.mv(W, state[0]).unsqueeze(0)
        return (W @ state.T).T
    return state @ W.T


def _full_rate(lr: float | Tensor) -> bool:
    """Whether ``lr`` is the scalar 1 (no leak: the state is just ``f(pre)``)."""
    return not isinstance(lr, Tensor) and lr == 1.0


def leaky_update(state: Tensor, preactivation: Tensor, lr: float | Tensor,
                 activation: Callable[[Tensor], Tensor]) -> Tensor:
    """Leaky integration ``x' = (1 − lr)·x + lr·f(pre)``.

    Parameters
    ----------
    state : Tensor, shape (B, N)
    preactivation : Tensor, shape (B, N)
    lr : float in (0, 1], or Tensor of shape (N,)
        A tensor gives each unit its own rate (elementwise products).
    activation : callable

    Returns
    -------
    Tensor, shape (B, N)
    """
    if _full_rate(lr):
        return activation(preactivation)
    return (1.0 - lr) * state + lr * activation(preactivation)


def reservoir_step(state: Tensor, inputs: Tensor, W: Tensor, Win: Tensor,
                   bias: Tensor | None, lr: float | Tensor,
                   activation: Callable[[Tensor], Tensor]) -> Tensor:
    """One step of a leaky echo state network.

    ``x[t+1] = (1 − lr)·x[t] + lr·f(W·x[t] + Win·u[t+1] + b)``

    Parameters
    ----------
    state : Tensor, shape (B, N)
    inputs : Tensor, shape (B, F)
    W : Tensor, shape (N, N)
    Win : Tensor, shape (N, F)
    bias : Tensor, shape (N,), or None
    lr : float, or Tensor of shape (N,)
    activation : callable

    Returns
    -------
    Tensor, shape (B, N)
    """
    pre = recurrent_matmul(state, W) + reservoir_drive(inputs, Win, bias)
    return leaky_update(state, pre, lr, activation)


def csr_operator(W: Tensor) -> Tensor:
    """``W`` as a sparse CSR tensor with int32 indices, for fast stepping on the CPU.

    ``Tensor.to_sparse_csr()`` gives int64 indices; a CPU build with MKL
    converts them to int32 on every product (about a third of the time of an
    N = 1000, 10 %-dense matrix-vector product). Converting once here avoids
    that. int64 indices are kept when ``nnz ≥ 2³¹ − 1``. The values are those of
    ``W``, so products are bitwise equal to the int64-index ones.

    Parameters
    ----------
    W : Tensor, shape (N, M), strided or sparse CSR

    Returns
    -------
    Tensor, shape (N, M), sparse CSR
    """
    return step_kernels.operator_for(W, "csr")


def _needs_grad(*tensors: Tensor) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def run_reservoir(state: Tensor, drive: Tensor, W: Tensor, lr: float | Tensor,
                  activation: Callable[[Tensor], Tensor],
                  lengths: Tensor | None = None,
                  out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Iterate the leaky update over a whole drive sequence.

    ``x[t] = (1 − lr)·x[t−1] + lr·f(W·x[t−1] + drive[t])``

    The batch axis is real: the B sequences advance together, one matrix
    product per time step. With ``lengths``, sequence ``b`` stops updating after
    ``lengths[b]`` steps, so its final state is the state at its last valid step.

    Without autograd (no input requires a gradient, or gradients are disabled)
    and with every sequence running all steps, the loop is
    :func:`deepreservoir.step_kernels.run_inplace`: buffers allocated once, the
    drive added inside the product, and ``tanh`` in its sigmoid form; its states
    equal the differentiable loop's to rounding (see that module for the bound).
    With ``lengths`` that stop some sequences early, an in-place loop with the
    reference's operations and order masks the finished ones.

    Parameters
    ----------
    state : Tensor, shape (B, N)
        State before the first step.
    drive : Tensor, shape (B, T, N)
        ``Win·u[t] + b`` for every step (see :func:`reservoir_drive`).
    W : Tensor, shape (N, N), strided or sparse CSR
    lr : float in (0, 1], or Tensor of shape (N,)
        A tensor (per-unit rates) must have the dtype and device of ``state``.
    activation : callable
    lengths : Tensor of int, shape (B,), optional
    out : Tensor, shape (B, T, N), optional
        Receives the states on the in-place path (ignored when a gradient is
        needed). It may be ``drive`` itself: step ``t`` of the drive is read
        before step ``t`` of ``out`` is written, which saves one (B, T, N) tensor.

    Returns
    -------
    states : Tensor, shape (B, T, N)
        The state after each step.
    final : Tensor, shape (B, N)
        The state after each sequence's last valid step.
    """
    if drive.shape[1] == 0 or _needs_grad(state, drive, W):
        return _run_reservoir_autograd(state, drive, W, lr, activation, lengths)
    if _runs_every_step(lengths, drive.shape[1]):
        return step_kernels.run_inplace(state, drive, W, lr, activation, out)
    return _run_reservoir_inplace(state, drive, W, lr, activation, lengths, out)


def _valid_steps(lengths: Tensor | None, steps: int, device: torch.device) -> Tensor | None:
    """(B, T, 1) boolean mask of the steps before each sequence's length."""
    if lengths is None:
        return None
    time = torch.arange(steps, device=device)
    return (time[None, :] < lengths[:, None].to(device)).unsqueeze(-1)


def _run_reservoir_autograd(state: Tensor, drive: Tensor, W: Tensor, lr: float | Tensor,
                            activation: Callable[[Tensor], Tensor],
                            lengths: Tensor | None) -> tuple[Tensor, Tensor]:
    steps = drive.shape[1]
    outputs = []
    valid = _valid_steps(lengths, steps, drive.device)
    for t in range(steps):
        pre = recurrent_matmul(state, W) + drive[:, t]
        new_state = leaky_update(state, pre, lr, activation)
        state = new_state if valid is None else torch.where(valid[:, t], new_state, state)
        outputs.append(state)
    if not outputs:
        return drive.new_zeros(drive.shape), state
    return torch.stack(outputs, dim=1), state


def _run_reservoir_inplace(state: Tensor, drive: Tensor, W: Tensor, lr: float | Tensor,
                           activation: Callable[[Tensor], Tensor],
                           lengths: Tensor | None,
                           out: Tensor | None) -> tuple[Tensor, Tensor]:
    steps = drive.shape[1]
    batch, units = state.shape
    states = out if out is not None else torch.empty(drive.shape, dtype=drive.dtype,
                                                     device=drive.device)
    sparse = W.layout != torch.strided
    # The CSR product wants a contiguous dense right operand, so for B > 1 it
    # computes (W·Xᵀ) into an (N, B) buffer whose transpose is the (B, N) result.
    buffer = state.new_empty((units, batch) if sparse and batch > 1 else (batch, units))
    pre = buffer.T if sparse and batch > 1 else buffer
    valid = _valid_steps(lengths, steps, drive.device)
    scratch = state.new_empty(state.shape) if valid is not None else None
    in_place_tanh = activation is torch.tanh
    keep = 1.0 - lr  # a float, or (N,) per-unit rates broadcast over the batch
    full = _full_rate(lr)
    for t in range(steps):
        if not sparse:
            torch.mm(state, W.T, out=buffer)
        elif batch == 1:
            torch.mv(W, state[0], out=buffer[0])
        else:
            torch.mm(W, state.T.contiguous(), out=buffer)
        pre.add_(drive[:, t])
        if in_place_tanh:
            fired = torch.tanh(pre, out=pre) if pre.is_contiguous() else torch.tanh(pre)
        else:
            fired = activation(pre)
        target = states[:, t] if valid is None else scratch
        if full:
            target.copy_(fired)
        else:
            torch.mul(state, keep, out=target)
            target.add_(fired.mul_(lr))  # fired is a temporary or the reused buffer
        if valid is not None:
            torch.where(valid[:, t], scratch, state, out=states[:, t])
        state = states[:, t]
    return states, state.clone()


def _runs_every_step(lengths: Tensor | None, steps: int) -> bool:
    """Whether every sequence of a batch runs for all ``steps`` (no masking needed)."""
    return lengths is None or bool((lengths >= steps).all())


def reservoir_jacobian(preactivation: Tensor, W: Tensor, lr: float | Tensor,
                       activation: str = "tanh") -> Tensor:
    """Jacobian of the leaky update with respect to the previous state.

    ``J = (1 − lr)·I + lr·diag(f'(pre))·W`` (``diag(lr)`` for per-unit rates)

    Parameters
    ----------
    preactivation : Tensor, shape (N,) or (B, N)
    W : Tensor, shape (N, N), dense
    lr : float, or Tensor of shape (N,)
    activation : str

    Returns
    -------
    Tensor, shape (N, N) or (B, N, N)
    """
    dense = W.to_dense() if W.layout != torch.strided else W
    slope = activation_derivative(activation, preactivation)
    eye = torch.eye(dense.shape[0], dtype=dense.dtype, device=dense.device)
    if isinstance(lr, Tensor):  # row i of J leaks at unit i's rate
        lr = lr.unsqueeze(-1)
    return (1.0 - lr) * eye + lr * slope.unsqueeze(-1) * dense


def ridge_solve(xtx: Tensor, xty: Tensor, x_sum: Tensor, y_sum: Tensor, count: int,
                ridge: float, fit_bias: bool, name: str = "ridge_solve"
                ) -> tuple[Tensor, Tensor]:
    """Solve ridge regression from accumulated sufficient statistics.

    With centring for the bias (the bias is not penalised)::

        C = XᵀX − n·x̄x̄ᵀ,   D = XᵀY − n·x̄ȳᵀ
        Wᵀ = (C + λI)⁻¹ D,   b = ȳ − W x̄

    Parameters
    ----------
    xtx : Tensor, shape (F, F)
    xty : Tensor, shape (F, O)
    x_sum : Tensor, shape (F,)
    y_sum : Tensor, shape (O,)
    count : int
        Number of accumulated rows.
    ridge : float >= 0
    fit_bias : bool
    name : str
        Who solves (e.g. ``"Ridge 'readout'"``), for the error message.

    Returns
    -------
    W : Tensor, shape (O, F)
    b : Tensor, shape (O,)

    Raises
    ------
    DataError
        When a statistic, or the centred system, holds NaN or inf: LAPACK would
        fail on it with an internal error, or return NaN weights.
    """
    features = xtx.shape[0]
    _check_statistics(name, {"XᵀX": xtx, "XᵀY": xty, "the sum of X": x_sum,
                             "the sum of Y": y_sum})
    if fit_bias:
        x_mean = x_sum / count
        y_mean = y_sum / count
        xtx = xtx - count * torch.outer(x_mean, x_mean)
        xty = xty - count * torch.outer(x_mean, y_mean)
    eye = torch.eye(features, dtype=xtx.dtype, device=xtx.device)
    system = xtx + ridge * eye
    _check_statistics(name, {"the centred XᵀX + ridge·I": system, "the centred XᵀY": xty})
    try:
        factor = torch.linalg.cholesky(system)
        weights_t = torch.cholesky_solve(xty, factor)
    except RuntimeError:
        weights_t = torch.linalg.lstsq(system, xty).solution
    weights = weights_t.T
    if fit_bias:
        bias = y_mean - weights @ x_mean
    else:
        bias = torch.zeros(weights.shape[0], dtype=xtx.dtype, device=xtx.device)
    return weights, bias


def gram(x: Tensor) -> Tensor:
    """The Gram matrix ``xᵀx`` of rows ``x``, by a symmetric product on the CPU.

    On the CPU, numpy's ``a.T @ a`` runs BLAS's symmetric rank-k update (``?syrk``),
    which computes one triangle: half the multiply-adds of the general product
    torch calls (measured 0.44 s against 0.94 s for a float64 (9000, 1000) on one
    thread). The result is exactly symmetric. Other devices use ``x.T @ x``.

    Parameters
    ----------
    x : Tensor, shape (n, F)

    Returns
    -------
    Tensor, shape (F, F), the dtype and device of ``x``
    """
    if x.device.type != "cpu" or x.requires_grad or not x.is_contiguous():
        return x.T @ x
    rows = x.numpy()
    with np.errstate(over="ignore", invalid="ignore"):  # the callers check finiteness
        return torch.from_numpy(rows.T @ rows)


def first_nonfinite(statistics: dict[str, Tensor]) -> tuple[str, int, int] | None:
    """``(name, non-finite entries, entries)`` of the first tensor holding NaN or inf."""
    for label, value in statistics.items():
        if not all_finite(value):
            return label, int((~torch.isfinite(value)).sum()), value.numel()
    return None


def _check_statistics(name: str, statistics: dict[str, Tensor]) -> None:
    found = first_nonfinite(statistics)
    if found is None:
        return
    label, bad, total = found
    raise DataError(
        f"{name} cannot solve its ridge regression: {label} holds {bad} NaN or inf "
        f"entries (of {total}). Its inputs are too large for {statistics[label].dtype} sums "
        f"(or not finite): scale them down, or lower the reservoir's sr or input_scaling.")


# ---------------------------------------------------------------------- LoRA
def lora_delta(A: Tensor, B: Tensor, scale: float) -> Tensor:
    """The dense low-rank update ``scale·B·A`` of shape (d_out, d_in)."""
    return scale * (B @ A)


def lora_linear(x: Tensor, W: Tensor | None, A: Tensor | None, B: Tensor | None,
                beta: Tensor | float, scale: float, bias: Tensor | None = None) -> Tensor:
    """A frozen weight plus a low-rank adapter, applied without forming the dense sum.

    ``y = β·(x·Wᵀ) + scale·(x·Aᵀ)·Bᵀ + b``

    The adapter path costs ``O(r·(d_in + d_out))`` per row and the gradient never
    touches the (d_out, d_in) weight: only ``A``, ``B``, ``β`` and ``b`` get gradients.

    Parameters
    ----------
    x : Tensor, shape (..., d_in)
    W : Tensor, shape (d_out, d_in), or None for a zero scaffold
    A : Tensor, shape (r, d_in), or None when r = 0
    B : Tensor, shape (d_out, r), or None when r = 0
    beta : Tensor of shape () or float
    scale : float
        See :func:`lora_scale`.
    bias : Tensor, shape (d_out,), optional

    Returns
    -------
    Tensor, shape (..., d_out)
    """
    out = None
    if W is not None:
        out = x @ W.T
        if not (isinstance(beta, float) and beta == 1.0):
            out = out * beta
    if A is not None and B is not None and A.shape[0] > 0:
        low = (x @ A.T) @ B.T
        if scale != 1.0:
            low = low * scale
        out = low if out is None else out + low
    if out is None:
        shape = (*x.shape[:-1], 0 if B is None else B.shape[0])
        out = x.new_zeros(shape)
    return out if bias is None else out + bias


def lora_recurrent_matmul(state: Tensor, W: Tensor, A: Tensor, B: Tensor,
                          beta: Tensor | float, scale: float) -> Tensor:
    """``β·(state·Wᵀ) + scale·(state·Aᵀ)·Bᵀ`` for a dense or sparse-CSR ``W``.

    Parameters
    ----------
    state : Tensor, shape (batch, N)
    W : Tensor, shape (N, N), strided or sparse CSR (never densified here)
    A : Tensor, shape (r, N)
    B : Tensor, shape (N, r)
    beta : Tensor of shape () or float
    scale : float

    Returns
    -------
    Tensor, shape (batch, N)
    """
    return beta * recurrent_matmul(state, W) + scale * ((state @ A.T) @ B.T)


def run_lora_reservoir(state: Tensor, drive: Tensor, W: Tensor, A: Tensor, B: Tensor,
                       beta: Tensor | float, scale: float, lr: float | Tensor,
                       activation: Callable[[Tensor], Tensor],
                       lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """:func:`run_reservoir` with a LoRA adapter and a gate on the recurrent matrix.

    ``x[t] = (1 − lr)·x[t−1] + lr·f(β·W·x[t−1] + scale·B·A·x[t−1] + drive[t])``

    Differentiable in ``A``, ``B``, ``β`` (and ``drive``): backpropagation through time.

    Returns
    -------
    states : Tensor, shape (B, T, N)
    final : Tensor, shape (B, N)
    """
    steps = drive.shape[1]
    outputs = []
    valid = None
    if lengths is not None:
        time = torch.arange(steps, device=drive.device)
        valid = (time[None, :] < lengths[:, None].to(drive.device)).unsqueeze(-1)
    for t in range(steps):
        pre = lora_recurrent_matmul(state, W, A, B, beta, scale) + drive[:, t]
        new_state = leaky_update(state, pre, lr, activation)
        state = new_state if valid is None else torch.where(valid[:, t], new_state, state)
        outputs.append(state)
    if not outputs:
        return drive.new_zeros(drive.shape), state
    return torch.stack(outputs, dim=1), state


def seeded_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout drawing from torch's global generator.

    Active only when ``training`` and gradients are enabled, so ``run()`` and
    ``predict()`` (which run under ``torch.no_grad``) are deterministic.

    ``deepreservoir.training`` reseeds that generator from ``(seed, epoch, batch)``
    inside an isolated RNG context, so masks are reproducible and resumable.
    """
    if not training or p == 0.0 or not torch.is_grad_enabled():
        return x
    return torch.nn.functional.dropout(x, p=p, training=True)
