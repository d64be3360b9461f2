"""dr.adapt on a ResNet-style CNN, shifted noisy 16×16 digits. Needs scikit-learn; ~15 s, 1 CPU."""

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


class Block(nn.Module):  # two 3×3 convolutions with GroupNorm, a 1×1 projection shortcut
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm1, self.norm2 = nn.GroupNorm(4, c_out), nn.GroupNorm(4, c_out)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride > 1 else None

    def forward(self, x):
        out = self.norm2(self.conv2(torch.relu(self.norm1(self.conv1(x)))))
        return torch.relu(out + (x if self.shortcut is None else self.shortcut(x)))


def resnet():  # stem, three residual blocks, global average pooling, linear head
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.GroupNorm(4, 16),
                         nn.ReLU(), Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


x_train, y_train, x_test, y_test = shifted_digits()
torch.manual_seed(0)
model = dr.adapt(resnet(), r=8, seed=0, train=["1", "*.norm*", "8"])  # norms and head train
optimizer = torch.optim.AdamW(dr.adapt_parameter_groups(model, 1e-2), lr=1e-2)
for _epoch in range(5):
    for index in torch.randperm(len(y_train)).split(32):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x_train[index]), y_train[index]).backward()
        optimizer.step()
with torch.no_grad():
    logits = model.eval()(x_test)
    print(f"ResNet, r = 8: test accuracy {float((logits.argmax(1) == y_test).float().mean()):.3f}"
          f", {sum(p.numel() for p in model.parameters() if p.requires_grad)} trainable parameters")
    print("merged max difference:", float((dr.merge(model)(x_test) - logits).abs().max()))
    dr.save_adapted(model, path := tempfile.mkdtemp() + "/cnn.safetensors")
    print("reloaded equal:", torch.equal(dr.load_adapted(resnet(), path).eval()(x_test), logits))
