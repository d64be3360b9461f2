"""Callbacks: what happens around the training loop, each in its own object.

A :class:`Callback` may implement any of the hooks below; the
:class:`~deepreservoir.training.Trainer` calls them in list order.

===========================  ===============================================
hook                         when
===========================  ===============================================
``on_fit_begin(t)``          before the first epoch (a checkpoint resumes here)
``sampler(t, data, size)``   once: return a sampler to replace the default
``on_epoch_begin(t, e)``     before the batches of epoch ``e``
``on_batch_begin(t, b)``     before ``train_step`` (``b`` is the batch)
``on_batch_end(t, b, loss)`` after it
``on_batches_end(t, e)``     after the last batch, before validation
``validate(t, data)``        return metrics to replace the default validation
``on_epoch_end(t, e, logs)`` after validation; returning True stops training
``on_fit_end(t)``            after the loop, also when it stops on an error
===========================  ===============================================

The paper's ablations are callbacks, not branches of the loop:
:class:`ScaffoldResampling` and :class:`SeedGatedLabels`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from deepreservoir.errors import ParameterError, format_value
from deepreservoir.kinds import Scaffolded
from deepreservoir.training.samples import ShuffledSampler, label_groups

__all__ = ["Callback", "EarlyStopping", "FunctionCallback", "ProgressBar",
           "ScaffoldResampling", "SeedGatedLabels", "as_callback"]


class Callback:
    """Base class of training callbacks; every hook does nothing by default."""

    def on_fit_begin(self, trainer) -> None:
        """Before the first epoch."""

    def sampler(self, trainer, data, batch_size: int):
        """A sampler replacing the default one, or ``None``."""
        return None

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        """Before the batches of an epoch."""

    def on_batch_begin(self, trainer, batch) -> None:
        """Before ``train_step``."""

    def on_batch_end(self, trainer, batch, loss: torch.Tensor) -> None:
        """After ``train_step``; ``loss`` is detached."""

    def on_batches_end(self, trainer, epoch: int) -> None:
        """After the last batch of an epoch, before validation."""

    def validate(self, trainer, data) -> dict[str, float] | None:
        """Validation metrics replacing the default ones, or ``None``."""
        return None

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> bool | None:
        """After validation; return True to stop training."""
        return None

    def on_fit_end(self, trainer) -> None:
        """After the loop (also after an error)."""


class FunctionCallback(Callback):
    """A plain function ``fn(epoch, logs, model)`` (or an object with ``on_epoch_end``
    of that signature) called after each epoch; returning True stops training."""

    def __init__(self, function: Callable) -> None:
        self.function = getattr(function, "on_epoch_end", function)

    def on_epoch_end(self, trainer, epoch, logs):
        return bool(self.function(epoch, dict(logs), trainer.model))


def as_callback(value: Any) -> Callback:
    """A :class:`Callback` from a callback, a function, or an object with ``on_epoch_end``."""
    if isinstance(value, Callback):
        return value
    if callable(value) or callable(getattr(value, "on_epoch_end", None)):
        return FunctionCallback(value)
    raise ParameterError(
        f"The 'callbacks' parameter of fit must hold Callback objects or functions "
        f"fn(epoch, logs, model). Got {format_value(value)}.")


class ProgressBar(Callback):
    """A tqdm bar over batches with the loss and the validation metric.

    The batch loss shown is read from the device at most once per refresh
    interval of the bar (``mininterval``), never once per batch.

    Parameters
    ----------
    verbose : {1, 2}
        2 also prints one line per epoch.
    """

    def __init__(self, verbose: int = 1) -> None:
        self.verbose = verbose
        self.bar = None
        self._shown = 0.0

    def on_fit_begin(self, trainer):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=trainer.total_steps,
                        initial=trainer.start_epoch * trainer.batches_per_epoch, desc="fit",
                        unit="batch", leave=True, dynamic_ncols=True)

    def _postfix(self, trainer, loss: float | None) -> dict[str, str]:
        post = {"epoch": f"{trainer.epoch + 1}/{trainer.config.epochs}"}
        if loss is not None:
            post["loss"] = f"{loss:.4f}"
        elif trainer.history:
            post["loss"] = f"{trainer.history[-1]['loss']:.4f}"
        if trainer.history:
            for key in ("val_accuracy", "val_loss"):
                if key in trainer.history[-1]:
                    post[key] = f"{trainer.history[-1][key]:.4f}"
                    break
        return post

    def on_batch_end(self, trainer, batch, loss):
        if self.bar is not None:
            self.bar.update(1)
            # reading the loss waits for the device: at most once per refresh interval
            now = time.monotonic()
            if now - self._shown >= self.bar.mininterval:
                self._shown = now
                self.bar.set_postfix(self._postfix(trainer, float(loss)), refresh=False)

    def on_epoch_end(self, trainer, epoch, logs):
        if self.bar is None:
            return None
        self.bar.set_postfix(self._postfix(trainer, None))
        if self.verbose == 2:
            self.bar.write(f"epoch {epoch + 1}/{trainer.config.epochs} "
                           + " ".join(f"{k}={v:.4g}" for k, v in logs.items()))
        return None

    def on_fit_end(self, trainer):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EarlyStopping(Callback):
    """Stop when a logged metric has not improved for ``patience`` epochs.

    Parameters
    ----------
    monitor : str
        A key of the epoch logs, e.g. ``"val_loss"`` or ``"val_accuracy"``.
    patience : int >= 1
    min_delta : float >= 0
        The smallest change that counts as an improvement.
    mode : {"auto", "min", "max"}
        ``"auto"``: maximise accuracies, minimise the rest.
    restore_best : bool
        Put back the trainable tensors of the best epoch when stopping.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "auto", restore_best: bool = True) -> None:
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 1:
            raise ParameterError(f"The 'patience' parameter of EarlyStopping must be an int "
                                 f">= 1. Got {format_value(patience)}.")
        if mode not in ("auto", "min", "max"):
            raise ParameterError(f"The 'mode' parameter of EarlyStopping must be one of "
                                 f"'auto', 'min', 'max'. Got {format_value(mode)}.")
        if not isinstance(min_delta, (int, float)) or min_delta < 0:
            raise ParameterError(f"The 'min_delta' parameter of EarlyStopping must be a float "
                                 f">= 0. Got {format_value(min_delta)}.")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.maximise = mode == "max" or (mode == "auto" and "acc" in monitor)
        self.restore_best = restore_best
        self.best: float | None = None
        self.best_state = None
        self.waited = 0
        self.stopped_epoch: int | None = None

    def on_fit_begin(self, trainer):
        self.best, self.best_state, self.waited, self.stopped_epoch = None, None, 0, None

    def on_epoch_end(self, trainer, epoch, logs):
        if self.monitor not in logs:
            raise ParameterError(
                f"The 'monitor' parameter of EarlyStopping names {self.monitor!r}, which the "
                f"epoch logs do not have ({', '.join(logs)}); add validation data or monitor "
                f"'loss'.")
        value = float(logs[self.monitor])
        better = (self.best is None or (value > self.best + self.min_delta if self.maximise
                                        else value < self.best - self.min_delta))
        if better:
            self.best, self.waited = value, 0
            if self.restore_best:
                self.best_state = trainer.snapshot()
            return None
        self.waited += 1
        if self.waited < self.patience:
            return None
        self.stopped_epoch = epoch
        if self.restore_best and self.best_state is not None:
            trainer.restore(self.best_state)
        return True


def _set_generation(model, generation: int) -> None:
    for node in model.nodes.values():
        if isinstance(node, Scaffolded) and node.built and node.generation_ != generation:
            node.resample(generation)


class ScaffoldResampling(Callback):
    """The paper's resampling ablation: a new frozen scaffold every epoch or every batch.

    Parameters
    ----------
    mode : {"static", "epoch", "batch"}
        ``"epoch"``: scaffold generation ``e`` during epoch ``e``; ``"batch"``:
        generation ``s`` at global step ``s``; ``"static"``: never resampled.
    """

    def __init__(self, mode: str) -> None:
        if mode not in ("static", "epoch", "batch"):
            raise ParameterError(f"The 'mode' parameter of ScaffoldResampling must be one of "
                                 f"'static', 'epoch', 'batch'. Got {format_value(mode)}.")
        self.mode = mode

    def on_epoch_begin(self, trainer, epoch):
        if self.mode == "epoch":
            _set_generation(trainer.model, epoch)

    def on_batch_begin(self, trainer, batch):
        if self.mode == "batch":
            _set_generation(trainer.model, trainer.step)


class SeedGatedLabels(Callback):
    """The paper's multitask ablation: one adapter, several scaffold seeds.

    Each label belongs to one scaffold seed; every batch holds samples of one
    seed's labels and the model is reseeded to that seed for it. Validation
    routes every sample through its own seed.

    Parameters
    ----------
    seed_labels : dict {seed: labels}
        Every label of the training and validation targets must belong to a
        seed (:func:`~deepreservoir.training.samples.label_groups` refuses the
        others rather than leave their samples out).
    """

    def __init__(self, seed_labels: Mapping[int, Iterable[int]]) -> None:
        self.seed_labels = seed_labels

    def sampler(self, trainer, data, batch_size):
        return ShuffledSampler(data, batch_size, trainer.config.seed,
                               label_groups(data, self.seed_labels))

    def on_batch_begin(self, trainer, batch):
        if batch.group is not None:
            trainer.model.reseed(batch.group)

    def on_batches_end(self, trainer, epoch):
        trainer.model.reseed(None)

    def validate(self, trainer, data):
        outputs, targets = [], []
        try:
            for group, index in label_groups(data, self.seed_labels, "validation_data[1]"):
                trainer.model.reseed(group)
                out, tgt = trainer.predict_rows(data.subset(index))
                outputs.append(out)
                targets.append(tgt)
        finally:
            trainer.model.reseed(None)
        return trainer.score(torch.cat(outputs), torch.cat(targets))

    def on_fit_end(self, trainer):
        trainer.model.reseed(None)  # also when a batch of one seed failed
