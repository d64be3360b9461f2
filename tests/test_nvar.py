"""NVAR: the feature layout, batches and state, and parity with reservoirpy 0.4.2's ``NVAR``.

Parity is checked against reservoirpy itself, in float64, on the same explicit data:

* features, single series, every (delay, order, strides, F) case below: max abs
  difference measured 0.0 (bitwise equal), asserted < 1e-12;
* a batch, series by series against a fresh reservoirpy node per series: 0.0;
* ``run`` twice (the store carries over) against reservoirpy ``run`` twice: 0.0;
* ``NVAR >> Ridge`` on Lorenz: see the two tests at the end for what the
  readout's conditioning allows (measured 2.5e-10 and 3.4e-7).

Deliberate differences from reservoirpy: each series of a batch starts from an
empty store (reservoirpy 0.4.2 runs a batch's series one after the other and
carries its store from one series into the next), and ``reset()`` empties the
store (reservoirpy's ``reset`` leaves it). ``delay`` and ``order`` default to 2.
"""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from parity_data import one_torch_thread, signal  # noqa: F401

import deepreservoir as dr
from deepreservoir.errors import DataError, ParameterError

rpy_nodes = pytest.importorskip("reservoirpy.nodes")

CASES = [(1, 1, 1, 1), (2, 2, 1, 3), (2, 3, 1, 2), (3, 2, 2, 2), (4, 2, 3, 1), (1, 3, 2, 4),
         (2, 4, 1, 2), (3, 1, 1, 3)]
IDS = [f"k{k}-n{n}-s{s}-F{f}" for k, n, s, f in CASES]
PARITY_TOL = 1e-12


def _ours(delay, order, strides=1, **options):
    return dr.NVAR(delay, order, strides, dtype=torch.float64, **options)


# ------------------------------------------------------------------ layout
@pytest.mark.parametrize(("delay", "order", "strides", "features"), CASES, ids=IDS)
def test_output_size(delay, order, strides, features):
    expected = delay * features + comb(delay * features + order - 1, order)
    node = _ours(delay, order, strides, input_dim=features)
    assert node.output_dim == expected  # known before any data
    assert node.run(np.ones((5, features))).shape == (5, expected)


def test_feature_layout_by_hand():
    # x[t] = (a, b), x[t-1] = (c, d): linear (a, b, c, d), then the ten quadratic
    # monomials in combinations-with-replacement order.
    x = np.array([[3.0, 5.0], [2.0, 7.0]])
    c, d, a, b = x.ravel()
    y = _ours(2, 2).run(x)
    assert np.array_equal(y[0], [c, d, 0, 0, c * c, c * d, 0, 0, d * d, 0, 0, 0, 0, 0])
    assert np.array_equal(y[1], [a, b, c, d, a * a, a * b, a * c, a * d, b * b, b * c,
                                 b * d, c * c, c * d, d * d])


def test_strides_skip_inputs():
    x = np.arange(1.0, 8.0)[:, None]  # 1, 2, ..., 7
    linear = _ours(3, 1, 2).run(x)[:, :3]  # order 1: the monomials repeat the linear part
    assert np.array_equal(linear[-1], [7.0, 5.0, 3.0])
    assert np.array_equal(linear[2], [3.0, 1.0, 0.0])  # zeros before the first input


# ------------------------------------------------------------------ parity
@pytest.mark.parametrize(("delay", "order", "strides", "features"), CASES, ids=IDS)
def test_features_match_reservoirpy(delay, order, strides, features):
    X = signal(300, features, seed=features)
    theirs = rpy_nodes.NVAR(delay, order, strides).run(X)
    ours = _ours(delay, order, strides).run(X)
    assert ours.dtype == np.float64 and ours.shape == theirs.shape
    assert np.max(np.abs(ours - theirs)) < PARITY_TOL  # measured: 0.0 in every case
    assert np.std(theirs) > 0.1  # not vacuous


@pytest.mark.parametrize(("delay", "order", "strides", "features"), CASES[1:5], ids=IDS[1:5])
def test_batch_matches_reservoirpy_series_by_series(delay, order, strides, features):
    X = np.stack([signal(120, features, seed=s) for s in range(5)])  # (5, 120, F)
    ours = _ours(delay, order, strides).run(X)
    for b in range(5):  # a fresh reservoirpy node per series (see the module docstring)
        theirs = rpy_nodes.NVAR(delay, order, strides).run(X[b])
        assert np.max(np.abs(ours[b] - theirs)) < PARITY_TOL  # measured: 0.0
    ragged = [X[0, :120], X[1, :37], X[2, :1], X[3, :90]]
    for series, out in zip(ragged, _ours(delay, order, strides).run(ragged)):
        theirs = rpy_nodes.NVAR(delay, order, strides).run(series)
        assert np.max(np.abs(out - theirs)) < PARITY_TOL  # measured: 0.0


@pytest.mark.parametrize(("delay", "order", "strides", "features"), CASES[2:6], ids=IDS[2:6])
def test_store_carries_over_between_runs_like_reservoirpy(delay, order, strides, features):
    X = signal(200, features, seed=7)
    theirs_node, ours_node = rpy_nodes.NVAR(delay, order, strides), _ours(delay, order, strides)
    theirs = np.concatenate([theirs_node.run(X[:83]), theirs_node.run(X[83:])])
    ours = np.concatenate([ours_node.run(X[:83]), ours_node.run(X[83:])])
    assert np.max(np.abs(ours - theirs)) < PARITY_TOL  # measured: 0.0
    if delay > 1:  # the kept store matters: from an empty one the first rows differ
        assert not np.array_equal(ours_node.run(X[83:], reset=True), ours[83:])


def test_reset_empties_the_store():
    X = signal(50, 2, seed=1)
    node = _ours(3, 2)
    first = node.run(X)
    node.reset()
    assert np.array_equal(node.run(X), first)


# --------------------------------------------------------- batches and state
def test_chunked_ragged_fit_equals_one_pass():
    # Chunks of time hand the store from one chunk to the next, series of
    # length 0 within a chunk included.
    rng = np.random.default_rng(0)
    xs = [rng.uniform(-1, 1, size=(n, 2)) for n in (80, 23, 61)]
    ys = [np.roll(x, -1, axis=0) for x in xs]
    whole = (_ours(3, 2, 2) >> dr.Ridge(1e-6, dtype=torch.float64)).fit(xs, ys, warmup=5)
    chunked = (_ours(3, 2, 2) >> dr.Ridge(1e-6, dtype=torch.float64))
    chunked.fit(xs, ys, warmup=5, chunk_size=17)
    for a, b in zip(whole.run(xs, reset=True), chunked.run(xs, reset=True)):
        assert np.max(np.abs(a - b)) < 1e-10


def test_ragged_batch_in_a_feedback_loop():
    # The feedback loop makes the executor step through time, masking states.
    reservoir = dr.Reservoir(5, seed=0, dtype=torch.float64)
    nvar = _ours(2, 2, input_dim=5)  # a fed-back node needs a known output size
    model = (reservoir >> nvar) & (reservoir << nvar)
    rng = np.random.default_rng(1)
    xs = [rng.uniform(-1, 1, size=(n, 2)) for n in (9, 3, 6)]
    for out, series in zip(model.run(xs, reset=True), xs):
        assert np.max(np.abs(out - model.run(series, reset=True))) < 1e-12


def test_dtype_and_gradients():
    node = dr.NVAR(2, 2)
    assert node.run(np.ones((4, 2))).dtype == np.float32
    x = torch.randn(2, 6, 3, dtype=torch.float32, requires_grad=True)
    y = dr.NVAR(2, 3)(x)
    assert y.shape == (2, 6, 6 + comb(8, 3))
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@settings(max_examples=40, deadline=None)
@given(delay=st.integers(1, 4), order=st.integers(1, 3), strides=st.integers(1, 3),
       features=st.integers(1, 3), lengths=st.lists(st.integers(1, 12), min_size=1, max_size=4),
       seed=st.integers(0, 2**16))
def test_ragged_equals_alone_and_step_equals_run(delay, order, strides, features, lengths,
                                                 seed):
    rng = np.random.default_rng(seed)
    xs = [rng.uniform(-1, 1, size=(n, features)) for n in lengths]
    node = _ours(delay, order, strides)
    batch = node.run(xs, reset=True)
    for series, out in zip(xs, batch):
        alone = node.run(series, reset=True)
        assert np.array_equal(out, alone)
        node.reset()
        stepped = np.stack([node.step(x) for x in series])
        np.testing.assert_allclose(stepped, alone, rtol=0, atol=1e-12)


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize(("name", "value", "shown"), [
    ("delay", 0, "0"), ("order", -1, "-1"), ("strides", 0, "0"), ("order", 1.5, "1.5"),
    ("delay", True, "True"), ("strides", "2", "'2'")])
def test_bad_hyperparameters(name, value, shown):
    with pytest.raises(ParameterError,
                       match=rf"The '{name}' parameter of NVAR must be an int >= 1\. "
                             rf"Got {shown}\."):
        dr.NVAR(**{name: value})


def test_wrong_feature_count_after_build():
    node = dr.NVAR(2, 2)
    node.run(np.ones((5, 3)))
    with pytest.raises(DataError, match=r"must have 3 features \(last axis\)\. Got 2"):
        node.run(np.ones((5, 2)))
    with pytest.raises(DataError, match=r"must have 4 features \(last axis\)\. Got 3"):
        dr.NVAR(2, 2, input_dim=4).run(np.ones((5, 3)))


def test_non_finite_input():
    x = np.ones((6, 2))
    x[4, 1] = np.nan
    with pytest.raises(DataError, match=r"'X' argument must be finite.*\(4, 1\)"):
        dr.NVAR(2, 2).run(x)


# ------------------------------------------------------- NVAR >> Ridge, Lorenz
def _lorenz_models(X, n_train, warmup):
    Xi, dXi = X[:n_train], X[1:n_train + 1] - X[:n_train]
    theirs = rpy_nodes.NVAR(2, 2, 1) >> rpy_nodes.Ridge(ridge=2.5e-6)
    theirs.fit(Xi, dXi, warmup=warmup)
    ours = _ours(2, 2, 1) >> dr.Ridge(2.5e-6, dtype=torch.float64)
    ours.fit(Xi, dXi, warmup=warmup)
    test = X[n_train:-1]  # both continue from the store left by fit
    return ours.run(test), theirs.run(test)


@pytest.fixture(scope="module")
def lorenz_series():
    from reservoirpy.datasets import lorenz

    return lorenz(5400, x0=[17.677, 12.931, 43.914], h=0.025, method="RK23")


def test_nvar_ridge_matches_reservoirpy_on_standardised_lorenz(lorenz_series):
    # Standardised inputs keep the quadratic features O(1): cond(C + λI) ≈ 2.8e9 for
    # the centred Gram matrix C of the 400 training rows. Measured: 2.5e-10.
    X = (lorenz_series - lorenz_series.mean(0)) / lorenz_series.std(0)
    ours, theirs = _lorenz_models(X, 600, 200)
    assert np.max(np.abs(ours - theirs)) < 1e-8
    assert np.std(theirs) > 0.05


def test_nvar_ridge_matches_reservoirpy_in_the_tutorial_setting(lorenz_series):
    # reservoirpy's NVAR example: raw Lorenz (z ≈ 25, squares up to ≈ 2e3), ridge
    # 2.5e-6, 400 training rows after a warmup of 200. The features both readouts
    # receive are bitwise equal, but cond(C + λI) ≈ 8e13, so the two solvers
    # (scipy's symmetric solve there, a Cholesky solve here, after accumulating XᵀX
    # with different BLAS calls) differ by rounding amplified by κ. Measured: 3.4e-7
    # on differences up to ≈ 9 in size; a 60-digit solve of the same float64 features
    # is 1.7e-7 from theirs and 5.1e-7 from ours, so neither is "the" answer to 1e-8.
    X = lorenz_series
    features = _ours(2, 2).run(X[:600])
    assert np.array_equal(features, rpy_nodes.NVAR(2, 2, 1).run(X[:600]))
    ours, theirs = _lorenz_models(X, 600, 200)
    assert np.max(np.abs(ours - theirs)) < 1e-6
    target = X[601:] - X[600:-1]
    assert np.sqrt(np.mean((theirs - target) ** 2)) / np.ptp(target) < 1e-3
