"""Loss functions, metrics and learning-rate schedules of gradient training."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from deepreservoir.errors import DataError

_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

__all__ = ["check_probabilities", "learning_rate", "loss_function", "make_optimizer",
           "metrics"]


def loss_function(loss: Any, checked: bool = True) -> Callable[[Tensor, Tensor], Tensor]:
    """The callable for a loss name (a callable is returned as is).

    Parameters
    ----------
    loss : {"mse", "cross_entropy", "bce"} or callable
    checked : bool
        For ``"bce"``: refuse targets outside [0, 1] in every call (one host read
        per call). ``False`` when the caller checked all targets once
        (:func:`check_probabilities`).
    """
    if callable(loss):
        return loss
    if loss == "mse":
        return torch.nn.functional.mse_loss
    if loss == "cross_entropy":
        return torch.nn.functional.cross_entropy
    if checked:
        return _binary_cross_entropy
    return torch.nn.functional.binary_cross_entropy_with_logits


def check_probabilities(target: Tensor, where: str) -> None:
    """Refuse ``loss="bce"`` targets outside [0, 1] (one host read).

    Parameters
    ----------
    target : Tensor
        The counted targets.
    where : str
        Where they come from, for the message (``"in a batch of shape (8,)"``).

    Raises
    ------
    DataError
        A target below 0 or above 1 (the first one is given).
    """
    bad = (target < 0) | (target > 1)
    if bool(bad.any()):
        value = float(target[bad][0])
        raise DataError(
            f"The targets 'y' of loss='bce' must be probabilities in [0, 1]. Got {value:g} "
            f"{where}. Scale them, or use loss='mse' for real values or "
            f"loss='cross_entropy' for class labels.")


def _binary_cross_entropy(out: Tensor, target: Tensor) -> Tensor:
    """BCE with logits; targets must be probabilities in [0, 1].

    :func:`~deepreservoir.training.samples.prepare_samples` checks whole data sets
    (naming the index); this catches targets that reach the loss another way
    (e.g. a ``sampler``'s batches).
    """
    check_probabilities(target, f"in a batch of shape {tuple(target.shape)}")
    return torch.nn.functional.binary_cross_entropy_with_logits(out, target)


def metrics(out: Tensor, target: Tensor, loss: Any) -> dict[str, float]:
    """The loss, and accuracy for classification, of outputs against targets (rows)."""
    values = {"loss": float(loss_function(loss)(out, target))}
    if loss == "cross_entropy" or (callable(loss) and not target.is_floating_point()):
        values["accuracy"] = float((out.argmax(-1) == target).double().mean())
    elif loss == "bce":
        values["accuracy"] = float(((out > 0) == (target > 0.5)).double().mean())
    return values


def learning_rate(schedule: str, base: float, step: int, total: int) -> float:
    """The learning rate at ``step`` of ``total``: cosine, linear decay, or constant."""
    if schedule == "constant" or total <= 1:
        return base
    progress = min(step / total, 1.0)
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    return base * (1.0 - progress)


def make_optimizer(name: str, params: list[torch.nn.Parameter], lr: float,
                   weight_decay: float, no_decay: list[torch.nn.Parameter] = ()
                   ) -> torch.optim.Optimizer:
    """AdamW, Adam, or SGD with momentum 0.9.

    ``params`` get ``weight_decay``; ``no_decay`` (the gates β) get none, so
    weight decay does not pull a gate towards 0, i.e. towards removing its scaffold.
    Both groups always exist (the second may be empty), so a checkpoint's
    optimizer state has the same layout whatever the model. On CUDA, Adam and
    AdamW are torch's fused kernels (one launch per step, no host read; results
    within rounding of the unfused ones); on CPU the default, unfused ones.
    """
    groups = [{"params": list(params), "weight_decay": weight_decay},
              {"params": list(no_decay), "weight_decay": 0.0}]
    every = [*groups[0]["params"], *groups[1]["params"]]
    fused = {"fused": True} if every and all(
        p.is_cuda and p.dtype in _FUSED_DTYPES for p in every) else {}
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, **fused)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, **fused)
    return torch.optim.SGD(groups, lr=lr, momentum=0.9)
