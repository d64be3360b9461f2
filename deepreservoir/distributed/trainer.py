"""Data-parallel gradient training: only the trainable gradients cross the wire.

:class:`DataParallelTrainer` is the :class:`~deepreservoir.training.Trainer`
with four hooks filled in; the loop, the callbacks and the good-state checks
are the same code.

* **Batches.** Each process takes rows ``rank::world`` of every global batch
  (:class:`~deepreservoir.distributed.sampler.ShardedSampler`).
* **Gradients.** After ``backward``, the gradients of the trainable parameters
  are weighted by the process's share of the global batch's loss rows
  (``n_p / N``), packed into one flat buffer (one per dtype) and summed with
  one ``all_reduce``: the sum is the gradient of the global batch's mean loss,
  even for an uneven last batch. A process with an empty share joins with
  zeros. Frozen tensors are never sent; bytes per step = trainable bytes.
* **Failures together.** A process whose forward pass or loss is not finite
  joins the all-reduce with a buffer of NaN; every process then sees a
  non-finite sum and fails at the same step (restoring the last good state).
  The end-of-epoch checks are agreed on (``all_gather_object``), so all stop
  or none does.
* **Epoch loss.** ``Σ loss·share`` and ``Σ share`` are all-reduced once per
  epoch: the history equals a single process's (to rounding).
* **Validation** runs on process 0 and its metrics (or its error) are
  broadcast, so callbacks such as early stopping decide the same everywhere.
* **Files.** Only process 0 writes checkpoints; every process reads one to
  resume. ``ProgressBar`` shows on process 0 only.
* **Dropout.** With more than one process, batch ``b`` of epoch ``e`` runs
  with torch's generator seeded from ``(seed, e, b, rank)``: reproducible, but
  not the single process's masks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from deepreservoir.distributed.fingerprints import check_same_model
from deepreservoir.distributed.sampler import ShardedSampler
from deepreservoir.training.callbacks import Callback, ProgressBar
from deepreservoir.training.checkpoint import Checkpoint, latest
from deepreservoir.training.options import derive_seed
from deepreservoir.training.trainer import Trainer

__all__ = ["DataParallelTrainer"]


class _ReadingCheckpoint(Checkpoint):
    """A :class:`Checkpoint` for processes other than 0: resumes, never writes."""

    def __init__(self, original: Checkpoint) -> None:
        super().__init__(original.directory, original.every, original.resume)
        self.parameter = original.parameter

    def check_directory(self) -> None:
        """Nothing: process 0 creates and checks the folder."""

    def on_fit_begin(self, trainer):
        if self.resume and latest(self.directory) is not None:
            self._load(trainer)

    def _write(self, trainer, epoch: int) -> None:
        return None

    def on_fit_end(self, trainer):
        return None


class _Agreement(Callback):
    """Last of the callbacks' ``on_fit_begin``: the models, resumed or not, must agree."""

    def on_fit_begin(self, trainer):
        check_same_model(trainer.model, trainer.group,
                         {"the epoch to start from": trainer.start_epoch})


class DataParallelTrainer(Trainer):
    """A :class:`~deepreservoir.training.Trainer` for one process of a data-parallel run.

    See the module docstring. Every process of ``group`` must build it, with the
    same model (checked by fingerprints before the first step) and the same
    global data.

    Parameters
    ----------
    model : Model
        Built, on the device this process trains on.
    config : GradientConfig
    callbacks : list of Callback
        A :class:`Checkpoint` writes on process 0 only; a :class:`ProgressBar`
        shows on process 0 only; other callbacks run on every process.
    group : torch.distributed.ProcessGroup, optional
        The default group when ``None``; it must be initialised.
    """

    def __init__(self, model, config, callbacks: list[Callback] = (), *,
                 group: Any = None) -> None:
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        kept = []
        for callback in callbacks:
            if self.rank != 0 and isinstance(callback, ProgressBar):
                continue
            if self.rank != 0 and isinstance(callback, Checkpoint):
                callback = _ReadingCheckpoint(callback)
            kept.append(callback)
        super().__init__(model, config, [*kept, _Agreement()])
        self._buckets: dict[torch.dtype, list[Tensor]] = {}
        for p in self.params:
            self._buckets.setdefault(p.dtype, []).append(p)
        self._reached = {id(p) for p in self.params}
        #: Bytes of one step's all-reduce: the trainable parameters' bytes.
        self.bytes_per_step = sum(p.numel() * p.element_size() for p in self.params)

    # ------------------------------------------------------------- batches
    def make_sampler(self, data, sampler):
        """This process's share of the batches a single process would train on."""
        return ShardedSampler(super().make_sampler(data, sampler), self.rank, self.world,
                              self.config.warmup, self.config.seed)

    def forward_loss(self, batch):
        """The share's mean loss; a leaf zero for an empty share (it joins with zeros).

        With several processes the forward pass (dropout) draws from torch's
        generator seeded per ``(seed, epoch, batch, rank)``, inside a fork of the
        generator: afterwards every process's generator is back to the state the
        single-process loop set for this batch, the same everywhere, so a sampler
        that draws from it (a ``DataLoader(shuffle=True)``) shuffles alike on
        every process.
        """
        if self.world > 1:
            device = self.params[0].device
            devices = [device.index if device.index is not None else
                       torch.cuda.current_device()] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                seed = derive_seed(self.config.seed, self.epoch, self.batch_index, self.rank)
                if device.type == "cpu":  # torch.manual_seed also seeds CUDA (lazy, ~1 ms)
                    torch.default_generator.manual_seed(seed)
                else:
                    torch.manual_seed(seed)
                return self._share_loss(batch)
        return self._share_loss(batch)

    def _share_loss(self, batch):
        if batch.rows == 0:
            device = self.params[0].device
            return torch.zeros((), dtype=self.params[0].dtype, device=device,
                               requires_grad=True), None
        return super().forward_loss(batch)

    def loss_share(self, batch) -> float:
        """The global batch's samples times this share's fraction of its loss rows."""
        if batch.global_rows == 0:
            return 0.0
        return batch.global_size * batch.rows / batch.global_rows

    # ------------------------------------------------------------ gradients
    def reduce_gradients(self, batch, failure: str | None) -> str | None:
        """Sum the weighted gradients over processes (one flat buffer per dtype).

        Parameters
        ----------
        batch : ShardBatch
        failure : str or None
            This process's reason to fail; it joins with NaN.

        Returns
        -------
        str or None
            Why every process fails at this step, or ``None``.
        """
        weight = batch.rows / batch.global_rows if batch.global_rows else 0.0
        if failure is None and batch.rows:
            self._reached = {id(p) for p in self.params if p.grad is not None}
        finite = True
        for dtype, params in self._buckets.items():
            if failure is not None:
                flat = torch.full((sum(p.numel() for p in params),), float("nan"),
                                  dtype=dtype, device=params[0].device)
            else:
                flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p))
                                  .reshape(-1) for p in params])
                flat.mul_(weight)
            dist.all_reduce(flat, group=self.group)
            finite = finite and bool(torch.isfinite(flat).all())
            start = 0
            for p in params:
                size = p.numel()
                part = flat[start:start + size].view_as(p)
                # reached here, or by another process (its summed gradient is not zero):
                # every process then steps the same parameters, with no extra bytes sent
                reached = id(p) in self._reached or bool(part.ne(0).any())
                p.grad = part if reached else None
                start += size
        if failure is not None:
            return f"{failure} (on process {self.rank} of {self.world})"
        if not finite:
            return (f"The gradients summed over {self.world} processes are not finite at "
                    f"epoch {self.epoch + 1} (of {self.config.epochs}), batch "
                    f"{self.batch_index + 1} (of {self.batches_per_epoch}): another "
                    f"process's forward pass or loss became non-finite (its error says "
                    f"where), or a gradient overflowed")
        return None

    # ---------------------------------------------------------------- epochs
    def epoch_loss(self, running: float, count: float) -> float:
        """``Σ loss·share / Σ share`` over every process (one all-reduce per epoch)."""
        sums = torch.tensor([running, count], dtype=torch.float64,
                            device=self.params[0].device)
        dist.all_reduce(sums, group=self.group)
        return float(sums[0]) / max(float(sums[1]), 1.0)

    def validate(self, data) -> dict[str, float]:
        """Process 0's validation metrics (or its error), the same on every process."""
        payload: list[Any] = [None]
        if self.rank == 0:
            try:
                payload = [("metrics", super().validate(data))]
            except Exception as error:  # raised again on every process below
                payload = [("error", error)]
        dist.broadcast_object_list(payload, src=dist.get_global_rank(self.group, 0)
                                   if self.group is not None else 0, group=self.group)
        kind, value = payload[0]
        if kind == "error":
            raise value
        return value

    def state_problem(self, logs: dict[str, float] | None = None) -> str | None:
        """What makes the state not good on any process (agreed on by every process)."""
        problem = super().state_problem(logs)
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, problem, group=self.group)
        for rank, found in enumerate(gathered):
            if found is not None:
                return found if rank == self.rank else f"on process {rank}, {found}"
        return None
