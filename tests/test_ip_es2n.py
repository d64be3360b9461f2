"""IPReservoir (intrinsic plasticity), ES2N and the unsupervised fitting phase.

Parity with reservoirpy 0.4.2 uses the same explicit float64 arrays on both
sides (W, Win, bias; for ES2N also O), so no generator is involved:

* states agree to 1e-10 (max abs) over 1,000+ steps, before and after adaptation,
  including the state carried from one ``run`` to the next;
* the gains ``a`` and biases ``b`` after ``fit`` (3 epochs, warmup, two series
  of different lengths) agree to 1e-10 for both learning rules.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from parity_data import explicit_weights, one_torch_thread, signal  # noqa: F401

import deepreservoir as dr
from deepreservoir.errors import DataError, GraphError, ParameterError, TrainingError
from deepreservoir.kinds import FrozenWeights, Stateful, Unsupervised
from deepreservoir.nodes.es2n import ES2N
from deepreservoir.nodes.ip_reservoir import IPReservoir
from deepreservoir.training.closed_form import fit_closed_form
from deepreservoir.training.unsupervised import fit_unsupervised, unsupervised_nodes

rpy = pytest.importorskip("reservoirpy.nodes")

N, TOL = 100, 1e-10
F64 = torch.float64


def _orthogonal(n: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _ip_pair(W, Win, bias, **params):
    theirs = rpy.IPReservoir(W=W, Win=Win, bias=bias, **params)
    ours = IPReservoir(W=W, Win=Win, bias=bias, dtype=F64, **params)
    return theirs, ours


RULES = [dict(activation="tanh", mu=0.0, sigma=0.3, lr=0.6),
         dict(activation="sigmoid", mu=0.2, sigma=1.0, lr=1.0)]


# ------------------------------------------------------------------ parity: IP
@pytest.mark.parametrize("rule", RULES, ids=["tanh", "sigmoid"])
def test_ip_adaptation_and_states_match_reservoirpy(rule):
    W, Win, bias = explicit_weights(N, 2, 0.1, seed=1)
    X = signal(1_500, 2, seed=2)
    theirs, ours = _ip_pair(W, Win, bias, learning_rate=5e-3, epochs=3, **rule)
    series = [X[:450], X[450:800]]

    assert np.max(np.abs(theirs.run(X[:600]) - ours.run(X[:600]))) < TOL  # a = 1, b = 0
    theirs.reset()
    ours.reset()
    theirs.fit(series, warmup=40)
    summary = fit_unsupervised(dr.Input() >> ours, series, warmup=40)

    assert summary == {ours.name: {"samples": 410 + 310}}
    assert ours.is_adapted()
    assert np.max(np.abs(ours.a_.numpy() - theirs.a)) < TOL
    assert np.max(np.abs(ours.b_.numpy() - theirs.b)) < TOL
    assert np.max(np.abs(theirs.a - 1)) > 0.1 and np.max(np.abs(theirs.b)) > 0.1  # it moved

    theirs.reset()
    ours.reset()
    after_theirs, after_ours = theirs.run(X), ours.run(X)
    assert np.max(np.abs(after_ours - after_theirs)) < TOL
    assert np.std(after_theirs) > 0.05


def test_ip_state_carries_over_between_runs_like_reservoirpy():
    W, Win, bias = explicit_weights(N, 3, 0.1, seed=3)
    X = signal(1_200, 3, seed=4)
    theirs, ours = _ip_pair(W, Win, bias, lr=0.3, sigma=0.5, learning_rate=2e-3, epochs=2)
    theirs.fit(X[:300], warmup=20)
    fit_unsupervised(dr.Input() >> ours, X[:300], warmup=20)
    theirs.reset()
    ours.reset()

    first = np.concatenate([theirs.run(X[:700]), theirs.run(X[700:])])
    second = np.concatenate([ours.run(X[:700]), ours.run(X[700:])])
    assert np.max(np.abs(first - second)) < TOL
    stepped = np.stack([ours.step(x) for x in X[:50]])  # step continues the kept state too
    assert np.max(np.abs(stepped - theirs.run(X[:50]))) < TOL


def test_ip_per_unit_leak_rates_match_reservoirpy():
    W, Win, bias = explicit_weights(N, 1, 0.1, seed=5)
    X = signal(800, 1, seed=6)
    lr = np.linspace(0.1, 1.0, N)
    theirs, ours = _ip_pair(W, Win, bias, lr=lr, sigma=0.4, learning_rate=3e-3, epochs=2)
    theirs.fit(X[:300], warmup=10)
    fit_unsupervised(dr.Input() >> ours, X[:300], warmup=10)
    assert np.max(np.abs(ours.a_.numpy() - theirs.a)) < TOL
    theirs.reset()
    assert np.max(np.abs(theirs.run(X) - ours.run(X, reset=True))) < TOL


# --------------------------------------------------------------- parity: ES2N
@pytest.mark.parametrize("features", [1, 3])
@pytest.mark.parametrize("proximity", [0.3, "per-unit"])
def test_es2n_states_match_reservoirpy(features, proximity):
    W, Win, bias = explicit_weights(N, features, 0.1, seed=7 + features)
    O = _orthogonal(N, seed=features)
    beta = np.linspace(0.05, 1.0, N) if proximity == "per-unit" else proximity
    X = signal(2_000, features, seed=9)
    theirs = rpy.ES2N(W=W, Win=Win, O=O, bias=bias, proximity=beta)
    ours = ES2N(W=W, Win=Win, O=O, bias=bias, proximity=beta, dtype=F64)

    expected = np.concatenate([theirs.run(X[:600]), theirs.run(X[600:])])
    got = np.concatenate([ours.run(X[:600]), ours.run(X[600:])])
    assert np.max(np.abs(got - expected)) < TOL
    assert np.std(expected) > 0.05


def test_es2n_seeded_matrices_give_reservoirpy_dynamics():
    ours = ES2N(N, proximity=0.2, sr=0.9, input_scaling=0.5, bias_scaling=0.1, seed=11,
                dtype=F64)
    X = signal(1_000, 2, seed=12)
    got = ours.run(X)
    O = ours.O_.numpy()
    assert np.max(np.abs(O @ O.T - np.eye(N))) < 1e-12
    theirs = rpy.ES2N(W=ours.W_.numpy(), Win=ours.Win_.numpy(), O=O, bias=ours.bias_.numpy(),
                      proximity=0.2)
    assert np.max(np.abs(got - theirs.run(X))) < TOL


# ------------------------------------------------------------- node semantics
def test_kinds_and_seeding():
    ip, es = IPReservoir(20, seed=1), ES2N(20, seed=1)
    assert isinstance(ip, Unsupervised) and isinstance(ip, Stateful)
    assert isinstance(es, Stateful) and isinstance(es, FrozenWeights)
    assert not isinstance(es, Unsupervised)
    x = np.random.default_rng(0).standard_normal((30, 2))
    es.run(x)
    again = ES2N(20, seed=1)
    again.run(x)
    assert torch.equal(es.O_, again.O_)
    assert "O_" in es.frozen_tensors()
    assert not np.array_equal(ES2N(20, seed=2).run(x), es.run(x, reset=True))
    assert es.trains_by_gradient() is False and list(es.parameters()) == []


def test_shared_seed_gives_reservoirs_weights():
    # The new role "O" draws from its own key: W, Win and bias are Reservoir's.
    x = np.random.default_rng(1).standard_normal((40, 3))
    base = dr.Reservoir(30, lr=1.0, sr=0.8, seed=4, dtype=F64)
    es = ES2N(30, proximity=1.0, sr=0.8, seed=4, dtype=F64)
    ip = IPReservoir(30, sr=0.8, lr=1.0, seed=4, dtype=F64)
    expected = base.run(x)
    np.testing.assert_allclose(es.run(x), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ip.run(x), expected, rtol=0, atol=1e-12)  # a = 1, b = 0
    assert torch.equal(es.W_, base.W_) and torch.equal(ip.Win_, base.Win_)


@pytest.mark.parametrize("cls", [IPReservoir, ES2N])
def test_ragged_batch_matches_each_series_alone(cls):
    node = cls(40, seed=2, dtype=F64)
    rng = np.random.default_rng(3)
    series = [rng.standard_normal((n, 2)) for n in (25, 60, 41)]
    if cls is IPReservoir:
        node.run(series[0])
        node.adapt(torch.as_tensor(series[1][None]), None, 5)
    together = node.run(series, reset=True)
    for alone, got in zip(series, together, strict=True):
        np.testing.assert_allclose(got, node.run(alone, reset=True), rtol=0, atol=1e-12)
    batch = np.stack([s[:25] for s in series])
    np.testing.assert_allclose(node.run(batch, reset=True)[2], node.run(series[2][:25],
                               reset=True), rtol=0, atol=1e-12)


def test_adaptation_is_sequential_over_series_and_epochs():
    x = torch.as_tensor(np.random.default_rng(4).standard_normal((1, 80, 2)))
    twice = IPReservoir(30, epochs=2, learning_rate=1e-2, seed=5, dtype=F64)
    two_series = IPReservoir(30, epochs=1, learning_rate=1e-2, seed=5, dtype=F64)
    for node in (twice, two_series):
        node.run(x[0].numpy())
    twice.adapt(x, None, 10)
    two_series.adapt(torch.cat([x, x]), None, 10)  # the state carries on in both cases
    assert torch.equal(twice.a_, two_series.a_) and torch.equal(twice.b_, two_series.b_)


def test_warmup_steps_are_not_run():
    x = torch.as_tensor(np.random.default_rng(5).standard_normal((2, 70, 1)))
    skipped, cut = (IPReservoir(25, learning_rate=1e-2, seed=6, dtype=F64) for _ in range(2))
    for node in (skipped, cut):
        node.run(x[0].numpy())
    skipped.adapt(x, torch.tensor([70, 50]), 20)
    cut.adapt(torch.cat([x[:, 20:], torch.zeros(2, 20, 1, dtype=F64)], 1), torch.tensor([50, 30]),
              0)
    assert torch.equal(skipped.a_, cut.a_) and torch.equal(skipped.b_, cut.b_)


def test_save_load_keeps_the_adapted_gains(tmp_path):
    node = IPReservoir(20, activation="sigmoid", mu=0.3, learning_rate=1e-2, seed=7)
    model = dr.Input() >> node
    x = np.random.default_rng(6).standard_normal((100, 2))
    assert not node.is_adapted()
    fit_unsupervised(model, x, warmup=10)
    loaded = dr.load(model.save(tmp_path / "ip.dr"))
    twin = loaded.nodes[node.name]
    assert twin.is_adapted() and torch.equal(twin.a_, node.a_) and torch.equal(twin.b_, node.b_)
    assert np.array_equal(loaded.run(x, reset=True), model.run(x, reset=True))
    es = ES2N(10, proximity=np.linspace(0.2, 1, 10), seed=3)
    es_model = dr.Input() >> es
    es_model.run(x)
    es_loaded = dr.load(es_model.save(tmp_path / "es.dr"))
    assert np.array_equal(es_loaded.nodes[es.name].proximity, es.proximity)
    assert np.array_equal(es_loaded.run(x, reset=True), es_model.run(x, reset=True))


# ------------------------------------------------------------ fit_unsupervised
def test_unsupervised_phase_then_ridge():
    ip = IPReservoir(40, sigma=0.4, learning_rate=5e-3, seed=8, name="ip")
    model = ip >> dr.Ridge(1e-6, name="out")
    x = signal(300, 1, seed=13)
    y = np.roll(x, -1, axis=0)
    assert unsupervised_nodes(model) == ["ip"]
    assert fit_unsupervised(model, x, warmup=20) == {"ip": {"samples": 280}}
    assert not model.nodes["out"].built and model._state is None
    gains = ip.a_.clone()
    fit_closed_form(model, x, y, warmup=20)  # the closed-form phase that follows in fit
    assert torch.equal(ip.a_, gains) and model.nodes["out"].is_fitted()


def test_nodes_adapt_in_dataflow_order_on_adapted_inputs():
    x = signal(200, 2, seed=14)
    first, second = (IPReservoir(20, learning_rate=1e-2, seed=s, dtype=F64, name=f"ip{s}")
                     for s in (1, 2))
    fit_unsupervised(first >> second, x, warmup=5)
    ref_first, ref_second = (IPReservoir(20, learning_rate=1e-2, seed=s, dtype=F64)
                             for s in (1, 2))
    ref_first.run(x)
    ref_first.adapt(torch.as_tensor(x[None]), None, 5)
    hidden = ref_first.run(x, reset=True)
    ref_second.run(hidden)
    ref_second.adapt(torch.as_tensor(hidden[None]), None, 5)
    assert torch.equal(first.a_, ref_first.a_) and torch.equal(second.a_, ref_second.a_)


def test_reset_false_runs_upstream_from_the_kept_state():
    x = signal(240, 1, seed=15)
    models = []
    for reset in (True, False):
        reservoir = dr.Reservoir(30, lr=0.5, seed=9, dtype=F64, name="res")
        ip = IPReservoir(20, learning_rate=1e-2, seed=10, dtype=F64, name="ip")
        model = reservoir >> ip
        model.run(x[:120])
        fit_unsupervised(model, x[120:], reset=reset)
        models.append(model)
    reference = dr.Reservoir(30, lr=0.5, seed=9, dtype=F64, name="res")
    feed = (reference >> IPReservoir(20, seed=10, dtype=F64, name="ip")).states(
        x, nodes="res")["res"][120:]
    ip_ref = IPReservoir(20, learning_rate=1e-2, seed=10, dtype=F64)
    ip_ref.run(feed)
    ip_ref.adapt(torch.as_tensor(feed[None]), None, 0)
    assert torch.equal(models[1].nodes["ip"].a_, ip_ref.a_)
    assert not torch.equal(models[0].nodes["ip"].a_, ip_ref.a_)


def test_model_without_unsupervised_nodes_adapts_nothing():
    model = dr.Reservoir(10, seed=1) >> dr.Ridge()
    assert fit_unsupervised(model, np.ones((20, 1))) == {}


def test_feedback_into_an_adapted_node_is_refused():
    ip = IPReservoir(10, seed=1, name="ip")
    readout = dr.Ridge(units=1, name="out")
    model = (ip >> readout) & (ip << readout)
    with pytest.raises(GraphError, match="'ip'.*feedback"):
        fit_unsupervised(model, np.ones((20, 1)))


# ----------------------------------------------------------------- bad input
def test_bad_data_is_refused():
    node = IPReservoir(10, seed=1)
    model = dr.Input() >> node
    x = np.random.default_rng(7).standard_normal((50, 2))
    bad = x.copy()
    bad[7, 1] = np.nan
    with pytest.raises(DataError, match="finite"):
        fit_unsupervised(model, bad)
    model.run(x)
    with pytest.raises(DataError, match="NaN"):
        node.adapt(torch.as_tensor(bad[None], dtype=torch.float32), None, 0)
    with pytest.raises(DataError, match="expects 2 input features. Got 3"):
        node.adapt(torch.zeros(1, 10, 3), None, 0)
    with pytest.raises((DataError, GraphError), match="3"):
        model.run(np.zeros((10, 3)))
    with pytest.raises(DataError, match="no step"):
        fit_unsupervised(model, x, warmup=50)
    for warmup in (-1, True, 1.5):
        with pytest.raises(ParameterError, match="'warmup'"):
            fit_unsupervised(model, x, warmup=warmup)
    with pytest.raises(ParameterError, match="'reset'"):
        fit_unsupervised(model, x, reset=1)
    assert not node.is_adapted()


def test_divergence_leaves_the_gains_unchanged():
    # tanh and sigmoid bound the updates; only an absurd step overflows them.
    node = IPReservoir(10, learning_rate=1.5e308, Win=np.ones((10, 1)), seed=1, dtype=F64)
    node.run(np.ones((5, 1)))
    with pytest.raises(TrainingError, match="learning_rate"):
        node.adapt(torch.full((1, 50, 1), 3.0, dtype=F64), None, 0)
    assert torch.equal(node.a_, torch.ones(10, dtype=F64)) and not node.is_adapted()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"activation": "relu"}, "'activation' parameter of IPReservoir must be 'tanh' or 'sigm"),
    ({"activation": torch.relu}, "'activation' parameter of IPReservoir"),
    ({"activation": "identity"}, "'activation' parameter of IPReservoir"),
    ({"activation": lambda v: v}, "'activation' parameter of IPReservoir"),
    ({"activation": "sigmoid", "mu": 0.0}, "'mu' parameter of IPReservoir must be > 0"),
    ({"sigma": 0.0}, "'sigma' parameter of IPReservoir"),
    ({"learning_rate": -1e-3}, "'learning_rate' parameter of IPReservoir"),
    ({"epochs": 0}, "'epochs' parameter of IPReservoir"),
    ({"epochs": 1.5}, "'epochs' parameter of IPReservoir"),
    ({"mu": float("nan")}, "'mu' parameter of IPReservoir"),
    ({"lr": 1.5}, "'lr' parameter of IPReservoir"),
    ({"lr": [0.5, 2.0]}, "'lr' parameter of IPReservoir"),
    ({"W": np.ones((3, 4))}, "'W' parameter of IPReservoir"),
    ({"units": 5, "Win": np.ones((4, 2))}, "'Win' parameter of IPReservoir"),
])
def test_bad_ip_hyperparameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        IPReservoir(**kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"proximity": 0.0}, "'proximity' parameter of ES2N"),
    ({"proximity": 1.5}, "'proximity' parameter of ES2N"),
    ({"units": 4, "proximity": [0.5, 0.5]}, r"'proximity' parameter of ES2N .*\(4,\)"),
    ({"units": 2, "proximity": [0.5, 0.0]}, "'proximity' parameter of ES2N"),
    ({"units": 4, "O": np.eye(3)}, r"'O' parameter of ES2N must have shape \(4, 4\)"),
    ({"O": "no such family"}, "no such family"),
    ({"O": np.linalg.qr}, "'O' parameter of ES2N"),
    ({"O": 3}, "'O' parameter of ES2N"),
    ({"sr": -1.0}, "'sr' parameter of ES2N"),
    ({"W": np.ones((3, 4))}, "'W' parameter of ES2N"),
])
def test_bad_es2n_hyperparameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        ES2N(**kwargs)


def test_positional_order_is_reservoirpys():
    ip = IPReservoir(30, 0.8, 0.4, 0.1, 0.5, 1e-3, 3)
    assert (ip.sr, ip.lr, ip.mu, ip.sigma, ip.learning_rate, ip.epochs) == (
        0.8, 0.4, 0.1, 0.5, 1e-3, 3)
    es = ES2N(30, 0.2, 0.7)
    assert (es.proximity, es.sr) == (0.2, 0.7)


# ---------------------------------------------------------------- properties
@settings(max_examples=25, deadline=None)
@given(cls=st.sampled_from([IPReservoir, ES2N]), units=st.integers(1, 12),
       rate=st.floats(0.05, 1.0), steps=st.integers(1, 15), batch=st.integers(1, 3),
       seed=st.integers(0, 2**31 - 1))
def test_step_equals_run(cls, units, rate, steps, batch, seed):
    kwargs = {"lr": rate} if cls is IPReservoir else {"proximity": rate}
    node = cls(units, rc_connectivity=1.0, seed=seed, dtype=F64, **kwargs)
    x = np.random.default_rng(seed).standard_normal((batch, steps, 2))
    whole = node.run(x, reset=True)
    node.reset()
    stepped = np.stack([node.step(x[:, t]) for t in range(steps)], axis=1)
    np.testing.assert_allclose(stepped, whole, rtol=0, atol=1e-12)
