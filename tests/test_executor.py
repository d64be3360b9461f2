"""The executor: layouts, batching, ragged data, state, delays, feedback, fitting."""

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir import functional as F
from deepreservoir.graph import Edge


def _series(steps=80, features=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(steps, features))


def _reference_states(reservoir, inputs):
    """States by the textbook recurrence in float64 numpy, for comparison."""
    W = reservoir.W_.double().numpy()
    Win = reservoir.Win_.double().numpy()
    b = reservoir.bias_.double().numpy()
    x = np.zeros(reservoir.units)
    out = []
    for u in inputs:
        x = (1 - reservoir.lr) * x + reservoir.lr * np.tanh(W @ x + Win @ u + b)
        out.append(x)
    return np.array(out)


def test_reservoir_matches_textbook_recurrence():
    reservoir = dr.Reservoir(40, sr=0.8, lr=0.4, bias_scaling=0.2, seed=3, dtype=torch.float64)
    data = _series(120, 2)
    states = reservoir.run(data)
    np.testing.assert_allclose(states, _reference_states(reservoir, data), atol=1e-12)


def test_spectral_radius_of_generated_matrix():
    reservoir = dr.Reservoir(200, sr=1.25, seed=5, dtype=torch.float64)
    reservoir.run(_series(2))
    radius = np.abs(np.linalg.eigvals(reservoir.W_.numpy())).max()
    assert radius == pytest.approx(1.25, rel=1e-10)
    assert reservoir.W_scale_ is not None and reservoir.W_fingerprint_ is not None


def test_connectivity_of_generated_matrices():
    reservoir = dr.Reservoir(300, rc_connectivity=0.05, input_connectivity=0.5, seed=5)
    reservoir.run(_series(2, 4))
    density = float((reservoir.W_ != 0).float().mean())
    input_density = float((reservoir.Win_ != 0).float().mean())
    assert abs(density - 0.05) < 4 * np.sqrt(0.05 * 0.95 / 300**2)
    assert abs(input_density - 0.5) < 4 * np.sqrt(0.25 / 1200)
    assert set(torch.unique(reservoir.Win_).tolist()) <= {-1.0, 0.0, 1.0}


def test_explicit_arrays_are_used_as_is():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(6, 6)) * 0.3
    Win = rng.normal(size=(6, 2))
    bias = rng.normal(size=6)
    reservoir = dr.Reservoir(6, W=W, Win=Win, bias=bias, sr=0.5, dtype=torch.float64)
    reservoir.run(_series(3, 2))
    np.testing.assert_array_equal(reservoir.W_.numpy(), W)
    np.testing.assert_array_equal(reservoir.Win_.numpy(), Win)
    np.testing.assert_array_equal(reservoir.bias_.numpy(), bias)


def test_numpy_in_numpy_out_and_torch_in_torch_out():
    reservoir = dr.Reservoir(8, seed=0)
    out_np = reservoir.run(_series(5), reset=True)
    out_torch = reservoir.run(torch.as_tensor(_series(5)), reset=True)
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    assert isinstance(out_torch, torch.Tensor) and out_torch.dtype == torch.float32
    np.testing.assert_array_equal(out_np, out_torch.numpy())


def test_float64_model():
    model = (dr.Reservoir(20, seed=1) >> dr.Ridge(1e-8)).double()
    data = _series(100)
    model.fit(data[:-1], data[1:], warmup=10)
    out = model.run(data, reset=True)
    assert out.dtype == np.float64


def test_to_float64_after_build_converts_frozen_buffers():
    reservoir = dr.Reservoir(20, seed=1)
    reservoir.run(_series(10))
    reservoir.double()
    assert reservoir.W_.dtype == torch.float64 and reservoir.dtype == torch.float64
    assert reservoir.run(_series(10), reset=True).dtype == np.float64


def test_state_carries_across_calls():
    reservoir = dr.Reservoir(30, lr=0.5, seed=2)
    data = _series(100)
    whole = reservoir.run(data, reset=True)
    first = reservoir.run(data[:37], reset=True)
    second = reservoir.run(data[37:])
    np.testing.assert_allclose(np.concatenate([first, second]), whole, atol=1e-6)
    reservoir.reset()
    np.testing.assert_allclose(reservoir.run(data[:37]), first, atol=0)


def test_ragged_batch_equals_separate_runs():
    reservoir = dr.Reservoir(25, lr=0.6, seed=4)
    pieces = [_series(n, 2, seed=n) for n in (30, 12, 21)]
    ragged = reservoir.run(pieces, reset=True)
    assert [p.shape for p in ragged] == [(30, 25), (12, 25), (21, 25)]
    for piece, out in zip(pieces, ragged):
        np.testing.assert_allclose(out, reservoir.run(piece, reset=True), atol=1e-6)


def test_ragged_final_state_is_last_valid_state():
    reservoir = dr.Reservoir(10, seed=4)
    pieces = [_series(9, seed=1), _series(4, seed=2)]
    reservoir.run(pieces, reset=True)
    state = reservoir._as_model()._state.nodes[reservoir.name]
    alone = reservoir.run(pieces[1], reset=True)
    np.testing.assert_allclose(state[1].numpy(), alone[-1], atol=1e-6)


def test_feedforward_samples_in_one_pass():
    model = dr.Input() >> dr.Activation("relu")
    data = np.array([[-1.0, 2.0], [3.0, -4.0]])
    np.testing.assert_array_equal(model.run(data), np.maximum(data, 0).astype(np.float32))


def test_fan_in_concatenates_in_list_order():
    left, right = dr.Input(name="left"), dr.Activation("relu", name="relu")
    out = ([left, right] >> dr.Identity(name="sink")).run(np.array([[-1.0], [2.0]]))
    np.testing.assert_array_equal(out, np.array([[-1.0, 0.0], [2.0, 2.0]], dtype=np.float32))


def test_fan_out_returns_dict():
    model = dr.Input(name="in") >> [dr.Tanh(name="t"), dr.ReLU(name="r")]
    out = model.run(np.array([[-1.0], [1.0]]))
    assert set(out) == {"t", "r"}
    np.testing.assert_allclose(out["t"], np.tanh([[-1.0], [1.0]]), rtol=1e-6)


def test_delayed_edge_shifts_by_k_steps():
    model = dr.Input(name="in") >> 2 >> dr.Identity(name="out")
    data = np.arange(1.0, 6.0)[:, None]
    np.testing.assert_array_equal(model.run(data)[:, 0], [0, 0, 1, 2, 3])
    # the buffer carries the last k values into the next call
    np.testing.assert_array_equal(model.run(data)[:, 0], [4, 5, 1, 2, 3])


def test_delayed_edge_ragged_buffer():
    model = dr.Input(name="in") >> 1 >> dr.Identity(name="out")
    model.run([np.array([[1.0], [2.0], [3.0]]), np.array([[7.0]])])
    nxt = model.run([np.array([[0.0]]), np.array([[0.0]])])
    assert [float(x[0, 0]) for x in nxt] == [3.0, 7.0]


def test_feedback_loop_steps_and_matches_manual_recurrence():
    """reservoir << readout: the reservoir sees [u(t), y(t-1)]."""
    reservoir = dr.Reservoir(15, seed=8, dtype=torch.float64, name="res")
    readout = dr.Ridge(1e-6, name="out", dtype=torch.float64)
    model = (reservoir >> readout) & (reservoir << readout)
    data = _series(60)
    model.fit(data[:-1], data[1:], warmup=5)
    outputs = model.run(data[:20], reset=True)
    # manual: the same weights stepped by hand
    W, Win = reservoir.W_.numpy(), reservoir.Win_.numpy()
    Wout, b = readout.Wout_.numpy(), readout.bias_.numpy()
    x, y_prev, expected = np.zeros(15), np.zeros(1), []
    for u in data[:20]:
        x = np.tanh(W @ x + Win @ np.concatenate([u, y_prev]))
        y_prev = Wout @ x + b
        expected.append(y_prev)
    np.testing.assert_allclose(outputs, np.array(expected), atol=1e-10)


def test_teacher_forcing_uses_targets_on_feedback():
    reservoir = dr.Reservoir(10, rc_connectivity=0.5, seed=8, dtype=torch.float64, name="res")
    readout = dr.Ridge(1e-3, name="out", dtype=torch.float64)
    model = (reservoir >> readout) & (reservoir << readout)
    data = _series(40)
    targets = _series(40, seed=9)
    model.fit(data, targets)
    # states during fit were driven by [u(t), target(t-1)]: refit on those states by hand
    W, Win = reservoir.W_.numpy(), reservoir.Win_.numpy()
    x, prev, states = np.zeros(10), np.zeros(1), []
    for u, y in zip(data, targets):
        x = np.tanh(W @ x + Win @ np.concatenate([u, prev]))
        states.append(x)
        prev = y
    states = np.array(states)
    Xc, Yc = states - states.mean(0), targets - targets.mean(0)
    expected = np.linalg.solve(Xc.T @ Xc + 1e-3 * np.eye(10), Xc.T @ Yc).T
    np.testing.assert_allclose(readout.Wout_.numpy(), expected, rtol=1e-8, atol=1e-10)


def test_ridge_closed_form_matches_numpy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    Y = X @ rng.normal(size=(5, 2)) + 0.3 + 0.01 * rng.normal(size=(200, 2))
    ridge = dr.Ridge(ridge=0.5, dtype=torch.float64).fit(X, Y)
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    W = np.linalg.solve(Xc.T @ Xc + 0.5 * np.eye(5), Xc.T @ Yc).T
    np.testing.assert_allclose(ridge.Wout_.numpy(), W, atol=1e-12)
    np.testing.assert_allclose(ridge.bias_.numpy(), Y.mean(0) - W @ X.mean(0), atol=1e-12)


def test_ridge_without_bias():
    X = np.random.default_rng(0).normal(size=(50, 3))
    coefficients = np.array([[1.0], [2.0], [3.0]])
    ridge = dr.Ridge(0.0, fit_bias=False, dtype=torch.float64).fit(X, X @ coefficients)
    np.testing.assert_allclose(ridge.Wout_.numpy(), [[1, 2, 3]], atol=1e-10)
    assert float(ridge.bias_.abs().max()) == 0.0


def test_fit_in_chunks_equals_fit_at_once():
    data = _series(300)
    whole = (dr.Reservoir(30, lr=0.3, seed=1) >> dr.Ridge(1e-2)).double()
    chunked = (dr.Reservoir(30, lr=0.3, seed=1) >> dr.Ridge(1e-2)).double()
    whole.fit(data[:-1], data[1:], warmup=20)
    chunked.fit(data[:-1], data[1:], warmup=20, chunk_size=7)
    for a, b in zip(whole.state_dict().values(), chunked.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_fit_on_ragged_list_excludes_padding_and_warmup():
    pieces = [_series(n, seed=n) for n in (50, 35)]
    targets = [np.roll(p, -1, axis=0) for p in pieces]
    model = (dr.Reservoir(12, rc_connectivity=0.5, seed=2) >> dr.Ridge(1e-6)).double()
    model.fit(pieces, targets, warmup=5)
    reservoir = model.nodes[model.input_names[0]]
    states = [reservoir.run(p, reset=True)[5:] for p in pieces]
    X = np.vstack(states)
    Y = np.vstack([t[5:] for t in targets])
    ridge = dr.Ridge(1e-6, dtype=torch.float64).fit(X, Y)
    readout = model.nodes[model.output_names[0]]
    torch.testing.assert_close(readout.Wout_, ridge.Wout_, rtol=1e-9, atol=1e-10)


def test_parameters_are_only_trainable_tensors():
    model = dr.Reservoir(10, seed=0) >> dr.Ridge()
    model.fit(_series(30), _series(30, seed=1))
    assert list(model.parameters()) == []
    keys = set(model.state_dict())
    assert any(k.endswith("Wout_") for k in keys)
    assert not any(k.endswith(".W_") or k.endswith("Win_") for k in keys)


def test_deep_esn_chain_into_one_readout():
    reservoirs = [dr.Reservoir(20, seed=s, name=f"r{s}") for s in range(3)]
    model = dr.Input(name="in") >> reservoirs >> dr.Ridge(1e-6, name="out")
    data = _series(100)
    model.fit(data[:-1], data[1:], warmup=10)
    assert model.nodes["out"].input_dim == 60
    assert model.run(data[:10], reset=True).shape == (10, 1)


def test_step_equals_run():
    model = dr.Reservoir(16, lr=0.7, seed=3) >> dr.Ridge(1e-4)
    data = _series(40)
    model.fit(data[:-1], data[1:])
    whole = model.run(data[:10], reset=True)
    model.reset()
    steps = np.array([model.step(u) for u in data[:10]])
    np.testing.assert_allclose(steps, whole, atol=1e-6)


def test_forward_is_differentiable():
    reservoir = dr.Reservoir(10, seed=0, dtype=torch.float64)
    inputs = torch.tensor(_series(20), requires_grad=True)
    states = reservoir(inputs.unsqueeze(0))
    states.sum().backward()
    assert inputs.grad is not None and torch.isfinite(inputs.grad).all()


def test_functional_step_matches_node_step():
    reservoir = dr.Reservoir(12, lr=0.5, seed=1, dtype=torch.float64)
    data = torch.as_tensor(_series(5))
    states = reservoir.run(data)
    x = torch.zeros(1, 12, dtype=torch.float64)
    for t in range(5):
        x = F.reservoir_step(x, data[t : t + 1], reservoir.W_, reservoir.Win_, reservoir.bias_,
                             0.5, torch.tanh)
    torch.testing.assert_close(x[0], states[-1])


def test_scaling_rules():
    data = _series(2)
    norm = dr.Reservoir(150, sr=0.7, scaling="spectral_norm", seed=2, dtype=torch.float64)
    norm.run(data)
    assert np.linalg.svd(norm.W_.numpy(), compute_uv=False)[0] == pytest.approx(0.7, rel=1e-10)
    fan_in = dr.Reservoir(150, sr=0.7, scaling="fan_in", seed=2, dtype=torch.float64)
    fan_in.run(data)
    assert np.mean(fan_in.W_.numpy() ** 2) * 150 == pytest.approx(0.49, rel=1e-10)
    radius = np.abs(np.linalg.eigvals(fan_in.W_.numpy())).max()
    assert 0.5 < radius < 0.9  # the circular law, approximately, at N = 150
    raw = dr.Reservoir(150, sr=None, seed=2, dtype=torch.float64)
    raw.run(data)
    # the same unscaled draw underlies all three
    np.testing.assert_allclose(raw.W_.numpy() * norm.W_scale_, norm.W_.numpy(), rtol=1e-15)


# ------------------------------------------------------- the in-place reservoir loop
def _plain_loop(state, drive, W, lr, activation, lengths=None):
    """The update rule one step at a time, with fresh tensors (the reference)."""
    outputs = []
    for t in range(drive.shape[1]):
        pre = F.recurrent_matmul(state, W) + drive[:, t]
        new_state = (1.0 - lr) * state + lr * activation(pre) if lr != 1.0 else activation(pre)
        if lengths is not None:
            new_state = torch.where((t < lengths)[:, None], new_state, state)
        state = new_state
        outputs.append(state)
    return torch.stack(outputs, dim=1), state


def _sparse_matrix(units, density, seed, dtype):
    gen = torch.Generator().manual_seed(seed)
    dense = torch.randn(units, units, generator=gen, dtype=torch.float64)
    dense *= 0.1 * (torch.rand(units, units, generator=gen, dtype=torch.float64) < density)
    return dense.to(dtype)


def _rounding_bound(W, lr, dtype, states):
    """Largest difference two correctly rounded forms of the loop can reach.

    One step of either form rounds the product (at most ``k`` terms per row, in any
    order), the activation (the sigmoid form of tanh: 2 ulp of 1) and the leak, so
    the two differ by ``δ ≤ (k + 4)·eps·scale`` per step. The update is a contraction
    with constant ``L = 1 − lr + lr·‖W‖∞ < 1`` in the max norm (every activation here
    is 1-Lipschitz), so the difference stays below ``δ / (1 − L)``.
    """
    dense = W.to_dense() if W.layout != torch.strided else W
    norm = float(dense.abs().sum(dim=1).max())
    assert norm < 1, "the bound needs a contraction"
    terms = int((dense != 0).sum(dim=1).max())
    scale = max(1.0, float(states.abs().max()), float(dense.abs().max()))
    contraction = 1.0 - lr + lr * norm
    return (terms + 4) * torch.finfo(dtype).eps * scale / (1.0 - contraction)


@pytest.mark.parametrize("layout", ["dense", "csr64", "csr32"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("lr", [1.0, 0.3])
@pytest.mark.parametrize("activation", ["tanh", "identity", "relu"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("ragged", [True, False])
def test_in_place_loop_matches_the_plain_loop(layout, batch, lr, activation, dtype, ragged):
    """Bitwise with ragged lengths (the masked loop keeps the reference's operations);
    otherwise the fused loop, to the rounding bound above."""
    import warnings

    dense = _sparse_matrix(60, 0.1, 0, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W = {"dense": dense, "csr64": dense.to_sparse_csr(), "csr32": F.csr_operator(dense)}
    W = W[layout]
    gen = torch.Generator().manual_seed(1)
    drive = torch.randn(batch, 50, 60, generator=gen, dtype=torch.float64).to(dtype)
    state = torch.randn(batch, 60, generator=gen, dtype=torch.float64).to(dtype)
    masked = batch > 1 and ragged
    lengths = torch.tensor([50, 21, 4])[:batch] if masked else None
    act = F.get_activation(activation)
    want_states, want_final = _plain_loop(state, drive, W, lr, act, lengths)
    drive_before, state_before = drive.clone(), state.clone()
    with torch.no_grad():
        got_states, got_final = F.run_reservoir(state, drive, W, lr, act, lengths)
        aliased = drive.clone()
        over_states, over_final = F.run_reservoir(state, aliased, W, lr, act, lengths,
                                                  out=aliased)
    bound = 0.0 if masked else _rounding_bound(W, lr, dtype, want_states)
    for got, want in ((got_states, want_states), (over_states, want_states),
                      (got_final, want_final), (over_final, want_final)):
        assert float((got - want).abs().max()) <= bound
    assert torch.equal(got_states, over_states)
    assert over_states.data_ptr() == aliased.data_ptr()
    assert torch.equal(drive, drive_before) and torch.equal(state, state_before)


def test_csr_operator_has_int32_indices_and_the_same_entries():
    dense = _sparse_matrix(40, 0.2, 3, torch.float64)
    csr = F.csr_operator(dense)
    assert csr.layout == torch.sparse_csr
    assert csr.crow_indices().dtype == torch.int32 and csr.col_indices().dtype == torch.int32
    assert torch.equal(csr.to_dense(), dense)
    assert F.csr_operator(csr) is csr


def test_loop_with_gradient_uses_autograd_and_matches():
    dense = 0.8 * _sparse_matrix(30, 0.3, 4, torch.float64)  # ‖W‖∞ < 1: a contraction
    drive = torch.randn(2, 20, 30, dtype=torch.float64, requires_grad=True)
    state = torch.zeros(2, 30, dtype=torch.float64)
    states, _ = F.run_reservoir(state, drive, dense, 0.5, torch.tanh)
    assert states.requires_grad
    states.sum().backward()
    assert drive.grad is not None and torch.isfinite(drive.grad).all()
    with torch.no_grad():
        again, _ = F.run_reservoir(state, drive, dense, 0.5, torch.tanh)
    assert float((again - states.detach()).abs().max()) <= _rounding_bound(
        dense, 0.5, torch.float64, again)


def test_node_run_is_the_plain_loop_to_rounding():
    reservoir = dr.Reservoir(80, sr=0.9, lr=0.3, bias_scaling=0.5, seed=4,
                             dtype=torch.float64)
    data = torch.as_tensor(np.stack([_series(60, 2, seed=s) for s in range(3)]))
    states = reservoir.run(data)
    drive = F.reservoir_drive(data, reservoir.Win_, reservoir.bias_)
    want, _ = _plain_loop(torch.zeros(3, 80, dtype=torch.float64), drive,
                          reservoir.recurrent_operator(3), 0.3, torch.tanh)
    # ρ(W) = 0.9 but ‖W‖∞ > 1, so no contraction bound applies; 1e-13 is ~500 ulp.
    assert float((states - want).abs().max()) < 1e-13


def test_structure_cache_follows_graph_and_seed_changes():
    """Orderings and seed keys are memoized, but never stale."""
    first, second = dr.Reservoir(5, name="first"), dr.Reservoir(5, name="second")
    model = first >> second
    assert model.execution_order() == ["first", "second"]
    before = model.seed_keys()
    grown = model >> dr.Ridge(name="head")  # graphs are immutable: operators make new ones
    assert model.execution_order() == ["first", "second"]
    assert grown.execution_order() == ["first", "second", "head"]
    assert grown.output_names == ["head"]
    assert [e.source for e in grown.in_edges("head")] == ["second"]
    assert grown.edges[-1] == Edge("second", "head", 0, False, 1)
    first.seed = 12
    after = model.seed_keys()
    assert after["first"] != before["first"]
    assert after["first"] == dr.seeding.SeedKey(12, "")
