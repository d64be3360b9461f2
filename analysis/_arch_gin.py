"""The ``gin`` family of the ``architectures`` study: graph classification with PyG's GINConv.

Not a study (the leading underscore); ``analysis/architectures.py`` loads it
with ``load_helper("_arch_gin", folder)``. It follows the family protocol of
``_arch_common.py`` and needs PyTorch Geometric (``REQUIRES``).

The network: three ``torch_geometric.nn.GINConv`` layers (``train_eps=False``:
ε = 0 is fixed), each with the MLP Linear → BatchNorm → ReLU → Linear → ReLU
(64 channels) and a BatchNorm after it; the sum over each graph's nodes after
every layer, concatenated (3 × 64), dropout 0.5 and a linear head giving one
logit per graph. ``dr.adapt`` adapts the six ``nn.Linear`` layers inside the
GINConvs; the BatchNorms and the head train.

The paper's row: GIN on ogbg-molhiv, ROC-AUC 0.756 (LottaLoRA, rank not stated)
against 0.776 for full training. Ours by default tells random-graph generators
apart, graphs generated with networkx from the seed: 1,500 graphs (300 in
quick mode) of 20–60 nodes and mean degree about 4, a quarter each from

* Erdős–Rényi G(n, 4/(n−1)) and Barabási–Albert (m = 2): label 0;
* Watts–Strogatz (k = 4, rewiring probability U(0.2, 1)) and Holme–Kim
  powerlaw-cluster graphs (m = 2, triangle probability U(0, 0.5)): label 1,
  the generators that close triangles.

The high rewiring and low triangle probabilities make the two classes overlap
(a powerlaw-cluster graph with probability 0 is a Barabási–Albert graph), so
the ROC-AUC stays below 1. A node's 16 features are the one-hot of its degree
(degrees of 15 and more share the last one). A seeded 60 / 20 / 20 % of the
graphs are the train / val / test graphs; the metric is the ROC-AUC of the
test graphs' logits.

A user's graphs (``data=PATH``, e.g. ogbg-molhiv): a ``.npz`` archive with

* ``x``: node features ``(total_nodes, F)`` of all graphs one after another,
  real numbers (standardised with the training graphs' nodes, constant columns
  kept as they are);
* ``edge_index``: ``(2, E)`` integer pairs of those concatenated node numbers,
  each edge inside one graph, used as given (store both directions for
  undirected graphs);
* ``graph_ptr``: ``(graphs + 1,)`` node offsets: graph ``g`` holds the nodes
  ``graph_ptr[g]`` … ``graph_ptr[g + 1] − 1`` (starts at 0, ends at
  ``total_nodes``, strictly increasing: no empty graph);
* ``y``: ``(graphs,)`` or ``(graphs, 1)`` binary labels 0 / 1;
* optionally ``train_idx``, ``val_idx``, ``test_idx``: graph indices (all three
  or none; else a seeded 60 / 20 / 20 % split). In quick mode at most 600 /
  200 / 200 graphs of them are kept (a seeded draw). r = 8 needs at least 8
  node features.

The task holds one :class:`GraphSet` with every graph; each split is a dict
``{"graphs": GraphSet, "index": graph indices}``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from deepreservoir.studies import load_helper

_folder = Path(__file__).parent
common = load_helper("_arch_common", _folder)
graphs = load_helper("_arch_graphs", _folder)

NAME = "gin"
TITLE = "GIN (PyTorch Geometric GINConv)"
PAPER = common.PaperRow(benchmark="ogbg-molhiv ROC-AUC", lora=0.756, full=0.776, rank=None)
RANKS = (1, 8)
REQUIRES: tuple[str, ...] = ("torch_geometric",)
METRIC = common.Metric("AUROC", higher_is_better=True)
HYPER = {"full": common.Hyper(epochs=20, batch_size=64, lr_full=3e-3, lr_lora=1e-2),
         "quick": common.Hyper(epochs=8, batch_size=64, lr_full=3e-3, lr_lora=1e-2)}
# alpha = None: α = r (scale 1); the paper does not state the GIN's rank or α.
ADAPT = {"train": ["head", "*norm*"], "alpha": None}
GROUPS = {"gin1": ["convs.0"], "gin2": ["convs.1"], "gin3": ["convs.2"]}
DATA_KEYS = ("x (total_nodes, F) float; edge_index (2, E) int over the concatenated nodes; "
             "graph_ptr (graphs+1,) node offsets; y (graphs,) binary 0/1; "
             "optional train_idx, val_idx, test_idx graph indices")

#: The generated graphs: count (full, quick), sizes, mean degree, one-hot degree features.
GRAPHS = {False: 1500, True: 300}
SIZES = (20, 60)
DEGREE = 4
FEATURES = 16
REWIRING = (0.2, 1.0)
TRIANGLES = (0.0, 0.5)
GENERATORS = ("erdos_renyi", "barabasi_albert", "watts_strogatz", "powerlaw_cluster")
SPLIT = (0.6, 0.2, 0.2)
QUICK_CAP = {"train": 600, "val": 200, "test": 200}
HIDDEN = 64
LAYERS = 3
DROPOUT = 0.5
SPLIT_KEYS = ("train_idx", "val_idx", "test_idx")


@dataclass
class GraphSet:
    """Graphs concatenated: node features, edges sorted by graph, offsets and labels."""

    x: Tensor           # (total_nodes, F) float32
    edge_index: Tensor  # (2, E) int64, the edges of graph g at edge_ptr[g]:edge_ptr[g + 1]
    node_ptr: Tensor    # (graphs + 1,) int64
    edge_ptr: Tensor    # (graphs + 1,) int64
    y: Tensor           # (graphs,) float32, 0 or 1

    def collate(self, index: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The graphs ``index`` as one disjoint graph: ``(x, edge_index, batch, y)``.

        ``batch[i]`` is the position in ``index`` of the graph of node ``i``; the
        edges are renumbered to the gathered nodes.
        """
        count = len(index)
        positions = torch.arange(count)
        node_counts = self.node_ptr[index + 1] - self.node_ptr[index]
        edge_counts = self.edge_ptr[index + 1] - self.edge_ptr[index]
        batch = torch.repeat_interleave(positions, node_counts)
        new_start = torch.cumsum(node_counts, 0) - node_counts
        nodes = self.node_ptr[index][batch] + torch.arange(len(batch)) - new_start[batch]
        edge_graph = torch.repeat_interleave(positions, edge_counts)
        edge_start = torch.cumsum(edge_counts, 0) - edge_counts
        edges = (self.edge_ptr[index][edge_graph] + torch.arange(len(edge_graph))
                 - edge_start[edge_graph])
        shift = (new_start - self.node_ptr[index])[edge_graph]
        return self.x[nodes], self.edge_index[:, edges] + shift, batch, self.y[index]


def _mlp(features: int, hidden: int) -> nn.Sequential:
    """A GINConv's MLP: Linear → BatchNorm → ReLU → Linear → ReLU."""
    return nn.Sequential(OrderedDict(
        lin1=nn.Linear(features, hidden), norm=nn.BatchNorm1d(hidden), act1=nn.ReLU(),
        lin2=nn.Linear(hidden, hidden), act2=nn.ReLU()))


class GIN(nn.Module):
    """GINConv layers, sum pooling after each, a linear head: one logit per graph.

    ``model(x, edge_index, batch)`` → ``(graphs,)``, ``batch`` the graph of each node.
    """

    def __init__(self, features: int, hidden: int = HIDDEN, layers: int = LAYERS,
                 dropout: float = DROPOUT) -> None:
        super().__init__()
        from torch_geometric.nn import GINConv

        self.convs = nn.ModuleList(
            GINConv(_mlp(features if layer == 0 else hidden, hidden), train_eps=False)
            for layer in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * layers, 1)

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor) -> Tensor:
        from torch_geometric.nn import global_add_pool

        pooled = []
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = norm(conv(x, edge_index))
            pooled.append(global_add_pool(x, batch))
        return self.head(self.dropout(torch.cat(pooled, dim=1))).squeeze(-1)


def _random_graph(kind: int, nodes: int, rng: np.random.Generator):
    """One networkx graph of generator ``GENERATORS[kind]`` with mean degree about 4."""
    import networkx as nx

    seed = int(rng.integers(2**31))
    if kind == 0:
        return nx.gnp_random_graph(nodes, DEGREE / (nodes - 1), seed=seed)
    if kind == 1:
        return nx.barabasi_albert_graph(nodes, DEGREE // 2, seed=seed)
    if kind == 2:
        return nx.watts_strogatz_graph(nodes, DEGREE, rng.uniform(*REWIRING), seed=seed)
    return nx.powerlaw_cluster_graph(nodes, DEGREE // 2, rng.uniform(*TRIANGLES), seed=seed)


def random_graphs(*, seed: int, quick: bool) -> dict[str, np.ndarray]:
    """The generated graphs (generators and sizes: the module docstring).

    Returns
    -------
    dict
        ``x`` (total_nodes, 16) float32 one-hot degrees, ``edge_index`` (2, E)
        int64 (both directions, sorted by graph), ``graph_ptr`` (graphs + 1,),
        ``y`` (graphs,) 0/1, ``kind`` (graphs,) the generator's number in
        ``GENERATORS``, and ``train``, ``val``, ``test`` graph indices.
    """
    rng = np.random.default_rng(seed)
    count = GRAPHS[bool(quick)]
    kinds = rng.integers(len(GENERATORS), size=count)
    sizes = rng.integers(SIZES[0], SIZES[1] + 1, size=count)
    edges, offsets = [], np.concatenate([[0], np.cumsum(sizes)])
    for kind, nodes, offset in zip(kinds, sizes, offsets, strict=False):
        edges.append(graphs.undirected_edges(_random_graph(int(kind), int(nodes), rng),
                                             int(offset)))
    edge_index = np.concatenate(edges, axis=1)
    degree = np.bincount(edge_index[0], minlength=int(offsets[-1]))
    features = np.zeros((int(offsets[-1]), FEATURES), dtype=np.float32)
    features[np.arange(len(degree)), np.minimum(degree, FEATURES - 1)] = 1.0
    return {"x": features, "edge_index": edge_index, "graph_ptr": offsets.astype(np.int64),
            "y": (kinds >= 2).astype(np.int64), "kind": kinds.astype(np.int64),
            **graphs.seeded_split(count, rng, SPLIT)}


def _graph_ptr(array: np.ndarray, path: str, nodes: int) -> np.ndarray:
    expected = (f"node offsets (graphs + 1,) starting at 0, strictly increasing, ending at "
                f"the {nodes} rows of x")
    if array.ndim != 1 or len(array) < 2:
        raise graphs.fail(path, "graph_ptr", f"has shape {array.shape}", expected)
    if array.dtype.kind not in "biu":
        raise graphs.fail(path, "graph_ptr", f"has dtype {array.dtype}", expected)
    ptr = array.astype(np.int64)
    if ptr[0] != 0 or ptr[-1] != nodes:
        raise graphs.fail(path, "graph_ptr", f"runs from {ptr[0]} to {ptr[-1]}", expected)
    steps = np.diff(ptr)
    if (steps <= 0).any():
        first = int(np.flatnonzero(steps <= 0)[0])
        raise graphs.fail(path, "graph_ptr", f"gives graph {first} {int(steps[first])} nodes",
                          expected)
    return ptr


def graph_file(path: str | os.PathLike, *, seed: int, quick: bool) -> dict[str, np.ndarray]:
    """A user's ``.npz`` graphs, checked (keys and layout: the module docstring).

    Raises
    ------
    DataError
        When the file is missing or unreadable, a key is missing, or an array has
        a wrong shape or dtype, a NaN, a node number out of range or an edge
        between two graphs; the message names the file and the key.
    """
    shown = str(path)
    arrays = graphs.read_archive(path, ("x", "edge_index", "graph_ptr", "y"), DATA_KEYS)
    features = graphs.feature_matrix(arrays["x"], "x", shown)
    ptr = _graph_ptr(arrays["graph_ptr"], shown, len(features))
    count = len(ptr) - 1
    labels = graphs.binary_labels(arrays["y"], "y", shown, count)
    edges = graphs.edge_array(arrays["edge_index"], "edge_index", shown, len(features))
    source_graph = np.searchsorted(ptr, edges[0], side="right") - 1
    target_graph = np.searchsorted(ptr, edges[1], side="right") - 1
    crossing = np.flatnonzero(source_graph != target_graph)
    if len(crossing):
        first = int(crossing[0])
        raise graphs.fail(shown, "edge_index", f"joins node {int(edges[0, first])} (graph "
                          f"{int(source_graph[first])}) to node {int(edges[1, first])} (graph "
                          f"{int(target_graph[first])}) at column {first}",
                          "edges inside one graph each (graph_ptr gives the graphs)")
    order = np.argsort(source_graph, kind="stable")
    splits = graphs.index_splits(arrays, SPLIT_KEYS, shown, count)
    rng = np.random.default_rng(seed)
    if splits is None:
        splits = graphs.seeded_split(count, rng, SPLIT)
    else:
        splits = {key.split("_")[0]: index for key, index in splits.items()}
    if quick:
        splits = {split: np.sort(rng.permutation(index)[:QUICK_CAP[split]])
                  for split, index in splits.items()}
    train_nodes = np.concatenate([np.arange(ptr[g], ptr[g + 1]) for g in splits["train"]])
    return {"x": graphs.standardised(features, train_nodes),
            "edge_index": np.ascontiguousarray(edges[:, order]), "graph_ptr": ptr,
            "y": labels, **splits}


def load_task(*, quick: bool, seed: int, data: str | os.PathLike | None = None
              ) -> common.Task:
    """The generated random graphs (or a user's ``.npz`` graphs), see the module docstring."""
    if data is None:
        arrays = random_graphs(seed=seed, quick=quick)
        source = (f"generated: networkx, {GRAPHS[bool(quick)]} graphs of {SIZES[0]}-{SIZES[1]} "
                  f"nodes, mean degree {DEGREE}: Erdős–Rényi / Barabási–Albert (0) against "
                  f"Watts–Strogatz / powerlaw-cluster (1) (seed {seed})")
    else:
        arrays = graph_file(data, seed=seed, quick=quick)
        source = f"file: {Path(data).name}"
    ptr = arrays["graph_ptr"]
    graph_of_edge = np.searchsorted(ptr, arrays["edge_index"][0], side="right") - 1
    edge_ptr = np.concatenate([[0], np.cumsum(np.bincount(graph_of_edge,
                                                          minlength=len(ptr) - 1))])
    graph_set = GraphSet(x=torch.as_tensor(arrays["x"]),
                         edge_index=torch.as_tensor(arrays["edge_index"]),
                         node_ptr=torch.as_tensor(ptr), edge_ptr=torch.as_tensor(edge_ptr),
                         y=torch.as_tensor(arrays["y"], dtype=torch.float32))
    splits = {split: {"graphs": graph_set, "index": torch.as_tensor(arrays[split])}
              for split in ("train", "val", "test")}
    info = {"features": int(graph_set.x.shape[1]), "graphs": len(ptr) - 1,
            "nodes": int(ptr[-1]), "edges": int(graph_set.edge_index.shape[1]),
            "positive_fraction": float(graph_set.y.mean()),
            **{f"n_{split}": len(arrays[split]) for split in ("train", "val", "test")}}
    return common.Task(name=NAME, splits=splits, source=source, info=info)


def build(task: common.Task, *, seed: int) -> nn.Module:
    """The untrained GIN for the task's node features, initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GIN(task.info["features"])


def batches(task: common.Task, split: str, batch_size: int, generator: torch.Generator
            ) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """``(x, edge_index, batch, y)`` for ``batch_size`` graphs at a time.

    Shuffled by ``generator`` for "train", in order otherwise.
    """
    part = task.splits[split]
    index = part["index"]
    if split == "train":
        index = index[torch.randperm(len(index), generator=generator)]
    for chosen in index.split(batch_size):
        yield part["graphs"].collate(chosen)


def loss(model: nn.Module, batch: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
    """Binary cross-entropy of the graphs' logits."""
    x, edge_index, graph_of_node, y = batch
    return nn.functional.binary_cross_entropy_with_logits(model(x, edge_index, graph_of_node),
                                                          y)


def evaluate(model: nn.Module, task: common.Task, split: str) -> float:
    """ROC-AUC of the split's graphs, in batches of 512 graphs."""
    scores, labels = [], []
    for x, edge_index, graph_of_node, y in batches(task, split, 512, torch.Generator()):
        scores.append(model(x, edge_index, graph_of_node))
        labels.append(y)
    return common.auroc(torch.cat(scores).numpy(), torch.cat(labels).numpy())


def sample(task: common.Task) -> tuple[Tensor, Tensor, Tensor]:
    """The first four test graphs: ``(x, edge_index, batch)``."""
    part = task.splits["test"]
    x, edge_index, graph_of_node, _ = part["graphs"].collate(part["index"][:4])
    return x, edge_index, graph_of_node
