"""The ``cnn`` family of the ``architectures`` study: a ResNet-style CNN.

Not a study (the leading underscore); ``analysis/architectures.py`` loads it
with ``load_helper("_arch_cnn", folder)``. It follows the family protocol of
``_arch_common.py``.

The network: a 3×3 stem convolution (16 channels) with GroupNorm and ReLU, three
residual blocks of 16, 32 and 64 channels (strides 1, 2, 2), each two 3×3
convolutions with GroupNorm and a 1×1 projection shortcut (with GroupNorm) where
the channels change, global average pooling and a linear head. Every
convolution is adapted by ``dr.adapt``; the GroupNorms and the head train.

The paper's row: CIFAR-10, 87.70 % at r = 16 against 90.81 % for full training.
Ours by default runs on scikit-learn's digits, resized, shifted and noisy on a
16×16 canvas (``_arch_images.py``, generated from the seed). A user's CIFAR-10
(or any images) runs the paper's row: ``data=PATH`` with

* ``X``: ``(n, 32, 32, 3)`` uint8 (0…255) or ``(n, 3, 32, 32)`` float (any
  image size and channel count; the channel axis is inferred, see
  ``_arch_images.py``), or ``(n, H, W)`` for grey images;
* ``y``: ``(n,)`` integer labels 0…K−1;
* optionally ``X_test`` and ``y_test`` (else a seeded 20 % is held out).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from deepreservoir.studies import load_helper

_folder = Path(__file__).parent
common = load_helper("_arch_common", _folder)
images = load_helper("_arch_images", _folder)

NAME = "cnn"
TITLE = "ResNet-style CNN"
PAPER = common.PaperRow(benchmark="CIFAR-10 accuracy, %", lora=87.70, full=90.81, rank=16)
RANKS = (1, 8, 16)
REQUIRES: tuple[str, ...] = ()
METRIC = common.Metric("accuracy", higher_is_better=True, percent=True)
HYPER = {"full": common.Hyper(epochs=8, batch_size=32, lr_full=3e-3, lr_lora=1e-2),
         "quick": common.Hyper(epochs=1, batch_size=32, lr_full=3e-3, lr_lora=1e-2)}
# alpha = None: α = r (scale 1); the paper does not state the CNN's α (α = 16 at r = 1 and
# rsLoRA at r = 16 trained worse here). The quick size checks the plumbing: 10 steps learn
# nothing yet.
ADAPT = {"train": ["head", "*norm*"], "alpha": None}
GROUPS = {"stem": ["stem"], "blocks": ["blocks.*.conv1", "blocks.*.conv2"],
          "shortcuts": ["blocks.*.shortcut"]}
DATA_KEYS = images.DATA_KEYS
WIDTHS = (16, 32, 64)
STRIDES = (1, 2, 2)

batches = images.batches
loss = images.classification_loss
evaluate = images.evaluate
sample = images.sample


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 4 channels per group (no running statistics: train and eval agree)."""
    return nn.GroupNorm(max(1, channels // 4), channels)


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with GroupNorm; a 1×1 projection shortcut when the shape changes."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1,
                               bias=False)
        self.norm1 = _norm(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.norm2 = _norm(channels_out)
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False)
            self.shortcut_norm = _norm(channels_out)
        else:
            self.shortcut = self.shortcut_norm = None

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        skip = x if self.shortcut is None else self.shortcut_norm(self.shortcut(x))
        return torch.relu(out + skip)


class ResNet(nn.Module):
    """Stem, residual blocks, global average pooling, linear head."""

    def __init__(self, channels: int, classes: int, widths: tuple[int, ...] = WIDTHS,
                 strides: tuple[int, ...] = STRIDES) -> None:
        super().__init__()
        self.stem = nn.Conv2d(channels, widths[0], 3, padding=1, bias=False)
        self.stem_norm = _norm(widths[0])
        blocks, previous = [], widths[0]
        for width, stride in zip(widths, strides, strict=True):
            blocks.append(ResidualBlock(previous, width, stride))
            previous = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(previous, classes)

    def forward(self, x: Tensor) -> Tensor:
        features = self.blocks(torch.relu(self.stem_norm(self.stem(x))))
        return self.head(features.mean(dim=(2, 3)))


def load_task(*, quick: bool, seed: int, data: str | os.PathLike | None = None
              ) -> common.Task:
    """The generated digit images (or a user's ``.npz`` images), see the module docstring."""
    return images.load_task(NAME, quick=quick, seed=seed, data=data)


def build(task: common.Task, *, seed: int) -> nn.Module:
    """The untrained ResNet for the task's channels and classes, initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ResNet(task.info["channels"], task.info["classes"])
