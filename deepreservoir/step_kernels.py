r"""The reservoir's time loop at speed: the product kernel chosen by measurement, and a fused loop.

A reservoir spends its time in ``T`` repetitions of one step,
``x[t] = (1 − lr)·x[t−1] + lr·f(W·x[t−1] + d[t])``, where the drive
``d[t] = Win·u[t] + b`` is computed for all steps at once before the loop.
This module runs that loop when no gradient is needed; the differentiable
reference loop stays in :func:`deepreservoir.functional.run_reservoir`.

The product kernel
------------------
``W·x`` is the step's cost. Which form of ``W`` is fastest depends on the
density of ``W``, on ``N``, on the batch size ``B``, on the dtype, on the
device and on the number of threads, so it is **measured**, not guessed:

* ``"csr"``: ``W`` as a sparse CSR matrix with int32 indices, the state kept
  as ``(N, B)`` (the layout the sparse product wants);
* ``"dense"``: the dense ``W``, the state kept as ``(B, N)``;
* ``"bsr"``: ``W`` in 8 × 8 blocks; a candidate only when at least half of
  each stored block is non-zero (a random sparse ``W`` never is: 8 × 8 blocks of
  a 10 %-dense ``W`` are 84 % zeros, and the product was 5–13× slower than CSR).

:func:`choose_kernel` times each candidate product on a random operand of the
actual shape (at most 64 columns, a few repeats, the fastest wins unless
it beats the sparse form by less than 5 %) and caches the decision per
``(shape, nnz, B, dtype, device, threads)``; a candidate whose product would
take more than about 10⁹ floating-point operations is not timed but ruled by
density. :func:`kernel_choices` shows the cache. The choice can be pinned with
:func:`set_step_kernel` (or the context manager :func:`step_kernel`, or the
environment variable ``DEEPRESERVOIR_STEP_KERNEL``). Kernels differ in the
order of their sums, so states computed with different kernels agree to
rounding, not bit for bit: pin the kernel when runs in different processes
must be bitwise equal.

The fused loop
--------------
:func:`run_inplace` allocates its buffers once and then, per step, makes one
call for the product and the drive (``torch.addmm``, or BLAS ``addmv`` for one
series and a dense ``W``, add the drive inside the product; a sparse ``mv`` is
followed by one add, which measured faster than MKL's sparse ``addmv``), and
one to three in-place passes for the tail. The drive itself
(:class:`InputDrive`) is computed in the layout each loop steps. With
``tanh`` it uses the identity

.. math::

    \tanh(p) = 2\,\sigma(2p) - 1,

because the logistic ``σ`` costs a quarter of ``tanh`` on CPUs where ``tanh``
runs MKL-VML's slow path. The leak is ``torch.lerp(x, f, lr) = x + lr·(f − x)``.
Both differ from the reference ``(1 − lr)·x + lr·tanh(p)`` by rounding only:
the absolute error of one step is below 2 ulp of 1 (4.4e-16 in float64,
2.4e-7 in float32), and a contracting reservoir (ρ(W) < 1) keeps the
accumulated difference below ``2 ulp / (1 − ρ)``. ``set_step_kernel(tanh="exact")``
restores ``torch.tanh`` and the reference's order of operations.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from deepreservoir import threads
from deepreservoir.errors import ParameterError, format_value

__all__ = [
    "KERNELS",
    "TANH_FORMS",
    "InputDrive",
    "choose_kernel",
    "clear_kernel_choices",
    "column_block",
    "kernel_choices",
    "operator_for",
    "run_inplace",
    "set_step_kernel",
    "settings_version",
    "step_kernel",
    "step_kernel_settings",
]

KERNELS = ("auto", "csr", "dense", "bsr")
TANH_FORMS = ("sigmoid", "exact")
ENV_KERNEL = "DEEPRESERVOIR_STEP_KERNEL"

_BLOCK = 8
_MEASURE_COLUMNS = 64
_MEASURE_FLOP_LIMIT = 1e9
_SPARSE_MARGIN = 0.95
_CACHE_SIZE = 512
# Rule used for candidates too large to time: below these densities CSR beat the
# dense product at N = 1000 for every batch size measured (BENCHMARKS.md).
_RULE_DENSITY = 0.25

_settings: dict[str, str | None] = {"kernel": None, "tanh": "sigmoid"}
_choices: OrderedDict[tuple, str] = OrderedDict()
_generation = [0]  # bumped when the cached choices are cleared


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(
            f"The '{name}' parameter of set_step_kernel must be one of "
            f"{', '.join(map(repr, choices))}. Got {format_value(value)}.")
    return value


def _kernel_setting() -> str:
    if _settings["kernel"] is not None:
        return _settings["kernel"]
    value = os.environ.get(ENV_KERNEL, "auto")
    if value not in KERNELS:
        raise ParameterError(
            f"The environment variable {ENV_KERNEL} must be one of "
            f"{', '.join(map(repr, KERNELS))}. Got {value!r}.")
    return value


def settings_version() -> tuple:
    """A value that changes whenever the kernel settings or the measured choices change.

    Cheap enough for every ``Model.step``: it does not read the environment, so
    after changing ``DEEPRESERVOIR_STEP_KERNEL`` inside a running process, call
    :func:`clear_kernel_choices` (or use :func:`set_step_kernel`).
    """
    return (_settings["kernel"], _settings["tanh"], _generation[0])


def step_kernel_settings() -> dict[str, str]:
    """The kernel setting in force and the form of ``tanh`` the fused loop uses.

    Returns
    -------
    dict
        ``{"kernel": "auto" | "csr" | "dense" | "bsr", "tanh": "sigmoid" | "exact"}``.
    """
    return {"kernel": _kernel_setting(), "tanh": str(_settings["tanh"])}


def set_step_kernel(kernel: str | None = None, *, tanh: str | None = None) -> dict[str, str]:
    """Pin the product kernel of the time loop, or the form of ``tanh``.

    Parameters
    ----------
    kernel : {"auto", "csr", "dense", "bsr"}, optional
        ``"auto"`` (the default) measures the candidates per shape; the others
        force one form on every device (``"csr"``/``"bsr"`` on a device without
        sparse support falls back to dense). ``None`` leaves it unchanged.
    tanh : {"sigmoid", "exact"}, optional
        ``"sigmoid"`` (default) computes ``tanh(p)`` as ``2σ(2p) − 1`` and the leak
        with ``lerp``; ``"exact"`` uses ``torch.tanh`` and the reference order of
        operations. ``None`` leaves it unchanged.

    Returns
    -------
    dict
        The previous settings, which can be passed back to restore them.
    """
    previous = step_kernel_settings()
    if kernel is not None:
        _settings["kernel"] = _check_choice("kernel", kernel, KERNELS)
    if tanh is not None:
        _settings["tanh"] = _check_choice("tanh", tanh, TANH_FORMS)
    return previous


@contextmanager
def step_kernel(kernel: str | None = None, *, tanh: str | None = None) -> Iterator[None]:
    """Context manager form of :func:`set_step_kernel`; restores the settings on exit."""
    saved = dict(_settings)  # unresolved: an unpinned kernel stays unpinned afterwards
    set_step_kernel(kernel, tanh=tanh)
    try:
        yield
    finally:
        _settings.update(saved)


def kernel_choices() -> dict[tuple, str]:
    """The cached decisions of :func:`choose_kernel`.

    Returns
    -------
    dict
        ``(shape, nnz, B, dtype, device type, threads) -> kernel``.
    """
    return dict(_choices)


def clear_kernel_choices() -> None:
    """Forget the measured decisions, so the next run measures again."""
    _choices.clear()
    _generation[0] += 1


# ----------------------------------------------------------------- operators
def _csr(W: Tensor) -> Tensor:
    """``W`` as CSR with int32 indices (see :func:`deepreservoir.functional.csr_operator`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        csr = W if W.layout == torch.sparse_csr else W.to_sparse_csr()
        if csr._nnz() >= 2**31 - 1 or csr.crow_indices().dtype == torch.int32:
            return csr
        # int32 indices: MKL converts int64 ones on every product.
        return torch.sparse_csr_tensor(csr.crow_indices().to(torch.int32),
                                       csr.col_indices().to(torch.int32), csr.values(),
                                       size=csr.shape, check_invariants=False)


def _block_fill(W: Tensor, nnz: int) -> float:
    n, m = W.shape
    if n % _BLOCK or m % _BLOCK or nnz == 0:
        return 0.0
    blocks = (W.reshape(n // _BLOCK, _BLOCK, m // _BLOCK, _BLOCK) != 0).any(dim=(1, 3))
    return nnz / (int(blocks.sum()) * _BLOCK * _BLOCK)


def operator_for(W: Tensor, kernel: str) -> Tensor:
    """``W`` in the storage a kernel multiplies with.

    Parameters
    ----------
    W : Tensor, shape (N, N), dense
    kernel : {"csr", "dense", "bsr"}

    Returns
    -------
    Tensor, shape (N, N)
        Sparse CSR (int32 indices when ``nnz < 2³¹ − 1``), sparse BSR with 8 × 8
        blocks (the largest of 8, 4, 2, 1 that divides both sizes), or ``W`` itself.
    """
    if kernel == "csr":
        return _csr(W)
    if kernel == "bsr":
        block = next(b for b in (_BLOCK, 4, 2, 1) if W.shape[0] % b == 0 == W.shape[1] % b)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse BSR tensor support")
            return W.to_sparse_bsr((block, block))
    return W


def _sparse_supported(device: torch.device) -> bool:
    return device.type in ("cpu", "cuda")


def _product(operator: Tensor, columns: Tensor) -> Tensor:
    """The product the loop runs: ``mv`` for one series (as ``_run_vector``), else ``mm``."""
    if columns.shape[1] == 1:
        return torch.mv(operator, columns[:, 0])
    return torch.mm(operator, columns)


def _seconds(fn: Callable[[], Any], device: torch.device, repeats: int = 3) -> float:
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def _own_generator(device: torch.device) -> torch.Generator:
    """A seeded generator of its own, so timing a kernel leaves torch's global one alone."""
    return torch.Generator(device=device).manual_seed(0)


def choose_kernel(W: Tensor, batch: int, nnz: int,
                  operators: dict[str, Tensor] | None = None) -> str:
    """The product kernel for stepping ``batch`` series with ``W``.

    Parameters
    ----------
    W : Tensor, shape (N, N), dense
    batch : int
        Number of series stepped together.
    nnz : int
        Number of non-zero entries of ``W``.
    operators : dict, optional
        A cache of :func:`operator_for` results by kernel name: the forms built
        for timing are stored in it (and taken from it) instead of discarded.

    Returns
    -------
    {"csr", "dense", "bsr"}
        The pinned kernel (see :func:`set_step_kernel`), or the fastest measured
        candidate for this shape, cached.
    """
    setting = _kernel_setting()
    if setting != "auto":
        return setting if setting == "dense" or _sparse_supported(W.device) else "dense"
    n, m = W.shape
    key = (tuple(W.shape), int(nnz), int(batch), W.dtype, W.device.type,
           torch.get_num_threads())
    cached = _choices.get(key)
    if cached is not None:
        _choices.move_to_end(key)
        return cached
    density = nnz / max(n * m, 1)
    candidates = ["dense"]
    fill = 0.0
    if _sparse_supported(W.device) and density < 0.5:
        candidates.insert(0, "csr")
        fill = _block_fill(W, nnz) if W.device.type == "cpu" else 0.0
        if fill >= 0.5:
            candidates.append("bsr")
    columns = min(int(batch), _MEASURE_COLUMNS)
    flops = {"dense": 2.0 * n * m * columns, "csr": 2.0 * nnz * columns,
             "bsr": 2.0 * nnz * columns / max(fill, 1e-9)}
    timeable = [c for c in candidates if flops[c] <= _MEASURE_FLOP_LIMIT]
    if len(timeable) < 2:
        choice = "csr" if "csr" in candidates and density < _RULE_DENSITY else "dense"
    else:
        probe = torch.randn(m, columns, dtype=W.dtype, device=W.device,
                            generator=_own_generator(W.device))
        timings = {}
        with torch.no_grad():
            for candidate in timeable:
                operator = None if operators is None else operators.get(candidate)
                if operator is None:
                    operator = operator_for(W, candidate)
                    if operators is not None:
                        operators[candidate] = operator
                timings[candidate] = _seconds(lambda op=operator: _product(op, probe), W.device)
        choice = min(timings, key=timings.get)
        sparse = timings.get("csr")
        if sparse is not None and choice != "csr" and timings[choice] > _SPARSE_MARGIN * sparse:
            choice = "csr"
    _choices[key] = choice
    while len(_choices) > _CACHE_SIZE:
        _choices.popitem(last=False)
    return choice


_BLOCK_WIDTH = 32


def column_block(operator: Tensor, batch: int) -> int:
    """How many series a sparse product handles at once, measured and cached.

    For ``B`` a multiple of 32 and at least 64, the product over 32-column blocks
    (whose dense operand stays in the core's cache) is timed against the product
    over all ``B`` columns; the faster wins. Each column's sum runs in the same
    order either way, so the states are bitwise equal.

    Parameters
    ----------
    operator : Tensor, shape (N, N), sparse
    batch : int

    Returns
    -------
    int
        The block width: ``batch`` or 32.
    """
    if batch < 2 * _BLOCK_WIDTH or batch % _BLOCK_WIDTH:
        return batch
    key = (tuple(operator.shape), operator.layout, int(batch), operator.dtype,
           operator.device.type, torch.get_num_threads(), "width")
    cached = _choices.get(key)
    if cached is not None:
        return cached
    m = operator.shape[1]
    probe = torch.randn(m, batch, dtype=operator.dtype, device=operator.device,
                        generator=_own_generator(operator.device))
    blocks = probe.reshape(m, -1, _BLOCK_WIDTH).permute(1, 0, 2).contiguous()

    def blocked():
        for block in blocks:
            torch.mm(operator, block)

    with torch.no_grad():
        whole = _seconds(lambda: torch.mm(operator, probe), operator.device)
        split = _seconds(blocked, operator.device)
    width = _BLOCK_WIDTH if split < _SPARSE_MARGIN * whole else batch
    _choices[key] = width
    return width


# ---------------------------------------------------------------- the loop
_SIGMOID_MIN_ELEMENTS = 2048


def identity(x: Tensor) -> Tensor:
    """The identity activation (``functional.ACTIVATIONS["identity"]``)."""
    return x


def _identity_in_place(pre: Tensor, out: Tensor) -> Tensor:
    return pre if out is pre else out.copy_(pre)


def _relu_in_place(pre: Tensor, out: Tensor) -> Tensor:
    return torch.clamp(pre, min=0.0, out=out)


_IN_PLACE = {torch.tanh: torch.tanh, torch.relu: _relu_in_place, torch.sigmoid: torch.sigmoid,
             identity: _identity_in_place}


def _tail(activation: Callable[[Tensor], Tensor], lr: float | Tensor, elements: int,
          dtype: torch.dtype, device: torch.device) -> tuple[Callable, float]:
    """The step's tail ``target = (1 − lr)·previous + lr·f(pre)`` and the product's scale.

    Returns ``(tail, scale)``: the product must deliver ``scale·(W·x + drive)``
    (``scale`` is 2 for the sigmoid form of tanh: exact, and free inside ``addmm``).
    ``tail(pre, previous, target)`` may overwrite ``pre``.
    """
    full = not isinstance(lr, Tensor) and lr == 1.0
    if _settings["tanh"] == "exact" or activation not in _IN_PLACE:
        keep = 1.0 - lr

        def reference(pre, previous, target):
            fired = torch.tanh(pre, out=pre) if activation is torch.tanh else activation(pre)
            if full:
                target.copy_(fired)
                return
            torch.mul(previous, keep, out=target)
            target.add_(fired.mul_(lr))  # the reference's order of operations

        return reference, 1.0
    if activation is torch.tanh and elements >= _SIGMOID_MIN_ELEMENTS:
        minus_one = torch.tensor(-1.0, dtype=dtype, device=device)

        def sigmoid_form(pre, previous, target):  # pre holds 2·p
            torch.sigmoid(pre, out=pre)
            if full:
                torch.add(minus_one, pre, alpha=2.0, out=target)
                return
            torch.add(minus_one, pre, alpha=2.0, out=pre)
            torch.lerp(previous, pre, lr, out=target)

        return sigmoid_form, 2.0
    apply = _IN_PLACE[activation]

    def fast(pre, previous, target):
        if full:
            apply(pre, out=target)
            return
        apply(pre, out=pre)
        torch.lerp(previous, pre, lr, out=target)

    return fast, 1.0


class InputDrive:
    """The drive ``Win·u[t] + b``, computed in the layout the loop needs, when it needs it.

    The CSR loop steps ``(N, B)`` column blocks, so its drive is computed in that
    layout, a chunk of steps at a time, instead of being transposed from
    ``(B, T, N)``. With one input feature the projection is an outer product:
    ``torch.addcmul`` writes it in one pass (a matrix product with an inner size
    of 1 is several times slower).

    Parameters
    ----------
    inputs : Tensor, shape (B, T, F)
    Win : Tensor, shape (N, F)
    bias : Tensor of shape (N,), or None
    """

    def __init__(self, inputs: Tensor, Win: Tensor, bias: Tensor | None) -> None:
        self.inputs, self.Win, self.bias = inputs, Win, bias
        self.shape = (inputs.shape[0], inputs.shape[1], Win.shape[0])
        self.dtype, self.device = Win.dtype, Win.device

    def into(self, out: Tensor) -> Tensor:
        """The whole drive, ``(B, T, N)``, written into ``out``."""
        if self.Win.shape[1] == 1:
            weights = self.Win[:, 0]
            if self.bias is None:
                return torch.mul(self.inputs, weights, out=out)
            return torch.addcmul(self.bias, self.inputs, weights, out=out)
        torch.matmul(self.inputs, self.Win.T, out=out)
        return out if self.bias is None else out.add_(self.bias)

    def columns(self, start: int, stop: int, blocks: int) -> Tensor:
        """Steps ``start:stop`` as ``(stop − start, blocks, N, B / blocks)``."""
        batch, _, features = self.inputs.shape
        u = (self.inputs[:, start:stop].reshape(blocks, batch // blocks, -1, features)
             .permute(2, 0, 3, 1))                      # (c, blocks, F, width)
        shape = (u.shape[0], blocks, self.Win.shape[0], u.shape[3])
        out = torch.empty(shape, dtype=self.dtype, device=self.device)
        if features == 1:
            weights = self.Win[:, :1]                   # (N, 1) broadcast over width
            if self.bias is None:
                return torch.mul(u, weights, out=out)
            return torch.addcmul(self.bias[:, None], u, weights, out=out)
        torch.matmul(self.Win, u, out=out)
        return out if self.bias is None else out.add_(self.bias[:, None])


class _TensorDrive:
    """A precomputed ``(B, T, N)`` drive, read in the loop's layouts."""

    def __init__(self, drive: Tensor) -> None:
        self.drive, self.shape = drive, tuple(drive.shape)

    def columns(self, start: int, stop: int, blocks: int) -> Tensor:
        batch, _, units = self.shape
        return (self.drive[:, start:stop].reshape(blocks, batch // blocks, -1, units)
                .permute(2, 0, 3, 1).contiguous())


def run_inplace(state: Tensor, drive: Tensor | InputDrive, operator: Tensor, lr: float | Tensor,
                activation: Callable[[Tensor], Tensor],
                out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The leaky reservoir loop without autograd, every sequence running all steps.

    ``x[t] = (1 − lr)·x[t−1] + lr·f(W·x[t−1] + drive[t])``

    Parameters
    ----------
    state : Tensor, shape (B, N)
        State before the first step.
    drive : Tensor of shape (B, T, N), or InputDrive
        ``Win·u[t] + b`` for every step; read, never written unless it is ``out``.
        An :class:`InputDrive` computes it where the loop needs it.
    operator : Tensor, shape (N, N)
        ``W`` as returned by :func:`operator_for`: dense, sparse CSR or sparse BSR.
    lr : float in (0, 1], or Tensor of shape (N,)
    activation : callable
        An elementwise activation; ``torch.tanh`` takes the sigmoid form unless
        ``set_step_kernel(tanh="exact")``.
    out : Tensor, shape (B, T, N), optional
        Receives the states; it may be ``drive`` itself (step ``t`` of the drive is
        read before step ``t`` of ``out`` is written).

    Returns
    -------
    states : Tensor, shape (B, T, N)
    final : Tensor, shape (B, N)

    Notes
    -----
    A step below :data:`deepreservoir.threads.SMALL_STEP_FLOPS` multiply-adds runs
    on one thread (unless a count is fixed with
    :func:`deepreservoir.threads.set_num_threads`): under load, a small sparse
    product on two threads was measured 1000× slower than on one.
    """
    batch, steps = drive.shape[:2]
    # The column loop writes (B, N) slices T·N apart, and first-touch page faults
    # spread over the loop cost more than one sequential fill (measured 3×): zeros
    # there; elsewhere the drive is written into the states first.
    columns = operator.layout != torch.strided and batch > 1
    allocate = torch.zeros if columns else torch.empty
    states = out if out is not None else allocate(drive.shape, dtype=state.dtype,
                                                  device=state.device)
    if steps == 0:
        return states, state.clone()
    flops = (operator._nnz() if operator.layout != torch.strided else operator.numel()) * batch
    with _step_threads(flops):
        return _run(state, drive, operator, lr, activation, states)


def _step_threads(flops: int):
    """One thread for small steps (the policy of :mod:`deepreservoir.threads`), restored after."""
    fixed = threads.get_num_threads()
    return threads.scoped_threads(fixed or (1 if flops < threads.SMALL_STEP_FLOPS else None))


def _run(state, drive, operator, lr, activation, states):
    batch, _, units = drive.shape
    elements = batch * units
    tail, scale = _tail(activation, lr, elements, state.dtype, state.device)
    columns = operator.layout != torch.strided and batch > 1
    if not columns:
        if isinstance(drive, InputDrive):
            drive = drive.into(states)  # the states overwrite it step by step
        if batch == 1:
            return _run_vector(state, drive, operator, states, tail, scale)
        return _run_rows(state, drive, operator, states, tail, scale)
    if isinstance(lr, Tensor):  # per-unit rates run along the middle axis of (·, N, B)
        tail, scale = _tail(activation, lr.reshape(-1, 1), elements, state.dtype, state.device)
    width = column_block(operator, batch)
    source = drive if isinstance(drive, InputDrive) else _TensorDrive(drive)
    return _run_columns(state, source, operator, states, tail, scale, width)


def _run_rows(state, drive, W, states, tail, scale):
    """Dense ``W``, state ``(B, N)``: one GEMM (drive included) and the tail per step."""
    pre = torch.empty_like(state)
    previous = state
    weight_t = W.T
    for inputs, target in zip(drive.unbind(1), states.unbind(1), strict=True):  # made once
        torch.addmm(inputs, previous, weight_t, beta=scale, alpha=scale, out=pre)
        tail(pre, previous, target)
        previous = target
    return states, previous.clone()


def _run_vector(state, drive, W, states, tail, scale):
    """One series: one matrix–vector product (dense or sparse ``W``) per step."""
    pre = torch.empty_like(state[0])
    previous = state[0]
    dense = W.layout == torch.strided
    for inputs, target in zip(drive[0].unbind(0), states[0].unbind(0), strict=True):
        if dense:  # BLAS gemv adds the drive itself
            torch.addmv(inputs, W, previous, beta=scale, alpha=scale, out=pre)
        else:  # MKL's sparse mv with a beta term was measured 15 % slower than mv + add
            torch.mv(W, previous, out=pre)
            pre.add_(inputs)
            if scale != 1.0:
                pre.mul_(scale)
        tail(pre, previous, target)
        previous = target
    return states, previous.unsqueeze(0).clone()


def _run_columns(state, drive, W, states, tail, scale, width):
    """Sparse ``W``, B > 1: the state lives as ``(B/width, N, width)`` column blocks.

    The sparse product wants its dense operand as ``(N, columns)`` rows; blocks of
    ``width`` columns keep that operand in cache for large batches. The drive
    comes in chunks of steps in that layout (``drive.columns``), and the states are
    written back through numpy on the CPU, whose transposing copy is about twice
    as fast as torch's for these shapes.
    """
    batch, steps, units = drive.shape
    blocks = batch // width
    current = state.reshape(blocks, width, units).transpose(1, 2).clone(
        memory_format=torch.contiguous_format)  # never the caller's storage (N = 1)
    following = torch.empty_like(current)
    pre = torch.empty_like(current)
    on_cpu = states.device.type == "cpu"
    chunk = max(1, min(steps, (1 << 22) // max(current.numel(), 1)))
    columns, start = None, 0
    for t in range(steps):
        if columns is None or t == start + columns.shape[0]:
            start = t
            columns = drive.columns(t, min(t + chunk, steps), blocks)
        for block in range(blocks):
            torch.addmm(columns[t - start, block], W, current[block], beta=scale,
                        alpha=scale, out=pre[block])
        tail(pre, current, following)
        target = states[:, t].reshape(blocks, width, units)
        if on_cpu:
            target.numpy()[...] = following.numpy().transpose(0, 2, 1)
        else:
            target.copy_(following.transpose(1, 2))
        current, following = following, current
    return states, current.transpose(1, 2).reshape(batch, units).contiguous()
