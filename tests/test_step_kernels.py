"""The time loop's kernels: measured choice, pinning, and agreement of every path.

The fused loop (:func:`deepreservoir.step_kernels.run_inplace`) computes tanh as
``2σ(2p) − 1`` and the leak with ``lerp``; it agrees with the reference loop to
rounding (the bound is derived in ``tests/test_executor.py::_rounding_bound``).
Here: every kernel gives the same states to that bound, column blocks are
bitwise equal to the whole product, and the settings behave.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import deepreservoir as dr
from deepreservoir import functional as F
from deepreservoir import step_kernels as K
from deepreservoir.errors import ParameterError


@pytest.fixture(autouse=True)
def _fresh_choices_one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the reference loops' tiny products crawl on busy threads
    K.clear_kernel_choices()
    yield
    K.clear_kernel_choices()
    torch.set_num_threads(previous)


def _contraction(units: int, density: float, seed: int, dtype=torch.float64) -> torch.Tensor:
    """A sparse W with max-norm 0.9 (so the loop contracts and rounding cannot grow)."""
    gen = torch.Generator().manual_seed(seed)
    W = torch.randn(units, units, generator=gen, dtype=torch.float64)
    W *= torch.rand(units, units, generator=gen, dtype=torch.float64) < density
    W[0, -1] = 1.0  # never all zero
    W *= 0.9 / W.abs().sum(dim=1).max()
    return W.to(dtype)


def _reference(state, drive, W, lr):
    out = []
    for t in range(drive.shape[1]):
        state = (1 - lr) * state + lr * torch.tanh(state @ W.T + drive[:, t])
        out.append(state)
    return torch.stack(out, 1)


def _bound(W, lr, dtype):
    terms = int((W != 0).sum(dim=1).max())
    return (terms + 4) * torch.finfo(dtype).eps / (lr * (1 - 0.9))


@pytest.mark.parametrize("kernel", ["csr", "dense", "bsr"])
@pytest.mark.parametrize("batch", [1, 5, 64])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_kernel_gives_the_reference_states(kernel, batch, dtype):
    W = _contraction(64, 0.1, 0, dtype)
    gen = torch.Generator().manual_seed(1)
    drive = torch.randn(batch, 40, 64, generator=gen, dtype=torch.float64).to(dtype)
    state = torch.zeros(batch, 64, dtype=dtype)
    want = _reference(state, drive, W, 0.4)
    got, final = K.run_inplace(state, drive, K.operator_for(W, kernel), 0.4, torch.tanh)
    assert float((got - want).abs().max()) <= _bound(W, 0.4, dtype)
    assert torch.equal(final, got[:, -1])


def test_column_blocks_are_bitwise_the_whole_product():
    W = K.operator_for(_contraction(96, 0.1, 2), "csr")
    drive = torch.randn(128, 30, 96, dtype=torch.float64)
    state = torch.randn(128, 96, dtype=torch.float64) * 0.1
    tail, scale = K._tail(torch.tanh, 0.3, 128 * 96, torch.float64, torch.device("cpu"))
    assert scale == 2.0  # the sigmoid form at this size
    source = K._TensorDrive(drive)
    whole = K._run_columns(state, source, W, torch.empty_like(drive), tail, scale, 128)
    blocked = K._run_columns(state, source, W, torch.empty_like(drive), tail, scale, 32)
    assert torch.equal(whole[0], blocked[0]) and torch.equal(whole[1], blocked[1])


@settings(max_examples=25, deadline=None)
@given(units=st.integers(2, 40), batch=st.integers(1, 6), steps=st.integers(1, 12),
       lr=st.floats(0.05, 1.0), seed=st.integers(0, 10_000))
def test_sigmoid_form_is_within_two_ulp_per_step(units, batch, steps, lr, seed):
    """The exact and the sigmoid form of one loop differ by at most the rounding bound."""
    W = _contraction(units, 0.5, seed)
    gen = torch.Generator().manual_seed(seed)
    drive = torch.randn(batch, steps, units, generator=gen, dtype=torch.float64) * 3
    state = torch.zeros(batch, units, dtype=torch.float64)
    operator = K.operator_for(W, "dense")
    fast, _ = K.run_inplace(state, drive, operator, lr, torch.tanh)
    with K.step_kernel(tanh="exact"):
        exact, _ = K.run_inplace(state, drive, operator, lr, torch.tanh)
    assert float((fast - exact).abs().max()) <= _bound(W, lr, torch.float64)


def test_exact_tanh_is_bitwise_the_reference_operations_for_dense_w():
    # torch.addmm of a small dense W adds the drive after the product, like mm + add.
    W = _contraction(20, 1.0, 5)
    drive = torch.randn(3, 15, 20, dtype=torch.float64)
    state = torch.zeros(3, 20, dtype=torch.float64)
    with K.step_kernel(tanh="exact"):
        got, _ = K.run_inplace(state, drive, W, 0.3, torch.tanh)
    assert torch.equal(got, _reference(state, drive, W, 0.3))


def test_the_choice_is_measured_once_per_shape_and_cached():
    W = _contraction(200, 0.05, 3, torch.float32)
    nnz = int((W != 0).sum())
    first = K.choose_kernel(W, 8, nnz)
    assert first in ("csr", "dense")
    key = ((200, 200), nnz, 8, torch.float32, "cpu", torch.get_num_threads())
    assert K.kernel_choices()[key] == first
    assert K.choose_kernel(W, 8, nnz) == first
    dense_w = _contraction(50, 1.0, 3, torch.float32)
    assert K.choose_kernel(dense_w, 8, 2500) == "dense"  # no sparse candidate at density 1


def test_a_pinned_kernel_overrides_the_measurement_and_is_restored():
    reservoir = dr.Reservoir(100, rc_connectivity=0.1, seed=1, dtype=torch.float64)
    x = np.random.default_rng(0).standard_normal((4, 30, 1))
    runs = {}
    for kernel in ("csr", "dense", "bsr"):
        with K.step_kernel(kernel):
            assert K.step_kernel_settings()["kernel"] == kernel
            runs[kernel] = reservoir.run(x, reset=True)
            layout = reservoir.recurrent_operator(4).layout
        assert layout == {"csr": torch.sparse_csr, "dense": torch.strided,
                          "bsr": torch.sparse_bsr}[kernel]
    assert K.step_kernel_settings() == {"kernel": "auto", "tanh": "sigmoid"}
    assert np.max(np.abs(runs["csr"] - runs["dense"])) < 1e-13
    assert np.max(np.abs(runs["bsr"] - runs["dense"])) < 1e-13


def test_bad_settings_name_the_parameter_and_the_choices(monkeypatch):
    with pytest.raises(ParameterError, match=r"'kernel'.*'auto', 'csr', 'dense', 'bsr'.*'fast'"):
        K.set_step_kernel("fast")
    with pytest.raises(ParameterError, match=r"'tanh'.*'sigmoid', 'exact'.*1"):
        K.set_step_kernel(tanh=1)
    monkeypatch.setenv(K.ENV_KERNEL, "sparse")
    with pytest.raises(ParameterError, match="DEEPRESERVOIR_STEP_KERNEL.*'sparse'"):
        K.step_kernel_settings()
    monkeypatch.setenv(K.ENV_KERNEL, "dense")
    assert K.choose_kernel(_contraction(30, 0.1, 0), 1, 90) == "dense"


def test_per_unit_leak_rates_take_every_path():
    W = _contraction(64, 0.1, 4)
    lr = torch.linspace(0.1, 1.0, 64, dtype=torch.float64)
    drive = torch.randn(64, 20, 64, dtype=torch.float64)
    state = torch.zeros(64, 64, dtype=torch.float64)
    want = _reference(state, drive, W, lr)
    for kernel in ("csr", "dense"):
        for batch in (1, 64):
            got, _ = K.run_inplace(state[:batch], drive[:batch], K.operator_for(W, kernel),
                                   lr, torch.tanh)
            assert float((got - want[:batch]).abs().max()) <= _bound(W, 0.1, torch.float64)


def test_functional_run_reservoir_uses_the_fused_loop_without_gradients():
    W = _contraction(30, 0.2, 6)
    drive = torch.randn(2, 10, 30, dtype=torch.float64)
    state = torch.zeros(2, 30, dtype=torch.float64)
    with torch.no_grad():
        states, _ = F.run_reservoir(state, drive, W, 0.5, torch.tanh)
        direct, _ = K.run_inplace(state, drive, W, 0.5, torch.tanh)
    assert torch.equal(states, direct)


@pytest.mark.parametrize("features", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_a_drive_from_inputs_is_the_precomputed_drive(features, bias):
    """InputDrive computes Win·u + b where the loop needs it: the same states as the
    drive computed up front, to the rounding of the input projection."""
    gen = torch.Generator().manual_seed(7)
    W = K.operator_for(_contraction(64, 0.1, 7), "csr")
    x = torch.randn(64, 25, features, generator=gen, dtype=torch.float64)
    Win = torch.randn(64, features, generator=gen, dtype=torch.float64)
    b = torch.randn(64, generator=gen, dtype=torch.float64) if bias else None
    state = torch.zeros(64, 64, dtype=torch.float64)
    drive = F.reservoir_drive(x, Win, b)
    for batch in (1, 64):
        want, _ = K.run_inplace(state[:batch], drive[:batch], W, 0.5, torch.tanh)
        got, _ = K.run_inplace(state[:batch], K.InputDrive(x[:batch], Win, b), W, 0.5,
                               torch.tanh)
        assert float((got - want).abs().max()) <= _bound(W.to_dense(), 0.5, torch.float64)


def test_every_path_of_a_reservoir_runs_with_each_pinned_kernel():
    """Step, gradient, ES2N and IP reservoirs accept the BSR (and CSR) operator too."""
    x = np.random.default_rng(1).standard_normal((3, 8, 2))
    for kernel in ("bsr", "csr", "dense"):
        with K.step_kernel(kernel):
            reservoir = dr.Reservoir(64, rc_connectivity=0.2, seed=2, dtype=dr.float64)
            states = reservoir.run(x)
            stepped = [reservoir._as_model().step(u) for u in x[:, 0]]  # B = 1 steps
            assert np.all(np.isfinite(stepped))
            batch = torch.tensor(x, requires_grad=True)
            reservoir(batch).sum().backward()  # the gradient path
            assert torch.isfinite(batch.grad).all()
            for node in (dr.ES2N(64, seed=2), dr.IPReservoir(64, seed=2)):
                assert np.all(np.isfinite(node.run(x)))
        assert states.shape == (3, 8, 64)


def test_choosing_a_kernel_leaves_the_global_generator_alone():
    W = K.operator_for(_contraction(96, 0.1, 8), "csr")
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    K.choose_kernel(_contraction(96, 0.1, 8), 64, int((W.to_dense() != 0).sum()))
    K.column_block(W, 64)
    assert torch.equal(torch.rand(1), expected)


def test_the_caller_state_is_never_written_even_with_one_unit():
    W = K.operator_for(torch.tensor([[0.5]], dtype=torch.float64), "csr")
    state = torch.tensor([[0.5], [-0.5]], dtype=torch.float64)
    before = state.clone()
    K.run_inplace(state, torch.ones(2, 4, 1, dtype=torch.float64), W, 1.0, torch.tanh)
    assert torch.equal(state, before)
