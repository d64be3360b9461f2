"""``dr.save_adapted`` / ``dr.load_adapted``: an adapted module ships as its trained tensors
plus its ``adapt`` arguments, and comes back bit for bit on a fresh instance."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

import deepreservoir as dr
from deepreservoir.adapt import adapted_layers
from deepreservoir.errors import ArtifactError, ParameterError


class Small(nn.Module):
    """A convolution, an embedding, attention, a norm and a head: every adapted kind."""

    def __init__(self, width=8):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(1, width, 3, padding=1)
        self.embed = nn.Embedding(5, width)
        self.attention = nn.MultiheadAttention(width, 2, batch_first=True)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 3)

    def forward(self, signal, tokens):
        h = self.conv(signal).transpose(1, 2) + self.embed(tokens)
        h = self.norm(h + self.attention(h, h, h, need_weights=False)[0])
        return self.head(h.mean(1))


SIGNAL = torch.randn(2, 1, 6, generator=torch.Generator().manual_seed(1))
TOKENS = torch.randint(0, 5, (2, 6), generator=torch.Generator().manual_seed(2))


def trained(module, seed=0):
    """Move every trainable tensor off its start, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.requires_grad:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return module


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**40), r=st.integers(0, 3), family=st.sampled_from(
    ["normal", "binary", {"name": "uniform", "a": 0.3}]))
def test_a_round_trip_is_bit_identical(tmp_path_factory, seed, r, family):
    model = trained(dr.adapt(Small(), r=r, seed=seed, family=family, train=["head", "norm"]))
    path = dr.save_adapted(model, tmp_path_factory.mktemp("io") / "small.safetensors")
    again = dr.load_adapted(Small(), path)
    assert torch.equal(again(SIGNAL, TOKENS), model(SIGNAL, TOKENS))
    assert dr.adapt_config(again) == dr.adapt_config(model)
    for name, tensor in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name


def test_the_file_holds_no_scaffold_and_records_the_arguments(tmp_path):
    model = dr.adapt(Small(width=32), r=1, seed=4, train=["head", "norm"])
    path = dr.save_adapted(model, tmp_path / "a.safetensors")
    with safe_open(str(path), framework="pt") as handle:
        names, metadata = list(handle.keys()), handle.metadata()
    assert not any(name.endswith("W_") for name in names)
    assert sum(p.numel() for p in model.parameters()) < 0.25 * sum(
        p.numel() for p in Small(width=32).parameters())
    assert json.loads(metadata["adapt"])["seed"] == 4
    assert metadata["module"].endswith("Small")
    assert set(json.loads(metadata["fingerprints"])) == set(adapted_layers(model))


def test_virtual_weights_round_trip(tmp_path):
    mlp = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 2))
    x = torch.randn(3, 12)
    model = trained(dr.adapt(mlp, r=2, seed=9, train=["2"], weights="virtual"))
    path = dr.save_adapted(model, tmp_path / "v.safetensors")
    fresh = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 2))
    again = dr.load_adapted(fresh, path)
    assert again[0].virtual_weight() is not None
    assert torch.equal(again(x), model(x))


def test_bad_input_is_named(tmp_path):
    model = dr.adapt(Small(), r=2, seed=1, train=["head", "norm"])
    path = dr.save_adapted(model, tmp_path / "a.safetensors")
    with pytest.raises(ParameterError, match="must be a module returned by dr.adapt"):
        dr.save_adapted(Small(), tmp_path / "b.safetensors")
    with pytest.raises(ParameterError, match="names a file that exists"):
        dr.save_adapted(model, path, overwrite=False)
    with pytest.raises(ParameterError, match="not yet adapted Small. Got one that dr.adapt"):
        dr.load_adapted(model, path)
    with pytest.raises(ParameterError, match=r"must be a .*Small \(the saved module's class\)"):
        dr.load_adapted(nn.Linear(2, 2), path)
    with pytest.raises(ArtifactError, match=r"with shape \(2, 8\).*expects \(2, 4\)"):
        dr.load_adapted(Small(width=4), path)
    with pytest.raises(ArtifactError, match="names no file"):
        dr.load_adapted(Small(), tmp_path / "none.safetensors")

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ArtifactError, match="not a readable safetensors file"):
        dr.load_adapted(Small(), broken)

    with safe_open(str(path), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
        metadata = dict(handle.metadata())
    other = tmp_path / "other.safetensors"
    save_file(tensors, str(other), metadata={"format": "something else"})
    with pytest.raises(ArtifactError, match="not an adapted-module file"):
        dr.load_adapted(Small(), other)
    prints = json.loads(metadata["fingerprints"])
    prints["conv"] = "0" * 16
    tampered = dict(metadata, fingerprints=json.dumps(prints))
    save_file(tensors, str(other), metadata=tampered)
    with pytest.raises(ArtifactError, match="other frozen weights than the ones regenerated"):
        dr.load_adapted(Small(), other)
    for entry, value in (("adapt", '{"r": 1, "seed": 0, "colour": "red"}'), ("adapt", "[1]"),
                         ("fingerprints", '{"conv": 3}'), ("module", "")):
        save_file(tensors, str(other), metadata=dict(metadata, **{entry: value}))
        with pytest.raises(ArtifactError, match=f"'{entry}' entry"):
            dr.load_adapted(Small(), other)
    narrow = Small(width=4)
    with pytest.raises(ArtifactError, match=r"with shape \(2, 8\)"):
        dr.load_adapted(narrow, path)
    assert type(narrow.conv) is nn.Conv1d  # a failed load leaves the instance as it was
    assert dr.adapt_config(dr.load_adapted(Small(), path))["seed"] == 1
    poisoned = dict(tensors)
    poisoned["head.weight"] = torch.full_like(tensors["head.weight"], float("nan"))
    save_file(poisoned, str(other), metadata=metadata)
    with pytest.raises(ArtifactError, match="'head.weight' with 24 NaN or Inf"):
        dr.load_adapted(Small(), other)
    with torch.no_grad():
        model.head.weight.fill_(float("inf"))
    with pytest.raises(ParameterError, match="parameter 'head.weight' that is not finite"):
        dr.save_adapted(model, tmp_path / "c.safetensors")


def test_a_buffer_may_hold_inf(tmp_path):
    """A causal mask of -inf is a buffer, not a diverged parameter: it saves and loads."""

    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 4)
            self.register_buffer("mask", torch.triu(torch.full((4, 4), float("-inf")), 1))

        def forward(self, x):
            return torch.softmax(self.layer(x) + self.mask, -1)

    x = torch.randn(4, 4)
    model = trained(dr.adapt(Masked(), r=1, seed=2))
    again = dr.load_adapted(Masked(), dr.save_adapted(model, tmp_path / "m.safetensors"))
    assert torch.equal(again(x), model(x))
