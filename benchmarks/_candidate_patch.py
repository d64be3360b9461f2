"""A candidate speed-up of the reservoir loop, applied by monkeypatching (benchmarks only).

This module is *not* part of the library. It holds the implementation proposed
for ``deepreservoir.functional.run_reservoir`` and
``deepreservoir.nodes.reservoir.Reservoir.recurrent_operator`` so that the
benchmarks can measure it side by side with the shipped code, in one process:

* ``python benchmarks/bench_esn.py --patched`` runs every case with the patch;
* ``python benchmarks/bench_step_kernels.py`` compares the loops step by step.

What changes (the math does not: every state is bitwise identical to the
shipped loop, which ``check_bitwise`` verifies):

1. **int32 CSR indices.** ``Tensor.to_sparse_csr()`` gives int64 indices; on a
   CPU build with MKL, every sparse product then converts the 100k column
   indices of an N = 1000, 10 %-dense W to int32 again, which costs ~10 µs of a
   ~28 µs product and allocates ~0.4 MB per step. Building the CSR tensor with
   int32 indices once (when nnz < 2³¹) removes that.
2. **A preallocated (B, T, N) output** written step by step, instead of a list of
   T small tensors followed by ``torch.stack`` (one fewer full copy, one fewer
   (B, T, N) allocation at peak, T fewer allocations).
3. **Fewer temporaries per step**: ``mv``/``mm`` into a reused buffer, then
   in-place ``add_`` of the drive, ``mul_`` by lr and ``add_`` into the output
   slot: the same floating-point operations in the same order as
   ``(1 − lr)·x + lr·f(W·x + drive)``.

The fast path needs no autograd (``out=`` and in-place ops); when a gradient is
required it falls back to the shipped loop, so backpropagation through time is
unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

import deepreservoir.functional as F
from deepreservoir.nodes import reservoir as reservoir_module

__all__ = ["LEVELS", "apply", "check_bitwise", "fast_forward_sequence",
           "fast_recurrent_operator", "fast_run_reservoir", "int32_csr", "revert"]

_ORIGINAL = {
    "run_reservoir": F.run_reservoir,
    "recurrent_operator": reservoir_module.Reservoir.recurrent_operator,
    "forward_sequence": reservoir_module.Reservoir.forward_sequence,
}


def int32_csr(W: Tensor) -> Tensor:
    """``W`` as sparse CSR with int32 indices (int64 kept when nnz ≥ 2³¹)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        csr = W if W.layout == torch.sparse_csr else W.to_sparse_csr()
        if csr._nnz() >= 2**31 - 1 or csr.crow_indices().dtype == torch.int32:
            return csr
        return torch.sparse_csr_tensor(csr.crow_indices().to(torch.int32),
                                       csr.col_indices().to(torch.int32),
                                       csr.values(), size=csr.shape, check_invariants=False)


def fast_recurrent_operator(self) -> Tensor:
    """Drop-in for ``Reservoir.recurrent_operator`` that caches an int32-index CSR."""
    operator = _ORIGINAL["recurrent_operator"](self)
    if operator.layout != torch.sparse_csr or operator.crow_indices().dtype == torch.int32:
        return operator
    operator = int32_csr(operator)
    self._operator_cache = (self._operator_cache[0], operator)
    return operator


def _matmul_into(state: Tensor, W: Tensor, buffer: Tensor) -> Tensor:
    """``state · Wᵀ`` (B, N) written into ``buffer``; returns a (B, N) view of it."""
    if W.layout == torch.sparse_csr:
        if state.shape[0] == 1:
            torch.mv(W, state[0], out=buffer[0])
            return buffer
        # buffer is (N, B) here: the CSR product wants a contiguous dense operand.
        torch.mm(W, state.T.contiguous(), out=buffer)
        return buffer.T
    torch.mm(state, W.T, out=buffer)
    return buffer


def fast_run_reservoir(state: Tensor, drive: Tensor, W: Tensor, lr: float,
                       activation: Callable[[Tensor], Tensor],
                       lengths: Tensor | None = None,
                       out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Drop-in for ``functional.run_reservoir`` (same arguments, same results).

    ``out`` (B, T, N), optional, receives the states; it may be ``drive`` itself
    (step t of the drive is read before step t of ``out`` is written).
    """
    steps = drive.shape[1]
    needs_grad = torch.is_grad_enabled() and (
        state.requires_grad or drive.requires_grad or W.requires_grad)
    if needs_grad or steps == 0:
        return _ORIGINAL["run_reservoir"](state, drive, W, lr, activation, lengths)
    batch, units = state.shape
    states = out if out is not None else torch.empty(drive.shape, dtype=drive.dtype,
                                                     device=drive.device)
    sparse_batch = W.layout == torch.sparse_csr and batch > 1
    buffer = state.new_empty((units, batch) if sparse_batch else (batch, units))
    valid = None
    if lengths is not None:
        time = torch.arange(steps, device=drive.device)
        valid = (time[None, :] < lengths[:, None].to(drive.device)).unsqueeze(-1)
        scratch = state.new_empty(state.shape)
    keep = 1.0 - lr
    for t in range(steps):
        pre = _matmul_into(state, W, buffer)
        pre.add_(drive[:, t])
        fired = activation(pre)
        target = states[:, t] if valid is None else scratch
        if lr == 1.0:
            target.copy_(fired)
        else:
            if fired is pre:  # identity activation: do not scale the buffer we read from
                fired = pre.clone()
            torch.mul(state, keep, out=target)
            target.add_(fired.mul_(lr))
        if valid is not None:
            torch.where(valid[:, t], scratch, state, out=states[:, t])
        state = states[:, t]
    return states, state.clone()


def fast_forward_sequence(self, x: Tensor, state: Tensor | None,
                          lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Drop-in for ``Reservoir.forward_sequence`` that writes the states over its own drive.

    The drive ``u·Winᵀ + b`` is a temporary of the same (B, T, N) shape as the
    states; the bias is added in place and the loop overwrites step t of the
    drive with the state at step t once it has read it. Peak memory: one
    (B, T, N) tensor instead of two (three with the shipped list + stack).
    """
    if getattr(self, "r", 0):  # a LoRA adapter on W: not covered by the candidate
        return _ORIGINAL["forward_sequence"](self, x, state, lengths)
    self._require_built()
    if state is None:
        state = self.initial_state(x.shape[0])
    W = self.recurrent_operator()
    act = self._activation_fn()
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or state.requires_grad or self.Win_.requires_grad
        or self.bias_.requires_grad or W.requires_grad)
    if needs_grad:
        drive = F.reservoir_drive(x, self.Win_, self.bias_)
        return F.run_reservoir(state, drive, W, self.lr, act, lengths)
    drive = x @ self.Win_.T
    if self.bias_ is not None:
        drive.add_(self.bias_)
    return fast_run_reservoir(state, drive, W, self.lr, act, lengths, out=drive)


#: Patch levels: what ``apply(level)`` installs.
LEVELS = {
    0: "shipped code",
    1: "int32 CSR indices",
    2: "int32 CSR + preallocated loop",
    3: "int32 CSR + preallocated loop + states written over the drive",
}


def apply(level: int = 3) -> None:
    """Install the candidate (up to ``level``, see :data:`LEVELS`) in ``deepreservoir``."""
    revert()
    if level >= 1:
        reservoir_module.Reservoir.recurrent_operator = fast_recurrent_operator
    if level >= 2:
        F.run_reservoir = fast_run_reservoir
    if level >= 3:
        reservoir_module.Reservoir.forward_sequence = fast_forward_sequence


def revert() -> None:
    """Put the shipped implementation back."""
    F.run_reservoir = _ORIGINAL["run_reservoir"]
    reservoir_module.Reservoir.recurrent_operator = _ORIGINAL["recurrent_operator"]
    reservoir_module.Reservoir.forward_sequence = _ORIGINAL["forward_sequence"]


def check_bitwise(seed: int = 0) -> None:
    """Assert that the candidate reproduces the shipped loop bit for bit."""
    gen = torch.Generator().manual_seed(seed)
    units, steps = 200, 300
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
    dense = torch.randn(units, units, generator=gen, dtype=torch.float64)
    dense *= 0.05 * (torch.rand(units, units, generator=gen, dtype=torch.float64) < 0.1)
    for W in (dense, dense.to_sparse_csr(), int32_csr(dense)):
        for batch in (1, 3):
            lengths = torch.tensor([steps, 120, 7]) if batch > 1 else None
            drive = torch.randn(batch, steps, units, generator=gen, dtype=torch.float64)
            state = torch.randn(batch, units, generator=gen, dtype=torch.float64)
            for lr in (1.0, 0.3):
                for name in ("tanh", "identity"):
                    act = F.get_activation(name)
                    want = _ORIGINAL["run_reservoir"](state, drive, W, lr, act, lengths)
                    got = fast_run_reservoir(state, drive, W, lr, act, lengths)
                    aliased = drive.clone()
                    got_aliased = fast_run_reservoir(state, aliased, W, lr, act, lengths,
                                                     out=aliased)
                    for a, b in zip(want * 2, got + got_aliased, strict=True):
                        if not torch.equal(a, b):
                            raise AssertionError(
                                f"candidate differs: layout={W.layout}, B={batch}, lr={lr}, "
                                f"{name}: max |Δ| = {(a - b).abs().max().item():.3g}")
