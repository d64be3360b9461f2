"""Online training: learners that update step by step while the model runs.

Every :class:`~deepreservoir.kinds.Online` node of the model learns as the data
streams through it: at each step it takes its input, learns from its target
(after the first ``warmup`` steps of every series, and while the series runs)
and gives an output. What the rest of the model sees on the learner's forward
and feedback edges is chosen by ``feedback``:

* ``"target"`` (teacher forcing, what reservoirpy's ``Model.fit`` does): the
  target of the step;
* ``"prediction"`` (what reservoirpy's ``Model.partial_fit`` does): the
  learner's own output, so a readout that feeds back into its reservoir learns in
  closed loop (FORCE learning, Sussillo & Abbott 2009).

The B series of a batch are B independent learners advancing together
(``learners="per_series"``), or one learner that sees the series one after
another (``learners="shared"``, reservoirpy's way). :func:`fit_online` starts
from each node's initial weights; :func:`partial_fit_online` continues from the
weights the nodes hold. At the end each node keeps its learners
(:meth:`~deepreservoir.kinds.Online.commit`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from deepreservoir.constraints import check_finite
from deepreservoir.errors import DataError, ParameterError, format_value
from deepreservoir.executor import (
    RunState,
    input_batches,
    kept_state,
    model_dtype_device,
    plan_of,
    prepare,
    require_fitted,
    restore_outputs,
    step_once,
)
from deepreservoir.kinds import Online
from deepreservoir.threads import thread_scope
from deepreservoir.training.closed_form import targets_by_node

__all__ = ["FEEDBACK_MODES", "LEARNER_MODES", "fit_online", "online_nodes",
           "partial_fit_online"]

FEEDBACK_MODES = ("target", "prediction")
LEARNER_MODES = ("per_series", "shared")


def _where(keep, new: Any, old: Any) -> Any:
    """``new`` where ``keep`` (B,) is True, else ``old``, through tuples, lists and dicts."""
    if isinstance(new, torch.Tensor):
        shape = (-1,) + (1,) * (new.ndim - 1)
        return torch.where(keep.reshape(shape), new, old)
    if isinstance(new, dict):  # a key new at this step (e.g. scratch space) is taken as is
        return {k: _where(keep, v, old[k]) if k in old else v for k, v in new.items()}
    if isinstance(new, (list, tuple)):
        return type(new)(_where(keep, a, b) for a, b in zip(new, old, strict=True))
    return new


def _series(value: Any, index: int) -> Any:
    """Series ``index`` of a learner state, keeping a batch axis of one."""
    if isinstance(value, torch.Tensor):
        return value[index:index + 1]
    if isinstance(value, dict):
        return {k: _series(v, index) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_series(v, index) for v in value)
    return value


def online_nodes(model) -> list[str]:
    """Names of the model's online learners, in graph order."""
    return [name for name, node in model.nodes.items() if isinstance(node, Online)]


def _check_mode(value: Any, label: str, allowed: tuple[str, ...], method: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ParameterError(
            f"The '{label}' parameter of {method} must be one of "
            f"{', '.join(map(repr, allowed))}. Got {format_value(value)}.")
    return value


def _read(model, X: Any, Y: Any):
    """Inputs, targets by learner and the reference batch, all checked."""
    names = online_nodes(model)
    dtype, device = model_dtype_device(model)
    _, reference = input_batches(model, X, dtype, device)
    targets = targets_by_node(model, Y, names, reference, dtype, device)
    for name, target in targets.items():
        if not target.per_step:
            raise DataError(f"Online node '{name}' learns step by step: give per-step targets.")
        if not bool(target.mask.eq(reference.valid_mask()).all()):
            raise DataError(f"The targets of online node '{name}' hold NaN; an online learner "
                            f"needs a target at every step.")
    batches, reference = prepare(model, X, {n: int(t.features) for n, t in targets.items()})
    require_fitted(model)
    for name, target in targets.items():
        expected = model.nodes[name].output_dim
        if int(target.features) != expected:
            raise DataError(
                f"The 'Y' targets of online node '{name}' have {int(target.features)} features, "
                f"but it has {expected} outputs (its weights are {expected} × "
                f"{model.nodes[name].input_dim}).")
    return names, batches, targets, reference


def _learn(model, batches, targets, reference, state: RunState, learners: dict, *,
           warmup: int, teacher: bool, bar=None):
    """Run the model over the batch once while every learner learns; returns the outputs.

    The outputs are those of the model's output nodes at every step, (B, T, O),
    a learner giving its own prediction.
    """
    plan = plan_of(model)
    node_states, buffers = dict(state.nodes), dict(state.edges)
    valid = reference.valid_mask()
    history: dict[str, list] = {name: [] for name in plan.outputs}
    for t in range(reference.steps):
        external = {n: b.values[:, t] for n, b in batches.items()}
        step_targets = {name: target.values[:, t] for name, target in targets.items()}
        learning = {name: (value if t >= warmup else None)
                    for name, value in step_targets.items()}
        keep = None if reference.lengths is None else valid[:, t]
        before = dict(learners)
        predictions: dict[str, torch.Tensor] = {}
        outputs = step_once(model, plan, external, node_states, buffers, keep=keep,
                            learning=learning, learners=learners,
                            teacher=step_targets if teacher else None,
                            predictions=predictions, check=False)
        if keep is not None:  # a finished series' learner stops learning
            for name in learners:
                learners[name] = _where(keep, learners[name], before[name])
        for name in plan.outputs:
            history[name].append(predictions.get(name, outputs[name]))
        if bar is not None:
            bar.update(1)
    outputs = {name: torch.stack(values, dim=1) for name, values in history.items()}
    check_finite(plan.nodes, outputs)
    return outputs, RunState(reference.batch_size, node_states, buffers)


def _run_online(model, X: Any, Y: Any, *, warmup: int, reset: bool, verbose: int,
                feedback: str, learners: str, restart: bool):
    method = "fit" if restart else "partial_fit"
    _check_mode(feedback, "feedback", FEEDBACK_MODES, method)
    _check_mode(learners, "learners", LEARNER_MODES, method)
    names, batches, targets, reference = _read(model, X, Y)
    nodes = {name: model.nodes[name] for name in names}
    if restart:
        for node in nodes.values():
            node.restart_learning()
    teacher = feedback == "target"
    bar = None
    if verbose:
        from tqdm.auto import tqdm

        bar = tqdm(total=reference.steps * (reference.batch_size if learners == "shared" else 1),
                   desc="fit (online)", unit="step", leave=True)
    try:
        with torch.no_grad(), thread_scope(model, reference.batch_size):
            if learners == "per_series":
                state = kept_state(model, reference.batch_size, reset)
                learner_states = {n: node.initial_learner_state(reference.batch_size)
                                  for n, node in nodes.items()}
                outputs, state = _learn(model, batches, targets, reference, state,
                                        learner_states, warmup=warmup, teacher=teacher, bar=bar)
            else:
                outputs, state, learner_states = _learn_shared(
                    model, batches, targets, reference, nodes, reset=reset, warmup=warmup,
                    teacher=teacher, bar=bar)
    finally:
        if bar is not None:
            bar.close()
    for name, node in nodes.items():
        node.commit(learner_states[name])
    model._state = state
    learned = int(reference.valid_mask()[:, warmup:].sum())
    return outputs, reference, {name: {"samples": learned} for name in names}


def _learn_shared(model, batches, targets, reference, nodes, *, reset, warmup, teacher, bar):
    """One learner through the series one after another, each series from the same state."""
    start = kept_state(model, reference.batch_size, reset)
    learner_states = {n: node.initial_learner_state(1) for n, node in nodes.items()}
    lengths = reference.lengths
    pieces: dict[str, list] = {}
    state = start
    for index in range(reference.batch_size):
        length = reference.steps if lengths is None else int(lengths[index])
        one = replace(reference, values=reference.values[index:index + 1, :length],
                      lengths=None)
        one_batches = {n: replace(b, values=b.values[index:index + 1, :length], lengths=None)
                       for n, b in batches.items()}
        one_targets = {n: replace(t, values=t.values[index:index + 1, :length],
                                  mask=t.mask[index:index + 1, :length])
                       for n, t in targets.items()}
        series_start = RunState(1, _series(start.nodes, index), _series(start.edges, index))
        outputs, state = _learn(model, one_batches, one_targets, one, series_start,
                                learner_states, warmup=warmup, teacher=teacher, bar=bar)
        for name, values in outputs.items():
            pad = reference.steps - values.shape[1]
            pieces.setdefault(name, []).append(
                torch.nn.functional.pad(values, (0, 0, 0, pad)))
    outputs = {name: torch.cat(values, 0) for name, values in pieces.items()}
    return outputs, state, learner_states


def fit_online(model, X: Any, Y: Any, *, warmup: int = 0, reset: bool = True,
               verbose: int = 0, feedback: str = "target",
               learners: str = "per_series") -> dict[str, dict]:
    """Learn from the data once, every online node starting from its initial weights.

    Parameters
    ----------
    model : Model
    X, Y : data and per-step targets, as in :meth:`~deepreservoir.Model.fit`
    warmup : int
        Steps at the start of every series that are run but not learned from.
    reset : bool
        Start from zero states (default) or from the states the model keeps.
    feedback : {"target", "prediction"}
        What a learner's downstream and fed-back edges receive (module docstring).
    learners : {"per_series", "shared"}
        B independent learners, or one learner through the series in turn.

    Returns
    -------
    dict
        Node name → ``{"samples": steps learned from}``.
    """
    _, _, summary = _run_online(model, X, Y, warmup=warmup, reset=reset, verbose=verbose,
                                feedback=feedback, learners=learners, restart=True)
    return summary


def partial_fit_online(model, X: Any, Y: Any, *, warmup: int = 0, reset: bool = False,
                       feedback: str = "prediction", learners: str = "per_series") -> Any:
    """Learn from one more chunk of data, continuing from the weights the nodes hold.

    The model continues from the state it keeps (``reset=False``), as reservoirpy's
    ``partial_fit`` does, and the learners' own predictions are fed back unless
    ``feedback="target"``.

    Returns
    -------
    array or dict
        The model's output(s) at every step while it learned, in the layout of ``X``.
    """
    outputs, reference, _ = _run_online(model, X, Y, warmup=warmup, reset=reset, verbose=0,
                                        feedback=feedback, learners=learners, restart=False)
    return restore_outputs(model, reference, outputs)
