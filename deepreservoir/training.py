"""Gradient training of adapters, gates and heads: ``Model.fit(X, y, epochs=...)``.

Reproducibility
---------------
Every random choice of a run is a pure function of ``seed`` and where the run is:
the shuffling of epoch ``e`` uses a generator seeded from ``(seed, e)``, and each
batch runs with torch's global generator reseeded from ``(seed, e, b)`` inside an
isolated RNG context (so dropout is reproducible and the caller's global
generator is left untouched). Adapters start from the node seeds. Hence on CPU
the same seed gives bit-identical adapters, and a run resumed from a checkpoint
ends bit-identical to an uninterrupted one.

Order of training in a mixed graph
----------------------------------
A model with both closed-form nodes (Ridge) and gradient-trained nodes trains in
three phases:

1. the Ridge nodes are solved in closed form on the features of the untrained
   model (a fresh adapter is a no-op, so these are the scaffold's features);
2. the parameters are trained by gradient descent *through* the Ridge nodes,
   whose weights stay fixed (they are buffers, not parameters);
3. the Ridge nodes are solved again on the features of the trained model.

Ridge nodes must then be the model's output and the targets real-valued
(``loss="mse"``), step for step like the inputs.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from deepreservoir.data import as_batch
from deepreservoir.errors import (
    ArtifactError,
    DataError,
    DeepReservoirError,
    GraphError,
    ParameterError,
    format_value,
)

__all__ = [
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULES",
    "TrainingError",
    "evaluate",
    "fit",
    "has_gradient_nodes",
    "predict",
]

LOSSES = ("mse", "cross_entropy", "bce")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "constant", "linear")
RESAMPLING = (None, "static", "epoch", "batch")
CHECKPOINT_VERSION = 1


class TrainingError(DeepReservoirError, RuntimeError):
    """Training could not go on (e.g. the loss became NaN)."""


# ---------------------------------------------------------------- detection
def _node_trains(node: torch.nn.Module) -> bool:
    if getattr(node, "built", False):
        return any(p.requires_grad for p in node.parameters())
    check = getattr(node, "has_gradient_parameters", None)
    return bool(check()) if check is not None else False


def has_gradient_nodes(model: torch.nn.Module) -> bool:
    """Whether a model has (or will have, once built) gradient-trainable parameters."""
    return any(_node_trains(node) for node in model.nodes.values())


def _derive(*parts: int) -> int:
    text = ",".join(str(int(p)) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


# --------------------------------------------------------------- validation
def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise ParameterError(
            f"The '{name}' parameter of fit must be {expected}. Got {format_value(value)}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(
        value, bool) and math.isfinite(float(value))


@dataclass
class _Config:
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    schedule: str
    loss: Any
    seed: int
    resample: str | None
    warmup: int
    grad_clip: float | None

    def fingerprint(self) -> dict[str, Any]:
        loss = self.loss if isinstance(self.loss, str) else getattr(
            self.loss, "__qualname__", type(self.loss).__name__)
        return {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                "optimizer": self.optimizer, "weight_decay": self.weight_decay,
                "schedule": self.schedule, "loss": loss, "seed": self.seed,
                "resample": self.resample, "warmup": self.warmup, "grad_clip": self.grad_clip}


def _validate(epochs, batch_size, lr, optimizer, weight_decay, schedule, loss, seed,
              validation_split, resample, checkpoint_every, verbose, warmup, grad_clip):
    _check("epochs", epochs, _is_int(epochs) and epochs >= 1, "an int >= 1")
    _check("batch_size", batch_size, _is_int(batch_size) and batch_size >= 1, "an int >= 1")
    _check("lr", lr, _is_real(lr) and lr > 0, "a float > 0")
    _check("optimizer", optimizer, optimizer in OPTIMIZERS,
           "one of " + ", ".join(repr(o) for o in OPTIMIZERS))
    _check("weight_decay", weight_decay, _is_real(weight_decay) and weight_decay >= 0,
           "a float >= 0")
    _check("schedule", schedule, schedule in SCHEDULES,
           "one of " + ", ".join(repr(s) for s in SCHEDULES))
    _check("loss", loss, callable(loss) or loss in LOSSES,
           "one of " + ", ".join(repr(s) for s in LOSSES) + " or a callable")
    _check("seed", seed, _is_int(seed) and 0 <= seed < 2**63,
           "a non-negative int below 2**63")
    _check("validation_split", validation_split,
           _is_real(validation_split) and 0 <= validation_split < 1, "a float in [0, 1)")
    _check("resample", resample, resample in RESAMPLING,
           "one of None, 'static', 'epoch', 'batch'")
    _check("checkpoint_every", checkpoint_every, _is_int(checkpoint_every)
           and checkpoint_every >= 1, "an int >= 1")
    _check("verbose", verbose, verbose in (0, 1, 2), "one of 0, 1, 2")
    _check("warmup", warmup, _is_int(warmup) and warmup >= 0, "an int >= 0")
    _check("grad_clip", grad_clip, grad_clip is None or (_is_real(grad_clip) and grad_clip > 0),
           "a float > 0 or None")


# --------------------------------------------------------------------- data
@dataclass
class _Data:
    """Samples in executor layout: ``x`` (N, T, F); targets per sample or per step."""

    x: Tensor
    lengths: Tensor | None
    y: Tensor
    per_step: bool

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: Tensor) -> _Data:
        lengths = None if self.lengths is None else self.lengths[index]
        return _Data(self.x[index], lengths, self.y[index], self.per_step)


def _is_sequence_model(model) -> bool:
    return (not model.is_acyclic() or any(e.delay > 0 for e in model.edges)
            or any(node.recurrent for node in model.nodes.values()))


def _samples(model, X: Any, name: str, dtype) -> tuple[Tensor, Tensor | None]:
    batch = as_batch(X, name=name, dtype=dtype)
    values = batch.values
    if not _is_sequence_model(model) and batch.layout == "single":
        return values[0].unsqueeze(1), None  # N samples of one step each
    return values, batch.lengths


def _classification(loss: Any) -> bool:
    return loss in ("cross_entropy", "bce")


def _targets(model, y: Any, x: Tensor, lengths: Tensor | None, loss: Any, name: str,
             out_dim: int | None, dtype) -> tuple[Tensor, bool]:
    """Validate targets against the samples; return them and whether they are per step."""
    if y is None:
        raise DataError(f"fit() needs targets: the '{name}' argument is None.")
    if isinstance(y, (list, tuple)) and y and hasattr(y[0], "shape"):
        y = as_batch(list(y), name=name, dtype=dtype).values
    tensor = y if isinstance(y, Tensor) else torch.as_tensor(np.asarray(y))
    n, steps = int(x.shape[0]), int(x.shape[1])
    if tensor.shape[:1] != (n,):
        raise DataError(
            f"The targets '{name}' must have one entry per sample: {n} (inputs of shape "
            f"{tuple(x.shape) if steps > 1 else (n, int(x.shape[2]))}). Got shape "
            f"{tuple(tensor.shape)}.")
    if loss == "cross_entropy":
        if tensor.is_floating_point():
            if not bool(torch.all(tensor == torch.round(tensor))):
                raise DataError(
                    f"The targets '{name}' for loss='cross_entropy' must be integer class "
                    f"labels. Got non-integer values of dtype {tensor.dtype}.")
        elif tensor.dtype == torch.bool or tensor.dtype.is_complex:
            raise DataError(
                f"The targets '{name}' for loss='cross_entropy' must be integer class labels. "
                f"Got dtype {tensor.dtype}.")
        labels = tensor.to(torch.int64)
        per_step = labels.ndim == 2 and steps > 1
        if labels.ndim not in (1, 2) or (labels.ndim == 2 and not per_step):
            raise DataError(
                f"The targets '{name}' for loss='cross_entropy' must be labels of shape ({n},)"
                f"{f' or ({n}, {steps})' if steps > 1 else ''}. Got shape "
                f"{tuple(tensor.shape)}.")
        if per_step and labels.shape[1] != steps:
            raise DataError(
                f"Per-step targets '{name}' must have {steps} steps like the inputs. Got shape "
                f"{tuple(labels.shape)}.")
        low = int(labels.min())
        high = int(labels.max())
        if low < 0 or (out_dim is not None and high >= out_dim):
            bad = low if low < 0 else high
            where = tuple(int(i) for i in torch.nonzero(labels == bad)[0].tolist())
            bound = "n_classes" if out_dim is None else str(out_dim)
            raise DataError(
                f"Class labels in '{name}' are out of range: they must be in [0, {bound}) for a "
                f"model with {out_dim if out_dim is not None else 'inferred'} outputs. "
                f"Got {bad} at index {where}.")
        return labels, per_step
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    values = tensor.to(dtype)
    if not bool(torch.isfinite(values).all()):
        raise DataError(f"The targets '{name}' must be finite. Got NaN or Inf values.")
    if values.ndim == 1:
        values = values.unsqueeze(-1)
    per_step = values.ndim == 3
    if values.ndim not in (2, 3) or (per_step and values.shape[1] != steps):
        raise DataError(
            f"The targets '{name}' must have shape ({n}, O)"
            f"{f' or ({n}, {steps}, O)' if steps > 1 else ''} to match inputs of shape "
            f"{tuple(x.shape) if steps > 1 else (n, int(x.shape[2]))}. Got shape "
            f"{tuple(tensor.shape)}.")
    if out_dim is not None and values.shape[-1] != out_dim:
        raise DataError(
            f"The targets '{name}' have {values.shape[-1]} features but the model outputs "
            f"{out_dim}: shape {tuple(tensor.shape)} does not match outputs (..., {out_dim}).")
    if loss == "bce" and bool(((values < 0) | (values > 1)).any()):
        raise DataError(f"The targets '{name}' for loss='bce' must lie in [0, 1].")
    return values, per_step


def _kind(loss: Any, y: Any) -> str:
    """The target kind: the loss name, or for a callable loss, labels if ``y`` is integer."""
    if isinstance(loss, str):
        return loss
    dtype = getattr(y, "dtype", None)
    if dtype is None:
        dtype = np.asarray(y).dtype
    if isinstance(dtype, torch.dtype):
        integer = not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)
    else:
        integer = np.issubdtype(dtype, np.integer)
    return "cross_entropy" if integer else "mse"


def _target_dim(y: Tensor, loss: Any) -> int:
    if loss == "cross_entropy":
        return int(y.max()) + 1
    return int(y.shape[-1])


# ------------------------------------------------------------ loss and output
def _loss_fn(loss: Any) -> Callable[[Tensor, Tensor], Tensor]:
    if callable(loss):
        return loss
    if loss == "mse":
        return torch.nn.functional.mse_loss
    if loss == "cross_entropy":
        return torch.nn.functional.cross_entropy
    return torch.nn.functional.binary_cross_entropy_with_logits


def _select(out: Tensor, data: _Data, warmup: int) -> tuple[Tensor, Tensor]:
    """Outputs and targets at the positions the loss looks at, flattened to rows."""
    if data.per_step:
        n, steps = out.shape[:2]
        time_index = torch.arange(steps, device=out.device)
        keep = time_index[None, :] >= warmup
        if data.lengths is not None:
            keep = keep & (time_index[None, :] < data.lengths[:, None].to(out.device))
        keep = keep.expand(n, steps)
        return out[keep], data.y.to(out.device)[keep]
    if data.lengths is None:
        last = out[:, -1]
    else:
        last = out[torch.arange(out.shape[0]), data.lengths.to(out.device) - 1]
    return last, data.y.to(out.device)


def _forward(model, x: Tensor) -> Tensor:
    out = model(x)
    if isinstance(out, dict):
        raise GraphError(
            f"Gradient training needs a model with one output node. This one has "
            f"{sorted(out)}.")
    return out


def _metrics(out: Tensor, target: Tensor, loss: Any) -> dict[str, float]:
    value = float(_loss_fn(loss)(out, target))
    metrics = {"loss": value}
    if loss == "cross_entropy" or (callable(loss) and not target.is_floating_point()):
        metrics["accuracy"] = float((out.argmax(-1) == target).double().mean())
    elif loss == "bce":
        metrics["accuracy"] = float(((out > 0) == (target > 0.5)).double().mean())
    return metrics


# --------------------------------------------------------------- schedules
def _lr_at(schedule: str, base: float, step: int, total: int) -> float:
    if schedule == "constant" or total <= 1:
        return base
    progress = min(step / total, 1.0)
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    return base * (1.0 - progress)


def _make_optimizer(name: str, params: list[torch.nn.Parameter], lr: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)


# ----------------------------------------------------------------- ablations
def _scaffold_nodes(model) -> list:
    return [n for n in model.nodes.values() if hasattr(n, "resample") and n.built]


def _set_generation(model, generation: int) -> None:
    for node in _scaffold_nodes(model):
        if node.generation_ != generation:
            node.resample(generation)


# ------------------------------------------------------------------- public
def predict(model, X: Any, *, batch_size: int = 1024) -> np.ndarray:
    """Outputs of a gradient-trained model, one row per sample, in eval mode.

    Feedforward models map ``(N, F)`` to ``(N, O)``; sequence models map
    ``(N, T, F)`` to ``(N, T, O)``.
    """
    from deepreservoir.executor import model_dtype_device

    dtype, device = model_dtype_device(model)
    x, _ = _samples(model, X, "X", dtype)
    was_training = model.training
    model.eval()
    pieces = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            pieces.append(_forward(model, x[start:start + batch_size].to(device)).cpu())
    model.train(was_training)
    out = torch.cat(pieces)
    ndim = X.ndim if hasattr(X, "ndim") else np.ndim(X)
    if not _is_sequence_model(model) and out.shape[1] == 1 and ndim == 2:
        out = out[:, 0]
    return out.numpy()


def evaluate(model, X: Any, y: Any, *, loss: Any = "cross_entropy",
             batch_size: int = 1024) -> dict[str, float]:
    """Loss (and accuracy, for classification) of a model on data, in eval mode."""
    from deepreservoir.executor import model_dtype_device

    dtype, device = model_dtype_device(model)
    x, lengths = _samples(model, X, "X", dtype)
    out_dim = next(iter(model.nodes[n] for n in model.output_names)).output_dim
    target, per_step = _targets(model, y, x, lengths, _kind(loss, y), "y", out_dim, dtype)
    data = _Data(x, lengths, target, per_step)
    was_training = model.training
    model.eval()
    outs, tgts = [], []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            part = data.subset(torch.arange(start, min(start + batch_size, len(data))))
            out, tgt = _select(_forward(model, part.x.to(device)), part, 0)
            outs.append(out)
            tgts.append(tgt)
    model.train(was_training)
    return _metrics(torch.cat(outs), torch.cat(tgts), loss)


def fit(model, X: Any, y: Any = None, *, epochs: int = 20, batch_size: int = 128,
        lr: float = 1e-3, optimizer: str = "adamw", weight_decay: float = 1e-2,
        schedule: str = "cosine", loss: Any = "mse",
        validation_data: tuple[Any, Any] | None = None, validation_split: float = 0.0,
        seed: int = 0, device: Any = None, callbacks: Iterable[Any] = (), verbose: int = 1,
        checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1,
        resume: bool = False, resample: str | None = None,
        seed_labels: Mapping[int, Iterable[int]] | None = None, warmup: int = 0,
        chunk_size: int | None = None, grad_clip: float | None = None):
    """Train a model's parameters (adapters, gates, heads) by gradient descent.

    Parameters
    ----------
    model : Model
    X : array or Tensor
        Feedforward models: ``(N, F)``, N samples. Sequence models (a recurrent
        node or a delayed edge): ``(N, T, F)`` or a list of ``(T_i, F)``.
    y : array or Tensor
        ``loss="cross_entropy"``: integer labels ``(N,)`` (per sequence) or
        ``(N, T)`` (per step). ``"mse"``/``"bce"``: ``(N, O)`` or ``(N, T, O)``.
        Per-sequence targets are compared with the output at each sequence's last step.
    epochs, batch_size, lr
        The paper's MNIST recipe is 20, 128, 1e-3.
    optimizer : {"adamw", "adam", "sgd"}
    weight_decay : float >= 0
    schedule : {"cosine", "constant", "linear"}
        Learning-rate decay over all steps.
    loss : {"mse", "cross_entropy", "bce"} or callable ``loss(outputs, targets) → scalar``
    validation_data : (X_val, y_val), optional
    validation_split : float in [0, 1)
        Fraction of the samples held out (a seeded draw) when no validation_data.
    seed : int
        Seeds shuffling, dropout and the validation split.
    device : str or torch.device, optional
        Moves the model there first.
    callbacks : iterable of callables
        ``cb(epoch, logs, model)`` after each epoch (or an object with
        ``on_epoch_end``); returning ``True`` stops training.
    verbose : {0, 1, 2}
        0: silent; 1: a tqdm bar with the loss and the validation metric;
        2: also a line per epoch.
    checkpoint : path, optional
        Directory for checkpoints, written atomically every ``checkpoint_every`` epochs.
    resume : bool
        Continue from the checkpoint in ``checkpoint`` if there is one.
    resample : {None, "static", "epoch", "batch"}
        Ablation: draw a new scaffold every epoch or every batch.
    seed_labels : dict {scaffold seed: labels}, optional
        Ablation: one adapter across several scaffold seeds; each batch holds
        samples of one seed's labels, and the model is reseeded to that seed.
    warmup : int
        Steps ignored by a per-step loss (sequence models).
    grad_clip : float, optional
        Clip the global gradient norm.

    Returns
    -------
    xarray.Dataset
        History with dimension ``epoch`` (1, 2, ...) and variables ``loss``,
        ``lr``, ``seconds`` and, with validation, ``val_loss`` (and
        ``val_accuracy`` for classification), all over ``epoch``; and ``beta``
        over ``("epoch", "layer")``: each trained gate β at the end of each
        epoch, with the ``layer`` coordinate holding node names (empty when no
        node has a gate). Attributes ``alpha_convention``, ``loss_function``
        and ``config`` (JSON). Also kept as ``model.history_``.

    Raises
    ------
    ParameterError, DataError
        Bad options or data, naming the parameter, the value and what was expected.
    TrainingError
        The loss became NaN or Inf; the message names the epoch and batch.
    """
    from deepreservoir.executor import build_model, fit_model, model_dtype_device

    _validate(epochs, batch_size, lr, optimizer, weight_decay, schedule, loss, seed,
              validation_split, resample, checkpoint_every, verbose, warmup, grad_clip)
    if resume and checkpoint is None:
        raise ParameterError(
            "The 'resume' parameter of fit needs a 'checkpoint' directory. Got resume=True "
            "with checkpoint=None.")
    if seed_labels is not None and loss != "cross_entropy":
        raise ParameterError(
            f"The 'seed_labels' parameter of fit needs loss='cross_entropy'. Got loss={loss!r}.")
    config = _Config(int(epochs), int(batch_size), float(lr), optimizer, float(weight_decay),
                     schedule, loss, int(seed), resample, int(warmup),
                     None if grad_clip is None else float(grad_clip))
    if device is not None:
        model.to(device)
    dtype, device = model_dtype_device(model)
    if len(model.output_names) != 1:
        raise GraphError(
            f"Gradient training needs a model with one output node. This one has "
            f"{model.output_names}.")
    out_name = model.output_names[0]
    out_node = model.nodes[out_name]

    # ---- data
    x, lengths = _samples(model, X, "X", dtype)
    out_dim = out_node.output_dim
    kind = _kind(loss, y)
    target, per_step = _targets(model, y, x, lengths, kind, "y", out_dim, dtype)
    data = _Data(x, lengths, target, per_step)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ParameterError(
                f"The 'validation_data' parameter of fit must be a pair (X_val, y_val). "
                f"Got {format_value(validation_data)}.")
        vx, vlen = _samples(model, validation_data[0], "validation_data[0]", dtype)
        vy, vstep = _targets(model, validation_data[1], vx, vlen, kind, "validation_data[1]",
                             out_dim, dtype)
        val = _Data(vx, vlen, vy, vstep)
    elif validation_split > 0:
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(
            _derive(seed, 1 << 40)))
        n_val = max(1, round(validation_split * len(data)))
        if n_val >= len(data):
            raise DataError(
                f"The 'validation_split' parameter ({validation_split}) leaves no training "
                f"sample out of {len(data)}.")
        val = data.subset(order[:n_val].sort().values)
        data = data.subset(order[n_val:].sort().values)
    else:
        val = None

    # ---- build (output size from the targets when it is not given)
    targets_dim = {}
    if out_dim is None:
        if kind == "cross_entropy":
            labels = [data.y.max()] + ([val.y.max()] if val is not None else [])
            targets_dim[out_name] = int(max(int(v) for v in labels)) + 1
        else:
            targets_dim[out_name] = _target_dim(data.y, kind)
    build_model(model, {n: int(x.shape[-1]) for n in model.input_names}, targets_dim)
    _check_output_matches(out_node, data, kind)
    if val is not None:
        _check_output_matches(out_node, val, kind)

    closed = [n for n, node in model.nodes.items() if node.closed_form]
    if closed:
        _check_mixed(model, closed, out_name, data, loss)
        _closed_form(model, fit_model, data, warmup, chunk_size)

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ParameterError(
            "fit() found no trainable parameters: give a Scaffold or Reservoir r > 0, or add a "
            "LoRAReadout, Dense or BetaGate node.")
    opt = _make_optimizer(optimizer, params, config.lr, config.weight_decay)
    loss_fn = _loss_fn(loss)
    groups = _label_groups(data, seed_labels)
    batches_per_epoch = sum(_n_batches(len(index), batch_size) for _, index in groups)
    total_steps = config.epochs * batches_per_epoch

    history: list[dict[str, float]] = []
    gates: list[dict[str, float]] = []
    start_epoch = 0
    ckpt = None if checkpoint is None else Path(checkpoint)
    if resume and ckpt is not None and _latest(ckpt) is not None:
        start_epoch, history, gates = _load_checkpoint(ckpt, model, opt, config)

    bar = None
    if verbose:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, initial=start_epoch * batches_per_epoch,
                   desc="fit", unit="batch", leave=True, dynamic_ncols=True)
    callbacks = list(callbacks)
    model.train()
    good_state = _trainable_state(model, opt)
    try:
        with torch.random.fork_rng(devices=_rng_devices(device)):
            for epoch in range(start_epoch, config.epochs):
                began = time.perf_counter()
                if resample == "epoch":
                    _set_generation(model, epoch)
                schedule_of_epoch = _epoch_batches(groups, batch_size, seed, epoch)
                running, count = 0.0, 0
                for b, (group_seed, index) in enumerate(schedule_of_epoch):
                    step = epoch * batches_per_epoch + b
                    torch.manual_seed(_derive(seed, epoch, b))
                    if resample == "batch":
                        _set_generation(model, step)
                    if group_seed is not None:
                        model.reseed(group_seed)
                    for group in opt.param_groups:
                        group["lr"] = _lr_at(schedule, config.lr, step, total_steps)
                    part = data.subset(index)
                    out = _forward(model, part.x.to(device))
                    pred, tgt = _select(out, part, warmup)
                    value = loss_fn(pred, tgt)
                    if not bool(torch.isfinite(value.detach())):
                        _restore(model, opt, good_state)
                        kept = _latest(ckpt) if ckpt is not None else None
                        where = (f" The last good checkpoint ({kept.name}) is kept in {ckpt}."
                                 if kept is not None else "")
                        raise TrainingError(
                            f"The loss became {float(value.detach())} at epoch {epoch + 1} (of "
                            f"{config.epochs}), batch {b + 1} (of {batches_per_epoch}); training "
                            f"stopped and the parameters were reset to the end of the last good "
                            f"epoch.{where} Try a lower 'lr' (got {config.lr:g}) or grad_clip.")
                    opt.zero_grad(set_to_none=True)
                    value.backward()
                    if grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(params, grad_clip)
                    opt.step()
                    running += float(value.detach()) * int(index.numel())
                    count += int(index.numel())
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(_postfix(epoch, config.epochs, value.detach(), history),
                                        refresh=False)
                if seed_labels is not None:
                    model.reseed(None)
                logs = {"loss": running / max(count, 1),
                        "lr": _lr_at(schedule, config.lr, (epoch + 1) * batches_per_epoch,
                                     total_steps)}
                if val is not None:
                    for key, value in _validation(model, val, loss, device, seed_labels).items():
                        logs[f"val_{key}"] = value
                logs["seconds"] = time.perf_counter() - began
                history.append(logs)
                gates.append(_gates(model))
                good_state = _trainable_state(model, opt)
                if bar is not None:
                    bar.set_postfix(_postfix(epoch, config.epochs, None, history))
                    if verbose == 2:
                        bar.write(f"epoch {epoch + 1}/{config.epochs} " + " ".join(
                            f"{k}={v:.4g}" for k, v in logs.items()))
                if ckpt is not None and ((epoch + 1) % checkpoint_every == 0
                                         or epoch + 1 == config.epochs):
                    _write_checkpoint(ckpt, model, opt, config, epoch + 1, history, gates)
                if any(_call(cb, epoch, logs, model) for cb in callbacks):
                    break
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    if closed:
        _closed_form(model, fit_model, data, warmup, chunk_size)
    result = _history(history, gates, model, config, loss)
    model.history_ = result
    return result


# ----------------------------------------------------------------- helpers
def _check_output_matches(out_node, data: _Data, loss: Any) -> None:
    out_dim = int(out_node.output_dim)
    if loss == "cross_entropy":
        high = int(data.y.max())
        if high >= out_dim:
            raise DataError(
                f"Class labels in 'y' are out of range: they must be in [0, {out_dim}) for a "
                f"model with {out_dim} outputs. Got {high}.")
    elif data.y.shape[-1] != out_dim:
        raise DataError(
            f"The targets 'y' have {data.y.shape[-1]} features but the model outputs {out_dim}"
            f": shape {tuple(data.y.shape)} does not match outputs (..., {out_dim}).")


def _check_mixed(model, closed: list[str], out_name: str, data: _Data, loss: Any) -> None:
    if closed != [out_name] or loss != "mse" or (data.x.shape[1] > 1 and not data.per_step):
        raise GraphError(
            f"A model with closed-form nodes {closed} and gradient-trained nodes trains only "
            f"when the closed-form node is the single output ('{out_name}'), loss='mse' and "
            f"the targets are given step for step. Got loss={loss!r}.")


def _closed_form(model, fit_model, data: _Data, warmup: int, chunk_size) -> None:
    was_training = model.training
    model.eval()
    if data.x.shape[1] == 1 and not _is_sequence_model(model):
        X, Y = data.x[:, 0], data.y
    elif data.lengths is not None:
        X = [data.x[i, : int(n)] for i, n in enumerate(data.lengths)]
        Y = [data.y[i, : int(n)] for i, n in enumerate(data.lengths)]
    else:
        X, Y = data.x, data.y
    fit_model(model, X, Y, warmup=warmup, reset=True, chunk_size=chunk_size)
    model.train(was_training)


def _label_groups(data: _Data, seed_labels) -> list[tuple[int | None, Tensor]]:
    if seed_labels is None:
        return [(None, torch.arange(len(data)))]
    groups = []
    owner: dict[int, int] = {}
    for s, labels in seed_labels.items():
        _check("seed_labels", seed_labels, _is_int(s) and s >= 0,
               "a dict {non-negative int seed: labels}")
        labels = [int(v) for v in labels]
        for label in labels:
            if label in owner:
                raise ParameterError(
                    f"The 'seed_labels' parameter of fit must give each label to one seed. "
                    f"Got label {label} for seeds {owner[label]} and {s}.")
            owner[label] = int(s)
        mask = torch.isin(data.y if data.y.ndim == 1 else data.y[:, -1], torch.tensor(labels))
        groups.append((int(s), torch.nonzero(mask)[:, 0]))
    return groups


def _n_batches(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def _epoch_batches(groups, batch_size: int, seed: int, epoch: int) -> list[tuple[Any, Tensor]]:
    generator = torch.Generator().manual_seed(_derive(seed, epoch))
    batches = []
    for group_seed, index in groups:
        order = index[torch.randperm(len(index), generator=generator)]
        batches.extend((group_seed, order[i:i + batch_size])
                       for i in range(0, len(order), batch_size))
    if len(groups) > 1:
        shuffle = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in shuffle]
    return batches


def _validation(model, val: _Data, loss: Any, device, seed_labels) -> dict[str, float]:
    model.eval()
    outs, tgts = [], []
    with torch.no_grad():
        if seed_labels is None:
            routes = [(None, torch.arange(len(val)))]
        else:
            routes = _label_groups(val, seed_labels)
        for group_seed, index in routes:
            if group_seed is not None:
                model.reseed(group_seed)
            for start in range(0, len(index), 1024):
                part = val.subset(index[start:start + 1024])
                out, tgt = _select(_forward(model, part.x.to(device)), part, 0)
                outs.append(out)
                tgts.append(tgt)
        if seed_labels is not None:
            model.reseed(None)
    model.train()
    return _metrics(torch.cat(outs), torch.cat(tgts), loss)


def _postfix(epoch: int, epochs: int, value: Tensor | None, history) -> dict[str, str]:
    post = {"epoch": f"{epoch + 1}/{epochs}"}
    if value is not None:
        post["loss"] = f"{float(value.detach()):.4f}"
    elif history:
        post["loss"] = f"{history[-1]['loss']:.4f}"
    if history:
        for key in ("val_accuracy", "val_loss"):
            if key in history[-1]:
                post[key] = f"{history[-1][key]:.4f}"
                break
    return post


def _call(callback: Any, epoch: int, logs: dict, model) -> bool:
    hook = getattr(callback, "on_epoch_end", callback)
    return bool(hook(epoch, dict(logs), model))


def _rng_devices(device: torch.device) -> list:
    if device.type == "cuda":
        return [device.index if device.index is not None else torch.cuda.current_device()]
    return []


def _trainable_state(model, opt) -> dict[str, Any]:
    return {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimizer": copy.deepcopy(opt.state_dict()),
            "generations": [(n.name, n.generation_) for n in _scaffold_nodes(model)]}


def _restore(model, opt, state: dict[str, Any]) -> None:
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    for name, generation in state["generations"]:
        node = model.nodes[name]
        if node.generation_ != generation:
            node.resample(generation)


def _gates(model) -> dict[str, float]:
    """The value of every trained gate β, by node name (nodes without one are left out)."""
    values = {}
    for name, node in model.nodes.items():
        beta = getattr(node, "beta_", None)
        if isinstance(beta, torch.nn.Parameter) and beta.numel() == 1:
            values[name] = float(beta.detach())
    return values


def _history(rows: list[dict[str, float]], gates: list[dict[str, float]], model,
             config: _Config, loss: Any):
    import xarray as xr

    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    epochs = np.arange(1, len(rows) + 1)
    data = {k: ("epoch", np.array([row.get(k, np.nan) for row in rows], dtype=float))
            for k in keys}
    layers: list[str] = []
    for row in gates:
        layers.extend(k for k in row if k not in layers)
    beta = np.array([[row.get(k, np.nan) for k in layers] for row in gates],
                    dtype=float).reshape(len(gates), len(layers))
    data["beta"] = (("epoch", "layer"), beta, {
        "long_name": "gate β at the end of each epoch",
        "description": "one column per node with a trained scalar gate (Scaffold, "
                       "LoRAReadout or Reservoir with r > 0, BetaGate)"})
    conventions = model.alpha_convention() if hasattr(model, "alpha_convention") else {}
    attrs = {"loss_function": loss if isinstance(loss, str) else "callable",
             "alpha_convention": json.dumps(conventions, ensure_ascii=False),
             "config": json.dumps(config.fingerprint())}
    return xr.Dataset(data, coords={"epoch": epochs, "layer": np.array(layers, dtype=str)},
                      attrs=attrs)


# ------------------------------------------------------------- checkpoints
def _latest(directory: Path | None) -> Path | None:
    if directory is None:
        return None
    pointer = directory / "LATEST"
    if not pointer.is_file():
        return None
    target = directory / pointer.read_text().strip()
    return target if target.is_dir() else None


def _write_checkpoint(directory: Path, model, opt, config: _Config, epoch: int,
                      history: list[dict[str, float]], gates: list[dict[str, float]]) -> None:
    from safetensors.torch import save_file

    from deepreservoir import io

    directory.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{epoch:05d}"
    staging = directory / f".{name}.tmp-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    io.save(model, staging / "model")
    tensors, scalars = _flatten_optimizer(opt.state_dict())
    save_file(tensors, str(staging / "optimizer.safetensors"))
    meta = {"format": "deepreservoir-checkpoint", "version": CHECKPOINT_VERSION,
            "epoch": epoch, "config": config.fingerprint(), "history": history, "gates": gates,
            "optimizer": scalars,
            "generations": {n.name: n.generation_ for n in _scaffold_nodes(model)}}
    (staging / "trainer.json").write_text(json.dumps(meta, indent=1))
    _fsync_tree(staging)
    final = directory / name
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    pointer = directory / f".LATEST.tmp-{os.getpid()}"
    pointer.write_text(name)
    os.replace(pointer, directory / "LATEST")
    for old in directory.glob("epoch-*"):
        if old.name != name and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def _fsync_tree(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())


def _flatten_optimizer(state: dict) -> tuple[dict[str, Tensor], dict]:
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for index, values in state["state"].items():
        entry = {}
        for key, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
                entry[key] = "tensor"
            else:
                entry[key] = value
        scalars["state"][str(index)] = entry
    return tensors, scalars


def _load_checkpoint(directory: Path, model, opt, config: _Config
                     ) -> tuple[int, list[dict[str, float]], list[dict[str, float]]]:
    from safetensors.torch import load_file

    from deepreservoir import io

    folder = _latest(directory)
    meta_path = folder / "trainer.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as error:
        raise ArtifactError(f"The checkpoint file {meta_path} cannot be read: {error}.") from None
    if meta.get("format") != "deepreservoir-checkpoint" or meta.get("version", 0) > \
            CHECKPOINT_VERSION:
        raise ArtifactError(
            f"The checkpoint file {meta_path} is not a deepreservoir checkpoint of version "
            f"<= {CHECKPOINT_VERSION}. Got format {meta.get('format')!r}, version "
            f"{meta.get('version')!r}.")
    stored = meta["config"]
    current = config.fingerprint()
    changed = {k: (stored.get(k), v) for k, v in current.items() if stored.get(k) != v}
    if changed:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in changed.items())
        raise ArtifactError(
            f"Cannot resume from {folder}: the training options differ ({detail}). Resume with "
            f"the same options, or start afresh with resume=False.")
    for name, generation in meta.get("generations", {}).items():
        node = model.nodes[name]
        if node.generation_ != generation:
            node.resample(generation)
    io.load_state_into(model, folder / "model")
    tensors = load_file(str(folder / "optimizer.safetensors"))
    scalars = meta["optimizer"]
    state = {"param_groups": scalars["param_groups"], "state": {}}
    for index, entry in scalars["state"].items():
        state["state"][int(index)] = {
            key: (tensors[f"{index}.{key}"] if value == "tensor" else value)
            for key, value in entry.items()}
    opt.load_state_dict(state)
    history = list(meta["history"])
    gates = list(meta.get("gates", [{} for _ in history]))
    return int(meta["epoch"]), history, gates
