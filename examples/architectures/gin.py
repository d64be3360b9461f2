"""dr.adapt on PyG's GINConv (rank-8 adapters on its Linear layers; BatchNorms, head train):
graphs that close triangles (Watts–Strogatz, powerlaw-cluster: 1) against Erdős–Rényi and
Barabási–Albert graphs (0), mean degree 4. Run:  python examples/architectures/gin.py"""

import networkx as nx
import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import GINConv, global_add_pool

import deepreservoir as dr

rng, graphs = np.random.default_rng(0), []
makers = [lambda n, s: nx.gnp_random_graph(n, 4 / (n - 1), seed=s),
          lambda n, s: nx.barabasi_albert_graph(n, 2, seed=s),
          lambda n, s: nx.watts_strogatz_graph(n, 4, rng.uniform(0.2, 1.0), seed=s),
          lambda n, s: nx.powerlaw_cluster_graph(n, 2, rng.uniform(0.0, 0.5), seed=s)]
for i in range(600):
    kind, size = i % 4, int(rng.integers(20, 61))
    edge_index = torch.tensor(list(makers[kind](size, i).to_directed().edges())).T
    x = nn.functional.one_hot(torch.bincount(edge_index[0], minlength=size).clamp(max=15), 16)
    graphs.append(Data(x=x.float(), edge_index=edge_index, y=torch.tensor([float(kind >= 2)])))


class GIN(nn.Module):
    def __init__(self, sizes=(16, 64, 64), hidden=64):
        super().__init__()
        self.convs = nn.ModuleList(GINConv(nn.Sequential(
            nn.Linear(size, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU())) for size in sizes)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x, edge_index, batch):
        for conv in self.convs:
            x = conv(x, edge_index)
        return self.head(global_add_pool(x, batch)).squeeze(-1)


torch.manual_seed(0)
model = dr.adapt(GIN(), r=8, seed=7, train=["head", "convs.*.nn.1"])  # nn.1: the BatchNorms
print("trainable parameters:", sum(p.numel() for p in model.parameters() if p.requires_grad))
optimizer = torch.optim.AdamW(dr.adapt_parameter_groups(model, weight_decay=1e-2), lr=1e-2)
for _ in range(10):
    for batch in DataLoader(graphs[:450], batch_size=64, shuffle=True):
        logits = model(batch.x, batch.edge_index, batch.batch)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, batch.y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
test = next(iter(DataLoader(graphs[450:], batch_size=150)))
path = dr.save_adapted(model.eval(), "gin_adapted.safetensors")  # adapters, β, norms, head
merged, loaded = dr.merge(model), dr.load_adapted(GIN(), path).eval()  # merged: plain torch
with torch.no_grad():
    scores, dense, again = (m(test.x, test.edge_index, test.batch) for m in (model, merged, loaded))
print(f"test ROC-AUC {roc_auc_score(test.y, scores):.3f}; merged: max output difference "
      f"{(dense - scores).abs().max():.1e}; {path.name}: {path.stat().st_size:,} bytes, "
      f"reloaded outputs equal: {again.equal(scores)}")
