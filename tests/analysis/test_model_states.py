"""Model.states: every node's output (or input) from the run executor."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import deepreservoir as dr
from deepreservoir.errors import GraphError, NotFittedError, ParameterError


def _chain(seed=0):
    return (
        dr.Reservoir(
            12, rc_connectivity=1.0, sr=0.9, lr=0.5, seed=seed, name="res", dtype=torch.float64
        )
        >> dr.Tanh(name="act")
        >> dr.Dense(3, seed=seed, name="out", dtype=torch.float64)
    )


def test_output_node_equals_run_and_keys_are_topological():
    x = np.random.default_rng(0).standard_normal((20, 2))
    model = _chain()
    states = model.states(x, reset=True)
    assert list(states) == ["res", "act", "out"]
    np.testing.assert_array_equal(states["out"], model.run(x, reset=True))
    np.testing.assert_array_equal(states["act"], torch.tanh(torch.as_tensor(states["res"])).numpy())
    assert isinstance(states["res"], np.ndarray) and states["res"].shape == (20, 12)


def test_states_advance_like_run():
    x = np.random.default_rng(1).standard_normal((2, 15, 2))
    a, b = _chain(), _chain()
    a.run(x, reset=True)
    b.states(x, reset=True)
    np.testing.assert_array_equal(a.run(x), b.run(x))


def test_torch_and_ragged_layouts():
    rng = np.random.default_rng(2)
    model = _chain()
    series = [rng.standard_normal((n, 2)) for n in (7, 11)]
    states = model.states(series, reset=True)
    outputs = model.run(series, reset=True)
    assert [s.shape for s in states["res"]] == [(7, 12), (11, 12)]
    for got, want in zip(states["out"], outputs):
        np.testing.assert_array_equal(got, want)
    tensor = torch.as_tensor(rng.standard_normal((9, 2)))
    out = model.states(tensor, reset=True)["out"]
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, model.run(tensor, reset=True), rtol=0, atol=0)


def test_feedback_model_uses_the_step_executor():
    res = dr.Reservoir(10, rc_connectivity=1.0, seed=3, name="res", dtype=torch.float64)
    out = dr.Dense(2, seed=3, name="out", dtype=torch.float64)
    model = (res >> out) & (res << out)
    x = np.random.default_rng(3).standard_normal((12, 1))
    states = model.states(x, reset=True)
    np.testing.assert_array_equal(states["out"], model.run(x, reset=True))
    # the reservoir at step t saw out[t-1]: its input is [x_t, out_{t-1}], out_{-1} = 0
    received = model.states(x, reset=True, inputs=True)["res"]
    np.testing.assert_array_equal(received[:, :1], x)
    np.testing.assert_array_equal(received[0, 1:], np.zeros(2))
    np.testing.assert_array_equal(received[1:, 1:], states["out"][:-1])


def test_inputs_concatenate_parents_in_edge_order_and_shift_delays():
    a = dr.Dense(3, seed=0, name="a", dtype=torch.float64)
    b = dr.Dense(2, seed=1, name="b", dtype=torch.float64)
    head = dr.Identity(name="head")
    source = dr.Input(name="in")
    model = (source >> a >> head) & (source >> b >> 2 >> head)
    x = np.random.default_rng(4).standard_normal((8, 4))
    outs = model.states(x, reset=True)
    got = model.states(x, reset=True, inputs=True)["head"]
    shifted = np.concatenate([np.zeros((2, 2)), outs["b"][:-2]])
    np.testing.assert_array_equal(got, np.concatenate([outs["a"], shifted], axis=1))
    np.testing.assert_array_equal(outs["head"], got)


def test_subset_skips_downstream_and_keeps_the_state():
    model = dr.Reservoir(
        10, rc_connectivity=1.0, seed=0, name="res", dtype=torch.float64
    ) >> dr.Ridge(1e-6, name="ridge", dtype=torch.float64)
    x = np.random.default_rng(5).standard_normal((10, 1))
    with pytest.raises(NotFittedError):
        model.run(x)
    only = model.states(x, nodes="res")
    assert list(only) == ["res"] and model._state is None
    reference = dr.Reservoir(10, rc_connectivity=1.0, seed=0, name="res", dtype=torch.float64).run(
        x
    )
    np.testing.assert_array_equal(only["res"], reference)
    with pytest.raises(NotFittedError, match="ridge"):
        model.states(x)


@pytest.mark.parametrize(
    "nodes, error",
    [("nope", GraphError), ([], ParameterError), ([3], ParameterError), (5, ParameterError)],
)
def test_bad_node_selection(nodes, error):
    with pytest.raises(error, match="nodes|nope"):
        _chain().states(np.zeros((3, 2)), nodes=nodes)


def test_bad_flags():
    with pytest.raises(ParameterError, match="reset"):
        _chain().states(np.zeros((3, 2)), reset="yes")
    with pytest.raises(ParameterError, match="inputs"):
        _chain().states(np.zeros((3, 2)), inputs=1)


@settings(max_examples=15, deadline=None)
@given(
    depth=st.integers(1, 3),
    steps=st.integers(1, 12),
    batch=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_every_output_node_matches_run(depth, steps, batch, seed):
    model = dr.Model.from_node(
        dr.Reservoir(6, rc_connectivity=1.0, seed=seed, name="r0", dtype=torch.float64))
    for i in range(1, depth):
        model = model >> dr.Reservoir(
            5, rc_connectivity=1.0, seed=seed + i, name=f"r{i}", dtype=torch.float64
        )
    x = np.random.default_rng(seed).standard_normal((batch, steps, 2))
    states = model.states(x, reset=True)
    np.testing.assert_array_equal(states[f"r{depth - 1}"], model.run(x, reset=True))
