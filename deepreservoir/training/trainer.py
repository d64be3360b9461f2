"""The Trainer: one ``train_step(batch)``, a sampler, and callbacks around the loop.

Reproducibility
---------------
Every random choice of a run is a pure function of ``seed`` and where the run is:
the default sampler shuffles epoch ``e`` with a generator seeded from
``(seed, e)``, and batch ``b`` of epoch ``e`` runs with torch's global generator
reseeded from ``(seed, e, b)`` inside an isolated RNG context (so dropout is
reproducible and the caller's global generator is left untouched). Adapters
start from the node seeds. Hence on CPU the same seed gives bit-identical
adapters, and a run resumed from a checkpoint ends bit-identical to an
uninterrupted one.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import Tensor

from deepreservoir.errors import GraphError, ParameterError, TrainingError
from deepreservoir.kinds import Gated, Scaffolded
from deepreservoir.lora import LowRankAdapter
from deepreservoir.threads import thread_scope
from deepreservoir.training.callbacks import Callback
from deepreservoir.training.losses import learning_rate, loss_function, make_optimizer, metrics
from deepreservoir.training.options import GradientConfig, derive_seed
from deepreservoir.training.samples import Samples, ShuffledSampler

__all__ = ["Trainer", "gate_values"]

_EVAL_BATCH = 1024


def gate_values(model) -> dict[str, float]:
    """The value of every trained scalar gate β, by node name."""
    values = {}
    for name, node in model.nodes.items():
        if isinstance(node, Gated) and node.built:
            beta = node.gate()
            if isinstance(beta, torch.nn.Parameter) and beta.numel() == 1:
                values[name] = float(beta.detach())
    return values


class Trainer:
    """Gradient training of a model's parameters (adapters, gates, heads).

    The loop is the same for every model: the sampler yields batches, each
    goes through :meth:`train_step`, and callbacks run at fixed points (see
    :mod:`deepreservoir.training.callbacks`). A data-parallel launcher or an
    online learner reuses it by supplying another sampler or ``train_step``.

    Parameters
    ----------
    model : Model
        Built, with at least one trainable parameter.
    config : GradientConfig
        The validated options.
    callbacks : list of Callback
    """

    def __init__(self, model, config: GradientConfig, callbacks: list[Callback] = ()) -> None:
        self.model = model
        self.config = config
        self.callbacks = list(callbacks)
        if len(model.output_names) != 1:
            raise GraphError(
                f"Gradient training needs a model with one output node. This one has "
                f"{model.output_names}.")
        for node in model.nodes.values():
            if isinstance(node, LowRankAdapter):
                node.check_unmerged("train")
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ParameterError(
                "fit() found no trainable parameters: give a Scaffold or Reservoir r > 0, or add "
                "a LoRAReadout, Dense or BetaGate node.")
        self.optimizer = make_optimizer(config.optimizer, self.params, config.lr,
                                        config.weight_decay)
        self.loss_fn = loss_function(config.loss)
        self.history: list[dict[str, float]] = []
        self.gates: list[dict[str, float]] = []
        self.start_epoch = 0
        self.epoch = 0
        self.step = 0
        self.batch_index = 0
        self.batches_per_epoch = 0
        self.total_steps = 0
        self._good = None

    # ----------------------------------------------------------------- steps
    def train_step(self, batch: Samples) -> Tensor:
        """One optimisation step on a batch; returns the detached loss.

        Raises
        ------
        TrainingError
            The loss is NaN or Inf: the trainable tensors are put back to the end
            of the last good epoch first.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config.schedule, self.config.lr, self.step,
                                        self.total_steps)
        out = self.model(batch.x)
        prediction, target = batch.select(out, self.config.warmup)
        value = self.loss_fn(prediction, target)
        if not bool(torch.isfinite(value.detach())):
            self._diverged(float(value.detach()))
        self.optimizer.zero_grad(set_to_none=True)
        value.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        return value.detach()

    def _diverged(self, value: float) -> None:
        from deepreservoir.training.checkpoint import Checkpoint

        if self._good is not None:
            self.restore(self._good)
        where = ""
        for callback in self.callbacks:
            if isinstance(callback, Checkpoint) and callback.kept() is not None:
                where = (f" The last good checkpoint ({callback.kept().name}) is kept in "
                         f"{callback.directory}.")
        raise TrainingError(
            f"The loss became {value} at epoch {self.epoch + 1} (of {self.config.epochs}), "
            f"batch {self.batch_index + 1} (of {self.batches_per_epoch}); training stopped and "
            f"the parameters were reset to the end of the last good epoch.{where} Try a lower "
            f"'lr' (got {self.config.lr:g}) or grad_clip.")

    # ------------------------------------------------------------ snapshots
    def snapshot(self) -> dict[str, Any]:
        """The trainable state: tensors, optimizer state and scaffold generations."""
        return {"model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "generations": [(name, node.generation_)
                                for name, node in self.model.nodes.items()
                                if isinstance(node, Scaffolded) and node.built]}

    def restore(self, state: dict[str, Any]) -> None:
        """Put back a :meth:`snapshot`."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for name, generation in state["generations"]:
            node = self.model.nodes[name]
            if node.generation_ != generation:
                node.resample(generation)

    # ------------------------------------------------------------ evaluation
    def predict_rows(self, data: Samples) -> tuple[Tensor, Tensor]:
        """Outputs and targets of ``data`` where the loss looks, in eval mode, no gradient."""
        was_training = self.model.training
        self.model.eval()
        outputs, targets = [], []
        with torch.no_grad():
            for start in range(0, len(data), _EVAL_BATCH):
                part = data.subset(torch.arange(start, min(start + _EVAL_BATCH, len(data))))
                out, tgt = part.select(self.model(part.x), 0)
                outputs.append(out)
                targets.append(tgt)
        self.model.train(was_training)
        return torch.cat(outputs), torch.cat(targets)

    def score(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """Loss (and accuracy for classification) of rows of outputs against targets."""
        return metrics(outputs, targets, self.config.loss)

    def validate(self, data: Samples) -> dict[str, float]:
        """Validation metrics: a callback's own, else those of :meth:`predict_rows`."""
        for callback in self.callbacks:
            custom = callback.validate(self, data)
            if custom is not None:
                return custom
        return self.score(*self.predict_rows(data))

    # ------------------------------------------------------------------ loop
    def _sampler(self, data: Samples | None, sampler):
        if sampler is not None:
            return sampler
        for callback in self.callbacks:
            chosen = callback.sampler(self, data, self.config.batch_size)
            if chosen is not None:
                return chosen
        return ShuffledSampler(data, self.config.batch_size, self.config.seed)

    def fit(self, data: Samples | None = None, *, sampler=None,
            validation: Samples | None = None) -> list[dict[str, float]]:
        """Train for ``config.epochs`` epochs; return the history rows (one per epoch).

        Parameters
        ----------
        data : Samples, optional
            Training samples for the default sampler.
        sampler : object with ``batches(epoch)`` and ``len()``, optional
            Replaces the default shuffling (e.g. a ``LoaderSampler``).
        validation : Samples, optional
        """
        sampler = self._sampler(data, sampler)
        self.batches_per_epoch = len(sampler)
        self.total_steps = self.config.epochs * self.batches_per_epoch
        model = self.model
        model.train()
        self._good = self.snapshot()
        device = next(iter(self.params)).device
        rng_devices = [device.index if device.index is not None else
                       torch.cuda.current_device()] if device.type == "cuda" else []
        try:
            for callback in self.callbacks:
                callback.on_fit_begin(self)
            self._good = self.snapshot()
            with torch.random.fork_rng(devices=rng_devices), \
                    thread_scope(model, self.config.batch_size):
                for epoch in range(self.start_epoch, self.config.epochs):
                    if self._epoch(epoch, sampler, validation, device):
                        break
        finally:
            for callback in self.callbacks:
                callback.on_fit_end(self)
            model.eval()
        return self.history

    def _epoch(self, epoch: int, sampler, validation, device) -> bool:
        self.epoch = epoch
        began = time.perf_counter()
        for callback in self.callbacks:
            callback.on_epoch_begin(self, epoch)
        running, count = 0.0, 0
        for b, batch in enumerate(sampler.batches(epoch)):
            self.batch_index = b
            self.step = epoch * self.batches_per_epoch + b
            torch.manual_seed(derive_seed(self.config.seed, epoch, b))
            batch = batch.to(device)
            for callback in self.callbacks:
                callback.on_batch_begin(self, batch)
            loss = self.train_step(batch)
            running += float(loss) * len(batch)
            count += len(batch)
            for callback in self.callbacks:
                callback.on_batch_end(self, batch, loss)
        for callback in self.callbacks:
            callback.on_batches_end(self, epoch)
        logs = {"loss": running / max(count, 1),
                "lr": learning_rate(self.config.schedule, self.config.lr,
                                    (epoch + 1) * self.batches_per_epoch, self.total_steps)}
        if validation is not None:
            for key, value in self.validate(validation).items():
                logs[f"val_{key}"] = value
            self.model.train()
        logs["seconds"] = time.perf_counter() - began
        self.history.append(logs)
        self.gates.append(gate_values(self.model))
        self._good = self.snapshot()
        stop = False
        for callback in self.callbacks:
            stop = bool(callback.on_epoch_end(self, epoch, logs)) or stop
        return stop
