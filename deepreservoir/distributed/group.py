"""The process group: torchrun's environment, or a group the caller set up.

:func:`initialise` returns ``(rank, world_size)``. When ``torch.distributed`` is
already initialised, its default group is used as it is. Otherwise the group is
initialised from the environment variables ``torchrun`` sets (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``; ``LOCAL_RANK`` picks the GPU),
with the ``gloo`` backend for a model on the CPU and ``nccl`` for one on CUDA.
With none of them set (a plain ``python script.py``), or ``WORLD_SIZE=1``, the
run is one process: ``(0, 1)``, and no group is created.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist

from deepreservoir.errors import ParameterError, format_value

__all__ = ["BACKENDS", "ENVIRONMENT", "initialise", "local_rank"]

#: The backends :func:`initialise` accepts.
BACKENDS = ("gloo", "nccl")
#: The variables torchrun sets that :func:`initialise` needs for more than one process.
ENVIRONMENT = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _int_variable(name: str) -> int:
    value = os.environ[name]
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ParameterError(
            f"The environment variable {name!r} must be a non-negative int (torchrun sets it). "
            f"Got {format_value(value)}.")
    return number


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK``; 0 when unset)."""
    return _int_variable("LOCAL_RANK") if "LOCAL_RANK" in os.environ else 0


def initialise(backend: str | None = None, device: torch.device | None = None,
               timeout: float = 1800.0) -> tuple[int, int]:
    """This process's rank and the number of processes, initialising the group if needed.

    Parameters
    ----------
    backend : {"gloo", "nccl"}, optional
        Default: ``"nccl"`` when ``device`` is a CUDA device, else ``"gloo"``.
    device : torch.device, optional
        Where the model trains (chooses the default backend; a CUDA device
        becomes this process's current device).
    timeout : float
        Seconds a collective waits for the other processes before it fails.

    Returns
    -------
    (int, int)
        ``(rank, world_size)``; ``(0, 1)`` for a single process.

    Raises
    ------
    ParameterError
        An unknown backend, or a torchrun environment that is incomplete or malformed
        (the message names the variable).
    """
    if backend is not None and backend not in BACKENDS:
        raise ParameterError(
            f"The 'backend' parameter of dr.distributed.fit must be one of "
            f"{', '.join(repr(b) for b in BACKENDS)} or None. Got {format_value(backend)}.")
    if not dist.is_available():
        return 0, 1
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if "WORLD_SIZE" not in os.environ:
        return 0, 1
    world = _int_variable("WORLD_SIZE")
    if world <= 1:
        return 0, 1
    missing = [name for name in ENVIRONMENT if name not in os.environ]
    if missing:
        raise ParameterError(
            f"WORLD_SIZE is {world}, so dr.distributed.fit needs the environment variables "
            f"{', '.join(ENVIRONMENT)} (launch with torchrun). Missing: {', '.join(missing)}.")
    rank = _int_variable("RANK")
    if rank >= world:
        raise ParameterError(
            f"The environment variable 'RANK' must be below WORLD_SIZE ({world}). Got {rank}.")
    cuda = device is not None and torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(torch.device(device))
    chosen = backend or ("nccl" if cuda else "gloo")
    dist.init_process_group(chosen, init_method="env://", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout))
    return rank, world
