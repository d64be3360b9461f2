"""``with_hyperparameters``: a fresh copy of a model with node constructor arguments changed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import deepreservoir as dr
from deepreservoir.errors import ParameterError
from deepreservoir.hyperparameters import node_hyperparameters, split_key, with_hyperparameters


def _series(steps=300, seed=0):
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(scale=0.1, size=(steps + 1, 1)), axis=0)
    return np.sin(x[:-1]), np.sin(x[1:])


def _esn(dtype=torch.float64):
    return (dr.Reservoir(50, sr=0.9, seed=1) >> dr.Ridge(1e-6)).to(dtype)


def test_a_copy_without_overrides_fits_and_runs_bit_identically():
    x, y = _series()
    original = _esn()
    copy = with_hyperparameters(original, {})
    assert copy is not original
    assert list(copy.nodes) == list(original.nodes)
    assert copy.nodes["Reservoir-0"].dtype == torch.float64
    original.fit(x[:200], y[:200])
    copy.fit(x[:200], y[:200])
    a, b = np.asarray(original.run(x[200:])), np.asarray(copy.run(x[200:]))
    assert a.dtype == np.float64 and a.shape == (100, 1)
    np.testing.assert_array_equal(a, b)


def test_a_copy_of_a_fitted_model_is_unbuilt_and_refits_identically():
    x, y = _series()
    original = _esn()
    original.fit(x[:200], y[:200])
    before = np.asarray(original.run(x[200:]))
    copy = with_hyperparameters(original, {})
    copy.fit(x[:200], y[:200])
    np.testing.assert_array_equal(np.asarray(copy.run(x[200:])), before)


def test_an_unseeded_model_copies_its_root_seed():
    x, y = _series()
    original = dr.Reservoir(40) >> dr.Ridge(1e-6)
    copy = with_hyperparameters(original, {})
    original.fit(x, y)
    copy.fit(x, y)
    np.testing.assert_array_equal(np.asarray(original.run(x)), np.asarray(copy.run(x)))


def test_a_scaffold_mlp_copy_has_the_same_forward_before_training():
    x = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    original = dr.scaffold_mlp("tiny", 3, r=2, seed=0)
    copy = with_hyperparameters(original, {})
    a = np.asarray(copy.run(x))
    b = np.asarray(original.run(x))
    assert a.shape == (20, 3)
    np.testing.assert_array_equal(a, b)
    # the copy of the now built original is unbuilt and still the same function
    np.testing.assert_array_equal(np.asarray(with_hyperparameters(original, {}).run(x)), b)


def test_a_scaffold_override_changes_one_layer_only():
    original = dr.scaffold_mlp("tiny", 3, r=2, seed=0)
    copy = with_hyperparameters(original, {"layer0.r": 4})
    assert copy.nodes["layer0"].r == 4 and copy.nodes["layer1"].r == 2
    assert original.nodes["layer0"].r == 2
    x = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    assert np.asarray(copy.run(x)).shape == (5, 3)


def test_an_sr_override_equals_building_the_node_with_that_sr():
    x, _ = _series(120)
    original = dr.Reservoir(50, sr=0.9, seed=1) >> dr.Ridge(1e-6)
    copy = with_hyperparameters(original, {"Reservoir-0.sr": 1.25})
    states = np.asarray(copy.nodes["Reservoir-0"].run(x))
    direct = np.asarray(dr.Reservoir(50, sr=1.25, seed=1).run(x))
    unchanged = np.asarray(dr.Reservoir(50, sr=0.9, seed=1).run(x))
    np.testing.assert_array_equal(states, direct)
    assert not np.array_equal(states, unchanged)


def test_several_overrides_on_several_nodes():
    x, y = _series()
    original = _esn()
    copy = with_hyperparameters(original, {"Reservoir-0.lr": 0.3, "Reservoir-0.units": 30,
                                           "Ridge-0.ridge": 1e-3})
    direct = (dr.Reservoir(30, lr=0.3, sr=0.9, seed=1) >> dr.Ridge(1e-3)).to(torch.float64)
    copy.fit(x, y)
    direct.fit(x, y)
    np.testing.assert_array_equal(np.asarray(copy.run(x)), np.asarray(direct.run(x)))


def test_explicit_arrays_are_kept_under_an_override():
    x, _ = _series(80)
    W = np.random.default_rng(1).normal(size=(30, 30)) * 0.1
    original = dr.Reservoir(30, W=W, seed=2) >> dr.Ridge(1e-6)
    copy = with_hyperparameters(original, {"Reservoir-0.sr": 0.5})
    np.testing.assert_array_equal(np.asarray(copy.nodes["Reservoir-0"].run(x)),
                                  np.asarray(dr.Reservoir(30, W=W, sr=0.5, seed=2).run(x)))


def test_the_original_model_is_untouched():
    x, y = _series()
    original = _esn()
    original.fit(x[:200], y[:200])
    before = np.asarray(original.run(x[200:]))
    copy = with_hyperparameters(original, {"Reservoir-0.sr": 1.5, "Ridge-0.ridge": 1e-2})
    copy.fit(x[:200], y[:200])
    assert original.nodes["Reservoir-0"].sr == 0.9
    assert original.nodes["Ridge-0"].ridge == 1e-6
    fresh = _esn()
    fresh.fit(x[:200], y[:200])
    np.testing.assert_array_equal(np.asarray(original.run(x[200:], reset=True)),
                                  np.asarray(fresh.run(x[200:], reset=True)))
    assert not np.array_equal(np.asarray(copy.run(x[200:], reset=True)), before)


@pytest.mark.parametrize("key, value, shown", [
    ("Foo-0.sr", 1.0, "'Foo-0.sr'"),
    ("sr", 1.0, "'sr'"),
    ("Reservoir-0", 1.0, "'Reservoir-0'"),
    ("Reservoir-0.", 1.0, "'Reservoir-0.'"),
    ("Reservoir-0.spectral_radius", 1.0, "'Reservoir-0.spectral_radius'"),
    ("Reservoir-0.name", "x", "'Reservoir-0.name'"),  # hidden: not a hyperparameter
    ("Reservoir-0.dtype", "float32", "'Reservoir-0.dtype'"),
    ("Ridge-0.sr", 1.0, "'Ridge-0.sr'"),
    ("Reservoir-0.units", -3, "Reservoir-0.units"),
    ("Reservoir-0.sr", "abc", "Reservoir-0.sr"),
    ("Reservoir-0.activation", "nope", "Reservoir-0.activation"),
    ("Ridge-0.ridge", -1.0, "Ridge-0.ridge"),
])
def test_a_bad_key_or_value_is_a_parameter_error_naming_the_key(key, value, shown):
    original = _esn()
    with pytest.raises(ParameterError) as caught:
        with_hyperparameters(original, {key: value})
    assert shown in str(caught.value)
    assert original.nodes["Reservoir-0"].sr == 0.9


def test_the_callers_name_for_the_overrides_is_used():
    with pytest.raises(ParameterError, match="The hyperparameter key 'Nope-0.sr'"):
        with_hyperparameters(_esn(), {"Nope-0.sr": 1.0}, parameter="hyperparameter")


def test_split_key_and_node_hyperparameters():
    nodes = {"res": None, "res2": None}
    assert split_key("res2.sr", nodes, "p") == ("res2", "sr")
    assert split_key("res.sr", nodes, "p") == ("res", "sr")
    assert split_key("res.W.x", nodes, "p") == ("res", "W.x")
    names = node_hyperparameters(dr.Reservoir(5))
    assert {"units", "sr", "lr", "seed", "input_scaling"} <= set(names)
    assert not {"self", "name", "input_dim", "dtype"} & set(names)


@settings(max_examples=12, deadline=None)
@given(sr=st.floats(0.1, 2.0), seed=st.integers(0, 2**31 - 1), override_seed=st.booleans())
def test_sr_and_seed_overrides_equal_direct_construction(sr, seed, override_seed):
    x = np.random.default_rng(0).uniform(-1, 1, size=(40, 1))
    # the seed is the original's, or itself overridden (the original then has seed 7)
    original = dr.Reservoir(50, sr=0.9, seed=7 if override_seed else seed) >> dr.Ridge(1e-6)
    overrides = {"Reservoir-0.sr": sr, **({"Reservoir-0.seed": seed} if override_seed else {})}
    copy = with_hyperparameters(original, overrides)
    assert copy.nodes["Reservoir-0"].sr == sr
    assert original.nodes["Reservoir-0"].sr == 0.9
    np.testing.assert_array_equal(np.asarray(copy.nodes["Reservoir-0"].run(x)),
                                  np.asarray(dr.Reservoir(50, sr=sr, seed=seed).run(x)))


def _delayed(sr=0.9):
    late = dr.Reservoir(30, sr=sr, seed=4, name="late")
    return late >> 3 >> dr.Ridge(1e-6, name="delayed")


def _generator(sr=0.9):
    reservoir, readout = dr.Reservoir(30, sr=sr, seed=5, name="res"), dr.Ridge(1e-6, name="ro")
    return (reservoir >> readout) & (reservoir << readout)


@pytest.mark.parametrize("make, key", [(_delayed, "late.sr"), (_generator, "res.sr")],
                         ids=["delay", "feedback"])
def test_delays_and_feedback_are_kept(make, key):
    x, y = _series()
    original = make()
    copy = with_hyperparameters(original, {})

    def edges(model):
        return [(e.source, e.target, e.delay, e.feedback) for e in model.edges]

    assert edges(copy) == edges(original)
    assert any(e[2] > 0 for e in edges(original))
    original.fit(x, y, warmup=20)
    copy.fit(x, y, warmup=20)
    np.testing.assert_array_equal(np.asarray(copy.run(x)), np.asarray(original.run(x)))
    direct, changed = make(1.3), with_hyperparameters(make(), {key: 1.3})
    direct.fit(x, y, warmup=20)
    changed.fit(x, y, warmup=20)
    np.testing.assert_array_equal(np.asarray(changed.run(x)), np.asarray(direct.run(x)))
