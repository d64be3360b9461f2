"""The one torch executor behind ``Model.run``, ``Model.fit`` and ``Model.forward``.

Two modes, chosen from the graph:

* **sequence mode** (the graph, delayed edges included, is acyclic): each node
  processes the whole ``(B, T, F)`` batch once, in topological order; recurrent
  nodes loop over time inside, with one matrix product per step for all B
  sequences. Delayed edges shift their source's sequence by ``k`` steps, taking
  the first ``k`` values from the buffer left by the previous call.
* **step mode** (a cycle closed by feedback or a delay): for each time step, the
  nodes run once in delay-0 topological order; delayed inputs are read from
  per-edge buffers at the start of the step and pushed at its end.

Ragged batches are padded at the end; recurrent states and delay buffers stop
updating after each sequence's last valid step, so every output at a valid step
and every final state are exactly those of the sequence run alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx
import torch
from torch import Tensor

from deepreservoir.data import SequenceBatch, as_batch
from deepreservoir.errors import DataError, GraphError, NotFittedError, ParameterError
from deepreservoir.graph import Edge, Model

__all__ = ["build_model", "fit_model", "forward_model", "run_model", "states_model", "step_model"]


# --------------------------------------------------------------------- helpers
def model_dtype_device(model: Model) -> tuple[torch.dtype, torch.device]:
    """The dtype and device shared by all nodes of a model."""
    holders = [node for node in model.nodes.values() if not node.tensorless]
    if not holders:
        return torch.float32, torch.device("cpu")
    dtypes = {node.dtype for node in holders}
    devices = {node.device for node in holders}
    if len(dtypes) > 1:
        detail = ", ".join(f"{node.name}: {node.dtype}" for node in holders)
        raise GraphError(f"All nodes of a model must share one dtype. Got {detail}; "
                         f"call model.to(dtype).")
    if len(devices) > 1:
        detail = ", ".join(f"{node.name}: {node.device}" for node in holders)
        raise GraphError(f"All nodes of a model must be on one device. Got {detail}; "
                         f"call model.to(device).")
    return dtypes.pop(), devices.pop()


def _edge_width(model: Model, edge: Edge, dims: dict[str, int]) -> int:
    return dims[edge.source]


def build_model(model: Model, input_features: Mapping[str, int],
                target_dims: Mapping[str, int], only: set[str] | None = None
                ) -> dict[str, int]:
    """Infer every node's input and output size and build the unbuilt nodes.

    Parameters
    ----------
    model : Model
    input_features : mapping
        Number of external features for each input node.
    target_dims : mapping
        Target size for each closed-form node being fitted.
    only : set of str, optional
        Build only these nodes (a set closed under ancestors); default all.

    Returns
    -------
    dict
        Output size of every node built.

    Raises
    ------
    GraphError
        When a node receives a number of features other than it expects, naming
        the node, the senders and the sizes.
    """
    order = model.sequence_order() if model.is_acyclic() else model._forward_order()
    out_dims: dict[str, int] = {}
    for name in model.nodes:
        static = model.nodes[name].static_output_dim()
        if static is not None:
            out_dims[name] = static
        elif name in target_dims:
            out_dims[name] = int(target_dims[name])
    keys = None  # derived only when a node still has to be built
    for name in order:
        if only is not None and name not in only:
            continue
        node = model.nodes[name]
        parts: list[tuple[str, int]] = []
        if name in input_features:
            parts.append(("external data", int(input_features[name])))
        for edge in model.in_edges(name):
            if edge.source not in out_dims:
                raise GraphError(
                    f"Cannot infer the output size of '{edge.source}', which feeds "
                    f"'{name}' through feedback; give it an explicit size (units=...)."
                )
            parts.append((f"'{edge.source}'", out_dims[edge.source]))
        width = sum(size for _, size in parts)
        if node.input_dim is not None and node.input_dim != width:
            senders = ", ".join(f"{who}: {size}" for who, size in parts)
            raise GraphError(
                f"Dimension mismatch: node '{name}' expects {node.input_dim} input features "
                f"but receives {width} ({senders})."
            )
        if not node.built:
            if keys is None:
                keys = model.seed_keys()
            node.build(width, keys[name], target_dims.get(name))
        out_dims[name] = int(node.output_dim)
    return out_dims


def _input_batches(model: Model, X: Any, dtype, device, name: str = "X"
                   ) -> tuple[dict[str, SequenceBatch], SequenceBatch]:
    inputs = model.input_names
    if isinstance(X, Mapping):
        unknown = set(X) - set(inputs)
        missing = set(inputs) - set(X)
        if unknown or missing:
            raise DataError(
                f"The '{name}' dict must have one entry per input node {sorted(inputs)}. "
                f"Got keys {sorted(X)}."
            )
        batches = {}
        for node_name in inputs:
            node = model.nodes[node_name]
            batches[node_name] = as_batch(X[node_name], name=f"{name}[{node_name!r}]",
                                          dtype=dtype, device=device,
                                          features=_external_features(model, node_name, node))
    else:
        batches = {}
        shared = None
        for node_name in inputs:
            node = model.nodes[node_name]
            expected = _external_features(model, node_name, node)
            if shared is None:
                shared = as_batch(X, name=name, dtype=dtype, device=device, features=expected)
            elif expected is not None and shared.features != expected:
                raise DataError(
                    f"The '{name}' argument must have {expected} features for input node "
                    f"'{node_name}'. Got {shared.features}."
                )
            batches[node_name] = shared
    reference = next(iter(batches.values()))
    for node_name, batch in batches.items():
        if batch.values.shape[:2] != reference.values.shape[:2]:
            raise DataError(
                f"All inputs must have the same batch size and length. Got "
                f"{tuple(batch.values.shape[:2])} for '{node_name}' and "
                f"{tuple(reference.values.shape[:2])}."
            )
    return batches, reference


def _external_features(model: Model, name: str, node) -> int | None:
    """Expected number of external features of an input node, if known."""
    if node.input_dim is None:
        return None
    internal = 0
    for edge in model.in_edges(name):
        size = model.nodes[edge.source].static_output_dim()
        if size is None:
            size = model.nodes[edge.source].output_dim
        if size is None:
            return None
        internal += size
    return node.input_dim - internal


def _fresh_state(model: Model, batch_size: int, out_dims: dict[str, int], dtype, device) -> dict:
    nodes = {name: model.nodes[name].initial_state(batch_size) for name in model.nodes}
    edges = {
        (e.source, e.target): torch.zeros(batch_size, e.delay, out_dims[e.source], dtype=dtype,
                                          device=device)
        for e in model.edges if e.delay > 0 and e.source in out_dims
    }
    return {"batch": batch_size, "nodes": nodes, "edges": edges}


def _current_state(model: Model, batch_size: int, out_dims, dtype, device, reset: bool) -> dict:
    state = model._state
    if reset or state is None:
        return _fresh_state(model, batch_size, out_dims, dtype, device)
    if state["batch"] != batch_size:
        raise DataError(
            f"The model holds the state of a batch of {state['batch']} series, but this call "
            f"has {batch_size}. Pass reset=True (or call model.reset()) to start fresh states."
        )
    return state


def _push(buffer: Tensor, values: Tensor, lengths: Tensor | None) -> Tensor:
    """Append ``values`` (B, T, F) to a delay buffer (B, k, F), keeping the last k valid."""
    k = buffer.shape[1]
    joined = torch.cat([buffer, values], dim=1)
    if lengths is None:
        return joined[:, -k:]
    rows = [joined[b, int(n): int(n) + k] for b, n in enumerate(lengths.tolist())]
    return torch.stack(rows)


def _gather(model: Model, name: str, external: Mapping[str, Tensor],
            outputs: Mapping[str, Tensor], shifted: Mapping[tuple[str, str], Tensor]) -> Tensor:
    parts = []
    if name in external:
        parts.append(external[name])
    for edge in model.in_edges(name):
        key = (edge.source, edge.target)
        parts.append(shifted[key] if edge.delay > 0 else outputs[edge.source])
    if len(parts) == 1:
        return parts[0]
    return torch.cat(parts, dim=-1)


def execute(model: Model, external: Mapping[str, Tensor], lengths: Tensor | None, state: dict,
            forced: Mapping[str, Tensor] | None = None, collect: set[str] = frozenset(),
            only: set[str] | None = None
            ) -> tuple[dict[str, Tensor], dict, dict[str, Tensor]]:
    """Run the graph over one stretch of time.

    Parameters
    ----------
    model : Model
        A built model.
    external : mapping of str to Tensor (B, T, F_i)
        Data for each input node.
    lengths : Tensor (B,) or None
        Valid lengths within this stretch.
    state : dict
        States and delay buffers before the stretch.
    forced : mapping of str to Tensor (B, T, O), optional
        Outputs imposed on nodes (teacher forcing); those nodes are not run.
    collect : set of str
        Nodes whose inputs are returned.
    only : set of str, optional
        Run only these nodes; the set must be closed under ancestors (every
        node feeding one of them, through any edge, is in it). Default: all.

    Returns
    -------
    outputs : dict of str to Tensor (B, T, O)
    state : dict
        States and buffers after the stretch.
    inputs : dict of str to Tensor (B, T, F)
        Inputs of the nodes in ``collect``.
    """
    forced = forced or {}
    if model.is_acyclic():
        return _execute_sequence(model, external, lengths, state, forced, collect, only)
    return _execute_steps(model, external, lengths, state, forced, collect, only)


def _execute_sequence(model, external, lengths, state, forced, collect, only=None):
    outputs: dict[str, Tensor] = {}
    collected: dict[str, Tensor] = {}
    new_nodes = dict(state["nodes"])
    new_edges = dict(state["edges"])
    for name in model.sequence_order():
        if only is not None and name not in only:
            continue
        shifted = {}
        for edge in model.in_edges(name):
            if edge.delay > 0:
                key = (edge.source, edge.target)
                source_values = outputs[edge.source]
                steps = source_values.shape[1]
                shifted[key] = torch.cat([state["edges"][key], source_values], dim=1)[:, :steps]
                new_edges[key] = _push(state["edges"][key], source_values, lengths)
        x = _gather(model, name, external, outputs, shifted)
        if name in collect:
            collected[name] = x
        if name in forced:
            outputs[name] = forced[name]
            continue
        y, node_state = model.nodes[name].forward_sequence(x, state["nodes"][name], lengths)
        outputs[name] = y
        new_nodes[name] = node_state
    return outputs, {"batch": state["batch"], "nodes": new_nodes, "edges": new_edges}, collected


def _execute_steps(model, external, lengths, state, forced, collect, only=None):
    order = [name for name in model.execution_order() if only is None or name in only]
    steps = next(iter(external.values())).shape[1]
    node_states = dict(state["nodes"])
    buffers = {key: buffer for key, buffer in state["edges"].items()
               if only is None or key[0] in only}
    history: dict[str, list[Tensor]] = {name: [] for name in order}
    inputs_seen: dict[str, list[Tensor]] = {name: [] for name in collect}
    valid = None
    if lengths is not None:
        time = torch.arange(steps, device=lengths.device)
        valid = time[None, :] < lengths[:, None]
    for t in range(steps):
        step_external = {name: values[:, t] for name, values in external.items()}
        delayed = {key: buffer[:, 0] for key, buffer in buffers.items()}
        step_outputs: dict[str, Tensor] = {}
        for name in order:
            x = _gather(model, name, step_external, step_outputs, delayed)
            if name in collect:
                inputs_seen[name].append(x)
            if name in forced:
                step_outputs[name] = forced[name][:, t]
                continue
            y, new_state = model.nodes[name].forward_step(x, node_states[name])
            if new_state is not None:
                if valid is not None:
                    keep = valid[:, t].to(new_state.device).unsqueeze(-1)
                    new_state = torch.where(keep, new_state, node_states[name])
                node_states[name] = new_state
            step_outputs[name] = y
        for key, buffer in buffers.items():
            incoming = step_outputs[key[0]].unsqueeze(1)
            pushed = torch.cat([buffer[:, 1:], incoming], dim=1)
            if valid is not None:
                keep = valid[:, t].to(buffer.device)[:, None, None]
                pushed = torch.where(keep, pushed, buffer)
            buffers[key] = pushed
        for name in order:
            history[name].append(step_outputs[name])
    outputs = {name: torch.stack(values, dim=1) for name, values in history.items()}
    collected = {name: torch.stack(values, dim=1) for name, values in inputs_seen.items()}
    edges = {**state["edges"], **buffers}
    return outputs, {"batch": state["batch"], "nodes": node_states, "edges": edges}, collected


def _restore(model: Model, reference: SequenceBatch, outputs: Mapping[str, Tensor]):
    names = model.output_names
    if len(names) == 1:
        return reference.restore(outputs[names[0]])
    return {name: reference.restore(outputs[name]) for name in names}


def _prepare(model: Model, X: Any, targets: Mapping[str, int] | None = None,
             only: set[str] | None = None):
    dtype, device = model_dtype_device(model)
    batches, reference = _input_batches(model, X, dtype, device)
    build_model(model, {n: b.features for n, b in batches.items()}, targets or {}, only)
    _input_batches(model, X, dtype, device)  # re-check feature counts after building
    out_dims = {name: int(node.output_dim) for name, node in model.nodes.items()
                if node.output_dim is not None}
    return batches, reference, out_dims, dtype, device


# ------------------------------------------------------------------ user calls
def run_model(model: Model, X: Any, *, reset: bool = False):
    """Implementation of :meth:`Model.run`."""
    batches, reference, out_dims, dtype, device = _prepare(model, X)
    _require_fitted(model)
    state = _current_state(model, reference.batch_size, out_dims, dtype, device, reset)
    lengths = reference.lengths
    with torch.no_grad():
        outputs, state, _ = execute(model, {n: b.values for n, b in batches.items()},
                                    lengths, state)
    model._state = state
    return _restore(model, reference, outputs)


def states_model(model: Model, X: Any, *, nodes: Any = None, reset: bool = False,
                 inputs: bool = False) -> dict:
    """Implementation of :meth:`Model.states`: every (or some) node's output or input.

    The same executor as :func:`run_model` runs the graph; with ``nodes`` given
    only those nodes and their ancestors run, and the model's kept state is left
    as it was.
    """
    if not isinstance(reset, bool):
        raise ParameterError(f"The 'reset' parameter of states must be a bool. Got {reset!r}.")
    if not isinstance(inputs, bool):
        raise ParameterError(f"The 'inputs' parameter of states must be a bool. Got {inputs!r}.")
    wanted = _wanted_nodes(model, nodes)
    only = None
    if nodes is not None:
        only = set(wanted)
        for name in wanted:
            only |= nx.ancestors(model.graph, name)
    batches, reference, out_dims, dtype, device = _prepare(model, X, only=only)
    _require_fitted(model, include=only)
    state = _current_state(model, reference.batch_size, out_dims, dtype, device, reset)
    with torch.no_grad():
        outputs, new_state, received = execute(
            model, {n: b.values for n, b in batches.items()}, reference.lengths, state,
            collect=set(wanted) if inputs else frozenset(), only=only)
    if only is None:
        model._state = new_state
    chosen = received if inputs else outputs
    return {name: reference.restore(chosen[name]) for name in wanted}


def _wanted_nodes(model: Model, nodes: Any) -> list[str]:
    if nodes is None:
        return list(model.sequence_order() if model.is_acyclic() else model.execution_order())
    names = [nodes] if isinstance(nodes, str) else nodes
    try:
        names = list(names)
    except TypeError:
        names = None
    if not names or not all(isinstance(name, str) for name in names):
        raise ParameterError(
            f"The 'nodes' parameter of states must be a node name or a non-empty list of "
            f"names. Got {nodes!r}."
        )
    for name in names:
        model.node(name)  # a GraphError listing the nodes when the name is unknown
    return list(dict.fromkeys(names))


def _require_fitted(model: Model, exclude: set[str] = frozenset(),
                    include: set[str] | None = None) -> None:
    for name, node in model.nodes.items():
        if include is not None and name not in include:
            continue
        if node.closed_form and name not in exclude and not getattr(node, "fitted", True):
            raise NotFittedError(
                f"Node '{name}' is not fitted yet: call model.fit(X, Y) before run()."
            )


def step_model(model: Model, x: Any):
    """Implementation of :meth:`Model.step`: one time step, state kept."""
    if isinstance(x, (list, tuple)) or getattr(x, "ndim", None) not in (1, 2):
        raise DataError(
            f"The 'x' argument of step must be 1-D (F,) or 2-D (B, F). "
            f"Got {getattr(x, 'ndim', type(x).__name__)} dimension(s)."
        )
    single = x.ndim == 1
    batch = x[None, None, :] if single else x[:, None, :]
    out = run_model(model, batch, reset=False)
    if isinstance(out, dict):
        return {k: v[0, 0] if single else v[:, 0] for k, v in out.items()}
    return out[0, 0] if single else out[:, 0]


def forward_model(model: Model, x: Tensor):
    """Implementation of :meth:`Model.forward`: differentiable, from zero states."""
    if not isinstance(x, Tensor):
        raise DataError(f"forward() takes a torch tensor (B, T, F). Got {type(x).__name__}.")
    squeeze = x.ndim == 2
    values = x.unsqueeze(0) if squeeze else x
    if values.ndim != 3:
        raise DataError(f"forward() takes a (B, T, F) tensor. Got shape {tuple(x.shape)}.")
    dtype, device = model_dtype_device(model)
    external = {name: values for name in model.input_names}
    build_model(model, {n: int(values.shape[-1]) for n in external}, {})
    out_dims = {name: int(node.output_dim) for name, node in model.nodes.items()}
    state = _fresh_state(model, values.shape[0], out_dims, dtype, device)
    outputs, _, _ = execute(model, external, None, state)
    names = model.output_names
    result = {n: outputs[n][0] if squeeze else outputs[n] for n in names}
    return result[names[0]] if len(names) == 1 else result


def _target_batches(model: Model, Y: Any, reference: SequenceBatch, trainable: list[str],
                    dtype, device) -> dict[str, SequenceBatch]:
    if Y is None:
        raise NotFittedError(
            "fit() needs targets Y for the nodes it trains: "
            f"{', '.join(trainable)}."
        )
    if isinstance(Y, Mapping):
        if set(Y) != set(trainable):
            raise DataError(
                f"The 'Y' dict must have one entry per trainable node {sorted(trainable)}. "
                f"Got keys {sorted(Y)}."
            )
        items = dict(Y)
    else:
        if len(trainable) != 1:
            raise DataError(
                f"The model has several trainable nodes {trainable}; pass Y as a dict by name."
            )
        items = {trainable[0]: Y}
    targets = {}
    for name, values in items.items():
        batch = as_batch(values, name="Y", dtype=dtype, device=device)
        same_lengths = (
            (batch.lengths is None and reference.lengths is None)
            or (batch.lengths is not None and reference.lengths is not None
                and torch.equal(batch.lengths, reference.lengths))
        )
        if batch.values.shape[:2] != reference.values.shape[:2] or not same_lengths:
            raise DataError(
                f"The targets 'Y' must match the inputs step for step: X has "
                f"{reference.batch_size} series of {_lengths_text(reference)} steps but Y "
                f"has {batch.batch_size} of {_lengths_text(batch)}."
            )
        expected = model.nodes[name].output_dim if model.nodes[name].built else None
        if expected is not None and batch.features != expected:
            raise DataError(
                f"The targets for '{name}' must have {expected} features. Got {batch.features}."
            )
        targets[name] = batch
    return targets


def _lengths_text(batch: SequenceBatch) -> str:
    if batch.lengths is None:
        return str(batch.steps)
    return str(batch.lengths.tolist())


def fit_model(model: Model, X: Any, Y: Any, *, warmup: int = 0, reset: bool = True,
              chunk_size: int | None = None) -> None:
    """Implementation of :meth:`Model.fit` for closed-form nodes."""
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ParameterError(f"The 'warmup' parameter of fit must be an int >= 0. Got {warmup!r}.")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise ParameterError(
            f"The 'chunk_size' parameter of fit must be an int >= 1 or None. Got {chunk_size!r}."
        )
    trainable = [name for name, node in model.nodes.items() if node.closed_form]
    if not trainable:
        raise NotFittedError("This model has no node trained by fit(X, Y) (e.g. a Ridge).")
    dtype, device = model_dtype_device(model)
    batches, reference = _input_batches(model, X, dtype, device)
    targets = _target_batches(model, Y, reference, trainable, dtype, device)
    shortest = int(reference.lengths.min()) if reference.lengths is not None else reference.steps
    if warmup >= shortest:
        raise DataError(
            f"The 'warmup' parameter ({warmup}) leaves no training step in a series of "
            f"{shortest} steps; it must be smaller than every series length."
        )
    batches, reference, out_dims, dtype, device = _prepare(
        model, X, {n: b.features for n, b in targets.items()})
    _require_fitted(model, exclude=set(trainable))
    for name in trainable:
        model.nodes[name].begin_fit()
    state = _current_state(model, reference.batch_size, out_dims, dtype, device, reset)
    valid = reference.valid_mask()
    steps = reference.steps
    chunk = chunk_size or steps
    with torch.no_grad():
        for start in range(0, steps, chunk):
            stop = min(start + chunk, steps)
            lengths = None
            if reference.lengths is not None:
                lengths = (reference.lengths - start).clamp(0, stop - start).to(device)
            external = {n: b.values[:, start:stop] for n, b in batches.items()}
            forced = {n: b.values[:, start:stop] for n, b in targets.items()}
            _, state, inputs = execute(model, external, lengths, state, forced, set(trainable))
            keep = valid[:, start:stop].clone()
            if warmup > start:
                keep[:, : warmup - start] = False
            for name in trainable:
                x = inputs[name][keep]
                y = forced[name][keep]
                model.nodes[name].accumulate(x, y)
    for name in trainable:
        model.nodes[name].finish_fit()
    model._state = state
