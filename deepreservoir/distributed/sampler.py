"""Each process's share of every global batch, so the global sequence equals one process's.

Every process builds the same global batches as a single process would (the
trainer's own sampler: seeded shuffling of the whole data set, a callback's
sampler, or the caller's) and keeps rows ``rank::world`` of each. The global
batch sequence therefore does not depend on the number of processes, and a
checkpoint resumes on any number of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch

from deepreservoir.training.samples import Samples

__all__ = ["ShardBatch", "ShardedSampler", "loss_rows"]


def loss_rows(samples: Samples, warmup: int = 0) -> int:
    """How many rows the loss averages over: counted steps at or after ``warmup`` per
    step, one per sample otherwise (see :meth:`Samples.select`)."""
    if not samples.per_step:
        return len(samples)
    keep = samples.mask
    if warmup:
        time = torch.arange(keep.shape[1], device=keep.device)
        keep = keep & (time[None, :] >= warmup)
    return int(keep.sum())


@dataclass
class ShardBatch(Samples):
    """One process's share of a global batch.

    Attributes
    ----------
    rows : int
        Loss rows of this share (:func:`loss_rows`).
    global_size : int
        Samples of the global batch.
    global_rows : int
        Loss rows of the global batch: this share's gradient is weighted by
        ``rows / global_rows`` before the sum over processes.
    """

    rows: int = 0
    global_size: int = 0
    global_rows: int = 0


class ShardedSampler:
    """The batches of ``sampler``, each cut to rows ``rank::world``.

    Parameters
    ----------
    sampler : object with ``batches(epoch)`` and ``len()``
        Yields the global batches; it must yield the same ones on every process.
    rank, world : int
        This process and the number of processes.
    warmup : int
        Steps the loss leaves out (for :func:`loss_rows`).
    seed : int, optional
        With several processes, torch's global generator is seeded from
        ``(seed, epoch)`` as each epoch's batches begin, the same on every
        process, so a sampler that draws from it (a ``DataLoader`` with
        ``shuffle=True`` and no generator of its own) shuffles alike everywhere.

    Examples
    --------
    >>> import torch
    >>> from deepreservoir.training import Samples, ShuffledSampler
    >>> data = Samples(torch.zeros(5, 1, 2), None, torch.arange(5),
    ...                torch.ones(5, dtype=torch.bool), per_step=False, labels=True)
    >>> one = ShuffledSampler(data, batch_size=3, seed=0)
    >>> shares = ShardedSampler(one, rank=1, world=2)
    >>> [b.y[1::2].tolist() for b in one.batches(0)] == [b.y.tolist() for b in shares.batches(0)]
    True
    >>> [(len(b), b.global_size) for b in shares.batches(0)]
    [(1, 3), (1, 2)]
    """

    def __init__(self, sampler, rank: int, world: int, warmup: int = 0,
                 seed: int | None = None) -> None:
        self.sampler = sampler
        self.rank = int(rank)
        self.world = int(world)
        self.warmup = int(warmup)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.sampler)

    def batches(self, epoch: int) -> Iterator[ShardBatch]:
        """This process's share of each global batch of epoch ``epoch``."""
        if self.seed is not None and self.world > 1:
            from deepreservoir.training.options import derive_seed

            torch.default_generator.manual_seed(derive_seed(self.seed, epoch, 1 << 41))
        for batch in self.sampler.batches(epoch):
            index = torch.arange(self.rank, len(batch), self.world)
            share = batch.subset(index, batch.group)
            values = {f.name: getattr(share, f.name) for f in fields(Samples)}
            yield ShardBatch(**values, rows=loss_rows(share, self.warmup),
                             global_size=len(batch),
                             global_rows=loss_rows(batch, self.warmup))
