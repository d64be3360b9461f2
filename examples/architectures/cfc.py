"""dr.adapt on ncps's CfC (irregular series, gaps as timespans). Needs ncps; ~10 s on 1 CPU."""

import tempfile
from pathlib import Path

import numpy as np
import torch
from ncps.torch import CfC
from torch import nn

import deepreservoir as dr

torch.set_num_threads(1)
UNITS = 16


def series(n, steps=16, seed=0):
    """Noisy irregular samples; class 1 hides an event that fades in time. Input: value, gap."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    gaps = rng.exponential(1.0, (n, steps))
    times = np.cumsum(gaps, 1)
    onset = rng.uniform(0.2, 0.9, (n, 1)) * times[:, -1:]
    event = y[:, None] * (times > onset) * np.exp(-0.25 * np.clip(times - onset, 0, None))
    values = np.sin(rng.uniform(0.5, 2, (n, 1)) * times) + event + rng.normal(0, 0.4, (n, steps))
    return [torch.tensor(a, dtype=torch.float32) for a in (np.stack([values, gaps], -1), gaps, y)]


class Classifier(nn.Module):
    def __init__(self):  # ncps's fully connected CfC: every weight is an nn.Linear
        super().__init__()
        self.rnn = CfC(2, UNITS, backbone_units=32, return_sequences=False)
        self.head = nn.Linear(UNITS, 1)

    def forward(self, x, gaps):  # ncps needs (batch, T, units) timespans: see _arch_cfc.py
        return self.head(self.rnn(x, timespans=gaps[..., None].expand(-1, -1, UNITS))[0])[:, 0]


(x, gaps, y), (x_test, gaps_test, y_test) = series(1024), series(512, seed=1)
torch.manual_seed(0)
model = dr.adapt(Classifier(), r=1, seed=0, train=["head"])
optimizer = torch.optim.AdamW(dr.adapt_parameter_groups(model, 1e-2), lr=1e-2)
bce = nn.functional.binary_cross_entropy_with_logits
for _epoch in range(4):
    for index in torch.randperm(len(y)).split(64):
        optimizer.zero_grad()
        bce(model(x[index], gaps[index]), y[index]).backward()
        optimizer.step()
model.eval()
with torch.no_grad():
    scores = model(x_test, gaps_test)
    auroc = float((scores[y_test == 1][:, None] > scores[y_test == 0]).float().mean())
    print(f"CfC, r = 1: test AUROC {auroc:.3f}, "
          f"{sum(p.numel() for p in model.parameters() if p.requires_grad)} trainable parameters")
    merged = dr.merge(model)  # plain nn.Linear layers inside ncps's CfC
    print("merged max difference:", float((merged(x_test, gaps_test) - scores).abs().max()))
    dr.save_adapted(model, path := Path(tempfile.mkdtemp()) / "cfc.safetensors")
    loaded = dr.load_adapted(Classifier(), path).eval()
    print("reloaded equal:", torch.equal(loaded(x_test, gaps_test), scores))
