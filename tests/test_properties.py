"""Property-based tests (hypothesis) of the seeding, execution and composition contracts."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import deepreservoir as dr

FAST = settings(max_examples=15, deadline=None)

units = st.integers(min_value=4, max_value=40)
# Reservoirs here are fully connected: a sparse W of a few units can be nilpotent
# (ρ = 0), which spectral-radius scaling rightly refuses, and W is stepped
# densely above 35 % density anyway.
seeds = st.integers(min_value=0, max_value=2**62)
leak = st.floats(min_value=0.05, max_value=1.0)
families = st.sampled_from(sorted(dr.families.FAMILIES))


def _data(seed, steps, features=1, batch=None):
    rng = np.random.default_rng(seed)
    shape = (steps, features) if batch is None else (batch, steps, features)
    return rng.uniform(-1, 1, size=shape)


def _weights(node):
    return {k: v.clone() for k, v in node.named_buffers() if k.endswith("_")}


@FAST
@given(n=units, seed=seeds, family=families, connectivity=st.floats(0.2, 1.0))
def test_same_seed_same_weights(n, seed, family, connectivity):
    data = _data(0, 3, 2)
    a = dr.Reservoir(n, seed=seed, W=family, rc_connectivity=connectivity, sr=None)
    b = dr.Reservoir(n, seed=seed, W=family, rc_connectivity=connectivity, sr=None)
    a.run(data)
    b.run(data)
    for key, value in _weights(a).items():
        assert torch.equal(value, _weights(b)[key]), key


@FAST
@given(seed=seeds, n1=units, n2=units, reverse=st.booleans())
def test_construction_order_does_not_matter(seed, n1, n2, reverse):
    """Nodes created in either order, composed into the same graph, get the same weights."""
    def build(flip):
        if flip:
            second = dr.Reservoir(n2, name="second", rc_connectivity=1.0)
            first = dr.Reservoir(n1, name="first", rc_connectivity=1.0, seed=seed)
        else:
            first = dr.Reservoir(n1, name="first", rc_connectivity=1.0, seed=seed)
            second = dr.Reservoir(n2, name="second", rc_connectivity=1.0)
        model = first >> second
        model.run(_data(1, 4))
        return first, second

    a = build(False)
    b = build(reverse)
    for x, y in zip(a, b):
        for key, value in _weights(x).items():
            assert torch.equal(value, _weights(y)[key]), key


@FAST
@given(seed=seeds, extra=st.integers(1, 3))
def test_adding_a_node_changes_no_other_node(seed, extra):
    def chain(length):
        source = dr.Input(name="in")
        nodes = [dr.Reservoir(12, rc_connectivity=1.0, name=f"r{i}") for i in range(length)]
        model = source >> nodes[0]
        for node in nodes[1:]:
            model = model >> node
        model.seed = seed
        model.run(_data(2, 3))
        return nodes

    short = chain(2)
    longer = chain(2 + extra)
    for a, b in zip(short, longer):
        for key, value in _weights(a).items():
            assert torch.equal(value, _weights(b)[key]), key


@FAST
@given(seed=seeds, n=units)
def test_unseeded_siblings_differ(seed, n):
    left = dr.Reservoir(n, rc_connectivity=1.0)
    right = dr.Reservoir(n, rc_connectivity=1.0)
    model = dr.Input() >> [left, right]
    model.seed = seed
    model.run(_data(3, 2))
    assert not torch.equal(left.W_, right.W_)


@FAST
@given(n=units, seed=seeds, lr=leak, steps=st.integers(1, 25), features=st.integers(1, 3))
def test_step_by_step_equals_whole_run(n, seed, lr, steps, features):
    data = _data(seed % 1000, steps, features)
    reservoir = dr.Reservoir(n, lr=lr, seed=seed, rc_connectivity=1.0, dtype=torch.float64)
    whole = reservoir.run(data, reset=True)
    reservoir.reset()
    stepped = np.array([reservoir._as_model().step(u) for u in data])
    np.testing.assert_allclose(stepped, whole, rtol=0, atol=1e-12)


@FAST
@given(n=units, seed=seeds, lr=leak, batch=st.integers(1, 6), steps=st.integers(1, 20))
def test_batch_equals_single_runs(n, seed, lr, batch, steps):
    data = _data(seed % 1000, steps, 2, batch=batch)
    reservoir = dr.Reservoir(n, lr=lr, seed=seed, rc_connectivity=1.0, dtype=torch.float64)
    together = reservoir.run(data, reset=True)
    for b in range(batch):
        alone = reservoir.run(data[b], reset=True)
        np.testing.assert_allclose(together[b], alone, rtol=0, atol=1e-12)


@FAST
@given(seed=seeds, lengths=st.lists(st.integers(1, 15), min_size=1, max_size=5))
def test_ragged_equals_single_runs(seed, lengths):
    pieces = [_data(seed % 1000 + i, n, 1) for i, n in enumerate(lengths)]
    reservoir = dr.Reservoir(10, seed=seed, rc_connectivity=1.0, dtype=torch.float64)
    together = reservoir.run(pieces, reset=True)
    for piece, out in zip(pieces, together):
        np.testing.assert_allclose(out, reservoir.run(piece, reset=True), rtol=0, atol=1e-12)


@FAST
@given(seed=seeds, sizes=st.tuples(units, units, units))
def test_composition_is_associative(seed, sizes):
    """(a >> b) >> c and a >> (b >> c) are the same graph with the same outputs."""
    def nodes():
        return [dr.Reservoir(s, seed=seed + i, rc_connectivity=1.0, name=f"n{i}",
                             dtype=torch.float64) for i, s in enumerate(sizes)]

    a, b, c = nodes()
    left = (a >> b) >> c
    d, e, f = nodes()
    right = d >> (e >> f)
    edges = lambda m: [(x.source, x.target, x.delay) for x in m.edges]
    assert sorted(edges(left)) == sorted(edges(right))
    data = _data(5, 12)
    np.testing.assert_array_equal(left.run(data), right.run(data))


@FAST
@given(seed=seeds)
def test_merge_is_commutative_for_outputs(seed):
    x = dr.Input(name="x")
    a = dr.Reservoir(8, seed=seed, rc_connectivity=1.0, name="a", dtype=torch.float64)
    b = dr.Reservoir(8, seed=seed + 1, rc_connectivity=1.0, name="b", dtype=torch.float64)
    one = (x >> a) & (x >> b)
    two = (x >> b) & (x >> a)
    data = _data(0, 6)
    out_one, out_two = one.run(data), two.run(data)
    assert set(out_one) == set(out_two) == {"a", "b"}
    for key in out_one:
        np.testing.assert_array_equal(out_one[key], out_two[key])
