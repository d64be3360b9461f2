"""Online training: learners that update step by step while the model runs.

Every :class:`~deepreservoir.kinds.Online` node of the model learns as the data
streams through it: at each step it predicts from what it receives, then
learns from its target (after the first ``warmup`` steps of every series, and
while the series runs). Its *prediction* is what the rest of the model sees,
on forward and feedback edges alike, so a readout that feeds back into its
reservoir learns in closed loop (FORCE learning). The B series of a batch are B
independent learners advancing together. At the end each node keeps its learner
state (:meth:`~deepreservoir.kinds.Online.commit`).
"""

from __future__ import annotations

from typing import Any

import torch

from deepreservoir.errors import DataError
from deepreservoir.executor import (
    input_batches,
    kept_state,
    model_dtype_device,
    plan_of,
    prepare,
    require_fitted,
    step_once,
)
from deepreservoir.kinds import Online
from deepreservoir.threads import thread_scope
from deepreservoir.training.closed_form import targets_by_node

__all__ = ["fit_online", "online_nodes"]


def _where(keep, new: Any, old: Any) -> Any:
    """``new`` where ``keep`` (B,) is True, else ``old``, through tuples, lists and dicts."""
    if isinstance(new, torch.Tensor):
        shape = (-1,) + (1,) * (new.ndim - 1)
        return torch.where(keep.reshape(shape), new, old)
    if isinstance(new, dict):
        return {k: _where(keep, new[k], old[k]) for k in new}
    if isinstance(new, (list, tuple)):
        return type(new)(_where(keep, a, b) for a, b in zip(new, old, strict=True))
    return new


def online_nodes(model) -> list[str]:
    """Names of the model's online learners, in graph order."""
    return [name for name, node in model.nodes.items() if isinstance(node, Online)]


def fit_online(model, X: Any, Y: Any, *, warmup: int = 0, reset: bool = True,
               verbose: int = 0) -> dict[str, dict]:
    """Run the model over the data once, every online node learning as it goes.

    Returns
    -------
    dict
        Node name → ``{"samples": steps learned from}``.
    """
    learners_names = online_nodes(model)
    dtype, device = model_dtype_device(model)
    _, reference = input_batches(model, X, dtype, device)
    targets = targets_by_node(model, Y, learners_names, reference, dtype, device)
    for name, target in targets.items():
        if not target.per_step:
            raise DataError(f"Online node '{name}' learns step by step: give per-step targets.")
        if not bool(target.mask.eq(reference.valid_mask()).all()):
            raise DataError(f"The targets of online node '{name}' hold NaN; an online learner "
                            f"needs a target at every step.")
    batches, reference = prepare(model, X, {n: int(t.features) for n, t in targets.items()})
    require_fitted(model)
    plan = plan_of(model)
    state = kept_state(model, reference.batch_size, reset)
    node_states, buffers = dict(state.nodes), dict(state.edges)
    learners = {name: model.nodes[name].initial_learner_state(reference.batch_size)
                for name in learners_names}
    valid = reference.valid_mask()
    bar = None
    if verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=reference.steps, desc="fit (online)", unit="step", leave=True)
    try:
        with torch.no_grad(), thread_scope(model, reference.batch_size):
            for t in range(reference.steps):
                external = {n: b.values[:, t] for n, b in batches.items()}
                learning = {name: (target.values[:, t] if t >= warmup else None)
                            for name, target in targets.items()}
                keep = None if reference.lengths is None else valid[:, t]
                before = dict(learners)
                step_once(model, plan, external, node_states, buffers, keep=keep,
                          learning=learning, learners=learners)
                if keep is not None:  # a finished series' learner stops learning
                    for name in learners_names:
                        learners[name] = _where(keep, learners[name], before[name])
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    for name in learners_names:
        model.nodes[name].commit(learners[name])
    model._state = type(state)(reference.batch_size, node_states, buffers)
    learned = int(valid[:, warmup:].sum())
    return {name: {"samples": learned} for name in learners_names}
