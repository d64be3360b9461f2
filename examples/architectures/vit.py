"""dr.adapt on a small ViT, shifted noisy 16×16 digits. Needs scikit-learn; ~15 s on 1 CPU."""

import tempfile

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

import deepreservoir as dr

torch.set_num_threads(1)


def shifted_digits():  # 8×8 digits upsampled to 14×14 at a random place of a 16×16 canvas
    digits, rng = load_digits(), np.random.default_rng(0)
    small = torch.tensor(digits.data / 16, dtype=torch.float32).reshape(-1, 1, 8, 8)
    grown = nn.functional.interpolate(small, size=14, mode="bilinear")
    x = 0.1 * torch.tensor(rng.normal(size=(len(small), 1, 16, 16)), dtype=torch.float32)
    for i, (top, left) in enumerate(rng.integers(0, 3, (len(x), 2))):
        x[i, :, top:top + 14, left:left + 14] += grown[i]
    y = torch.tensor(digits.target)
    return x[:1400], y[:1400], x[1400:], y[1400:]


class ViT(nn.Module):  # 4×4 patches, class token, position embeddings, pre-norm encoder
    def __init__(self, dim=64, patch=4, tokens=16):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, tokens + 1, dim))
        layer = nn.TransformerEncoderLayer(dim, 4, 2 * dim, 0.0, "gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 10)

    def forward(self, x):
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), patches], 1) + self.pos_embed
        return self.head(self.norm(self.encoder(tokens)[:, 0]))


x_train, y_train, x_test, y_test = shifted_digits()
torch.manual_seed(0)
model = dr.adapt(ViT(), r=1, seed=0, alpha=16,  # α = 16 as the paper's Transformers
                 train=["head", "*norm*", "cls_token", "pos_embed"])
optimizer = torch.optim.AdamW(dr.adapt_parameter_groups(model, 1e-2), lr=3e-3)
for _epoch in range(8):
    for index in torch.randperm(len(y_train)).split(32):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x_train[index]), y_train[index]).backward()
        optimizer.step()
with torch.no_grad():
    logits = model.eval()(x_test)
    print(f"ViT, r = 1: test accuracy {float((logits.argmax(1) == y_test).float().mean()):.3f}"
          f", {sum(p.numel() for p in model.parameters() if p.requires_grad)} trainable parameters")
    print("merged max difference:", float((dr.merge(model)(x_test) - logits).abs().max()))
    dr.save_adapted(model, path := tempfile.mkdtemp() + "/vit.safetensors")
    print("reloaded equal:", torch.equal(dr.load_adapted(ViT(), path).eval()(x_test), logits))
