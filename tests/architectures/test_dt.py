"""The "dt" family of the architectures study (analysis/_arch_dt.py): a Decision Transformer."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir.adapt import adapted_layers
from deepreservoir.errors import DataError
from deepreservoir.studies import load_helper

pytest.importorskip("gymnasium")

ANALYSIS = Path(__file__).resolve().parents[2] / "analysis"
family = load_helper("_arch_dt", ANALYSIS)
common = load_helper("_arch_common", ANALYSIS)


@pytest.fixture(scope="module")
def task():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield family.load_task(quick=True, seed=0)
    torch.set_num_threads(previous)


def _in_train(name: str, train=family.ADAPT["train"]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or name == p or name.startswith(p + ".")
               for p in train)


def _trajectories(count: int = 12, steps: int = 30, seed: int = 0) -> dict[str, np.ndarray]:
    return family.generate(count, steps, np.random.default_rng(seed))


def test_generated_trajectories_are_deterministic_and_valid():
    first, again, other = _trajectories(), _trajectories(), _trajectories(seed=1)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["states"], other["states"])
    lengths = first["lengths"]
    assert first["states"].shape == (12, 30, 4) and first["actions"].shape == (12, 30)
    assert ((lengths >= 1) & (lengths <= 30)).all()
    inside = np.arange(30)[None, :] < lengths[:, None]
    assert set(np.unique(first["actions"][inside])) <= {0, 1}
    assert (first["rewards"][inside] == 1).all() and (first["rewards"][~inside] == 0).all()
    assert set(first["epsilons"]) <= set(family.EPSILONS)


def test_task_windows_have_the_documented_shapes(task):
    K = family.CONTEXT
    (n_train, n_val, n_test), max_steps = family.SIZES["quick"]
    assert task.info["trajectories"] == {"train": n_train, "val": n_val, "test": n_test}
    for split in ("train", "val", "test"):
        data = task.splits[split]
        count = len(data["mask"])
        assert data["returns"].shape == (count, K, 1)
        assert data["states"].shape == (count, K, 4)
        assert data["actions"].shape == (count, K) and data["actions"].dtype == torch.long
        assert data["timesteps"].max() < max_steps and data["mask"][:, 0].all()
        if split != "train":  # evaluation windows tile the trajectories: each step once
            assert int(data["mask"].sum()) == task.info["steps"][split]
    assert 0.0 < task.info["noise_floor"] < 0.25


def test_prediction_is_causal(task):
    """The action predicted at step t does not change when a later step's inputs change."""
    model = family.build(task, seed=0).eval()
    returns, states, actions, timesteps = family.sample(task)
    changed = [returns.clone(), states.clone(), actions.clone()]
    changed[0][:, 5:] += 1.0
    changed[1][:, 5:] += 1.0
    changed[2][:, 4:] = 1 - changed[2][:, 4:]  # a_4 is not seen by the prediction of a_4
    with torch.no_grad():
        before = model(returns, states, actions, timesteps)
        after = model(*changed, timesteps)
    torch.testing.assert_close(after[:, :5], before[:, :5], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(after[:, 5:], before[:, 5:])


def test_user_file_with_continuous_actions_and_lengths(tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 25, 20)
    states = rng.normal(size=(20, 24, 3))
    states[np.arange(24)[None, :] >= lengths[:, None]] = np.nan  # padding past the end
    path = tmp_path / "trajectories.npz"
    np.savez(path, family="dt", states=states, actions=rng.normal(size=(20, 24, 2)),
             rewards=rng.normal(size=(20, 24)), lengths=lengths)
    task = family.load_task(quick=True, seed=0, data=path)
    assert not task.info["discrete"] and task.info["action_dim"] == 2
    assert sum(task.info["trajectories"].values()) == 20
    assert task.splits["train"]["actions"].shape[2] == 2
    model = family.build(task, seed=0)
    assert model(*family.sample(task)).shape[-1] == 2
    batch = next(family.batches(task, "train", 8, torch.Generator()))
    assert torch.isfinite(family.loss(model, batch))


def _bad(arrays: dict, key: str, value) -> dict:
    return {**arrays, key: value}


@pytest.mark.parametrize(("change", "key"), [
    (lambda a: {k: v for k, v in a.items() if k != "rewards"}, "rewards"),
    (lambda a: _bad(a, "states", a["states"][..., 0]), "states"),
    (lambda a: _bad(a, "actions", a["actions"][:, :5]), "actions"),
    (lambda a: _bad(a, "lengths", a["lengths"] + 100), "lengths"),
    (lambda a: _bad(a, "rewards", np.where(np.arange(30) == 0, np.nan, a["rewards"])), "rewards"),
    (lambda a: _bad(a, "states", np.full_like(a["states"], np.inf)), "states"),
])
def test_bad_user_file_names_the_key(tmp_path, change, key):
    arrays = _trajectories()
    arrays.pop("epsilons")
    path = tmp_path / "bad.npz"
    np.savez(path, **change(arrays))
    with pytest.raises(DataError, match=f"'{key}'"):
        family.load_task(quick=True, seed=0, data=path)


def test_adapt_leaves_no_weight_unaccounted(task):
    model = dr.adapt(family.build(task, seed=0), r=1, seed=0, **family.ADAPT)
    layers = adapted_layers(model)
    assert {"embed_timestep", "encoder.layers.0.self_attn.q_proj",
            "encoder.layers.1.linear2"} <= set(layers)
    for name, parameter in model.named_parameters():
        owner, _, leaf = name.rpartition(".")
        assert parameter.requires_grad, name
        assert (owner in layers and leaf in ("A_", "B_", "beta_")) or _in_train(name), name
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        owner, _, leaf = name.rpartition(".")
        if tensor.dim() >= 2:
            assert (owner in layers and leaf in ("W_", "A_", "B_")) or _in_train(name), name


@pytest.mark.parametrize("group", sorted(family.GROUPS))
def test_groups_train_whole_layers(task, group):
    """Each gap-analysis group trains its layers' dense weights, none left frozen."""
    train = [*family.ADAPT["train"], *family.GROUPS[group]]
    options = {**family.ADAPT, "train": train}
    model = dr.adapt(family.build(task, seed=0), r=max(family.RANKS), seed=0, **options)
    dense = [n for n, p in model.named_parameters() if p.dim() >= 2 and not _in_train(n, train)
             and not n.endswith(("A_", "B_"))]
    assert not dense
    grouped = [n for n, _ in model.named_parameters()
               if _in_train(n, family.GROUPS[group])]
    assert grouped and all(not n.endswith(("A_", "B_", "beta_")) for n in grouped)
    assert all(p.requires_grad for p in model.parameters())


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
    optimizer = torch.optim.AdamW(dr.adapt_parameter_groups(model, 1e-2),
                                  lr=family.HYPER["quick"].lr_lora)
    batch = next(family.batches(task, "train", 32, torch.Generator()))
    loss = family.loss(model, batch)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and 0.0 < loss.item() < 1.0
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert 0.0 < common.evaluate(model, family, task, "val") < 1.0
