"""Scaffold, LoRAReadout, BetaGate, Dense: the LoRA math, counts and bad input."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import deepreservoir as dr
from deepreservoir import functional as F
from deepreservoir.errors import NotFittedError, ParameterError

FAST = settings(max_examples=12, deadline=None)


def test_medium_preset_count_is_the_papers():
    assert dr.paper_param_count(784, (512, 256, 128, 64), 10, r=8) == 21_774
    assert dr.footprint.__module__ == "deepreservoir.footprint"
    model = dr.scaffold_mlp("medium", 10, r=8, seed=1)
    model.run(np.zeros((2, 784), dtype=np.float32))
    report = model.footprint()
    assert report.trainable == 21_774
    assert sum(p.numel() for p in model.parameters()) == 21_774
    assert round(100 * report.trainable_fraction, 2) == 3.79


def test_full_preset_count():
    from deepreservoir.footprint import dense_param_count

    model = dr.scaffold_mlp("medium", 10, full=True, seed=1)
    model.run(np.zeros((2, 784), dtype=np.float32))
    assert model.footprint().trainable == dense_param_count(784, (512, 256, 128, 64), 10)
    assert model.footprint().trainable == 575_050


@FAST
@given(d_in=st.integers(2, 30), hidden=st.lists(st.integers(2, 30), min_size=1, max_size=3),
       classes=st.integers(2, 6), r=st.integers(0, 2), seed=st.integers(0, 2**40))
def test_count_formula_holds(d_in, hidden, classes, r, seed):
    model = dr.scaffold_mlp(tuple(hidden), classes, r=r, seed=seed)
    model.run(np.zeros((1, d_in), dtype=np.float32))
    expected = dr.paper_param_count(d_in, hidden, classes, r=r)
    assert model.footprint().trainable == expected


@FAST
@given(units=st.integers(2, 20), features=st.integers(2, 20), r=st.integers(1, 2),
       seed=st.integers(0, 2**40), rslora=st.booleans(),
       alpha=st.one_of(st.none(), st.floats(0.1, 32)),
       activation=st.sampled_from(["relu", "tanh", "identity"]))
def test_fresh_adapter_is_a_no_op(units, features, r, seed, rslora, alpha, activation):
    x = np.random.default_rng(seed % 1000).normal(size=(7, features)).astype(np.float32)
    plain = dr.Scaffold(units, r=0, seed=seed, activation=activation)
    adapted = dr.Scaffold(units, r=r, seed=seed, activation=activation, rslora=rslora,
                          alpha=alpha)
    a, b = plain.run(x), adapted.run(x)
    assert np.array_equal(a, b)
    assert torch.equal(adapted.effective_weight(), plain.W_)


def test_forward_matches_effective_weight():
    layer = dr.Scaffold(6, r=2, alpha=3.0, seed=0, activation="identity", bias=True)
    x = torch.randn(4, 5)
    layer.run(x.numpy())
    with torch.no_grad():
        layer.B_.normal_()
        layer.beta_.fill_(0.7)
        layer.bias_.fill_(0.1)
    expected = x @ layer.effective_weight().T + layer.bias_
    got = layer(x[None])[0]
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(
        layer.effective_weight(), 0.7 * layer.W_ + 1.5 * layer.B_ @ layer.A_)


def test_adapter_init_is_seeded_and_ignores_global_rng():
    torch.manual_seed(123)
    a = dr.Scaffold(8, r=3, seed=5)
    a.run(np.ones((2, 10), dtype=np.float32))
    torch.manual_seed(999)
    b = dr.Scaffold(8, r=3, seed=5)
    b.run(np.ones((2, 10), dtype=np.float32))
    assert torch.equal(a.A_, b.A_)
    bound = 1 / np.sqrt(10)  # Kaiming-uniform a = √5: U(±1/√fan_in)
    assert float(a.A_.detach().abs().max()) <= bound
    assert float(a.B_.detach().abs().max()) == 0.0
    assert float(a.beta_.detach()) == 1.0


def test_scale_conventions():
    assert F.lora_scale(8) == 1.0
    assert F.lora_scale(8, alpha=1.0) == 0.125
    assert F.lora_scale(16, alpha=16.0, rslora=True) == 4.0
    layer = dr.Scaffold(4, r=4, alpha=2.0, rslora=True)
    assert layer.scale == 1.0
    assert layer.alpha_convention() == "α/√r = 2/√4 = 1"
    assert dr.Scaffold(4, r=2).alpha_convention() == "α/r = 2/2 = 1 (alpha=None: α = r)"


def test_zero_rank_is_a_frozen_random_layer():
    layer = dr.Scaffold(5, seed=0)
    layer.run(np.ones((3, 4), dtype=np.float32))
    assert list(layer.parameters()) == []
    assert "W_" not in layer.state_dict()


def test_default_family_is_normal_one_over_fan_in():
    layer = dr.Scaffold(400, seed=0, activation="identity")
    layer.run(np.ones((1, 300), dtype=np.float32))
    assert abs(float(layer.W_.var()) * 300 - 1.0) < 0.02


def test_zero_scaffold_and_removal():
    zero = dr.Scaffold(4, r=2, family=None, seed=0)
    assert np.all(zero.run(np.ones((2, 3), dtype=np.float32)) == 0)
    layer = dr.Scaffold(4, r=2, seed=0, activation="identity")
    x = np.ones((2, 3), dtype=np.float32)
    before = layer.run(x)
    layer.remove_scaffold()
    assert np.all(layer.run(x) == 0)
    layer.restore_scaffold()
    assert np.array_equal(layer.run(x), before)


def test_seeded_frozen_bias():
    layer = dr.Scaffold(6, r=1, family=None, bias="seeded", seed=0, activation="identity")
    out = layer.run(np.ones((2, 9), dtype=np.float32))
    assert float(np.abs(out).max()) <= 1 / 3 and np.abs(out).sum() > 0  # U(±1/√9), frozen
    assert "bias_" not in layer.state_dict()
    assert [n for n, _ in layer.named_parameters()] == ["A_", "B_", "beta_"]


def test_reseed_changes_only_the_scaffold():
    model = dr.scaffold_mlp((6,), 3, r=2, seed=0)
    model.run(np.ones((2, 4), dtype=np.float32))
    layer = model.nodes["layer0"]
    W0, A0 = layer.W_.clone(), layer.A_.clone()
    model.reseed(11)
    assert not torch.equal(layer.W_, W0)
    assert torch.equal(layer.A_, A0)
    model.reseed(None)
    assert torch.equal(layer.W_, W0)


def test_lora_readout_infers_units_and_full_head():
    x = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    head = dr.LoRAReadout(r=2, seed=0)
    model = dr.Input() >> head
    model.fit(x, np.zeros((20, 3), dtype=np.float32), epochs=1, verbose=0)
    assert head.output_dim == 3
    assert sum(p.numel() for p in head.parameters()) == 2 * (5 + 3) + 1 + 3
    full = dr.LoRAReadout(3, r=0, full=True, seed=0)
    full.run(x)
    assert sum(p.numel() for p in full.parameters()) == 5 * 3 + 3
    dense = dr.Dense(3, seed=0)
    dense.run(x)
    assert torch.equal(dense.W_, full.W_)


def test_readout_without_units_needs_targets():
    with pytest.raises(NotFittedError, match="does not know its output size"):
        dr.LoRAReadout(r=1).run(np.ones((2, 3), dtype=np.float32))


def test_beta_gate():
    gate = dr.BetaGate(init=2.0)
    assert np.array_equal(gate.run(np.ones((2, 2), dtype=np.float32)), 2 * np.ones((2, 2)))
    assert [n for n, _ in gate.named_parameters()] == ["beta_"]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: dr.Scaffold(4, r=-1), r"'r' parameter of Scaffold must be an int >= 0\. Got -1"),
        (lambda: dr.Scaffold(4, r=2, alpha=0.0), r"'alpha' parameter of Scaffold must be .*> 0"
                                                 r".*Got 0\.0"),
        (lambda: dr.Scaffold(4, r=2, alpha=-1.0), r"'alpha'.*Got -1\.0"),
        (lambda: dr.Scaffold(4, family="gaussian"), r"known weight family.*Got 'gaussian'"),
        (lambda: dr.Scaffold(4, activation="gelu"), r"'activation' parameter of Scaffold"),
        (lambda: dr.Scaffold(4, dropout=1.0), r"'dropout' parameter of Scaffold.*Got 1\.0"),
        (lambda: dr.LoRAReadout(3, r=2, full=True), r"'r' parameter of LoRAReadout must be 0 "
                                                     r"when full=True.*Got 2"),
        (lambda: dr.LoRAReadout(3, r=1, alpha=-2.0), r"'alpha' parameter of LoRAReadout"),
        (lambda: dr.LoRAReadout(r=-1), r"'r' parameter of LoRAReadout must be an int >= 0"),
        (lambda: dr.BetaGate(init=float("nan")), r"'init' parameter of BetaGate"),
    ],
)
def test_bad_hyperparameters(make, match):
    with pytest.raises(ParameterError, match=match):
        make()


@pytest.mark.parametrize(("make", "width", "limit"), [
    (lambda: dr.Scaffold(10, r=6, seed=0), 5, 5),
    (lambda: dr.Scaffold(4, r=5, input_dim=10, seed=0), 10, 4),
    (lambda: dr.LoRAReadout(3, r=4, seed=0), 6, 3),
])
def test_rank_above_width_is_capped_at_build_with_one_warning(make, width, limit):
    layer = make()
    x = np.ones((2, width), dtype=np.float32)
    with pytest.warns(dr.RankCappedWarning, match=rf"r={layer.r} exceeds min\(d_in=\d+, "
                      rf"d_out=\d+\) = {limit}; using the effective rank {limit}") as caught:
        layer.run(x)
    assert len(caught) == 1
    assert layer.r > limit and layer.rank_ == limit
    assert layer.A_.shape[0] == layer.B_.shape[1] == limit
    assert layer.scale == 1.0  # alpha=None: α is the effective rank
    reference = type(layer)(**{**layer.hyperparameters(), "r": limit})
    reference.run(x)
    assert torch.equal(layer.A_, reference.A_)  # the same layer as one built at that rank
