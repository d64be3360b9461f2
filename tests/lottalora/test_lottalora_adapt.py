"""dr.adapt on torch modules (Transformer encoder, CNN) and dr.merge back to plain torch."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import deepreservoir as dr
from deepreservoir.adapt import AdaptedLinear, AdaptedMultiheadAttention
from deepreservoir.errors import ParameterError
from deepreservoir.lora import RankCappedWarning


class TinyTransformer(nn.Module):
    def __init__(self, vocab=40, d=16, classes=3):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens)).mean(1))


def tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2),
                         nn.ReLU(), nn.Conv2d(8, 8, 1, groups=2), nn.Flatten(),
                         nn.Linear(8 * 5 * 5, 4))


def perturb(module, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("B_"):
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
            elif name.endswith("beta_"):
                p.fill_(0.8)
    return module


TOKENS = torch.randint(0, 40, (4, 6), generator=torch.Generator().manual_seed(1))
IMAGES = torch.randn(3, 1, 12, 12, generator=torch.Generator().manual_seed(2))


def test_transformer_parameters_are_adapters_heads_and_norms():
    model = dr.adapt(TinyTransformer(), r=2, seed=1, train=["head", "*norm*"])
    names = [n for n, _ in model.named_parameters()]
    assert all(n.endswith(("A_", "B_", "beta_")) or n.startswith("head") or "norm" in n
               for n in names)
    attention = model.encoder.layers[0].self_attn
    assert isinstance(attention, AdaptedMultiheadAttention)
    assert attention.in_proj_weight.shape == (48, 16)
    assert isinstance(model.encoder.layers[0].linear1, AdaptedLinear)
    assert not any(k.endswith("W_") for k in model.state_dict())
    trained = sum(p.numel() for p in model.parameters())
    # embedding 2·(40+16), per layer 4 attention projections + 2 MLP layers, + β each
    per_layer = 4 * (2 * 32 + 1) + (2 * (16 + 32) + 1) * 2
    norms = 2 * 2 * 2 * 16
    assert trained == 2 * (40 + 16) + 1 + 2 * per_layer + norms + 16 * 3 + 3


def test_fresh_adapter_is_a_no_op():
    plain = dr.adapt(TinyTransformer(), r=0, seed=3, train=["head", "*norm*"])
    adapted = dr.adapt(TinyTransformer(), r=4, seed=3, train=["head", "*norm*"])
    assert torch.equal(plain(TOKENS), adapted(TOKENS))
    plain_cnn = dr.adapt(tiny_cnn(), r=0, seed=3, train=["6"], unsupported="freeze")
    adapted_cnn = dr.adapt(tiny_cnn(), r=2, seed=3, train=["6"], unsupported="freeze")
    assert torch.equal(plain_cnn(IMAGES), adapted_cnn(IMAGES))


def test_seeded_scaffold_is_reproducible_and_replaces_pretrained_weights():
    a = dr.adapt(TinyTransformer(), r=2, seed=5)
    b = dr.adapt(TinyTransformer(), r=2, seed=5)
    c = dr.adapt(TinyTransformer(), r=2, seed=6)
    wa = a.encoder.layers[1].linear2.W_
    assert torch.equal(wa, b.encoder.layers[1].linear2.W_)
    assert not torch.equal(wa, c.encoder.layers[1].linear2.W_)
    assert abs(float(wa.var()) * 32 - 1) < 0.3  # N(0, 1/d_in)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**40), r=st.integers(1, 3), rslora=st.booleans())
def test_merge_matches(seed, r, rslora):
    model = perturb(dr.adapt(TinyTransformer(), r=r, seed=seed, rslora=rslora,
                             train=["head", "*norm*"]), seed % 97)
    merged = dr.merge(model)
    assert not any(type(m).__module__.startswith("deepreservoir") for m in merged.modules())
    torch.testing.assert_close(merged(TOKENS), model(TOKENS), rtol=1e-5, atol=1e-5)
    model.eval()
    merged.eval()
    with torch.no_grad():  # torch's fused encoder fast path reads the merged weights
        torch.testing.assert_close(merged(TOKENS), model(TOKENS), rtol=1e-5, atol=1e-5)
    cnn = perturb(dr.adapt(tiny_cnn(), r=r, seed=seed, train=["6"],
                             unsupported="freeze"), seed % 89)
    torch.testing.assert_close(dr.merge(cnn)(IMAGES), cnn(IMAGES), rtol=1e-5, atol=1e-5)


def test_a_grouped_conv_is_refused_by_name_or_frozen_on_request():
    with pytest.raises(ParameterError, match=r"'4' \(torch.nn.modules.conv.Conv2d: 'weight' "
                       r"\(8, 4, 1, 1\); a convolution with groups=2.*unsupported='freeze'"):
        dr.adapt(tiny_cnn(), r=2, seed=0, train=["6"])
    cnn = dr.adapt(tiny_cnn(), r=2, seed=0, train=["6"], unsupported="freeze")
    grouped = cnn[4]
    assert type(grouped) is nn.Conv2d and not grouped.weight.requires_grad
    assert "4.weight" in cnn.state_dict()
    trained = dr.adapt(tiny_cnn(), r=2, seed=0, train=["6", "4"])  # or trained as it is
    assert trained[4].weight.requires_grad


def test_parametrised_and_foreign_weights_are_refused_by_name():
    from torch.nn.utils import parametrizations

    model = nn.Sequential(parametrizations.weight_norm(nn.Linear(4, 4)), nn.Linear(4, 2))
    with pytest.raises(ParameterError, match=r"'0' \(torch.nn.utils.parametrize."
                       r"ParametrizedLinear: 'weight' \(4, 4\); its weight is parametrised "
                       r"\(weight\)"):
        dr.adapt(model, r=1, seed=0, train=["1"])

    class Bilinear(nn.Module):  # a layer type adapt does not know
        def __init__(self):
            super().__init__()
            self.kernel = nn.Parameter(torch.randn(3, 4, 4))

        def forward(self, x):
            return torch.einsum("bi,kij,bj->bk", x, self.kernel, x)

    with pytest.raises(ParameterError, match=r"'1' \(.*Bilinear: 'kernel' \(3, 4, 4\); "
                       r"not a layer type adapt knows"):
        dr.adapt(nn.Sequential(nn.Linear(4, 4), Bilinear()), r=1, seed=0)
    with pytest.raises(ParameterError, match="'unsupported' parameter of adapt must be one of"):
        dr.adapt(nn.Linear(4, 4), r=1, seed=0, unsupported="skip")
    lazy = nn.Sequential(nn.LazyLinear(3))
    with pytest.raises(ParameterError, match=r"parameter '0.weight' that is not initialised"):
        dr.adapt(lazy, r=1, seed=0)
    with pytest.raises(ParameterError, match=r"parameter '1.weight' that is not initialised"):
        dr.adapt(nn.Sequential(nn.Linear(2, 2), nn.LazyBatchNorm1d()), r=1, seed=0)
    with pytest.raises(ParameterError, match=r"is itself a single Linear.*nn.Sequential"):
        dr.adapt(nn.Linear(4, 4), r=1, seed=0)
    twice = dr.adapt(nn.Sequential(nn.Linear(4, 4)), r=1, seed=0)
    with pytest.raises(ParameterError, match="already adapted"):
        dr.adapt(twice, r=1, seed=0)
    assert dr.adapt(dr.merge(twice), r=1, seed=0) is not None  # merge gives a plain module
    with pytest.raises(ParameterError, match="must be a module returned by dr.adapt"):
        dr.adapt_config(dr.merge(twice))


def test_train_naming_a_parameter_keeps_its_layer_as_it_is():
    train = ["encoder.layers.0.self_attn.out_proj.weight", "head"]
    with pytest.raises(ParameterError, match=r"'encoder.layers.0.self_attn' .*'in_proj_weight' "
                       r"\(48, 16\); 'train' names some of its parameters"):
        dr.adapt(TinyTransformer(), r=1, seed=0, train=train)
    model = dr.adapt(TinyTransformer(), r=1, seed=0, train=train, unsupported="freeze")
    attention = model.encoder.layers[0].self_attn
    assert type(attention) is nn.MultiheadAttention  # its out_proj is named: kept whole
    assert attention.out_proj.weight.requires_grad
    assert not attention.in_proj_weight.requires_grad  # frozen as it is
    assert isinstance(model.encoder.layers[1].self_attn, AdaptedMultiheadAttention)


def test_every_capped_layer_is_named_in_a_warning():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Embedding(3, 2))
    with pytest.warns(RankCappedWarning) as caught:
        dr.adapt(model, r=8, seed=0, unsupported="freeze")
    text = " ".join(str(w.message) for w in caught)
    assert "layer '0' (Conv2d 9 -> 2)" in text and "layer '2' (Embedding 3 x 2)" in text
    assert model[0].r == 2 and model[2].r == 2
    assert all(w.filename == __file__ for w in caught)  # points at this call


def test_training_moves_only_adapters():
    model = dr.adapt(TinyTransformer(), r=2, seed=1, train=["head"])
    before = copy.deepcopy(model.state_dict())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    loss = nn.functional.cross_entropy(model(TOKENS), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert torch.equal(before["encoder.layers.0.norm1.weight"],
                       after["encoder.layers.0.norm1.weight"])
    assert not torch.equal(before["encoder.layers.0.linear1.B_"],
                           after["encoder.layers.0.linear1.B_"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"r": -1}, r"'r' parameter of adapt must be an int >= 0\. Got -1"),
        ({"r": 2, "alpha": 0.0}, r"'alpha' parameter of adapt must be a float > 0"),
        ({"r": 2, "bias": "maybe"}, r"'bias' parameter of adapt must be one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        dr.adapt(TinyTransformer(), seed=0, **kwargs)


def test_state_dict_round_trip_regenerates_the_scaffold(tmp_path):
    from safetensors.torch import load_file, save_file

    model = perturb(dr.adapt(TinyTransformer(), r=2, seed=4, train=["head", "*norm*"]), 3)
    model.eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "adapters.safetensors"))
    fresh = dr.adapt(TinyTransformer(), r=2, seed=4, train=["head", "*norm*"])
    fresh.load_state_dict(load_file(str(tmp_path / "adapters.safetensors")), strict=True)
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(TOKENS), model(TOKENS))
    stored = sum(v.numel() for v in model.state_dict().values())
    frozen = sum(b.numel() for b in model.buffers())
    assert stored < frozen  # the scaffold is regenerated, not stored


def test_a_train_pattern_covers_the_parameters_of_the_modules_it_names():
    model = dr.adapt(TinyTransformer(), r=1, seed=0, train=["encoder.layers.*.norm1", "head"])
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"encoder.layers.0.norm1.weight", "encoder.layers.1.norm1.bias",
            "head.weight"} <= trained
    assert not any(".norm2." in n for n in trained)


def test_a_rank_above_a_layers_size_is_capped_for_that_layer_with_a_warning():
    model = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 16), nn.Linear(16, 2))
    with pytest.warns(RankCappedWarning, match=r"layer '0' \(Linear 1 -> 16\).*rank 1"):
        dr.adapt(model, r=8, seed=0, train=["3"])
    assert model[0].r == 1 and model[2].r == 8
