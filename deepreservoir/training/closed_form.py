"""Closed-form training: one streaming pass of sufficient statistics, then a solve.

The model runs over the data once (in chunks of time when ``chunk_size`` is
given). Every :class:`~deepreservoir.kinds.ClosedForm` node collects the
statistics of what it receives against its targets, after the first ``warmup``
steps of every series, at the steps whose targets count (NaN targets are left
out); then it solves. While a node is being fitted its output is replaced by
its targets (teacher forcing), on feedback and forward edges alike.

Per-sequence targets ``(B, O)`` fit the node on each series' last valid step;
they need a node whose output feeds nothing else (there is nothing to force).

**Across processes.** ``parallel`` (given by :func:`deepreservoir.distributed.fit`)
keeps this process's share of the series (``parallel.shard(model, reference)``:
the indices along B, or ``None`` for all) and all-reduces each node's statistics
before the solve (``parallel.reduce_statistics(node, statistics)``), so every
process solves the same readout from the statistics of all the series.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from deepreservoir.data import Targets, as_targets
from deepreservoir.errors import DataError, NotFittedError
from deepreservoir.executor import (
    execute,
    input_batches,
    kept_state,
    model_dtype_device,
    prepare,
    require_fitted,
)
from deepreservoir.functional import first_nonfinite
from deepreservoir.kinds import ClosedForm, SufficientStatistics
from deepreservoir.threads import thread_scope

__all__ = ["closed_form_nodes", "fit_closed_form", "targets_by_node"]


def closed_form_nodes(model) -> list[str]:
    """Names of the model's closed-form nodes, in graph order."""
    return [name for name, node in model.nodes.items() if isinstance(node, ClosedForm)]


def targets_by_node(model, Y: Any, trained: list[str], reference, dtype,
                    device) -> dict[str, Targets]:
    """The targets of each trained node: ``Y`` itself for one node, else a dict by name."""
    if Y is None:
        raise NotFittedError(
            f"fit() needs targets Y for the nodes it trains: {', '.join(trained)}.")
    if isinstance(Y, Mapping):
        if set(Y) != set(trained):
            raise DataError(
                f"The 'Y' dict must have one entry per trained node {sorted(trained)}. "
                f"Got keys {sorted(Y)}.")
        items = {name: (Y[name], f"Y[{name!r}]") for name in trained}
    else:
        if len(trained) != 1:
            raise DataError(
                f"The model has several trained nodes {trained}; pass Y as a dict by name.")
        items = {trained[0]: (Y, "Y")}
    return {name: as_targets(value, reference, name=label, dtype=dtype, device=device,
                             time_structure=model.has_time_structure())
            for name, (value, label) in items.items()}


def _check_targets(model, name: str, targets: Targets, warmup: int, reference) -> None:
    node = model.nodes[name]
    expected = node.output_dim if node.built else node.static_output_dim()
    if expected is not None and targets.features != expected:
        raise DataError(
            f"The targets for '{name}' must have {expected} features (the node's "
            f"output size). Got {targets.features}.")
    feeds_others = bool(model.out_edges(name))
    if feeds_others and not targets.per_step:
        raise DataError(
            f"Node '{name}' feeds other nodes, so fitting it forces its outputs to the targets "
            f"step by step: give per-step targets (B, T, O), not one per sequence.")
    if feeds_others and not bool(targets.mask.eq(reference.valid_mask()).all()):
        raise DataError(
            f"The targets for '{name}' hold NaN, but '{name}' feeds other nodes and teacher "
            f"forcing needs every target; fill them or fit a model where '{name}' is an output.")
    if targets.per_step:
        shortest = (int(reference.lengths.min()) if reference.lengths is not None
                    else reference.steps)
        if warmup >= shortest:
            raise DataError(
                f"The 'warmup' parameter ({warmup}) leaves no training step in a series of "
                f"{shortest} steps; it must be smaller than every series length.")


def fit_closed_form(model, X: Any, Y: Any, *, warmup: int = 0, reset: bool = True,
                    chunk_size: int | None = None, verbose: int = 0,
                    parallel: Any = None) -> dict[str, dict]:
    """Fit every closed-form node of ``model``; see the module docstring.

    Parameters
    ----------
    parallel : object with ``shard`` and ``reduce_statistics``, optional
        The data-parallel hooks of :mod:`deepreservoir.distributed` (see the module
        docstring); ``None`` in one process.

    Returns
    -------
    dict
        Node name → ``{"samples": rows fitted, "train_mse": training MSE or None}``.
    """
    trained = closed_form_nodes(model)
    dtype, device = model_dtype_device(model)
    _, reference = input_batches(model, X, dtype, device)
    targets = targets_by_node(model, Y, trained, reference, dtype, device)
    for name, target in targets.items():
        _check_targets(model, name, target, warmup, reference)
    batches, reference = prepare(model, X, {n: t.features for n, t in targets.items()})
    dtype, device = model_dtype_device(model)
    for name, target in targets.items():
        _check_targets(model, name, target, warmup, reference)
    if parallel is not None:
        index = parallel.shard(model, reference)
        if index is not None:
            batches, targets, reference = _series(batches, targets, index)
    require_fitted(model, exclude=set(trained))
    state = kept_state(model, reference.batch_size, reset)
    steps = reference.steps
    chunk = chunk_size or steps
    last = reference.last_index().to(device)
    statistics = {name: SufficientStatistics() for name in trained}
    bar = None
    if verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="fit (closed form)", unit="step", leave=True)
    try:
        with torch.no_grad(), thread_scope(model, reference.batch_size):
            for start in range(0, steps, chunk):
                stop = min(start + chunk, steps)
                lengths = None
                if reference.lengths is not None:
                    lengths = (reference.lengths - start).clamp(0, stop - start).to(device)
                external = {n: b.values[:, start:stop] for n, b in batches.items()}
                forced = {}
                for name, target in targets.items():
                    node = model.nodes[name]
                    forced[name] = (target.values[:, start:stop].to(dtype) if target.per_step
                                    else torch.zeros(reference.batch_size, stop - start,
                                                     int(node.output_dim), dtype=dtype,
                                                     device=device))
                _, state, inputs = execute(model, external, lengths, state, forced, set(trained),
                                           offset=start)
                for name, target in targets.items():
                    x, y = _rows(inputs[name], target, start, stop, warmup, last)
                    if x.shape[0]:
                        node = model.nodes[name]
                        statistics[name] = node.combine(statistics[name], node.statistics(x, y))
                if bar is not None:
                    bar.update(stop - start)
    finally:
        if bar is not None:
            bar.close()
    summary = {}
    for name in trained:
        node = model.nodes[name]
        if parallel is not None:
            statistics[name] = parallel.reduce_statistics(node, statistics[name])
        if statistics[name].count == 0:
            raise NotFittedError(
                f"{type(node).__name__} '{name}' cannot be fitted: it received no training "
                f"steps (check warmup, data lengths and NaN targets).")
        _check_statistics(node, statistics[name])
        node.solve(statistics[name])
        summary[name] = {"samples": statistics[name].count,
                         "train_mse": node.training_loss(statistics[name])}
    model._state = state
    return summary


def _series(batches: dict, targets: dict, index: torch.Tensor):
    """The inputs, targets and reference batch of the series at ``index`` (along B)."""
    def pick(batch):
        lengths = None if batch.lengths is None else batch.lengths[index.to(batch.lengths.device)]
        return replace(batch, values=batch.values[index.to(batch.values.device)],
                       lengths=lengths)

    batches = {name: pick(batch) for name, batch in batches.items()}
    targets = {name: replace(t, values=t.values[index.to(t.values.device)],
                             mask=t.mask[index.to(t.mask.device)])
               for name, t in targets.items()}
    return batches, targets, next(iter(batches.values()))


def _check_statistics(node, statistics: SufficientStatistics) -> None:
    """Refuse statistics holding NaN or inf before the solve (LAPACK fails on them)."""
    found = first_nonfinite(statistics.sums)
    if found is None:
        return
    key, bad, total = found
    raise DataError(
        f"{type(node).__name__} '{node.name}' cannot be fitted: its statistic {key!r} "
        f"holds {bad} NaN or inf entries (of {total}), summed over {statistics.count} "
        f"training rows. What it receives is too large for {statistics.sums[key].dtype} "
        f"sums: scale its inputs down, or lower the reservoir's sr or input_scaling.")


def _rows(inputs, target: Targets, start: int, stop: int, warmup: int, last):
    """The rows (x, y) of one chunk that count for the statistics."""
    if target.per_step:
        keep = target.mask[:, start:stop].clone()
        if warmup > start:
            keep[:, : warmup - start] = False
        return inputs[keep], target.values[:, start:stop][keep]
    inside = (last >= start) & (last < stop) & target.mask
    rows = torch.nonzero(inside)[:, 0]
    return inputs[rows, last[rows] - start], target.values[rows]
