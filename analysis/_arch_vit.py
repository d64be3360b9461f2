"""The ``vit`` family of the ``architectures`` study: a small Vision Transformer.

Not a study (the leading underscore); ``analysis/architectures.py`` loads it
with ``load_helper("_arch_vit", folder)``. It follows the family protocol of
``_arch_common.py``.

The network: a patch embedding (``nn.Conv2d`` with kernel = stride = the patch
size: 4 pixels for images of at least 16×16, so 16 patches on the generated
16×16 images and 64 on CIFAR-10's 32×32), a learned class token and learned
position embeddings (``nn.Parameter`` on the model), ``nn.TransformerEncoder``
(pre-norm, ``batch_first``, GELU), a final LayerNorm and a linear head on the
class token. ``dr.adapt`` adapts the patch embedding, every attention block
(query, key, value and output projections) and both MLP layers of every
encoder layer; the LayerNorms, the class token, the position embeddings and
the head train. α = 16, as the paper's Transformers.

The paper's row: ViT accuracy 94.53 % at r = 1 against 96.83 % for full
training (docs/paper.md does not name the data set). Ours by default runs on
the same images as the ``cnn`` family: scikit-learn's digits, resized, shifted
and noisy on a 16×16 canvas (``_arch_images.py``, generated from the seed). A
user's images run through ``data=PATH``: ``X`` ``(n, H, W, C)`` uint8 (0…255)
or ``(n, C, H, W)`` float or ``(n, H, W)`` (the channel axis is inferred, see
``_arch_images.py``), ``y`` ``(n,)`` integer labels 0…K−1, optionally
``X_test`` and ``y_test`` (else a seeded 20 % is held out).
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

NAME = "vit"
TITLE = "Vision Transformer (ViT)"
PAPER = common.PaperRow(benchmark="ViT accuracy, % (data set not named)", lora=94.53,
                        full=96.83, rank=1)
RANKS = (1, 8)
REQUIRES: tuple[str, ...] = ()
METRIC = common.Metric("accuracy", higher_is_better=True, percent=True)
HYPER = {"full": common.Hyper(epochs=6, batch_size=32, lr_full=3e-3, lr_lora=3e-3),
         "quick": common.Hyper(epochs=2, batch_size=32, lr_full=3e-3, lr_lora=3e-3)}
# α = 16 as the paper's Transformers (scale 16 at r = 1, 2 at r = 8). The scale already
# multiplies the adapters' steps: lr_lora = lr_full here (1e-2 diverges at both ranks).
ADAPT = {"train": ["head", "*norm*", "cls_token", "pos_embed"], "alpha": 16}
GROUPS = {"patch_embed": ["patch_embed"], "attention": ["*.self_attn"],
          "mlp": ["*.linear1", "*.linear2"]}
DATA_KEYS = images.DATA_KEYS
WIDTH, HEADS, LAYERS, MLP_WIDTH = 64, 4, 2, 128

batches = images.batches
loss = images.classification_loss
evaluate = images.evaluate
sample = images.sample


def patch_size(height: int, width: int) -> int:
    """4 pixels for images of at least 16×16, else a quarter of the shorter side (≥ 1)."""
    shorter = min(height, width)
    return 4 if shorter >= 16 else max(1, shorter // 4)


class VisionTransformer(nn.Module):
    """Patch embedding, class token, position embeddings, pre-norm encoder, LayerNorm, head."""

    def __init__(self, channels: int, height: int, width: int, classes: int, *,
                 dim: int = WIDTH, heads: int = HEADS, layers: int = LAYERS,
                 mlp_width: int = MLP_WIDTH) -> None:
        super().__init__()
        patch = patch_size(height, width)
        tokens = (height // patch) * (width // patch)
        self.patch_embed = nn.Conv2d(channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, tokens + 1, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, mlp_width, dropout=0.0,
                                           activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: Tensor) -> Tensor:
        patches = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(len(x), -1, -1)
        tokens = torch.cat([cls, patches], dim=1) + self.pos_embed
        return self.head(self.norm(self.encoder(tokens)[:, 0]))


def load_task(*, quick: bool, seed: int, data: str | os.PathLike | None = None
              ) -> common.Task:
    """The generated digit images (or a user's ``.npz`` images), see the module docstring."""
    return images.load_task(NAME, quick=quick, seed=seed, data=data)


def build(task: common.Task, *, seed: int) -> nn.Module:
    """The untrained ViT for the task's image size, channels and classes, from ``seed``."""
    info = task.info
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VisionTransformer(info["channels"], info["height"], info["width"],
                                 info["classes"])
