"""What the architecture families of the ``architectures`` study share.

Not a study (the leading underscore). Each family is a helper
``analysis/_arch_<name>.py`` that defines

* ``NAME`` (``"cnn"``), ``TITLE`` (``"ResNet-style CNN"``);
* ``PAPER``: :class:`PaperRow`, the paper's row (docs/paper.md);
* ``RANKS``: the adapter ranks trained (``(1, 8)``, the CNN ``(1, 8, 16)``);
* ``REQUIRES``: import names of the optional packages it needs (``()`` if none);
* ``METRIC``: :class:`Metric`, what ``evaluate`` returns;
* ``HYPER``: ``{"full": Hyper, "quick": Hyper}``;
* ``ADAPT``: keyword arguments of :func:`deepreservoir.adapt` besides ``r``,
  ``seed`` and ``weights`` (``train`` = the head and norms, ``alpha``, ...);
* ``GROUPS``: ``{group name: [module-path patterns]}``, the layer groups that the
  gap analysis trains fully in turn (added to ``train``) at the largest rank;
* ``DATA_KEYS``: one line naming the arrays of a user's ``.npz`` file;
* ``load_task(*, quick, seed, data) -> Task`` (``data``: ``None`` for the
  local, generated data, else the path of a user's ``.npz``);
* ``build(task, *, seed) -> nn.Module``: the untrained network, initialised
  from ``seed`` (the same weights on every call);
* ``batches(task, split, batch_size, generator) -> Iterator``: the batches of a
  split, shuffled with ``generator`` for ``"train"``, in order otherwise;
* ``loss(model, batch) -> Tensor``: the training loss of one batch (a scalar);
* ``evaluate(model, task, split) -> float``: the metric on a split (the caller
  has put the model in eval mode under ``torch.no_grad()``);
* ``sample(task) -> tuple``: a few inputs, ``model(*sample(task))`` runs;
* optionally ``extras(task, *, seed, quick) -> dict[str, float | str]``: further
  figures of the family's row (the language model's memory and artifact sizes).

This module gives the family the data holder :class:`Task`, the training loop
:func:`train` and :func:`evaluate`, and the metrics :func:`accuracy` and
:func:`auroc`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

import deepreservoir as dr
from deepreservoir.errors import TrainingError

__all__ = [
    "PROTOCOL",
    "Hyper",
    "Metric",
    "PaperRow",
    "Task",
    "accuracy",
    "auroc",
    "evaluate",
    "train",
    "trainable_count",
]


#: The names every family helper defines (see the module docstring); ``extras`` is optional.
PROTOCOL = ("NAME", "TITLE", "PAPER", "RANKS", "REQUIRES", "METRIC", "HYPER", "ADAPT",
            "GROUPS", "DATA_KEYS", "load_task", "build", "batches", "loss", "evaluate",
            "sample")


@dataclass(frozen=True)
class PaperRow:
    """The paper's figures for one family (docs/paper.md, "other architectures")."""

    benchmark: str
    lora: float
    full: float
    rank: int | None  # the rank the paper states for its LottaLoRA figure, if any


@dataclass(frozen=True)
class Metric:
    """What a family's ``evaluate`` returns."""

    name: str               # "accuracy", "AUROC", "MSE", "loss"
    higher_is_better: bool
    percent: bool = False   # accuracy in % (``evaluate`` returns a fraction)


@dataclass(frozen=True)
class Hyper:
    """Training settings of one size of the study (AdamW with a cosine schedule)."""

    epochs: int
    batch_size: int
    lr_full: float
    lr_lora: float
    weight_decay: float = 1e-2
    clip: float = 1.0


@dataclass
class Task:
    """One family's data: ``splits`` maps "train", "val", "test" to the family's payload."""

    name: str
    splits: Mapping[str, Any]
    source: str                      # "generated: ..." or "file: NAME.npz"
    info: dict[str, Any] = field(default_factory=dict)  # sizes, classes, ...


def trainable_count(model: nn.Module) -> int:
    """Elements of the parameters that train."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _batch_count(family: Any, task: Task, batch_size: int) -> int:
    return sum(1 for _ in family.batches(task, "train", batch_size, torch.Generator()))


def train(model: nn.Module, family: Any, task: Task, *, lr: float, hyper: Hyper,
          seed: int) -> dict[str, float]:
    """Train ``model`` on ``task``'s training split: AdamW, cosine schedule, gradient clipping.

    Weight decay applies to every trained tensor but the gates β
    (:func:`deepreservoir.adapt_parameter_groups`); a plain module trains all
    its parameters. Dropout and batch order follow ``seed``.

    Returns
    -------
    dict
        ``{"train_loss": mean loss of the last epoch, "seconds": wall time,
        "steps": optimizer steps}``.

    Raises
    ------
    TrainingError
        When a loss is not finite (the epoch and the batch are named).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    groups = [g for g in dr.adapt_parameter_groups(model, hyper.weight_decay) if g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    total = max(1, hyper.epochs * _batch_count(family, task, hyper.batch_size))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total)))
    parameters = [p for g in groups for p in g["params"]]
    started, last, steps = time.perf_counter(), float("nan"), 0
    model.train()
    for epoch in range(hyper.epochs):
        losses = []
        for index, batch in enumerate(family.batches(task, "train", hyper.batch_size,
                                                     generator)):
            loss = family.loss(model, batch)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"The {task.name} training loss is not finite at epoch {epoch + 1}, "
                    f"batch {index + 1} (lr {lr:g}). Got {loss.item()!r}.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, hyper.clip)
            optimizer.step()
            schedule.step()
            losses.append(loss.detach())
            steps += 1
        last = float(torch.stack(losses).mean()) if losses else float("nan")
    model.eval()
    return {"train_loss": last, "seconds": time.perf_counter() - started, "steps": steps}


def evaluate(model: nn.Module, family: Any, task: Task, split: str = "test") -> float:
    """``family.evaluate`` in eval mode without gradients."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return float(family.evaluate(model, task, split))
    finally:
        model.train(was_training)


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Fraction of rows whose arg-max is the label."""
    return float((logits.argmax(-1) == labels).double().mean())


def auroc(scores: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """Area under the ROC curve of binary ``labels`` ranked by ``scores`` (ties averaged).

    The Mann–Whitney form: the probability that a positive outranks a negative.
    NaN when one class is absent.
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2)
                 / (positives * negatives))
