"""The ``gin`` family of the architectures study (``analysis/_arch_gin.py``)."""

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
    return load_helper("_arch_gin", ANALYSIS)


@pytest.fixture(scope="module")
def common():
    return load_helper("_arch_common", ANALYSIS)


@pytest.fixture(scope="module")
def task(family):
    return family.load_task(quick=True, seed=0, data=None)


def test_the_generated_graphs_are_deterministic_and_documented(family):
    arrays = family.random_graphs(seed=0, quick=True)
    again = family.random_graphs(seed=0, quick=True)
    assert all(np.array_equal(arrays[key], again[key]) for key in arrays)
    assert not np.array_equal(arrays["graph_ptr"], family.random_graphs(seed=1, quick=True)
                              ["graph_ptr"])
    count = family.GRAPHS[True]
    ptr, edges = arrays["graph_ptr"], arrays["edge_index"]
    assert ptr.shape == (count + 1,) and ptr[0] == 0 and ptr[-1] == len(arrays["x"])
    sizes = np.diff(ptr)
    assert sizes.min() >= family.SIZES[0] and sizes.max() <= family.SIZES[1]
    assert arrays["x"].shape[1] == family.FEATURES and (arrays["x"].sum(axis=1) == 1).all()
    source_graph = np.searchsorted(ptr, edges[0], side="right") - 1
    assert np.array_equal(source_graph, np.searchsorted(ptr, edges[1], side="right") - 1)
    assert (np.diff(source_graph) >= 0).all()  # sorted by graph
    pairs = set(map(tuple, edges.T.tolist()))
    assert all((b, a) in pairs for a, b in pairs)  # undirected: both directions
    assert edges.shape[1] / len(arrays["x"]) == pytest.approx(family.DEGREE, rel=0.1)
    assert np.array_equal(arrays["y"], (arrays["kind"] >= 2).astype(np.int64))
    assert set(np.unique(arrays["kind"]).tolist()) == set(range(len(family.GENERATORS)))
    split = np.concatenate([arrays[s] for s in ("train", "val", "test")])
    assert np.array_equal(np.sort(split), np.arange(count))


def test_collate_matches_torch_geometric_batch(family, task):
    from torch_geometric.data import Batch, Data

    graph_set = task.splits["test"]["graphs"]
    index = torch.tensor([7, 2, 11])
    single = []
    for g in index.tolist():
        nodes = slice(int(graph_set.node_ptr[g]), int(graph_set.node_ptr[g + 1]))
        edges = slice(int(graph_set.edge_ptr[g]), int(graph_set.edge_ptr[g + 1]))
        single.append(Data(x=graph_set.x[nodes],
                           edge_index=graph_set.edge_index[:, edges] - nodes.start))
    reference = Batch.from_data_list(single)
    x, edge_index, batch, y = graph_set.collate(index)
    assert torch.equal(x, reference.x) and torch.equal(edge_index, reference.edge_index)
    assert torch.equal(batch, reference.batch) and torch.equal(y, graph_set.y[index])
    model = family.build(task, seed=0).eval()
    with torch.no_grad():
        together = model(x, edge_index, batch)
        apart = torch.cat([model(d.x, d.edge_index, torch.zeros(len(d.x), dtype=torch.long))
                           for d in single])
    assert torch.allclose(together, apart, atol=1e-5)
    assert model(*family.sample(task)).shape == (4,)
    same = family.build(task, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), same.parameters()))


def _graph_arrays(graphs=12, nodes=5, features=9):
    """``graphs`` rings of ``nodes`` nodes, alternating labels."""
    ring = np.stack([np.arange(nodes), (np.arange(nodes) + 1) % nodes])
    ring = np.concatenate([ring, ring[::-1]], axis=1)
    edges = np.concatenate([ring + g * nodes for g in range(graphs)], axis=1)
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(graphs * nodes, features)), "edge_index": edges,
            "graph_ptr": np.arange(graphs + 1) * nodes, "y": np.arange(graphs) % 2}


def test_a_user_file_is_read_with_and_without_split_indices(family, tmp_path):
    arrays = _graph_arrays()
    path = tmp_path / "graphs.npz"
    np.savez(path, **arrays)
    task = family.load_task(quick=True, seed=0, data=path)
    assert task.source == "file: graphs.npz"
    assert (task.info["graphs"], task.info["nodes"], task.info["edges"]) == (12, 60, 120)
    assert sum(task.info[f"n_{s}"] for s in ("train", "val", "test")) == 12
    arrays["y"] = arrays["y"][:, None]  # (graphs, 1), as ogbg-molhiv stores it
    np.savez(path, **arrays, train_idx=np.arange(8), val_idx=np.array([8, 9]),
             test_idx=np.array([10, 11]))
    task = family.load_task(quick=False, seed=0, data=path)
    assert torch.equal(task.splits["test"]["index"], torch.tensor([10, 11]))
    x, edge_index, _, y = task.splits["test"]["graphs"].collate(torch.tensor([10, 11]))
    assert x.shape == (10, 9) and edge_index.shape == (2, 20) and y.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("change, key", [
    (lambda a: a.pop("graph_ptr"), "'graph_ptr'"),
    (lambda a: a.pop("x"), "'x'"),
    (lambda a: a["x"].__setitem__((3, 1), np.inf), "'x'"),
    (lambda a: a.__setitem__("y", np.arange(12) % 3), "'y'"),
    (lambda a: a.__setitem__("y", np.zeros(11)), "'y'"),
    (lambda a: a.__setitem__("graph_ptr", np.arange(12) * 5), "'graph_ptr'"),
    (lambda a: a["edge_index"].__setitem__((1, 0), 7), "'edge_index'"),  # joins two graphs
    (lambda a: a["edge_index"].__setitem__((1, 0), 60), "'edge_index'"),
    (lambda a: a.update(train_idx=np.arange(8), val_idx=np.array([8])), "test_idx"),
    (lambda a: a.update(train_idx=np.arange(8), val_idx=np.array([8]),
                        test_idx=np.array([7, 12])), "'test_idx'"),
])
def test_a_bad_user_file_names_the_key(family, tmp_path, change, key):
    arrays = _graph_arrays()
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=key) as caught:
        family.load_task(quick=True, seed=0, data=path)
    assert "bad.npz" in str(caught.value)


def test_adapt_leaves_only_adapters_norms_and_head_trainable(family, task):
    model = dr.adapt(family.build(task, seed=0), r=1, seed=0, **family.ADAPT)
    adapted = adapted_layers(model)
    expected = {f"convs.{i}.nn.{name}" for i in range(family.LAYERS) for name in ("lin1", "lin2")}
    assert set(adapted) == expected
    adapter_names = {f"{path}.{name}" for path, layer in adapted.items()
                     for name, _ in layer.named_parameters(recurse=False)}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert (name in adapter_names or name.startswith("head.")
                    or ".norm." in name or name.startswith("norms.")), name
        else:
            assert parameter.ndim < 2, f"{name} is a frozen weight matrix, not adapted"
    # every nn.Linear is adapted and everything else trains: nothing is frozen in place
    assert all(p.requires_grad for p in model.parameters())
    for name, buffer in model.named_buffers():
        if buffer.ndim >= 2:
            path, _, leaf = name.rpartition(".")
            assert leaf == "W_" and path in adapted, name


@pytest.mark.parametrize("group", ["gin1", "gin3"])
def test_a_group_trains_fully_in_the_gap_analysis(family, task, group):
    adapt = dict(family.ADAPT, train=[*family.ADAPT["train"], *family.GROUPS[group]])
    model = dr.adapt(family.build(task, seed=0), r=max(family.RANKS), seed=0, **adapt)
    prefix = family.GROUPS[group][0]
    assert all(p.requires_grad for p in model.get_submodule(prefix).parameters())
    assert not any(path.startswith(prefix) for path in adapted_layers(model))
    assert len(adapted_layers(model)) == 2 * (family.LAYERS - 1)


def test_training_merge_and_save_load(family, common, task, tmp_path):
    model = dr.adapt(family.build(task, seed=0), r=8, seed=0, **family.ADAPT)
    hyper = dataclasses.replace(family.HYPER["quick"], epochs=1)
    result = common.train(model, family, task, lr=hyper.lr_lora, hyper=hyper, seed=0)
    assert np.isfinite(result["train_loss"]) and result["steps"] >= 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert 0.0 <= common.evaluate(model, family, task, "val") <= 1.0
    merged = dr.merge(model)
    for name, module in merged.named_modules():
        assert type(module).__module__.split(".")[0] != "deepreservoir", name
    assert type(merged.convs[0].nn.lin1) is torch.nn.Linear
    merged.eval()
    with torch.no_grad():
        expected, got = model(*family.sample(task)), merged(*family.sample(task))
    assert torch.allclose(expected, got, atol=1e-5, rtol=0)
    path = dr.save_adapted(model, tmp_path / "gin.safetensors")
    loaded = dr.load_adapted(family.build(task, seed=5), path).eval()
    with torch.no_grad():
        assert torch.equal(model(*family.sample(task)), loaded(*family.sample(task)))
