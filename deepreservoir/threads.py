"""How many threads the time loop uses: chosen by its size, scoped to the call.

A reservoir step is a small product repeated thousands of times. On a shared
machine, torch's default of one thread per core makes each of those tiny
kernels wait for busy cores: runs were measured 10–100× slower under load than
with one thread (BENCHMARKS.md). So :meth:`Model.run`, :meth:`Model.states`
and closed-form fitting run their time loop inside :func:`thread_scope`, which

* uses **one thread** when the work of one step (the recurrent products of all
  stateful nodes for the whole batch) is below :data:`SMALL_STEP_FLOPS`, where
  splitting a step across threads cannot pay for the synchronisation;
* otherwise keeps torch's current setting;
* restores the previous count when the call returns, so the user's process is
  never changed behind their back.

Override it with :func:`set_num_threads` (an int, or ``None`` for automatic),
or the environment variable ``DEEPRESERVOIR_NUM_THREADS``.

The command line (``demo``, ``reproduce``, ``sweep``), the studies and the
examples share one policy for torch's thread count and numpy's and scipy's
BLAS pools (through threadpoolctl), :func:`use_threads`:
an explicit count, else ``DEEPRESERVOIR_NUM_THREADS``, else **one thread**.
Their models are small, and on a shared machine torch's default of one thread
per core made ``reproduce ablations --quick`` take 76 s instead of 11 s, with
identical results.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from deepreservoir.errors import ParameterError
from deepreservoir.kinds import Stateful

__all__ = ["SMALL_STEP_FLOPS", "get_num_threads", "scoped_threads", "set_num_threads",
           "step_flops", "thread_scope", "use_threads"]

#: Below this many multiply-adds per time step, the time loop runs on one thread.
SMALL_STEP_FLOPS = 4_000_000

_override: int | None = None


def set_num_threads(count: int | None) -> None:
    """Fix the thread count of deepreservoir's time loops (``None``: choose by size)."""
    global _override
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                              or count < 1):
        raise ParameterError(
            f"The 'count' parameter of set_num_threads must be an int >= 1 or None. "
            f"Got {count!r}.")
    _override = count


def get_num_threads() -> int | None:
    """The fixed thread count, or ``None`` when it is chosen by size."""
    if _override is not None:
        return _override
    value = os.environ.get("DEEPRESERVOIR_NUM_THREADS")
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            return None
    return None


def use_threads(count: int | None = None) -> int:
    """Set torch's thread count and numpy's BLAS pools by the shared policy; return it.

    Parameters
    ----------
    count : int >= 1, optional
        An explicit count; by default ``$DEEPRESERVOIR_NUM_THREADS``, else 1.

    Examples
    --------
    >>> import torch
    >>> previous = torch.get_num_threads()
    >>> use_threads(1)
    1
    >>> torch.set_num_threads(previous)
    """
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                              or count < 1):
        raise ParameterError(f"The 'count' parameter of use_threads must be an int >= 1 or "
                             f"None. Got {count!r}.")
    chosen = count if count is not None else (get_num_threads() or 1)
    torch.set_num_threads(chosen)
    _limit_blas(chosen)
    return chosen


def _limit_blas(count: int) -> None:
    """numpy's and scipy's BLAS/OpenMP pools to ``count`` threads, for the whole process.

    Under load, a 300 × 300 ``numpy.linalg.svd`` on OpenBLAS's default two
    threads was measured 30× slower than on one (0.95 s against 0.03 s).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=count)


def step_flops(graph: Any, batch_size: int) -> int:
    """Multiply-adds of the recurrent products of one time step, for the whole batch."""
    total = 0
    for node in graph.nodes.values():
        if isinstance(node, Stateful) and node.built:
            total += int(node.step_cost()) * int(batch_size)
    return total


def choose_threads(graph: Any, batch_size: int) -> int | None:
    """The thread count for a call, or ``None`` to keep torch's setting."""
    fixed = get_num_threads()
    if fixed is not None:
        return fixed
    if not any(isinstance(node, Stateful) for node in graph.nodes.values()):
        return None
    return 1 if step_flops(graph, batch_size) < SMALL_STEP_FLOPS else None


@contextmanager
def thread_scope(graph: Any, batch_size: int) -> Iterator[None]:
    """Run the body with the thread count :func:`choose_threads` picks, then restore it."""
    with scoped_threads(choose_threads(graph, batch_size)):
        yield


@contextmanager
def scoped_threads(count: int | None) -> Iterator[None]:
    """Run the body with ``count`` torch threads (``None``: unchanged), then restore them."""
    previous = torch.get_num_threads()
    if count is None or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
