"""Free-running and generation: ``run(iters=n)``, ``generate(n, warmup=...)``, ``reset()``'s
return value; against step-by-step loops and against reservoirpy on the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from parity_data import explicit_weights, one_torch_thread, signal  # noqa: F401

import deepreservoir as dr
from deepreservoir.errors import DataError, NotFittedError, ParameterError

rpy_nodes = pytest.importorskip("reservoirpy.nodes")
rpy_datasets = pytest.importorskip("reservoirpy.datasets")

W, WIN, BIAS = explicit_weights(100, 1, 0.1, 11)
SERIES = rpy_datasets.mackey_glass(1600)
SERIES = (SERIES - SERIES.mean()) / SERIES.std()


@pytest.fixture(scope="module")
def trained():
    """The same ESN trained in both libraries on one-step-ahead Mackey–Glass."""
    theirs = rpy_nodes.Reservoir(W=W, Win=WIN, bias=BIAS, lr=0.3) >> rpy_nodes.Ridge(ridge=1e-5)
    ours = dr.Reservoir(W=W, Win=WIN, bias=BIAS, lr=0.3, dtype=torch.float64) >> dr.Ridge(
        1e-5, dtype=torch.float64)
    theirs.fit(SERIES[:1000], SERIES[1:1001], warmup=100)
    ours.fit(SERIES[:1000], SERIES[1:1001], warmup=100)
    return theirs, ours


def test_generate_matches_reservoirpys_hand_written_loop(trained):
    theirs, ours = trained
    warm = SERIES[1000:1200]
    theirs.reset()
    x = theirs.run(warm)[-1]
    expected = []
    for _ in range(300):
        x = theirs(x)
        expected.append(x)
    generated = ours.generate(300, warmup=warm, reset=True)
    assert generated.shape == (300, 1)
    # measured 1.4e-10 at step 1 and 9.0e-10 at step 300: the two ridge solves differ in
    # rounding (their Wout by 2.8e-7 on nearly collinear states), the loop adds nothing
    assert np.abs(generated - np.array(expected)).max() < 1e-8
    # it learned the task: 50 free steps within 0.15 of a series of standard deviation 1
    assert np.abs(generated[:50, 0] - SERIES[1201:1251, 0]).max() < 0.15


def test_generate_equals_stepping_by_hand_and_continues_from_the_kept_state(trained):
    _, ours = trained
    warm = SERIES[1000:1200]
    x = ours.run(warm, reset=True)[-1]
    by_hand = []
    for _ in range(40):
        x = ours.step(x)
        by_hand.append(x)
    assert np.array_equal(ours.generate(40, warmup=warm, reset=True), np.array(by_hand))
    more = ours.generate(10, start=by_hand[-1])
    ours.generate(40, warmup=warm, reset=True)
    assert np.array_equal(ours.generate(10, start=by_hand[-1]), more)


def test_a_batch_generates_each_series_as_it_would_alone(trained):
    _, ours = trained
    warm = [SERIES[1000:1200], SERIES[900:1150], SERIES[1100:1180]]   # ragged warmups
    together = ours.generate(60, warmup=warm, reset=True)
    assert together.shape == (3, 60, 1)
    for b, series in enumerate(warm):
        alone = ours.generate(60, warmup=series, reset=True)
        assert np.abs(together[b] - alone).max() < 1e-12
    short = torch.as_tensor(np.stack([w[:80] for w in warm[:2]]))
    tensor = ours.generate(5, warmup=short, reset=True)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (2, 5, 1)


def _closed_loop_weights():
    rng = np.random.default_rng(3)
    win = rng.uniform(-1, 1, size=(100, 1))
    wout = rng.normal(scale=0.1, size=(100, 1))
    return win, wout


def test_run_iters_free_runs_a_closed_loop_as_its_update_rule_says():
    """reservoirpy 0.4.2 cannot order this graph (its reservoir has no input), so the
    reference is the update rule in numpy."""
    win, wout = _closed_loop_weights()
    bias, lr = BIAS + 0.3, 0.4
    res = dr.Reservoir(W=W * 1.2, Win=win, bias=bias, lr=lr, dtype=torch.float64)
    readout = dr.Ridge(Wout=wout, bias=np.zeros(1), dtype=torch.float64)
    ours = (res >> readout) & (res << readout)
    ours.step(None)                                      # builds it; one step from zero
    ours.reset()
    free = ours.run(iters=200)
    state, fed, expected = np.zeros(100), np.zeros(1), []
    for _ in range(200):
        state = (1 - lr) * state + lr * np.tanh(W * 1.2 @ state + win @ fed + bias)
        fed = state @ wout
        expected.append(fed)
    assert free.shape == (200, 1)
    assert np.abs(free - np.array(expected)).max() < 1e-12
    ours.reset()
    stepped = np.array([ours.step(None) for _ in range(200)])
    assert np.array_equal(free, stepped)


def test_reset_returns_the_previous_state():
    res = dr.Reservoir(30, seed=2, dtype=torch.float64)
    assert res.reset() is None                            # nothing kept yet
    states = res.run(np.ones((5, 1)))
    previous = res.reset()
    assert np.array_equal(previous, states[-1])
    assert res.reset() is None
    model = dr.Input() >> res >> dr.Ridge(Wout=np.ones((30, 1)), dtype=torch.float64)
    model.run(np.ones((2, 4, 1)))
    kept = model.reset()
    assert set(kept) == {"Reservoir-0"} and kept["Reservoir-0"].shape == (2, 30)
    assert model.reset() == {}


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 30), steps=st.integers(5, 60))
def test_generating_n_then_m_equals_generating_n_plus_m(trained, n, steps):
    _, ours = trained
    warm = SERIES[1000:1000 + steps]
    whole = ours.generate(n + 7, warmup=warm, reset=True)
    first = ours.generate(n, warmup=warm, reset=True)
    rest = ours.generate(7, start=first[-1])
    assert np.array_equal(np.vstack([first, rest]), whole)


def test_bad_generation_requests_are_refused(trained):
    _, ours = trained
    warm = SERIES[1000:1100]
    for bad in (0, -3, 2.5, "10", True):
        with pytest.raises(ParameterError, match="'n' parameter of generate must be an int"):
            ours.generate(bad, warmup=warm)
    with pytest.raises(DataError, match="exactly one of 'warmup'"):
        ours.generate(5)
    with pytest.raises(DataError, match="exactly one of 'warmup'"):
        ours.generate(5, warmup=warm, start=warm[-1])
    with pytest.raises(DataError, match="must be finite"):
        ours.generate(5, start=np.array([np.nan]))
    with pytest.raises(ParameterError, match="'reset' parameter of generate"):
        ours.generate(5, warmup=warm, reset=1)
    wide = dr.Reservoir(20, seed=1) >> dr.Ridge()
    wide.fit(np.ones((30, 2)), np.ones((30, 1)))
    with pytest.raises(DataError, match="feeds output 'Ridge-0' .1 features. back into input "
                                        "'Reservoir-0', which takes 2"):
        wide.generate(3, warmup=np.ones((10, 2)))
    with pytest.raises(NotFittedError):
        (dr.Reservoir(20, seed=1) >> dr.Ridge()).generate(3, warmup=warm)
    two = dr.Reservoir(10, seed=1) & dr.Reservoir(10, seed=2)
    with pytest.raises(DataError, match="one input node and one output node"):
        two.generate(3, warmup=warm)


def test_bad_free_run_requests_are_refused(trained):
    _, ours = trained
    with pytest.raises(DataError, match=r"input node\(s\) \[.Reservoir-0.\] take external data"):
        ours.run(iters=5)
    with pytest.raises(DataError, match="not both"):
        ours.run(SERIES[:10], iters=5)
    with pytest.raises(DataError, match="needs data X, or iters="):
        ours.run()
    win, wout = _closed_loop_weights()
    fresh = dr.Reservoir(W=W, Win=win, dtype=torch.float64)
    readout = dr.Ridge(Wout=wout, dtype=torch.float64)
    closed = (fresh >> readout) & (fresh << readout)
    with pytest.raises(NotFittedError, match="needs a built model"):
        closed.run(iters=3)
    for bad in (0, "3", 1.5):
        with pytest.raises(ParameterError, match="'iters' parameter of run"):
            closed.run(iters=bad)

