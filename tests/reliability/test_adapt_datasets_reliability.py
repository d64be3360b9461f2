"""Regression tests: clear ParameterErrors from adapt/merge, scaffold_mlp and the data sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import deepreservoir as dr
from deepreservoir import datasets
from deepreservoir.adapt import AdaptedLinear
from deepreservoir.errors import ParameterError


class Linear2(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 6)
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return self.head(self.norm(torch.relu(self.body(x))))


def _raises(call, *mentions):
    with pytest.raises(ParameterError) as info:
        call()
    for mention in mentions:
        assert mention in str(info.value), str(info.value)
    return str(info.value)


# ---- adapt / merge -------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["yes", 1, None])
def test_adapt_rslora_must_be_bool(value):
    _raises(lambda: dr.adapt(Linear2(), r=1, seed=0, rslora=value), "'rslora'", repr(value))


def test_adapt_rslora_numpy_bool_accepted():
    model = dr.adapt(Linear2(), r=1, seed=0, rslora=np.bool_(True))
    assert model(torch.ones(3, 4)).shape == (3, 2)


@pytest.mark.parametrize("call, value", [
    (lambda: dr.adapt(3, r=1, seed=0), "3"),
    (lambda: dr.merge("model"), "'model'"),
    (lambda: dr.merge(None), "None"),
])
def test_module_must_be_nn_module(call, value):
    _raises(call, "'module'", value)


def test_targets_pattern_matching_nothing_is_refused():
    message = _raises(lambda: dr.adapt(Linear2(), r=1, seed=0, targets=["nomatch"]),
                      "'targets'", "'nomatch'")
    assert "'body'" in message and "'head'" in message  # lists what exists


def test_targets_pattern_matching_only_unsupported_layer_is_refused():
    _raises(lambda: dr.adapt(Linear2(), r=1, seed=0, targets="norm"), "'targets'", "'norm'")


def test_targets_pattern_inside_train_is_refused():
    _raises(lambda: dr.adapt(Linear2(), r=1, seed=0, targets=["head"], train=["head"]),
            "'targets'", "'head'")


def test_train_pattern_matching_nothing_is_refused():
    message = _raises(lambda: dr.adapt(Linear2(), r=1, seed=0, train=["haed"]),
                      "'train'", "'haed'")
    assert "'head'" in message


def test_train_and_targets_must_be_strings():
    _raises(lambda: dr.adapt(Linear2(), r=1, seed=0, train=[3]), "'train'", "[3]")
    _raises(lambda: dr.adapt(Linear2(), r=1, seed=0, targets=5), "'targets'", "5")


def test_valid_patterns_still_work():
    model = dr.adapt(Linear2(), r=1, seed=0, targets="bo*", train="head")
    assert type(model.head) is nn.Linear and model.head.weight.requires_grad
    assert isinstance(model.body, AdaptedLinear)
    model = dr.adapt(Linear2(), r=1, seed=0, train=["head.weight", "*norm*"])
    assert model.head.weight.requires_grad and model.norm.weight.requires_grad
    merged = dr.merge(model)
    x = torch.ones(2, 4)
    torch.testing.assert_close(merged(x), model(x))


# ---- scaffold_mlp --------------------------------------------------------------------------

def test_scaffold_mlp_unknown_preset_lists_presets():
    message = _raises(lambda: dr.scaffold_mlp("huge", 10), "'preset'", "'huge'")
    assert all(name in message for name in ("tiny", "small", "medium", "large"))


@pytest.mark.parametrize("preset", [(8, 0), (8, 2.5), 7, ("a",)])
def test_scaffold_mlp_bad_widths(preset):
    _raises(lambda: dr.scaffold_mlp(preset, 10), "'preset'")


@pytest.mark.parametrize("kwargs, name, shown", [
    ({"classes": 0}, "'classes'", "Got 0"),
    ({"classes": 2.5}, "'classes'", "2.5"),
    ({"head": "nope"}, "'head'", "'nope'"),
    ({"seed": -1}, "'seed'", "-1"),
    ({"r": -1}, "'r'", "-1"),
])
def test_scaffold_mlp_validates_its_own_arguments(kwargs, name, shown):
    arguments = {"classes": 10, **kwargs}
    message = _raises(lambda: dr.scaffold_mlp("tiny", **arguments), name, shown)
    assert "scaffold_mlp" in message and "'units'" not in message


def test_scaffold_mlp_still_builds():
    model = dr.scaffold_mlp([8, 4], 3, r=2, seed=1)
    assert model.run(np.ones((5, 6), dtype=np.float32)).shape == (5, 3)
    assert dr.scaffold_mlp("tiny", None, head="lora") is not None


# ---- datasets ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name, shown", [
    ({"steps": 0}, "'steps'", "Got 0"),
    ({"steps": 2.5}, "'steps'", "2.5"),
    ({"transient": 5}, "'transient'", "5"),
    ({"seed": -1}, "'seed'", "-1"),
    ({"seed": "a"}, "'seed'", "'a'"),
])
def test_narma10_bad_hyperparameters_are_parameter_errors(kwargs, name, shown):
    arguments = {"steps": 10, **kwargs}
    _raises(lambda: datasets.narma10(**arguments), name, shown)


@pytest.mark.parametrize("kwargs, name, shown", [
    ({"test_fraction": 1.5}, "'test_fraction'", "1.5"),
    ({"test_fraction": -0.1}, "'test_fraction'", "-0.1"),
    ({"test_fraction": 0.0}, "'test_fraction'", "0.0"),
    ({"test_fraction": 1e-6}, "'test_fraction'", "1e-06"),
    ({"test_fraction": "0.2"}, "'test_fraction'", "'0.2'"),
    ({"seed": -1}, "'seed'", "-1"),
])
def test_load_digits_bad_arguments(kwargs, name, shown):
    pytest.importorskip("sklearn")
    _raises(lambda: datasets.load_digits(**kwargs), name, shown)


def test_load_digits_valid_split():
    pytest.importorskip("sklearn")
    data = datasets.load_digits(test_fraction=0.25, seed=1)
    assert len(data["y_test"]) == round(0.25 * 1797)
    assert len(data["y_train"]) + len(data["y_test"]) == 1797


@pytest.mark.parametrize("kwargs, name, shown", [
    ({"num_samples": 0}, "'num_samples'", "Got 0"),
    ({"num_samples": 5}, "'num_samples'", "5"),
    ({"num_samples": 100.0}, "'num_samples'", "100.0"),
    ({"seed": "a"}, "'seed'", "'a'"),
    ({"seed": -1}, "'seed'", "-1"),
    ({"seed": 2**40}, "'seed'", str(2**40)),
])
def test_load_mnist1d_bad_arguments(kwargs, name, shown):
    pytest.importorskip("mnist1d")
    _raises(lambda: datasets.load_mnist1d(**kwargs), name, shown)


def test_load_mnist1d_smallest_valid():
    pytest.importorskip("mnist1d")
    data = datasets.load_mnist1d(seed=0, num_samples=10)
    assert len(data["y_train"]) > 0 and len(data["y_test"]) > 0
