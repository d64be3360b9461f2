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

Good states
-----------
A state *counts as good* only when its trainable parameters and optimizer
state are finite, its epoch's loss and validation metrics are finite, and a
forward pass on a small *probe batch* gives finite outputs. The probe is the
first :data:`PROBE_SAMPLES` training samples (with a custom sampler, those of
the first batch it yields): cheap, fixed for the whole run, and enough to catch
parameters that are finite but so large that the outputs overflow. The state
before the first epoch (the initial model, or the checkpoint resumed from) is
the first good state. Every epoch is checked at its end, before any callback
sees it: a bad one restores the last good state and raises
:class:`~deepreservoir.errors.TrainingError`, the final epoch included, so a
callback (a checkpoint, early stopping) only ever sees good states.

No host synchronisation per batch
---------------------------------
The data move to the device once per fit; batches are cut there. The loss is
summed on the device, and the first batch whose loss or model output is not
finite is recorded there (in place of the executor's per-node check); both are
read once per epoch. A recorded bad batch makes the epoch run again from its
start (the last good state, same seeds and batches, callbacks included), every
step checked at once, up to that batch: the error is the immediate check's
(epoch, batch, node), and the model ends in the last good state as before. See
:attr:`Trainer.immediate_checks` for trainers that check every step at once.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch
from torch import Tensor

from deepreservoir.constraints import finite_check, finite_check_enabled
from deepreservoir.errors import (
    DataError,
    GraphError,
    NonFiniteError,
    ParameterError,
    TrainingError,
)
from deepreservoir.executor import execute, fresh_state, plan_of, require_fitted
from deepreservoir.kinds import Gated, Scaffolded
from deepreservoir.lora import LowRankAdapter
from deepreservoir.threads import thread_scope
from deepreservoir.training.callbacks import Callback
from deepreservoir.training.losses import (
    check_probabilities,
    learning_rate,
    loss_function,
    make_optimizer,
    metrics,
)
from deepreservoir.training.options import GradientConfig, derive_seed
from deepreservoir.training.samples import Samples, ShuffledSampler

__all__ = ["PROBE_SAMPLES", "Trainer", "gate_values"]

_EVAL_BATCH = 1024
#: Samples of the probe batch whose outputs must be finite for a state to count as good.
PROBE_SAMPLES = 32


def gate_values(model) -> dict[str, float]:
    """The value of every trained scalar gate β, by node name."""
    values = {}
    for name, node in model.nodes.items():
        if isinstance(node, Gated) and node.built:
            beta = node.gate()
            if isinstance(beta, torch.nn.Parameter) and beta.numel() == 1:
                values[name] = float(beta.detach())
    return values


def _nonfinite(error: DataError) -> bool:
    """Whether an error is the executor's finite check (a node output became NaN or Inf)."""
    return isinstance(error, NonFiniteError)


def _reason(error: Exception) -> str:
    """An executor error's message without its hint to turn the finite check off."""
    return str(error).split(" To get the non-finite values anyway")[0].rstrip(". ")


def _outputs(model, x: Tensor) -> Tensor:
    """``model(x)`` for a batch ``(B, T, F)`` on the device, without its input check (one
    host read per call): training data were checked when they were read."""
    require_fitted(model)
    outputs, _, _ = execute(model, {name: x for name in plan_of(model).inputs}, None,
                            fresh_state(model, x.shape[0]))
    return outputs[model.output_names[0]]


def _forward(model, x: Tensor) -> tuple[Tensor | None, str | None]:
    """The model's output, or ``(None, why)`` when the executor finds a non-finite output."""
    try:
        return _outputs(model, x), None
    except DataError as error:
        if not _nonfinite(error):
            raise
        return None, _reason(error)


def _seed_generators(seed: int, device: torch.device) -> None:
    """Seed the CPU generator and ``device``'s, as ``torch.manual_seed`` (~0.2 ms) does."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        torch.cuda.default_generators[index].manual_seed(seed)


def _rng_state(device: torch.device, state=None):
    """Get (``state`` None) or set the CPU generator's state and that of ``device``."""
    cuda = device.type == "cuda"
    if state is None:
        return torch.get_rng_state(), torch.cuda.get_rng_state(device) if cuda else None
    torch.set_rng_state(state[0])
    if cuda:
        torch.cuda.set_rng_state(state[1], device)


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

    Attributes
    ----------
    immediate_checks : bool or None
        Class attribute. ``True``: each step's loss and outputs are checked at once
        (host reads per batch); ``False``: on the device, read once per epoch (see
        the module docstring); ``None``: at once only in a subclass overriding
        :meth:`reduce_gradients`, whose processes must fail at the same step.
    """

    immediate_checks: bool | None = None

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
        dead = [reason for node in model.nodes.values() if isinstance(node, LowRankAdapter)
                and (reason := node.dead_start_reason()) is not None]
        if dead:
            raise ParameterError("fit() refuses a dead start, before any training: "
                                 + "; ".join(dead) + ".")
        gates = {id(node.gate()) for node in model.nodes.values()
                 if isinstance(node, Gated) and node.gate() is not None}
        self.optimizer = make_optimizer(
            config.optimizer, [p for p in self.params if id(p) not in gates], config.lr,
            config.weight_decay, [p for p in self.params if id(p) in gates])
        self.loss_fn = loss_function(config.loss)
        self._immediate = (type(self).reduce_gradients is not Trainer.reduce_gradients
                           if self.immediate_checks is None else bool(self.immediate_checks))
        self._first_bad = self._bad_loss = None
        self.history: list[dict[str, float]] = []
        self.gates: list[dict[str, float]] = []
        self.start_epoch = 0
        self.epoch = 0
        self.step = 0
        self.batch_index = 0
        self.batches_per_epoch = 0
        self.total_steps = 0
        self.good_epoch = 0
        self._good = None
        self._probe: Samples | None = None
        self._names = {id(p): name.removeprefix("nodes.")
                       for name, p in model.named_parameters()}

    # ----------------------------------------------------------------- steps
    def train_step(self, batch: Samples) -> Tensor:
        """One optimisation step on a batch; returns the detached loss.

        The step is :meth:`forward_loss`, ``backward``, :meth:`reduce_gradients`
        (nothing in one process; the all-reduce of a data-parallel trainer), the
        gradient clip and the optimizer step.

        Raises
        ------
        TrainingError
            With immediate checks (:attr:`immediate_checks`): the loss, or a
            node's output (the executor's finite check), is NaN or Inf; the
            trainable tensors are put back to the last good state first (see the
            module docstring). Otherwise a non-finite step is recorded on the
            device and raised at the end of the epoch.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config.schedule, self.config.lr, self.step,
                                        self.total_steps)
        self.optimizer.zero_grad(set_to_none=True)
        value, failure = self.forward_loss(batch)
        if failure is None:
            value.backward()
        failure = self.reduce_gradients(batch, failure)
        if failure is not None:
            self.fail(failure)
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        return value.detach()

    def forward_loss(self, batch: Samples) -> tuple[Tensor | None, str | None]:
        """The batch's loss and, when the forward pass or the loss is not finite, why.

        Parameters
        ----------
        batch : Samples

        Returns
        -------
        value : Tensor or None
            The 0-d loss with its graph (``None`` when the forward pass failed).
        failure : str or None
            Why the step must fail (names the epoch and batch), or ``None``;
            always ``None`` without immediate checks (:attr:`immediate_checks`),
            where a non-finite loss or output is recorded on the device instead.
        """
        if not self._immediate and self._first_bad is not None:  # inside fit's epoch loop
            checked = finite_check_enabled()
            with finite_check(False):
                out = _outputs(self.model, batch.x)
            prediction, target = batch.select(out, self.config.warmup)
            value = self.loss_fn(prediction, target)
            self._record(value.detach(), out.detach() if checked else None)
            return value, None
        out, failure = _forward(self.model, batch.x)
        if failure is not None:
            return None, (f"The forward pass became non-finite at epoch {self.epoch + 1} (of "
                          f"{self.config.epochs}), batch {self.batch_index + 1} (of "
                          f"{self.batches_per_epoch}): {failure}")
        prediction, target = batch.select(out, self.config.warmup)
        value = self.loss_fn(prediction, target)
        if not bool(torch.isfinite(value.detach())):
            return value, (f"The loss became {float(value.detach())} at epoch "
                           f"{self.epoch + 1} (of {self.config.epochs}), batch "
                           f"{self.batch_index + 1} (of {self.batches_per_epoch})")
        return value, None

    def _record(self, value: Tensor, out: Tensor | None) -> None:
        """Keep, on the device, the index and loss of the epoch's first non-finite batch."""
        bad = ~torch.isfinite(value)
        if out is not None:
            bad = bad | ~torch.isfinite(out).all()
        first = bad & (self._first_bad < 0)
        self._first_bad = torch.where(first, self.batch_index, self._first_bad)
        self._bad_loss = torch.where(first, value.to(self._bad_loss.dtype), self._bad_loss)

    def reduce_gradients(self, batch: Samples, failure: str | None) -> str | None:
        """Between ``backward`` and the clip: combine gradients across processes.

        Nothing happens in one process. A data-parallel trainer
        (:class:`deepreservoir.distributed.DataParallelTrainer`) all-reduces the
        trainable gradients here; a process whose ``failure`` is set still joins.

        Parameters
        ----------
        batch : Samples
        failure : str or None
            Why this process's forward pass or loss is not finite, or ``None``.

        Returns
        -------
        str or None
            Why the step must fail (then :meth:`fail` is called), or ``None``.
        """
        return failure

    def loss_share(self, batch: Samples) -> float:
        """Samples the batch's mean loss stands for in the epoch's loss: ``len(batch)``.

        A data-parallel trainer counts its share of the global batch instead.
        """
        return len(batch)

    def epoch_loss(self, running: float, count: float) -> float:
        """The epoch's loss from the sums of ``loss * share`` and of the shares.

        A data-parallel trainer sums both over the processes first.
        """
        return running / max(count, 1)

    def fail(self, what: str) -> None:
        """Restore the last good state and raise a :class:`TrainingError`.

        Parameters
        ----------
        what : str
            What went wrong and where (epoch, batch), as the message's first part;
            the message goes on with the state restored and the checkpoint kept.

        Raises
        ------
        TrainingError
            Always.
        """
        from deepreservoir.training.checkpoint import Checkpoint

        if self._good is not None:
            self.restore(self._good)
        if self.good_epoch == 0:
            back = "its initial state (before epoch 1)"
        elif self.good_epoch == self.start_epoch:
            back = (f"the end of epoch {self.good_epoch}, the checkpoint it resumed from (the "
                    f"last good epoch)")
        else:
            back = f"the end of epoch {self.good_epoch}, the last good epoch"
        where = ""
        for callback in self.callbacks:
            if isinstance(callback, Checkpoint) and callback.kept() is not None:
                where = (f" The last good checkpoint ({callback.kept().name}) is kept in "
                         f"{callback.directory}.")
        raise TrainingError(
            f"{what}; training stopped and the model was restored to {back}.{where} Try a "
            f"lower 'lr' (got {self.config.lr:g}) or grad_clip.")

    def state_problem(self, logs: dict[str, float] | None = None) -> str | None:
        """What makes the current state not good, or ``None`` when it is good.

        Checks, in order: the logged metrics, the trainable parameters (by name),
        the optimizer state, and a forward pass on the probe batch (see the
        module docstring).

        Parameters
        ----------
        logs : dict of str to float, optional
            The epoch's metrics (``loss``, ``val_loss``...); each must be finite.

        Returns
        -------
        str or None
            What is not finite, for a message; ``None`` for a good state.
        """
        for key, value in (logs or {}).items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if not math.isfinite(number):
                return f"{key} is {number}"
        bad = [self._names.get(id(p), "?") for p in self.params
               if not bool(torch.isfinite(p.detach()).all())]
        if bad:
            return f"the parameter(s) {', '.join(repr(n) for n in bad)} hold NaN or Inf"
        for p, state in self.optimizer.state.items():
            for key, value in state.items():
                if isinstance(value, Tensor) and not bool(torch.isfinite(value).all()):
                    return (f"the optimizer state {key!r} of parameter "
                            f"{self._names.get(id(p), '?')!r} holds NaN or Inf")
        if self._probe is not None:
            try:
                outputs, _ = self.predict_rows(self._probe)
            except DataError as error:
                if not _nonfinite(error):
                    raise
                return (f"the forward pass on the probe batch (the first {len(self._probe)} "
                        f"training samples) is not finite: {_reason(error)}")
            finite = torch.isfinite(outputs)
            if not bool(finite.all()):
                return (f"the forward pass on the probe batch (the first {len(self._probe)} "
                        f"training samples) gives {int((~finite).sum())} NaN or Inf outputs "
                        f"of {finite.numel()}, with finite parameters")
        return None

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
                part = data.subset(slice(start, start + _EVAL_BATCH))
                out, tgt = part.select(_outputs(self.model, part.x), 0)
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
    def make_sampler(self, data: Samples | None, sampler):
        """The epoch's batches: ``sampler``, a callback's, or seeded shuffling of ``data``.

        A data-parallel trainer wraps the result to take its process's share.
        """
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
            Training samples for the default sampler; they (and ``validation``)
            move to the model's device once, here.
        sampler : object with ``batches(epoch)`` and ``len()``, optional
            Replaces the default shuffling (e.g. a ``LoaderSampler``).
        validation : Samples, optional

        Raises
        ------
        TrainingError
            A loss, a validation metric, a parameter or the probe outputs became
            NaN or Inf; the model is back in its last good state.
        """
        device = next(iter(self.params)).device
        if data is not None:
            data = data.to(device)
            if sampler is None and self.config.loss == "bce":
                check_probabilities(data.y[data.mask] if data.per_step else data.y,
                                    "in the training data")
                self.loss_fn = loss_function("bce", checked=False)  # checked whole, here
        if validation is not None:
            validation = validation.to(device)
        sampler = self.make_sampler(data, sampler)
        self._probe = None if data is None or not len(data) else data[:PROBE_SAMPLES]
        self.batches_per_epoch = len(sampler)
        self.total_steps = self.config.epochs * self.batches_per_epoch
        model = self.model
        model.train()
        self._good = self.snapshot()
        rng_devices = [torch.cuda.current_device() if device.index is None else device.index
                       ] if device.type == "cuda" else []
        try:
            for callback in self.callbacks:
                callback.on_fit_begin(self)
            self._good = self.snapshot()
            self.good_epoch = self.start_epoch
            with torch.random.fork_rng(devices=rng_devices), \
                    thread_scope(model, self.config.batch_size):
                for epoch in range(self.start_epoch, self.config.epochs):
                    if self._epoch(epoch, sampler, validation, device):
                        break
        finally:
            # However the fit ended, a lone train_step checks at once, targets included.
            self._first_bad, self.loss_fn = None, loss_function(self.config.loss)
            for callback in self.callbacks:
                callback.on_fit_end(self)
            model.eval()
        return self.history

    def _batches(self, epoch: int, sampler, device, last: int | None = None
                 ) -> tuple[Tensor, float]:
        """Train on epoch ``epoch``'s batches (to batch ``last``) with no host read; return
        the sums of ``loss * share`` (float64, on ``device``) and of the shares."""
        running, count = torch.zeros((), dtype=torch.float64, device=device), 0
        self._first_bad = torch.full((), -1, dtype=torch.int64, device=device)
        self._bad_loss = torch.zeros((), dtype=torch.float64, device=device)
        for b, batch in enumerate(sampler.batches(epoch)):
            if last is not None and b > last:
                break
            self.batch_index = b
            self.step = epoch * self.batches_per_epoch + b
            _seed_generators(derive_seed(self.config.seed, epoch, b), device)
            batch = batch.to(device)
            if self._probe is None and len(batch):
                self._probe = batch[:PROBE_SAMPLES]
            for callback in self.callbacks:
                callback.on_batch_begin(self, batch)
            loss = self.train_step(batch)
            share = self.loss_share(batch)
            running = running + loss.to(torch.float64) * share
            count += share
            for callback in self.callbacks:
                callback.on_batch_end(self, batch, loss)
        return running, count

    def _replay(self, epoch: int, sampler, device, rng, bad: int, loss: float) -> None:
        """Re-run epoch ``epoch`` checking every step, to its first non-finite batch ``bad``."""
        self.restore(self._good)
        _rng_state(device, rng)
        previous, self._immediate = self._immediate, True
        try:
            for callback in self.callbacks:
                callback.on_epoch_begin(self, epoch)
            self._batches(epoch, sampler, device, last=bad)
        finally:
            self._immediate = previous
        where = (f"at epoch {epoch + 1} (of {self.config.epochs}), batch {bad + 1} (of "
                 f"{self.batches_per_epoch})")
        self.fail(f"The loss became {loss} {where}" if not math.isfinite(loss) else
                  f"The forward pass became non-finite {where}: the model's output holds "
                  f"NaN or Inf (not found again when the epoch was run again)")

    def _epoch(self, epoch: int, sampler, validation, device) -> bool:
        self.epoch = epoch
        began = time.perf_counter()
        rng = None if self._immediate else _rng_state(device)
        for callback in self.callbacks:
            callback.on_epoch_begin(self, epoch)
        running, count = self._batches(epoch, sampler, device)
        total, bad, loss = torch.stack([running, self._first_bad.to(torch.float64),
                                        self._bad_loss]).tolist()  # the epoch's one read
        if bad >= 0:
            self._replay(epoch, sampler, device, rng, int(bad), loss)
        for callback in self.callbacks:
            callback.on_batches_end(self, epoch)
        logs = {"loss": self.epoch_loss(total, count),
                "lr": learning_rate(self.config.schedule, self.config.lr,
                                    (epoch + 1) * self.batches_per_epoch, self.total_steps)}
        if validation is not None:
            try:
                scores = self.validate(validation)
            except DataError as error:
                if not _nonfinite(error):
                    raise
                scores, failure = None, _reason(error)
            self.model.train()
            if scores is None:
                self.fail(f"At the end of epoch {epoch + 1} (of {self.config.epochs}), the "
                           f"validation forward pass is not finite: {failure}")
            for key, value in scores.items():
                logs[f"val_{key}"] = value
        problem = self.state_problem(logs)
        if problem is not None:
            self.fail(f"At the end of epoch {epoch + 1} (of {self.config.epochs}), {problem}")
        logs["seconds"] = time.perf_counter() - began
        self.history.append(logs)
        self.gates.append(gate_values(self.model))
        self._good = self.snapshot()
        self.good_epoch = epoch + 1
        stop = False
        for callback in self.callbacks:
            stop = bool(callback.on_epoch_end(self, epoch, logs)) or stop
        return stop
