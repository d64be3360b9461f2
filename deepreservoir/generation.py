"""Free-running a model: closed loops with no input, and generation from its own output.

* :func:`free_run` (``model.run(iters=n)``, reservoirpy's ``run(iters=n)``):
  a model whose input nodes are fed only by feedback edges runs ``n`` steps on
  its own.
* :func:`generate` (``model.generate(n, warmup=X)``): a model with one input and
  one output of the same size is run over a warmup series, then its output at
  each step becomes its input at the next, for ``n`` steps: the loop
  reservoirpy users write by hand as ``x = model(x)``. B warmup series generate
  B continuations at once.

Both continue from, and keep, the model's state, like ``run``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from deepreservoir.constraints import check_finite
from deepreservoir.data import as_step
from deepreservoir.errors import DataError, NotFittedError, ParameterError, format_value
from deepreservoir.executor import (
    RunState,
    execute,
    external_features,
    kept_state,
    model_dtype_device,
    plan_of,
    prepare,
    require_fitted,
    step_once,
)
from deepreservoir.threads import thread_scope

__all__ = ["free_run", "generate"]


def _check_steps(value: Any, label: str, owner: str, expected: str = "an int >= 1") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ParameterError(
            f"The '{label}' parameter of {owner} must be {expected}. "
            f"Got {format_value(value)}.")
    return int(value)


def _require_ready(model, owner: str) -> None:
    if not all(node.built for node in model.nodes.values()):
        raise NotFittedError(
            f"{owner} needs a built model: run or fit it on data first, so that every node "
            f"knows its sizes.")
    require_fitted(model)


def _loop(model, plan, steps: int, state: RunState, feed) -> tuple[dict[str, Tensor], RunState]:
    """``steps`` steps; ``feed(outputs)`` gives the next step's external inputs."""
    node_states, buffers = dict(state.nodes), dict(state.edges)
    history: dict[str, list[Tensor]] = {name: [] for name in plan.outputs}
    external = feed(None)
    for _ in range(steps):
        outputs = step_once(model, plan, external, node_states, buffers, check=False)
        for name in plan.outputs:
            history[name].append(outputs[name])
        external = feed(outputs)
    stacked = {name: torch.stack(values, dim=1) for name, values in history.items()}
    check_finite(plan.nodes, stacked)
    return stacked, RunState(state.batch, node_states, buffers)


def _numpy(outputs: dict[str, Tensor], single: bool, backend: str = "numpy"):
    result = {}
    for name, value in outputs.items():
        value = value[0] if single else value
        result[name] = value.detach() if backend == "torch" else value.detach().cpu().numpy()
    return next(iter(result.values())) if len(result) == 1 else result


def free_run(model, iters: Any, *, reset: bool = False):
    """Run a model for ``iters`` steps with no external input.

    Its input nodes must take no external features: fed by feedback only (e.g.
    ``reservoir << readout`` with ``reservoir`` the model's input), or built on
    zero-feature data ``(T, 0)`` (a reservoir driven by its bias alone, as in
    reservoirpy). The run continues from the kept state, for as many series as it
    holds (one by default).

    Returns
    -------
    ndarray
        ``(iters, O)`` for one series, ``(B, iters, O)`` for B; a dict by node
        name when the model has several outputs.
    """
    steps = _check_steps(iters, "iters", "run", "None or an int >= 1")  # None: run(X)
    plan = plan_of(model)
    _require_ready(model, "run(iters=...)")
    fed = [name for name in plan.inputs if external_features(model, name)]
    if fed:
        raise DataError(
            f"run(iters={steps}) runs with no external input, but input node(s) {fed} take "
            f"external data: give X, or use generate(n, warmup=X) to feed the output back as "
            f"the next input.")
    batch = model._state.batch if (model._state is not None and not reset) else 1
    state = kept_state(model, batch, reset)
    dtype, device = model_dtype_device(model)
    nothing = {name: torch.zeros(batch, 0, dtype=dtype, device=device) for name in plan.inputs}
    with torch.no_grad(), thread_scope(model, batch):
        outputs, state = _loop(model, plan, steps, state, lambda outputs: nothing)
    model._state = state
    return _numpy(outputs, batch == 1)


def _single_input_output(model) -> tuple[str, str, Any]:
    plan = plan_of(model)
    if len(plan.inputs) != 1 or len(plan.outputs) != 1:
        raise DataError(
            f"generate() feeds the output back as the next input, so the model needs one "
            f"input node and one output node. It has inputs {list(plan.inputs)} and outputs "
            f"{list(plan.outputs)}.")
    return plan.inputs[0], plan.outputs[0], plan


def generate(model, n: Any, *, warmup: Any = None, start: Any = None, reset: bool = False):
    """Generate ``n`` steps, each output fed back as the next input.

    Parameters
    ----------
    n : int >= 1
        Steps to generate.
    warmup : data as in :meth:`~deepreservoir.Model.run`, optional
        Run first (from the kept state, or zero with ``reset=True``); its last
        output is the first generated step's input. ``(T, F)`` generates one
        series, ``(B, T, F)`` or a list of B series generates B.
    start : array (F,) or (B, F), optional
        Without ``warmup``: the first input, from the state the model keeps.
    reset : bool
        Start the warmup from zero states.

    Returns
    -------
    ndarray or Tensor
        ``(n, O)`` for one series, ``(B, n, O)`` for several, in the type of
        ``warmup`` (or ``start``).
    """
    steps = _check_steps(n, "n", "generate")
    input_name, output_name, plan = _single_input_output(model)
    if (warmup is None) == (start is None):
        raise DataError(
            "generate() needs exactly one of 'warmup' (a series to run first) and 'start' "
            "(the first input, from the kept state).")
    dtype, device = model_dtype_device(model)
    with torch.no_grad():
        if warmup is not None:
            batches, reference = prepare(model, warmup, name="warmup")
            require_fitted(model)
            state = kept_state(model, reference.batch_size, reset)
            with thread_scope(model, reference.batch_size):
                outputs, state, _ = execute(model, {k: b.values for k, b in batches.items()},
                                            reference.lengths, state)
            last = outputs[output_name][torch.arange(reference.batch_size),
                                        reference.last_index()]
            single, backend = reference.layout == "single", reference.backend
        else:
            _require_ready(model, "generate(start=...)")
            last, single, backend = as_step(start, name="start", dtype=dtype, device=device,
                                            features=external_features(model, input_name))
            state = kept_state(model, last.shape[0], reset)
        features = external_features(model, input_name)
        if features is not None and last.shape[-1] != features:
            raise DataError(
                f"generate() feeds output '{output_name}' ({last.shape[-1]} features) back "
                f"into input '{input_name}', which takes {features}: they must match.")
        current = {"x": last}

        def feed(outputs):
            if outputs is not None:
                current["x"] = outputs[output_name]
            return {input_name: current["x"]}

        with thread_scope(model, last.shape[0]):
            generated, state = _loop(model, plan, steps, state, feed)
    model._state = state
    return _numpy(generated, single, backend)
