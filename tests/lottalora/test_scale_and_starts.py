"""The scaffold's named scales, the B initialisation, dead starts, and β outside weight decay."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import blobs

import deepreservoir as dr

OPTIONS = {"epochs": 3, "batch_size": 32, "loss": "cross_entropy", "seed": 7, "verbose": 0}


def first_weight(**kwargs):
    model = dr.scaffold_mlp((400, 8), 3, r=2, seed=5, **kwargs)
    model.run(np.zeros((1, 300), dtype=np.float32))
    return model.nodes["layer0"].W_.double()


@pytest.mark.parametrize("scale, sigma", [("fan_in", 1 / math.sqrt(300)), ("sigma0.1", 0.1),
                                          ("he", math.sqrt(2 / 300)), (0.5, 0.5)])
def test_named_scales_draw_the_stated_sigma(scale, sigma):
    W = first_weight(scale=scale)
    # 120,000 draws: the sample σ is within 1 % of σ with overwhelming probability
    assert abs(float(W.std()) / sigma - 1) < 0.01
    assert abs(float(W.mean())) < 0.01 * sigma * 10


def test_the_default_scale_is_the_fan_in_family_unchanged():
    assert torch.equal(first_weight(), first_weight(scale="fan_in"))
    assert set(dr.SCAFFOLD_SCALES) == {"fan_in", "sigma0.1", "he"}


@pytest.mark.parametrize("kwargs, shown", [
    ({"scale": "huge"}, "'scale' parameter of scaffold_mlp"),
    ({"scale": -0.1}, "Got -0.1"),
    ({"scale": True}, "Got True"),
    ({"scale": "he", "family": "uniform"}, "applies to family='normal' only"),
    ({"b_init": "ones"}, "'b_init'"),
])
def test_bad_scales_and_b_inits_are_refused(kwargs, shown):
    with pytest.raises(dr.ParameterError, match=shown):
        dr.scaffold_mlp((16, 8), 3, r=2, **kwargs)


def test_scale_survives_save_and_load(tmp_path):
    x, y = blobs(n=64)
    model = dr.scaffold_mlp((16, 8), 3, r=2, seed=5, scale="sigma0.1")
    model.fit(x, y, **OPTIONS)
    loaded = dr.load(model.save(tmp_path / "m.dr"))
    assert np.array_equal(loaded.run(x), model.run(x))
    assert dr.families.get_family(loaded.nodes["layer0"].family) == dr.families.Normal(scale=0.1)


def test_b_kaiming_is_seeded_and_bounded():
    layer = dr.Scaffold(16, r=4, seed=3, b_init="kaiming")
    layer.run(np.ones((2, 10), dtype=np.float32))
    again = dr.Scaffold(16, r=4, seed=3, b_init="kaiming")
    again.run(np.ones((2, 10), dtype=np.float32))
    B = layer.B_.detach()
    assert torch.equal(B, again.B_.detach())
    assert float(B.abs().max()) <= 1 / math.sqrt(4) and float(B.abs().min()) > 0
    assert float(B.std()) > 0.2  # U(±1/2) has σ ≈ 0.29
    zero = dr.Scaffold(16, r=4, seed=3)
    zero.run(np.ones((2, 10), dtype=np.float32))
    assert torch.count_nonzero(zero.B_) == 0
    assert torch.equal(zero.A_, layer.A_)  # A is the same draw either way
    assert layer.hyperparameters()["b_init"] == "kaiming"


def test_b_init_round_trips_through_an_artifact(tmp_path):
    x, y = blobs(n=64)
    model = dr.scaffold_mlp((16, 8), 3, r=2, seed=5, b_init="kaiming", head="lora")
    model.fit(x, y, **OPTIONS)
    loaded = dr.load(model.save(tmp_path / "k.dr"))
    assert loaded.nodes["layer0"].b_init == "kaiming"
    assert np.array_equal(loaded.run(x), model.run(x))


def test_a_dead_start_is_refused_before_any_training():
    x, y = blobs(n=64)
    model = dr.scaffold_mlp((16, 8), 3, r=2, seed=1, family=None)
    model.run(x)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with pytest.raises(dr.ParameterError) as error:
        model.fit(x, y, **OPTIONS)
    message = str(error.value)
    assert "Scaffold 'layer0'" in message and "W_seed = 0" in message
    assert "b_init='kaiming'" in message and "every gradient is 0" in message
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), before[name]), name


@pytest.mark.parametrize("kwargs", [{"b_init": "kaiming"}, {"bias": "seeded"}])
def test_the_revived_starts_train(kwargs):
    x, y = blobs(n=96)
    model = dr.scaffold_mlp((16, 8), 3, r=2, seed=1, family=None, **kwargs)
    history = model.fit(x, y, lr=1e-2, **OPTIONS).history_
    assert float(history.loss[-1]) < float(history.loss[0])
    assert float(model.nodes["layer0"].B_.detach().abs().sum()) > 0


def test_a_zero_scaffold_with_a_smooth_activation_is_not_a_dead_start():
    layer = dr.Scaffold(8, r=2, family=None, activation="tanh", seed=0)
    assert layer.dead_start_reason() is None
    assert dr.Scaffold(8, r=2, family=None, seed=0).dead_start_reason() is not None
    assert dr.Scaffold(8, r=2, seed=0).dead_start_reason() is None


def test_weight_decay_leaves_beta_alone():
    # A loss with zero gradients everywhere (not None): only weight decay moves anything.
    x, _ = blobs(n=64)
    model = dr.scaffold_mlp((16, 8), 3, r=2, seed=1)
    model.run(x)
    head_before = model.nodes["head"].W_.detach().clone()
    model.fit(x, np.zeros((64, 3), dtype=np.float32), epochs=2, batch_size=32, lr=0.1,
              weight_decay=0.5, schedule="constant", loss=lambda out, target: (out * 0).sum(),
              seed=7, verbose=0)
    for name in ("layer0", "layer1"):
        assert float(model.nodes[name].beta_.detach()) == 1.0
    # everything else is decayed: AdamW shrinks the head by (1 − lr·wd) per step
    torch.testing.assert_close(model.nodes["head"].W_.detach(), head_before * 0.95**4)


def test_adapted_modules_get_the_same_no_decay_rule():
    from torch import nn

    from deepreservoir.adapt import adapted_layers

    module = dr.adapt(nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2)), r=2, seed=0,
                      train=["2"])
    decayed, gates = dr.adapt_parameter_groups(module, weight_decay=0.1)
    betas = [layer.beta_ for layer in adapted_layers(module).values()]
    assert {id(p) for p in gates["params"]} == {id(b) for b in betas} and gates[
        "weight_decay"] == 0.0
    trainable = {id(p) for p in module.parameters() if p.requires_grad}
    assert {id(p) for p in decayed["params"]} == trainable - {id(b) for b in betas}
    assert decayed["weight_decay"] == 0.1
    optimizer = torch.optim.AdamW([decayed, gates], lr=0.5)
    for _ in range(3):  # β gets no gradient here: only decay could move it
        optimizer.zero_grad()
        (module(torch.ones(4, 6)) * 0).sum().backward()
        optimizer.step()
    assert all(float(b.detach()) == 1.0 for b in betas)
    with pytest.raises(dr.ParameterError, match="'weight_decay'"):
        dr.adapt_parameter_groups(module, weight_decay=-1)
