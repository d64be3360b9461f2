"""The ``gcn`` family of the architectures study (``analysis/_arch_gcn.py``)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torch_geometric")
pytest.importorskip("networkx")

import deepreservoir as dr
from deepreservoir.adapt import adapted_layers
from deepreservoir.errors import DataError
from deepreservoir.studies import load_helper

ANALYSIS = Path(__file__).resolve().parents[2] / "analysis"


@pytest.fixture(scope="module")
def family():
    return load_helper("_arch_gcn", ANALYSIS)


@pytest.fixture(scope="module")
def common():
    return load_helper("_arch_common", ANALYSIS)


@pytest.fixture(scope="module")
def task(family):
    return family.load_task(quick=True, seed=0, data=None)


def _trained_adapted(family, common, task, r=1):
    """An adapted GCN after a few optimizer steps (so B ≠ 0 and merge is not trivial)."""
    model = dr.adapt(family.build(task, seed=0), r=r, seed=0, **family.ADAPT)
    hyper = dataclasses.replace(family.HYPER["quick"], epochs=3)
    common.train(model, family, task, lr=hyper.lr_lora, hyper=hyper, seed=0)
    return model


def test_the_generated_graph_is_deterministic_and_documented(family, task):
    again = family.load_task(quick=True, seed=0, data=None)
    other = family.load_task(quick=True, seed=1, data=None)
    graph = task.splits["train"]
    for key in ("x", "edge_index", "y"):
        assert torch.equal(graph[key], again.splits["train"][key])
    assert not torch.equal(graph["x"], other.splits["train"]["x"])
    nodes = family.NODES[True]
    assert graph["x"].shape == (nodes, family.FEATURES) and graph["x"].dtype == torch.float32
    assert sorted(graph["y"].unique().tolist()) == list(range(family.BLOCKS))
    edges = graph["edge_index"]
    assert edges.shape[0] == 2 and 0 <= int(edges.min()) and int(edges.max()) < nodes
    pairs = set(map(tuple, edges.T.tolist()))
    assert all((b, a) in pairs for a, b in pairs)  # undirected: both directions
    assert len(pairs) / nodes == pytest.approx(
        family.DEGREE_INSIDE + family.DEGREE_OUTSIDE, rel=0.25)
    split_nodes = [task.splits[s]["nodes"] for s in ("train", "val", "test")]
    assert torch.equal(torch.sort(torch.cat(split_nodes)).values, torch.arange(nodes))
    assert task.info["classes"] == family.BLOCKS and task.info["n_train"] == nodes // 2
    model = family.build(task, seed=3)
    assert model(*family.sample(task)).shape == (nodes, family.BLOCKS)
    same = family.build(task, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters()))


def _graph_arrays(nodes=30, features=8, seed=0):
    rng = np.random.default_rng(seed)
    edges = rng.integers(0, nodes, size=(2, 90))
    return {"X": rng.normal(size=(nodes, features)).astype(np.float32),
            "y": np.arange(nodes) % 3, "edge_index": edges}


def test_a_user_file_is_read_with_and_without_masks(family, tmp_path):
    arrays = _graph_arrays()
    path = tmp_path / "graph.npz"
    np.savez(path, **arrays)
    task = family.load_task(quick=True, seed=0, data=path)
    assert task.source == "file: graph.npz"
    assert task.info["nodes"] == 30 and task.info["classes"] == 3 and task.info["edges"] == 90
    assert (task.info["n_train"], task.info["n_val"], task.info["n_test"]) == (15, 6, 9)
    masks = {"train_mask": np.arange(30) < 20, "val_mask": (np.arange(30) >= 20)
             & (np.arange(30) < 25), "test_mask": np.arange(30) >= 25}
    np.savez(path, **arrays, **masks)
    task = family.load_task(quick=False, seed=0, data=path)
    assert torch.equal(task.splits["test"]["nodes"], torch.arange(25, 30))
    assert torch.equal(task.splits["train"]["edge_index"], torch.as_tensor(arrays["edge_index"]))


@pytest.mark.parametrize("change, key", [
    (lambda a: a.pop("y"), "'y'"),
    (lambda a: a.pop("edge_index"), "'edge_index'"),
    (lambda a: a["X"].__setitem__((3, 1), np.nan), "'X'"),
    (lambda a: a.__setitem__("y", a["y"][:-1]), "'y'"),
    (lambda a: a.__setitem__("edge_index", a["edge_index"].T), "'edge_index'"),
    (lambda a: a["edge_index"].__setitem__((1, 4), 30), "'edge_index'"),
    (lambda a: a.__setitem__("train_mask", np.ones(30, bool)), "test_mask"),
    (lambda a: a.update(train_mask=np.ones(30, bool), val_mask=np.ones(30, bool),
                        test_mask=np.zeros(30, bool)), "'test_mask'"),
])
def test_a_bad_user_file_names_the_key(family, tmp_path, change, key):
    arrays = _graph_arrays()
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=key) as caught:
        family.load_task(quick=True, seed=0, data=path)
    assert "bad.npz" in str(caught.value)
    with pytest.raises(DataError, match="does not exist"):
        family.load_task(quick=True, seed=0, data=tmp_path / "missing.npz")


def test_adapt_leaves_only_adapters_and_the_head_trainable(family, task):
    model = dr.adapt(family.build(task, seed=0), r=1, seed=0, **family.ADAPT)
    adapted = adapted_layers(model)
    assert {"convs.0.lin", "convs.1.lin"} <= set(adapted)
    adapter_names = {f"{path}.{name}" for path, layer in adapted.items()
                     for name, _ in layer.named_parameters(recurse=False)}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert name in adapter_names or name.startswith("head."), name
        else:
            assert parameter.ndim < 2, f"{name} is a frozen weight matrix, not adapted"
            assert name.endswith(".bias") and not parameter.any()  # GCNConv's bias, zero
    for name, buffer in model.named_buffers():
        if buffer.ndim >= 2:
            path, _, leaf = name.rpartition(".")
            assert leaf == "W_" and path in adapted, name


@pytest.mark.parametrize("group", ["conv1", "conv2"])
def test_a_group_trains_fully_in_the_gap_analysis(family, task, group):
    adapt = dict(family.ADAPT, train=[*family.ADAPT["train"], *family.GROUPS[group]])
    model = dr.adapt(family.build(task, seed=0), r=max(family.RANKS), seed=0, **adapt)
    conv = model.get_submodule(family.GROUPS[group][0])
    assert all(p.requires_grad for p in conv.parameters())
    assert not any(path.startswith(family.GROUPS[group][0]) for path in adapted_layers(model))


def test_merge_gives_plain_modules_with_the_same_outputs(family, common, task):
    model = _trained_adapted(family, common, task)
    merged = dr.merge(model)
    for name, module in merged.named_modules():
        assert type(module).__module__.split(".")[0] != "deepreservoir", name
    from torch_geometric.nn.dense.linear import Linear

    assert type(merged.convs[0].lin) is Linear
    model.eval()
    merged.eval()
    with torch.no_grad():
        expected, got = model(*family.sample(task)), merged(*family.sample(task))
    assert torch.allclose(expected, got, atol=1e-5, rtol=0)


def test_one_quick_training_keeps_everything_finite_and_round_trips(family, common, task,
                                                                     tmp_path):
    model = dr.adapt(family.build(task, seed=0), r=8, seed=0, **family.ADAPT)
    hyper = dataclasses.replace(family.HYPER["quick"], epochs=2)
    before = common.evaluate(model, family, task, "val")
    result = common.train(model, family, task, lr=hyper.lr_lora, hyper=hyper, seed=0)
    assert np.isfinite(result["train_loss"]) and result["steps"] == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert 0.0 <= common.evaluate(model, family, task, "val") <= 1.0 and 0 <= before <= 1
    path = dr.save_adapted(model, tmp_path / "gcn.safetensors")
    loaded = dr.load_adapted(family.build(task, seed=5), path)
    model.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(*family.sample(task)), loaded(*family.sample(task)))
