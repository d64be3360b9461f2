"""dr.adapt on a Transformer classifier of byte snippets of Python's asyncio, email and xml.

Test snippets come from other files. Embedding, attention and feed-forward layers become
seeded scaffolds with rank-4 adapters; positions, norms and head train. About 10 s on 1 thread.
"""

import sysconfig
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

import deepreservoir as dr

torch.set_num_threads(1)
PACKAGES, LENGTH, rng = ("asyncio", "email", "xml"), 64, np.random.default_rng(0)
data = {"train": ([], []), "test": ([], [])}
for label, package in enumerate(PACKAGES):
    files = sorted((Path(sysconfig.get_paths()["stdlib"]) / package).rglob("*.py"))
    for split, chosen in (("test", files[::4]), ("train", files[1::4] + files[2::4] + files[3::4])):
        text = np.frombuffer(b"".join(f.read_text("utf-8", "replace").encode() for f in chosen),
                             np.uint8)
        starts = rng.integers(0, len(text) - LENGTH, 500 if split == "train" else 200)
        data[split][0].append(np.stack([text[s:s + LENGTH] for s in starts]))
        data[split][1].append(np.full(len(starts), label))
(x, y), (x_test, y_test) = ((torch.as_tensor(np.concatenate(a)).long(),
                             torch.as_tensor(np.concatenate(b))) for a, b in data.values())


class Classifier(nn.Module):
    def __init__(self, d: int = 32) -> None:
        super().__init__()
        self.embed, self.position = nn.Embedding(256, d), nn.Parameter(torch.zeros(1, LENGTH, d))
        layer = nn.TransformerEncoderLayer(d, 4, 64, 0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, len(PACKAGES))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.encoder(self.embed(tokens) + self.position).mean(1)))


torch.manual_seed(0)
model = dr.adapt(Classifier(), r=4, seed=0, alpha=16, train=["position", "*norm*", "head"])
optimizer = torch.optim.AdamW(dr.adapt_parameter_groups(model, 1e-2), lr=1e-2)
for index in torch.cat([torch.randperm(len(y)) for _ in range(2)]).split(32):
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x[index]), y[index]).backward()
    optimizer.step()
with torch.no_grad(), tempfile.TemporaryDirectory() as folder:
    output = model.eval()(x_test)
    trainable = sum(p.numel() for p in model.parameters())
    print(f"test accuracy {float((output.argmax(1) == y_test).float().mean()):.3f} (chance "
          f"0.333) with {trainable:,} trainable parameters")
    gap = float((dr.merge(model).eval()(x_test) - output).abs().max())
    path = dr.save_adapted(model, Path(folder) / "text.safetensors")
    same = torch.equal(dr.load_adapted(Classifier(), path).eval()(x_test), output)
    print(f"merged: max difference {gap:.1e}; reloaded from {path.stat().st_size:,} bytes, "
          f"same outputs: {same}")
