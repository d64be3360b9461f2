"""The ``gcn`` family of the ``architectures`` study: node classification with PyG's GCNConv.

Not a study (the leading underscore); ``analysis/architectures.py`` loads it
with ``load_helper("_arch_gcn", folder)``. It follows the family protocol of
``_arch_common.py`` and needs PyTorch Geometric (``REQUIRES``).

The network: two ``torch_geometric.nn.GCNConv`` layers (64 channels, ReLU,
dropout 0.5) and a linear head, full-graph training (one optimizer step per
epoch). ``dr.adapt`` adapts each GCNConv's weight, ``conv.lin`` (a
``torch_geometric.nn.dense.linear.Linear``); the head trains. Each GCNConv's own
bias (``conv.bias``, 64 values, zero at initialisation) is not in ``train``: it
stays frozen at zero, as ``dr.adapt`` freezes the biases of the layers it adapts
(the default ``bias="seeded"``) and as LoRA leaves biases alone; training it
would add 128 values, more than the r = 1 adapters themselves.

The paper's row: GCN on ogbn-arxiv, 70.11 % (LottaLoRA, rank not stated)
against 71.86 % for full training. Ours by default runs on a stochastic block
model generated with networkx from the seed: 2,000 nodes (400 in quick mode)
in 6 blocks of random, nearly equal sizes, about 6 neighbours inside the node's block and 4
outside it on average; each node's 32 features are its block's centre (a random
Gaussian vector of norm about 1) plus Gaussian noise of norm about 5. A
logistic regression on the features alone classifies 39–47 % of the test nodes
(seeds 0–2; chance is 17 %), on the features averaged twice over the
normalised neighbourhoods 85–88 %: the graph is needed. A seeded 50 / 20 / 30 %
of the nodes are the train / val / test nodes.

A user's graph (``data=PATH``, e.g. ogbn-arxiv): a ``.npz`` archive with

* ``X``: node features ``(nodes, F)``, real numbers (standardised with the
  training nodes' mean and standard deviation);
* ``y``: node labels ``(nodes,)`` (or ``(nodes, 1)``), integers 0…K−1;
* ``edge_index``: ``(2, E)`` integer node pairs, used as given (message passing
  runs from ``edge_index[0]`` to ``edge_index[1]``: store both directions for an
  undirected graph, as ogbn-arxiv is usually used);
* optionally ``train_mask``, ``val_mask``, ``test_mask``: boolean ``(nodes,)``
  (all three or none; else a seeded 50 / 20 / 30 % split).

The whole graph is used in quick mode too. r = 8 needs at least 8 features.
Each split of the task is a dict ``{"x", "edge_index", "y", "nodes"}``: the
whole graph (shared by the splits) and the split's node indices.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from deepreservoir.studies import load_helper

_folder = Path(__file__).parent
common = load_helper("_arch_common", _folder)
graphs = load_helper("_arch_graphs", _folder)

NAME = "gcn"
TITLE = "GCN (PyTorch Geometric GCNConv)"
PAPER = common.PaperRow(benchmark="ogbn-arxiv accuracy, %", lora=70.11, full=71.86,
                        rank=None)
RANKS = (1, 8)
REQUIRES: tuple[str, ...] = ("torch_geometric",)
METRIC = common.Metric("accuracy", higher_is_better=True, percent=True)
# Full-graph training: a batch_size above the training nodes makes one step per epoch.
HYPER = {"full": common.Hyper(epochs=200, batch_size=1_000_000, lr_full=1e-2, lr_lora=3e-2),
         "quick": common.Hyper(epochs=60, batch_size=1_000_000, lr_full=1e-2, lr_lora=3e-2)}
# alpha = None: α = r (scale 1); the paper does not state the GCN's rank or α.
ADAPT = {"train": ["head"], "alpha": None}
GROUPS = {"conv1": ["convs.0"], "conv2": ["convs.1"]}
DATA_KEYS = ("X (nodes, F) float; y (nodes,) integer labels 0..K-1; edge_index (2, E) int; "
             "optional train_mask, val_mask, test_mask (nodes,) bool")

#: The generated stochastic block model: nodes (full, quick), blocks, features, degrees.
NODES = {False: 2000, True: 400}
BLOCKS = 6
FEATURES = 32
DEGREE_INSIDE = 6.0
DEGREE_OUTSIDE = 4.0
NOISE = 5.0
SPLIT = (0.5, 0.2, 0.3)
HIDDEN = 64
DROPOUT = 0.5
MASK_KEYS = ("train_mask", "val_mask", "test_mask")


class GCN(nn.Module):
    """GCNConv layers (ReLU, dropout) and a linear head: ``model(x, edge_index)`` → logits."""

    def __init__(self, features: int, classes: int, hidden: int = HIDDEN, layers: int = 2,
                 dropout: float = DROPOUT) -> None:
        super().__init__()
        from torch_geometric.nn import GCNConv

        sizes = [features] + [hidden] * layers
        self.convs = nn.ModuleList(GCNConv(a, b) for a, b in itertools.pairwise(sizes))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:
        for conv in self.convs:
            x = self.dropout(torch.relu(conv(x, edge_index)))
        return self.head(x)


def block_model(*, seed: int, quick: bool) -> dict[str, np.ndarray]:
    """The generated stochastic block model (sizes and noise: the module docstring).

    Returns
    -------
    dict
        ``X`` (nodes, 32) float32, ``y`` (nodes,) int64 block numbers,
        ``edge_index`` (2, E) int64 (both directions), and ``train``, ``val``,
        ``test`` node indices.
    """
    import networkx as nx

    rng = np.random.default_rng(seed)
    nodes = NODES[bool(quick)]
    smallest = nodes // (2 * BLOCKS)
    sizes = rng.multinomial(nodes - BLOCKS * smallest, np.full(BLOCKS, 1.0 / BLOCKS)) + smallest
    # the same probability between any two blocks keeps the matrix symmetric
    probabilities = np.full((BLOCKS, BLOCKS), DEGREE_OUTSIDE / (nodes - nodes / BLOCKS))
    np.fill_diagonal(probabilities, DEGREE_INSIDE / (sizes - 1))
    probabilities = np.minimum(probabilities, 1.0)
    graph = nx.stochastic_block_model(sizes.tolist(), probabilities.tolist(),
                                      seed=int(rng.integers(2**31)))
    labels = np.repeat(np.arange(BLOCKS), sizes)
    centres = rng.normal(size=(BLOCKS, FEATURES)) / np.sqrt(FEATURES)
    noise = rng.normal(size=(nodes, FEATURES)) * (NOISE / np.sqrt(FEATURES))
    features = (centres[labels] + noise).astype(np.float32)
    return {"X": features, "y": labels.astype(np.int64),
            "edge_index": graphs.undirected_edges(graph),
            **graphs.seeded_split(nodes, rng, SPLIT)}


def graph_file(path: str | os.PathLike, *, seed: int) -> dict[str, np.ndarray]:
    """A user's ``.npz`` graph, checked (keys and layout: the module docstring).

    Raises
    ------
    DataError
        When the file is missing or unreadable, a key is missing, or an array has
        a wrong shape or dtype, a NaN, or a node number out of range; the message
        names the file and the key.
    """
    shown = str(path)
    arrays = graphs.read_archive(path, ("X", "y", "edge_index"), DATA_KEYS)
    features = graphs.feature_matrix(arrays["X"], "X", shown)
    nodes = len(features)
    labels = graphs.class_labels(arrays["y"], "y", shown, nodes)
    edges = graphs.edge_array(arrays["edge_index"], "edge_index", shown, nodes)
    masks = graphs.bool_masks(arrays, MASK_KEYS, shown, nodes)
    if masks is None:
        splits = graphs.seeded_split(nodes, np.random.default_rng(seed), SPLIT)
    else:
        splits = {key.split("_")[0]: index for key, index in masks.items()}
    features = graphs.standardised(features, splits["train"])
    return {"X": features, "y": labels, "edge_index": edges, **splits}


def load_task(*, quick: bool, seed: int, data: str | os.PathLike | None = None
              ) -> common.Task:
    """The generated block model (or a user's ``.npz`` graph), see the module docstring."""
    if data is None:
        arrays = block_model(seed=seed, quick=quick)
        source = (f"generated: networkx stochastic block model, {NODES[bool(quick)]} nodes, "
                  f"{BLOCKS} blocks, mean degree {DEGREE_INSIDE:g} inside + "
                  f"{DEGREE_OUTSIDE:g} outside, {FEATURES} features, noise norm {NOISE:g} "
                  f"(seed {seed})")
    else:
        arrays = graph_file(data, seed=seed)
        source = f"file: {Path(data).name}"
    x = torch.as_tensor(arrays["X"])
    edge_index = torch.as_tensor(arrays["edge_index"])
    y = torch.as_tensor(arrays["y"])
    splits = {split: {"x": x, "edge_index": edge_index, "y": y,
                      "nodes": torch.as_tensor(arrays[split])}
              for split in ("train", "val", "test")}
    info = {"classes": int(y.max()) + 1, "features": int(x.shape[1]), "nodes": len(y),
            "edges": int(edge_index.shape[1]),
            **{f"n_{split}": len(arrays[split]) for split in ("train", "val", "test")}}
    return common.Task(name=NAME, splits=splits, source=source, info=info)


def build(task: common.Task, *, seed: int) -> nn.Module:
    """The untrained GCN for the task's features and classes, initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GCN(task.info["features"], task.info["classes"])


def batches(task: common.Task, split: str, batch_size: int, generator: torch.Generator
            ) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """``(x, edge_index, y, nodes)``: the whole graph and ``batch_size`` of the split's nodes.

    The loss of a batch is taken on its ``nodes``; the forward pass always runs
    on the whole graph. The nodes are shuffled by ``generator`` for "train".
    """
    part = task.splits[split]
    nodes = part["nodes"]
    if split == "train":
        nodes = nodes[torch.randperm(len(nodes), generator=generator)]
    for chosen in nodes.split(batch_size):
        yield part["x"], part["edge_index"], part["y"], chosen


def loss(model: nn.Module, batch: tuple[Tensor, Tensor, Tensor, Tensor]) -> Tensor:
    """Cross-entropy of the batch's nodes."""
    x, edge_index, y, nodes = batch
    return nn.functional.cross_entropy(model(x, edge_index)[nodes], y[nodes])


def evaluate(model: nn.Module, task: common.Task, split: str) -> float:
    """Accuracy (a fraction) of the split's nodes."""
    part = task.splits[split]
    logits = model(part["x"], part["edge_index"])
    return common.accuracy(logits[part["nodes"]], part["y"][part["nodes"]])


def sample(task: common.Task) -> tuple[Tensor, Tensor]:
    """The whole graph: ``(x (nodes, F), edge_index (2, E))``."""
    part = task.splits["test"]
    return part["x"], part["edge_index"]
