"""dr.adapt on a byte-level causal Transformer LM of Python's own sources (~10 s, 1 thread).

Trains on some stdlib modules, tests on others; embedding, attention and feed-forward layers
get seeded scaffolds and rank-8 adapters, positions, norms and head train. Loss in nats/byte."""

import sysconfig
import tempfile
from pathlib import Path

import torch
from torch import nn

import deepreservoir as dr

torch.set_num_threads(1)
CONTEXT, MASK = 48, nn.Transformer.generate_square_subsequent_mask(48)  # causal: -inf above
files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
text = {split: torch.frombuffer(bytearray(b"".join(
    f.read_text("utf-8", "replace").encode()[:4000] for f in chosen)), dtype=torch.uint8).long()
    for split, chosen in (("train", files[1::8][:24]), ("test", files[::40]))}


def windows(stream: torch.Tensor, offset: int = 0) -> torch.Tensor:  # (n, CONTEXT + 1)
    starts = torch.arange(offset, len(stream) - CONTEXT - 1, CONTEXT)
    return stream[starts[:, None] + torch.arange(CONTEXT + 1)]


class ByteLM(nn.Module):
    def __init__(self, d: int = 64) -> None:
        super().__init__()
        self.embed, self.position = nn.Embedding(256, d), nn.Parameter(torch.zeros(1, CONTEXT, d))
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, 0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, 256)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(self.embed(tokens) + self.position, mask=MASK, is_causal=True)
        return self.head(self.norm(hidden))

    def loss(self, batch: torch.Tensor) -> torch.Tensor:  # next-byte cross-entropy, nats
        return nn.functional.cross_entropy(self(batch[:, :-1]).flatten(0, 1), batch[:, 1:].ravel())


torch.manual_seed(0)
model = dr.adapt(ByteLM(), r=8, seed=0, alpha=16, train=["position", "*norm*", "head"])
optimizer = torch.optim.AdamW(dr.adapt_parameter_groups(model, 1e-2), lr=1e-2)
for epoch in range(2):
    train = windows(text["train"], offset=epoch * CONTEXT // 2)
    for index in torch.randperm(len(train)).split(16):
        optimizer.zero_grad()
        model.loss(train[index]).backward()
        optimizer.step()
with torch.no_grad(), tempfile.TemporaryDirectory() as folder:
    test = windows(text["test"])
    output, trainable = model.eval()(test[:, :-1]), sum(p.numel() for p in model.parameters())
    print(f"test loss {float(model.loss(test)):.3f} nats/byte, {trainable:,} trainable")
    gap = float((dr.merge(model).eval()(test[:, :-1]) - output).abs().max())
    path = dr.save_adapted(model, Path(folder) / "lm.safetensors")
    same = torch.equal(dr.load_adapted(ByteLM(), path).eval()(test[:, :-1]), output)
    print(f"merged: max difference {gap:.1e}; reloaded ({path.stat().st_size:,} B): {same}")
