"""Numerical parity with the reference implementation, reservoirpy 0.4.2.

Both libraries are built from the *same explicit numpy arrays* (``W`` (N, N),
``Win`` (N, F), ``bias`` (N,)), so no random generator is involved and any
difference comes from the update rule, the state semantics or the solver:

* reservoir states, float64, 2,000 steps: agree to 1e-10 (max abs);
* an ESN (Reservoir >> Ridge) fitted with warmup and run on a test part:
  predictions agree to 1e-8, the fitted readout to a tolerance derived from the
  conditioning of the normal equations (see :func:`test_esn_ridge_matches_reservoirpy`).

State semantics checked on both sides: a fresh node starts from the zero
state; ``run`` continues from the state the previous call left; ``fit`` of a
model runs the reservoir from its current (here: zero) state and leaves it at
the end of the training data, so the following ``run`` on the test part
continues from there.

Run with ``pytest tests/test_parity_reservoirpy.py`` (a few seconds).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from parity_data import explicit_weights, one_torch_thread  # noqa: F401

import deepreservoir as dr

rpy_nodes = pytest.importorskip("reservoirpy.nodes")

N_UNITS = 100
STEPS = 2_000
STATE_TOL = 1e-10


def _signal(steps: int, features: int, seed: int) -> np.ndarray:
    """A deterministic multi-sine input with a little noise, shape (steps, features)."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    freqs = 0.01 + 0.02 * np.arange(1, features + 1)[None, :]
    return np.sin(freqs * t) + 0.3 * np.sin(0.37 * freqs * t + 1.0) \
        + 0.1 * rng.standard_normal((steps, features))


def _ours(W, Win, bias, lr):
    return dr.Reservoir(W.shape[0], lr=lr, W=W, Win=Win, bias=bias, dtype=torch.float64)


def _theirs(W, Win, bias, lr):
    return rpy_nodes.Reservoir(W=W, Win=Win, bias=bias, lr=lr)


@pytest.mark.parametrize("features", [1, 3])
@pytest.mark.parametrize("lr", [1.0, 0.3])
@pytest.mark.parametrize("density", [1.0, 0.1], ids=["dense-W", "sparse-W"])
def test_reservoir_states_match_reservoirpy(features, lr, density):
    # density 0.1 makes our CPU reservoir step with a sparse CSR W; 1.0 keeps it dense.
    W, Win, bias = explicit_weights(N_UNITS, features, density, seed=features)
    X = _signal(STEPS, features, seed=10 + features)

    theirs = _theirs(W, Win, bias, lr).run(X)
    ours = _ours(W, Win, bias, lr).run(X)

    assert ours.dtype == np.float64
    assert ours.shape == theirs.shape == (STEPS, N_UNITS)
    assert np.max(np.abs(ours - theirs)) < STATE_TOL
    # The comparison is not vacuous: the states move and are not saturated.
    assert 0.05 < np.std(theirs) < 0.9


@pytest.mark.parametrize("lr", [1.0, 0.3])
def test_state_carries_over_between_runs_like_reservoirpy(lr):
    W, Win, bias = explicit_weights(N_UNITS, 2, 0.1, seed=3)
    X = _signal(STEPS, 2, seed=4)
    theirs_node, ours_node = _theirs(W, Win, bias, lr), _ours(W, Win, bias, lr)

    theirs = np.concatenate([theirs_node.run(X[:700]), theirs_node.run(X[700:])])
    ours = np.concatenate([ours_node.run(X[:700]), ours_node.run(X[700:])])
    assert np.max(np.abs(ours - theirs)) < STATE_TOL

    # reset() on both sides goes back to the zero state.
    theirs_node.reset()
    ours_node.reset()
    assert np.max(np.abs(ours_node.run(X[:300]) - theirs_node.run(X[:300]))) < STATE_TOL


def test_batch_matches_reservoirpy_series_by_series():
    # Our batch axis is real (one matrix product per step for all series);
    # reservoirpy runs each series of a 3-D array from the same initial state.
    W, Win, bias = explicit_weights(N_UNITS, 3, 0.1, seed=5)
    X = np.stack([_signal(STEPS, 3, seed=s) for s in range(4)])  # (4, T, 3)

    theirs = np.asarray(_theirs(W, Win, bias, 0.3).run(X))
    ours = _ours(W, Win, bias, 0.3).run(X)

    assert ours.shape == theirs.shape == (4, STEPS, N_UNITS)
    assert np.max(np.abs(ours - theirs)) < STATE_TOL


def test_ragged_list_matches_reservoirpy():
    W, Win, bias = explicit_weights(N_UNITS, 1, 0.1, seed=6)
    X = [_signal(n, 1, seed=n) for n in (500, 1_200, 800)]

    theirs = _theirs(W, Win, bias, 0.5).run(X)
    ours = _ours(W, Win, bias, 0.5).run(X)

    assert isinstance(ours, list) and len(ours) == 3
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        assert np.max(np.abs(a - b)) < STATE_TOL


@pytest.mark.parametrize(("features", "lr"), [(1, 1.0), (3, 0.3)])
def test_esn_ridge_matches_reservoirpy(features, lr):
    W, Win, bias = explicit_weights(N_UNITS, features, 0.1, seed=20 + features)
    X = _signal(STEPS + 1, features, seed=30 + features)
    # Two targets: one-step-ahead of the first feature, and a nonlinear mix.
    Y = np.column_stack([X[1:, 0], np.tanh(X[:-1].sum(axis=1)) * X[1:, -1]])
    X = X[:-1]
    n_train, warmup = 1_500, 100
    X_train, Y_train, X_test = X[:n_train], Y[:n_train], X[n_train:]

    reservoir, readout = _theirs(W, Win, bias, lr), rpy_nodes.Ridge(ridge=1e-6)
    theirs_model = reservoir >> readout
    theirs_model.fit(X_train, Y_train, warmup=warmup)
    theirs = theirs_model.run(X_test)  # continues from the end of training

    ours_reservoir = _ours(W, Win, bias, lr)
    ours_readout = dr.Ridge(ridge=1e-6, dtype=torch.float64)
    ours_model = ours_reservoir >> ours_readout
    ours_model.fit(X_train, Y_train, warmup=warmup)  # from zero states, like a fresh reservoirpy
    ours = ours_model.run(X_test)  # reset=False: continues from the end of training

    # Both sides solve (C + λI) Wᵀ = D, C the centred Gram matrix of the training
    # states, in float64 with λ = 1e-6: reservoirpy with scipy's symmetric LDLᵀ solve,
    # we with a Cholesky factorisation, after accumulating C and D with different
    # BLAS calls. That is a linear solve of an ill-conditioned system (κ = cond(C + λI)
    # is about 1e7 to 1e9 here), so rounding differences of order eps in C and D are
    # amplified up to κ·eps in the weights: a fixed 1e-10 would test the BLAS, not us.
    # The predictions W·x + b are far better conditioned than W itself (the weight
    # error lies along directions in which the states hardly vary), so they are
    # compared at a fixed 1e-8 (measured: ~1e-9 at κ ≈ 3e8, ~1e-10 at κ ≈ 7e6); the
    # weights and bias get the forward-error bound 10·κ·eps, relative to their norm.
    assert ours.shape == theirs.shape == (len(X_test), 2)
    assert np.max(np.abs(ours - theirs)) < 1e-8

    states = _ours(W, Win, bias, lr).run(X_train)[warmup:]
    centred = states - states.mean(axis=0)
    kappa = np.linalg.cond(centred.T @ centred + 1e-6 * np.eye(N_UNITS))
    weight_tol = 10 * kappa * np.finfo(np.float64).eps

    theirs_W = np.asarray(readout.Wout).T  # reservoirpy stores Wout as (features, outputs)
    ours_W = ours_readout.Wout_.numpy()
    assert ours_W.shape == theirs_W.shape == (2, N_UNITS)
    assert np.linalg.norm(ours_W - theirs_W) <= weight_tol * np.linalg.norm(theirs_W), kappa
    theirs_b = np.ravel(readout.bias)
    assert np.linalg.norm(ours_readout.bias_.numpy() - theirs_b) \
        <= weight_tol * max(np.linalg.norm(theirs_b), 1.0), kappa

    # The fit is meaningful (a real readout, not a degenerate solution)...
    assert np.sqrt(np.mean((theirs[:, 0] - Y[n_train:, 0]) ** 2)) < 0.3 * np.std(Y[:, 0])
    # ...and "run continues from the end of training" matters: from a zero state the
    # first predictions differ far beyond the tolerance.
    assert np.max(np.abs(ours_model.run(X_test, reset=True)[:10] - theirs[:10])) > 1e-4


@pytest.mark.parametrize("kernel", ["csr", "dense"])
@pytest.mark.parametrize("density", [0.1, 0.3])
def test_large_batch_matches_reservoirpy_series_by_series(density, kernel):
    # B = 20 series in one (N, N) by (N, B) product per step, with each product kernel
    # pinned (the automatic choice measures them and picks one).
    from deepreservoir.step_kernels import step_kernel

    W, Win, bias = explicit_weights(N_UNITS, 1, density, seed=8)
    X = np.stack([_signal(500, 1, seed=s) for s in range(20)])  # (20, 500, 1)
    ours_node = _ours(W, Win, bias, 0.3)
    with step_kernel(kernel):
        ours = ours_node.run(X)
        layout = ours_node.recurrent_operator(20).layout
    assert layout == (torch.sparse_csr if kernel == "csr" else torch.strided)

    theirs = np.asarray(_theirs(W, Win, bias, 0.3).run(X))
    assert ours.shape == theirs.shape == (20, 500, N_UNITS)
    assert np.max(np.abs(ours - theirs)) < STATE_TOL


def test_benchmark_sized_reservoir_matches_reservoirpy():
    # The size of the speed benchmark: N = 1000 at 10 % density, 2,000 steps.
    rng = np.random.default_rng(9)
    W = rng.standard_normal((1000, 1000)) * (rng.random((1000, 1000)) < 0.1)
    W *= 0.9 / np.sqrt(0.1 * 1000)  # spectral radius about 0.9 (circular law), no eigvals
    Win = rng.uniform(-0.5, 0.5, size=(1000, 1)) * (rng.random((1000, 1)) < 0.1)
    bias = rng.uniform(-0.2, 0.2, size=1000)
    X = _signal(STEPS, 1, seed=11)
    theirs = _theirs(W, Win, bias, 0.3).run(X)
    ours = _ours(W, Win, bias, 0.3).run(X)
    assert np.max(np.abs(ours - theirs)) < STATE_TOL
    assert 0.05 < np.std(theirs) < 0.9
