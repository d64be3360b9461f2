"""The "cfc" family of the architectures study (analysis/_arch_cfc.py): ncps's CfC."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import deepreservoir as dr
from deepreservoir.adapt import adapted_layers
from deepreservoir.errors import DataError
from deepreservoir.studies import load_helper

pytest.importorskip("ncps")

ANALYSIS = Path(__file__).resolve().parents[2] / "analysis"
family = load_helper("_arch_cfc", ANALYSIS)
common = load_helper("_arch_common", ANALYSIS)


@pytest.fixture(scope="module")
def task():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield family.load_task(quick=True, seed=0)
    torch.set_num_threads(previous)


def _in_train(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or name == p or name.startswith(p + ".")
               for p in family.ADAPT["train"])


def test_generated_data_is_deterministic_and_documented(task):
    again = family.load_task(quick=True, seed=0)
    other = family.load_task(quick=True, seed=1)
    (n_train, n_val, n_test), steps = family.SIZES["quick"]
    inputs = 2 * family.FEATURES + 1
    for split, count in (("train", n_train), ("val", n_val), ("test", n_test)):
        data = task.splits[split]
        assert data["x"].shape == (count, steps, inputs)
        assert data["gaps"].shape == (count, steps)
        assert set(data["y"].unique().tolist()) == {0.0, 1.0}
        assert torch.isfinite(data["x"]).all() and (data["gaps"] >= 0).all()
        for key in data:
            assert torch.equal(data[key], again.splits[split][key])
    assert not torch.equal(task.splits["train"]["x"], other.splits["train"]["x"])
    raw = family.generate(50, steps, np.random.default_rng(3))
    assert np.isnan(raw["X"]).any()  # missing values, turned into the mask channels
    assert (np.diff(raw["times"], axis=1) >= 0).all()


def test_user_file_with_missing_values(tmp_path):
    rng = np.random.default_rng(0)
    raw = family.generate(80, 10, rng)
    path = tmp_path / "physionet_like.npz"
    np.savez(path, family="cfc", **raw)
    task = family.load_task(quick=True, seed=0, data=path)
    assert task.source == "file: physionet_like.npz"
    assert task.info["sizes"] == {"train": 54, "val": 10, "test": 16}
    x = task.splits["train"]["x"]
    assert x.shape[1:] == (10, 9) and torch.isfinite(x).all()
    model = family.build(task, seed=0)
    assert model(*family.sample(task)).shape == (4,)


@pytest.mark.parametrize(("change", "key"), [
    (lambda a: a.pop("times"), "times"),
    (lambda a: a.__setitem__("times", a["times"][:, ::-1].copy()), "times"),
    (lambda a: a["times"].__setitem__((0, 0), np.nan), "times"),
    (lambda a: a.__setitem__("y", a["y"] + 2), "y"),
    (lambda a: a.__setitem__("X", a["X"][..., 0]), "X"),
    (lambda a: a["X"].__setitem__((0, 0, 0), np.inf), "X"),
    (lambda a: a.__setitem__("X_test", a["X"][:5]), "times_test"),
])
def test_bad_user_file_names_the_key(tmp_path, change, key):
    arrays = family.generate(40, 8, np.random.default_rng(0))
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=f"'{key}'|{key}"):
        family.load_task(quick=True, seed=0, data=path)


def test_every_cfc_weight_is_a_linear(task):
    """ncps's fully connected CfC holds only nn.Linear weights: dr.adapt covers all of them."""
    model = family.build(task, seed=0)
    owners = {name.rpartition(".")[0] for name, _ in model.named_parameters()}
    for owner in owners:
        assert isinstance(model.get_submodule(owner), nn.Linear), owner
    assert {o for o in owners if o.startswith("rnn.")} == {
        "rnn.rnn_cell.backbone.0", "rnn.rnn_cell.ff1", "rnn.rnn_cell.ff2",
        "rnn.rnn_cell.time_a", "rnn.rnn_cell.time_b"}


def test_timespans_are_per_series_for_any_batch_size(task):
    """A batch of exactly ``units`` series gives each series its own output (ncps's squeeze)."""
    model = family.build(task, seed=0).eval()
    x, gaps = task.splits["test"]["x"][:family.UNITS], task.splits["test"]["gaps"][:family.UNITS]
    with torch.no_grad():
        together = model(x, gaps)
        alone = torch.cat([model(x[i:i + 1], gaps[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(together[:3], alone, rtol=1e-5, atol=1e-6)


def test_adapt_leaves_no_weight_unaccounted(task):
    model = dr.adapt(family.build(task, seed=0), r=1, seed=0, **family.ADAPT)
    layers = adapted_layers(model)
    assert layers  # the five Linear layers of the cell
    for name, parameter in model.named_parameters():
        owner, _, leaf = name.rpartition(".")
        assert parameter.requires_grad, name
        assert (owner in layers and leaf in ("A_", "B_", "beta_")) or _in_train(name), name
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        owner, _, leaf = name.rpartition(".")
        if tensor.dim() >= 2:
            assert (owner in layers and leaf == "W_") or _in_train(name) \
                or leaf in ("A_", "B_"), name


def test_merge_gives_plain_torch_with_the_same_outputs(task):
    model = dr.adapt(family.build(task, seed=0), r=1, seed=0, **family.ADAPT)
    with torch.no_grad():
        for layer in adapted_layers(model).values():
            layer.B_.normal_(0.0, 0.1)  # a trained-looking adapter
    merged = dr.merge(model)
    for module in merged.modules():
        assert not type(module).__module__.startswith("deepreservoir."), type(module)
    model.eval()
    merged.eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(*family.sample(task)), model(*family.sample(task)),
                                   rtol=0, atol=1e-5)


def test_one_training_step_stays_finite(task):
    model = dr.adapt(family.build(task, seed=0), r=1, seed=0, **family.ADAPT)
    hyper = common.Hyper(epochs=1, batch_size=64, lr_full=3e-3, lr_lora=1e-2)
    optimizer = torch.optim.AdamW(dr.adapt_parameter_groups(model, 1e-2), lr=hyper.lr_lora)
    batch = next(family.batches(task, "train", hyper.batch_size, torch.Generator()))
    loss = family.loss(model, batch)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert 0.0 <= common.evaluate(model, family, task, "val") <= 1.0
