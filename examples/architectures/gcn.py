"""dr.adapt on PyTorch Geometric's GCNConv: node classification on a stochastic block model.

Each GCNConv's weight (``conv.lin``) becomes a frozen seeded matrix with a rank-8
LoRA adapter and a gate β; the linear head trains. Node features are noisy block
centres, so the graph's neighbourhoods are needed. Run:  python examples/architectures/gcn.py
"""

import networkx as nx
import numpy as np
import torch
from torch import nn
from torch_geometric.nn import GCNConv

import deepreservoir as dr

rng = np.random.default_rng(0)
sizes, blocks = [250] * 4, 4
probabilities = np.full((blocks, blocks), 3 / 750)
np.fill_diagonal(probabilities, 6 / 249)
graph = nx.stochastic_block_model(sizes, probabilities.tolist(), seed=0)
edges = torch.tensor(list(graph.edges())).T
edge_index = torch.cat([edges, edges.flip(0)], dim=1)  # both directions
y = torch.as_tensor(np.repeat(np.arange(blocks), sizes))
centres = rng.normal(size=(blocks, 16)) / 4.0
x = torch.as_tensor(centres[y] + rng.normal(size=(len(y), 16)) * 1.25, dtype=torch.float32)
order = torch.as_tensor(rng.permutation(len(y)))
train_nodes, test_nodes = order[:500], order[500:]


class GCN(nn.Module):
    def __init__(self, features: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([GCNConv(features, hidden), GCNConv(hidden, hidden)])
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = nn.functional.dropout(torch.relu(conv(x, edge_index)), 0.5, self.training)
        return self.head(x)


torch.manual_seed(0)
model = dr.adapt(GCN(16, 64, blocks), r=8, seed=7, train=["head"])
print("trainable parameters:", sum(p.numel() for p in model.parameters() if p.requires_grad))
optimizer = torch.optim.AdamW(dr.adapt_parameter_groups(model, weight_decay=1e-2), lr=3e-2)
for _ in range(100):  # full-graph training: one step per epoch
    loss = nn.functional.cross_entropy(model(x, edge_index)[train_nodes], y[train_nodes])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
merged = dr.merge(model.eval())  # convs[i].lin: a torch_geometric Linear, dense weights
path = dr.save_adapted(model, "gcn_adapted.safetensors")  # adapters, β, head, arguments
loaded = dr.load_adapted(GCN(16, 64, blocks), path).eval()
with torch.no_grad():
    logits = model(x, edge_index)
    accuracy = (logits[test_nodes].argmax(1) == y[test_nodes]).float().mean()
    gap, same = (merged(x, edge_index) - logits).abs().max(), loaded(x, edge_index).equal(logits)
print(f"test accuracy {accuracy:.3f}; merged: max output difference {gap:.1e}; "
      f"{path.name}: {path.stat().st_size:,} bytes, reloaded outputs equal: {same}")
