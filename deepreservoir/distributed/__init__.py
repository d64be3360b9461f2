"""Scale-out with torch.distributed: data-parallel training of the trainable tensors only.

A scaffold is a function of its seed, so every process regenerates it and only
the adapters', gates' and heads' gradients cross the wire. See
``docs/distributed.md``.

=================  ===========================================================
module             what it holds
=================  ===========================================================
``fit``            :func:`fit`: ``Model.fit`` for one process of a torchrun job
``trainer``        :class:`DataParallelTrainer`: one all-reduce of the trainable
                   gradients per step, failures together, rank-0 checkpoints
``sampler``        :class:`ShardedSampler`: rows ``rank::world`` of each global batch
``fingerprints``   :func:`check_same_model`: the same scaffold on every process
``group``          :func:`initialise`: torchrun's environment, or one process
=================  ===========================================================
"""

from deepreservoir.distributed.fingerprints import check_same_model, model_fingerprints
from deepreservoir.distributed.fit import DataParallel, fit
from deepreservoir.distributed.group import initialise, local_rank
from deepreservoir.distributed.sampler import ShardBatch, ShardedSampler, loss_rows
from deepreservoir.distributed.trainer import DataParallelTrainer

__all__ = [
    "DataParallel",
    "DataParallelTrainer",
    "ShardBatch",
    "ShardedSampler",
    "check_same_model",
    "fit",
    "initialise",
    "local_rank",
    "loss_rows",
    "model_fingerprints",
]
