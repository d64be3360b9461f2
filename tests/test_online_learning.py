"""Online learners (RLS, LMS): parity with reservoirpy 0.4.2, batched learners, FORCE,
partial_fit, numerics and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from parity_data import explicit_weights, one_torch_thread, signal  # noqa: F401

import deepreservoir as dr
from deepreservoir.errors import DataError, GraphError, ParameterError

rpy_nodes = pytest.importorskip("reservoirpy.nodes")

STEPS = 2000
W, WIN, BIAS = explicit_weights(100, 1, 0.1, 3)
U = signal(STEPS + 1, 1, 4)
X, Y = U[:-1], U[1:]


def _theirs(kind: str, **options):
    return rpy_nodes.RLS(**options) if kind == "RLS" else rpy_nodes.LMS(**options)


def _ours(kind: str, **options):
    cls = dr.RLS if kind == "RLS" else dr.LMS
    return cls(**options, dtype=torch.float64)


OPTIONS = {"RLS": [{"alpha": 1e-3}, {"alpha": 1e-3, "forgetting": 0.999},
                   {"alpha": 0.1, "fit_bias": False}],
           "LMS": [{"learning_rate": 1e-3}, {"learning_rate": 5e-3, "fit_bias": False}]}
CASES = [(kind, options) for kind, variants in OPTIONS.items() for options in variants]


def _readout_weights(node) -> np.ndarray:
    return node.Wout_[0].T.numpy()


@pytest.mark.parametrize(("kind", "options"), CASES)
def test_fit_matches_reservoirpy_over_2000_steps(kind, options):
    theirs = _theirs(kind, **options)
    ours = _ours(kind, **options)
    rpy = rpy_nodes.Reservoir(W=W, Win=WIN, bias=BIAS, lr=0.5) >> theirs
    model = dr.Reservoir(W=W, Win=WIN, bias=BIAS, lr=0.5, dtype=torch.float64) >> ours
    rpy.fit(X, Y, warmup=10)
    model.fit(X, Y, warmup=10)
    # measured: RLS 1.1e-10 (its P reaches 1e3 entries), LMS 8e-17
    assert np.abs(_readout_weights(ours) - theirs.Wout).max() < 1e-8
    assert np.abs(ours.bias_[0].numpy() - np.ravel(theirs.bias)).max() < 1e-8
    rpy.reset()
    assert np.abs(model.run(X[:300], reset=True) - rpy.run(X[:300])).max() < 1e-8


@pytest.mark.parametrize(("kind", "options"), CASES)
def test_partial_fit_predictions_match_reservoirpy(kind, options):
    rpy = rpy_nodes.Reservoir(W=W, Win=WIN, bias=BIAS, lr=0.5) >> _theirs(kind, **options)
    model = dr.Reservoir(W=W, Win=WIN, bias=BIAS, lr=0.5, dtype=torch.float64) >> _ours(
        kind, **options)
    theirs = np.vstack([rpy.partial_fit(X[:1200], Y[:1200]), rpy.partial_fit(X[1200:], Y[1200:])])
    ours = np.vstack([model.partial_fit(X[:1200], Y[:1200]),
                      model.partial_fit(X[1200:], Y[1200:])])
    assert ours.shape == (STEPS, 1)
    assert np.abs(ours - theirs).max() < 1e-8  # measured: RLS 2.4e-12, LMS 7.8e-16


@pytest.mark.parametrize("kind", ["RLS", "LMS"])
def test_force_learning_feeds_the_readouts_own_prediction_like_reservoirpy(kind):
    """The readout's prediction goes back into the reservoir while it learns (FORCE)."""
    win = np.hstack([WIN, 0.5 * WIN])                       # [input, fed-back prediction]
    options = OPTIONS[kind][0]
    res_t, out_t = rpy_nodes.Reservoir(W=W, Win=win, bias=BIAS, lr=0.5), _theirs(kind, **options)
    res_o = dr.Reservoir(W=W, Win=win, bias=BIAS, lr=0.5, dtype=torch.float64)
    out_o = _ours(kind, **options)
    theirs = ((res_t >> out_t) & (res_t << out_t)).partial_fit(X, Y)
    ours = ((res_o >> out_o) & (res_o << out_o)).partial_fit(X, Y)
    assert np.abs(ours - theirs).max() < 1e-8              # measured: RLS 3.9e-12, LMS 8.9e-16
    assert np.abs(_readout_weights(out_o) - out_t.Wout).max() < 1e-8


def test_teacher_forcing_feeds_the_target_and_fit_restarts():
    win = np.hstack([WIN, 0.5 * WIN])
    res_t, out_t = rpy_nodes.Reservoir(W=W, Win=win, bias=BIAS, lr=0.5), rpy_nodes.RLS(alpha=1e-3)
    res_o = dr.Reservoir(W=W, Win=win, bias=BIAS, lr=0.5, dtype=torch.float64)
    out_o = dr.RLS(1e-3, dtype=torch.float64)
    rpy, ours = (res_t >> out_t) & (res_t << out_t), (res_o >> out_o) & (res_o << out_o)
    rpy.fit(X[:800], Y[:800], warmup=20)
    ours.fit(X[:800], Y[:800], warmup=20)
    first = _readout_weights(out_o)
    assert np.abs(first - out_t.Wout).max() < 1e-8                 # measured 2.9e-11
    # fit starts again from the initial weights (reservoirpy keeps the learned Wout and
    # resets only P: a documented difference)
    assert np.array_equal(_readout_weights(ours.fit(X[:800], Y[:800], warmup=20).nodes[
        "RLS-0"]), first)
    own = ours.fit(X[:800], Y[:800], warmup=20, feedback="prediction")
    assert np.abs(_readout_weights(own.nodes["RLS-0"]) - first).max() > 1e-6


@pytest.mark.parametrize("kind", ["RLS", "LMS"])
def test_a_batch_is_independent_learners_each_equal_to_its_own_fit(kind):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 300, 3))
    y = np.einsum("btf,bof->bto", x, rng.normal(size=(4, 2, 3))) + 0.01 * rng.normal(
        size=(4, 300, 2))
    batched = _ours(kind, **OPTIONS[kind][0]).fit(x, y, warmup=5)
    assert batched.learners == 4 and batched.Wout_.shape == (4, 2, 3)
    for b in range(4):
        alone = _ours(kind, **OPTIONS[kind][0]).fit(x[b], y[b], warmup=5)
        assert torch.allclose(batched.Wout_[b], alone.Wout_[0], atol=1e-12, rtol=0)
        assert np.abs(batched.run(x)[b] - alone.run(x[b])).max() < 1e-12
    with pytest.raises(DataError, match="holds 4 independent learners"):
        batched.run(x[:3])


def test_ragged_learners_stop_at_their_own_end():
    rng = np.random.default_rng(6)
    series = [rng.normal(size=(n, 2)) for n in (120, 80)]
    targets = [s @ [[1.0], [-2.0]] for s in series]
    batched = dr.RLS(1e-2, dtype=torch.float64).fit(series, targets)
    for b in range(2):
        alone = dr.RLS(1e-2, dtype=torch.float64).fit(series[b], targets[b])
        assert torch.equal(batched.Wout_[b], alone.Wout_[0])


def test_shared_learner_runs_the_series_in_turn_like_reservoirpy():
    rng = np.random.default_rng(7)
    series = [rng.normal(size=(n, 3)) for n in (150, 90, 120)]
    targets = [s @ [[0.5], [1.0], [-1.0]] + 0.1 * rng.normal(size=(len(s), 1)) for s in series]
    theirs = rpy_nodes.RLS(alpha=1e-2).fit(series, targets, warmup=4)
    ours = dr.RLS(1e-2, dtype=torch.float64).fit(series, targets, warmup=4, learners="shared")
    assert ours.learners == 1
    assert np.abs(_readout_weights(ours) - theirs.Wout).max() < 1e-10


def test_rls_p_stays_exactly_symmetric():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(3, 500, 6))
    rls = dr.RLS(1e-2, forgetting=0.99, dtype=torch.float64).fit(x, x[..., :2])
    assert torch.equal(rls.P_, rls.P_.transpose(1, 2))
    assert bool((torch.linalg.eigvalsh(rls.P_) > 0).all())


@settings(max_examples=15, deadline=None)
@given(split=st.integers(1, 59), kind=st.sampled_from(["RLS", "LMS"]))
def test_partial_fit_in_two_chunks_equals_one_chunk(split, kind):
    rng = np.random.default_rng(split)
    x, y = rng.normal(size=(60, 3)), rng.normal(size=(60, 2))
    one = _ours(kind, **OPTIONS[kind][0])
    whole = one.partial_fit(x, y)
    two = _ours(kind, **OPTIONS[kind][0])
    pieces = np.vstack([two.partial_fit(x[:split], y[:split]), two.partial_fit(x[split:],
                                                                               y[split:])])
    assert np.array_equal(whole, pieces)
    assert torch.equal(one.Wout_, two.Wout_)


def test_learners_round_trip_through_save_and_load(tmp_path):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(3, 100, 2))
    model = dr.Reservoir(20, seed=1, dtype=torch.float64) >> dr.RLS(1e-2, dtype=torch.float64)
    model.fit(x, x[..., :1])
    loaded = dr.load(model.save(tmp_path / "rls"))
    assert loaded.nodes["RLS-0"].learners == 3
    assert np.array_equal(loaded.run(x, reset=True), model.run(x, reset=True))
    continued = loaded.partial_fit(x, x[..., :1])
    assert np.array_equal(continued, model.partial_fit(x, x[..., :1]))


def test_explicit_initial_weights_in_reservoirpys_layout():
    start = np.array([[1.0], [2.0], [3.0]])
    lms = dr.LMS(1e-9, Wout=start, bias=[0.5], dtype=torch.float64)
    out = lms.run(np.eye(3))
    assert np.allclose(out[:, 0], [1.5, 2.5, 3.5])
    assert lms.input_dim == 3 and lms.output_dim == 1


@pytest.mark.parametrize(("build", "match"), [
    (lambda: dr.RLS(forgetting=0.0), "'forgetting' parameter of RLS"),
    (lambda: dr.RLS(forgetting=1.5), "'forgetting' parameter of RLS"),
    (lambda: dr.RLS(alpha=-1.0), "'alpha' parameter of RLS"),
    (lambda: dr.RLS(alpha=0.0), "'alpha' parameter of RLS"),
    (lambda: dr.LMS(learning_rate=-0.1), "'learning_rate' parameter of LMS"),
    (lambda: dr.LMS(learning_rate=float("nan")), "'learning_rate' parameter of LMS"),
    (lambda: dr.RLS(Wout=np.ones((3, 2)), output_dim=3), "output sizes given to RLS disagree"),
    (lambda: dr.RLS(Wout=np.array([[np.nan]])), "'Wout' parameter of RLS must be finite"),
    (lambda: dr.LMS(Wout=np.ones(3)), "'Wout' parameter of LMS must have 2 dimensions"),
    (lambda: dr.LMS(bias=np.ones((2, 2))), "'bias' parameter of LMS must have shape"),
    (lambda: dr.RLS(fit_bias="yes"), "'fit_bias' parameter of RLS"),
])
def test_bad_hyperparameters_are_refused(build, match):
    with pytest.raises(ParameterError, match=match):
        build()


def test_bad_data_and_options_are_refused():
    x, y = np.ones((20, 2)), np.ones((20, 1))
    rls = dr.RLS(dtype=torch.float64)
    bad_x = x.copy()
    bad_x[3, 1] = np.nan
    with pytest.raises(DataError, match="must be finite"):
        rls.fit(bad_x, y)
    bad_y = y.copy()
    bad_y[5] = np.nan
    with pytest.raises(DataError, match="hold NaN; an online learner needs a target"):
        rls.fit(x, bad_y)
    with pytest.raises(ParameterError, match="'feedback' parameter of fit must be one of"):
        rls.fit(x, y, feedback="teacher")
    with pytest.raises(ParameterError, match="'learners' parameter of fit must be one of"):
        rls.fit(x, y, learners="all")
    with pytest.raises(ParameterError, match="'epochs' parameter of fit does not apply"):
        rls.fit(x, y, epochs=3)
    with pytest.raises(ParameterError, match="'warmup' parameter of partial_fit"):
        rls.partial_fit(x, y, warmup=-1)
    with pytest.raises(ParameterError, match="'reset' parameter of partial_fit must be a bool"):
        rls.partial_fit(x, y, reset="no")
    esn = dr.Reservoir(10, seed=1) >> dr.Ridge()
    with pytest.raises(GraphError, match="partial_fit.. continues online learning"):
        esn.partial_fit(x, y)
