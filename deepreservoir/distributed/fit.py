"""``dr.distributed.fit``: ``Model.fit`` for one process of a data-parallel run.

Launch the same script on every process (``torchrun --nproc-per-node 2
script.py``); each builds the same model from the same seeds and calls
``dr.distributed.fit(model, X, y, **fit_options)`` with the same global data.

* **Gradient and mixed paths**: :class:`~deepreservoir.distributed.DataParallelTrainer`
  (each process takes rows ``rank::world`` of every global batch; only the
  trainable gradients are all-reduced).
* **Closed form** (``Ridge``...): each process runs its share of the series
  (rows ``rank::world`` of the B axis) and the nodes' sufficient statistics are
  all-reduced before the solve
  (:meth:`~deepreservoir.kinds.ClosedForm.all_reduce_statistics`). With
  ``shard=False`` each process passes its own series instead.
* Online and unsupervised nodes learn sequentially and are refused.

In one process (no torchrun variables, ``WORLD_SIZE=1``, or a group of one) it
is exactly ``model.fit(X, y, **fit_options)``.
"""

from __future__ import annotations

from typing import Any

import torch

from deepreservoir.distributed.fingerprints import check_same_model
from deepreservoir.distributed.group import initialise, local_rank
from deepreservoir.distributed.trainer import DataParallelTrainer
from deepreservoir.errors import DataError, GraphError, ParameterError, format_value
from deepreservoir.executor import model_dtype_device
from deepreservoir.training import fit_model, training_path
from deepreservoir.training.options import check_device
from deepreservoir.training.unsupervised import unsupervised_nodes

__all__ = ["DataParallel", "fit"]


class DataParallel:
    """The hooks :func:`~deepreservoir.training.fit_model` calls in a data-parallel run.

    Parameters
    ----------
    rank, world : int
        This process and the number of processes.
    shard : bool
        Closed form: take series ``rank::world`` of the global data (True), or
        use this process's data as it is (False).
    group : torch.distributed.ProcessGroup, optional
    """

    def __init__(self, rank: int, world: int, shard: bool = True, group: Any = None) -> None:
        self.rank, self.world, self.shard_data, self.group = rank, world, shard, group

    def trainer(self, model, config, callbacks) -> DataParallelTrainer:
        """The gradient path's trainer."""
        return DataParallelTrainer(model, config, callbacks, group=self.group)

    def shard(self, model, reference) -> torch.Tensor | None:
        """This process's series (indices along B) of the closed-form data, after every
        process's model was checked to be the same (a collective)."""
        check_same_model(model, self.group)
        if not self.shard_data:
            return None
        if reference.layout == "single" or reference.batch_size < self.world:
            got = ("one series (T, F)" if reference.layout == "single"
                   else f"{reference.batch_size} series")
            raise DataError(
                f"dr.distributed.fit splits the 'X' parameter of a closed-form fit by series "
                f"(its B axis), one share per process, so it needs at least {self.world} "
                f"series for {self.world} processes. Got {got}: a series cannot be split in "
                f"time. Give several series (B, T, F) or a list of series, or pass "
                f"shard=False with each process giving its own series.")
        return torch.arange(self.rank, reference.batch_size, self.world)

    def reduce_statistics(self, node, statistics):
        """The statistics of every process's series (a collective)."""
        return node.all_reduce_statistics(statistics, self.group)


def _device(model, options: dict[str, Any]) -> torch.device:
    device = check_device(options.get("device"), "dr.distributed.fit")
    if device is None:
        device = torch.device(model_dtype_device(model)[1])
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank())
        if "device" in options:
            options["device"] = device
    return device


def fit(model, X: Any, y: Any = None, *, shard: bool = True, backend: str | None = None,
        group: Any = None, **fit_options: Any):
    """Train ``model`` as one process of a data-parallel run; see the module docstring.

    Parameters
    ----------
    model : Model
        The same model (seeds, hyperparameters) on every process.
    X : data as in :meth:`~deepreservoir.Model.fit`
        The global data, the same on every process (``shard=True``).
    y : targets, as in :meth:`~deepreservoir.Model.fit`
    shard : bool
        Closed form only: ``False`` when each process passes its own series.
    backend : {"gloo", "nccl"}, optional
        Used when this call initialises the process group (see
        :func:`~deepreservoir.distributed.group.initialise`).
    group : torch.distributed.ProcessGroup, optional
        An initialised group other than the default one.
    **fit_options
        The keywords of :meth:`Model.fit <deepreservoir.Model.fit>` (``epochs``,
        ``batch_size``, ``lr``, ``checkpoint``...), with the same meaning; the
        history (``model.history_``) is the global one, the same on every process.
        ``device="cuda"`` means this process's GPU (``cuda:LOCAL_RANK``).

    Returns
    -------
    Model
        ``model``, trained; the same trained tensors on every process.

    Raises
    ------
    ParameterError
        ``shard`` not a bool, ``shard=False`` for gradient training, a model that
        differs between processes (named by node and tensor, on every process),
        or a malformed torchrun environment.
    GraphError
        A model with online or unsupervised nodes (they learn sequentially).
    DataError
        Closed form: fewer series than processes.
    TrainingError
        As :meth:`Model.fit`; on every process together.
    """
    if not isinstance(shard, bool):
        raise ParameterError(f"The 'shard' parameter of dr.distributed.fit must be a bool. "
                             f"Got {format_value(shard)}.")
    device = _device(model, fit_options)
    if group is not None:
        import torch.distributed as dist

        rank, world = dist.get_rank(group), dist.get_world_size(group)
    else:
        rank, world = initialise(backend, device)
    if world == 1:
        return fit_model(model, X, y, **fit_options)
    path, deciders = training_path(model)
    sequential = unsupervised_nodes(model)
    if path == "online" or sequential:
        raise GraphError(
            f"dr.distributed.fit trains closed-form, gradient and mixed models; this one has "
            f"nodes that learn sequentially ({deciders}), which cannot be split across "
            f"processes. Fit it with model.fit in one process.")
    if not shard and path != "closed_form":
        raise ParameterError(
            f"The 'shard' parameter of dr.distributed.fit must be True for {path} training: "
            f"every process passes the global data and takes rows rank::world of each global "
            f"batch. Got False (supported for closed-form fits only).")
    fit_model(model, X, y, parallel=DataParallel(rank, world, shard, group), **fit_options)
    return model
