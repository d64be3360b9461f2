"""The one torch executor: it builds a graph's nodes and runs them over time.

Two modes, chosen from the graph:

* **sequence mode** (the graph, delayed edges included, is acyclic): each node
  processes the whole ``(B, T, F)`` batch once, in topological order; stateful
  nodes loop over time inside, with one matrix product per step for all B
  sequences. Delayed edges shift their source's sequence by ``k`` steps, taking
  the first ``k`` values from the buffer left by the previous call.
* **step mode** (a cycle closed by feedback or a delay): for each time step, the
  nodes run once in delay-0 topological order; delayed inputs are read from
  per-edge buffers at the start of the step and pushed at its end.

Ragged batches are padded at the end; states and delay buffers stop updating
after each sequence's last valid step, so every output at a valid step and
every final state are exactly those of the sequence run alone.

**Finiteness.** Every stretch the executor runs is checked once, after it ran:
a node output holding NaN or inf raises a :class:`DataError` naming the node,
the first non-finite time step and series. The check costs one sum per node
per call, never one per time step of a loop; :func:`deepreservoir.finite_check`
turns it off (:mod:`deepreservoir.constraints`).

The :class:`Plan` (orders, input lists, delayed edges) depends only on the
graph's structure and is computed once per graph; :func:`step_graph` reuses it
so one step costs little more than the nodes' own work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from deepreservoir.constraints import (
    all_finite,
    check_finite,
    check_supported_dtype,
    finite_check_enabled,
)
from deepreservoir.data import SequenceBatch, as_batch, as_step
from deepreservoir.errors import DataError, GraphError, NotFittedError
from deepreservoir.graph import Edge, Graph
from deepreservoir.kinds import ClosedForm, Stateful, TensorFree

__all__ = ["Plan", "RunState", "build_graph", "execute", "model_dtype_device", "plan_of"]


# ----------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Plan:
    """What running a graph needs, derived once from its structure.

    Attributes
    ----------
    stepwise : bool
        Whether the graph has a cycle (through feedback or a delay) and so runs
        step by step.
    order : tuple of str
        Sequence order (acyclic) or delay-0 execution order (stepwise).
    sources : dict of str to tuple of Edge
        Each node's incoming edges, in concatenation order.
    delayed : tuple of Edge
        Edges with a delay of one step or more (their buffers).
    inputs, outputs : tuple of str
    nodes : dict of str to Node
        The graph's nodes by name, as a plain dict (cheaper to read than a ModuleDict).
    """

    stepwise: bool
    order: tuple[str, ...]
    sources: dict[str, tuple[Edge, ...]]
    delayed: tuple[Edge, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: dict[str, Any]


def plan_of(graph: Graph) -> Plan:
    """The (cached) execution plan of a graph."""
    plan = graph._memo_store.get("plan")
    if plan is not None:
        return plan

    def compute() -> Plan:
        stepwise = not graph.is_acyclic()
        order = graph.execution_order() if stepwise else graph.sequence_order()
        return Plan(stepwise, tuple(order),
                    {name: tuple(graph.in_edges(name)) for name in graph.nodes},
                    tuple(e for e in graph.edges if e.delay > 0),
                    tuple(graph.input_names), tuple(graph.output_names), dict(graph.nodes))
    return graph._memo("plan", compute)


# ---------------------------------------------------------------------- state
def _map_tensors(value: Any, fn) -> Any:
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, fn) for v in value)
    return value


@dataclass
class RunState:
    """The states and delay buffers a model keeps between calls.

    Attributes
    ----------
    batch : int
        The number of series the states belong to.
    nodes : dict of str to state
        Each node's state (``None`` for stateless nodes).
    edges : dict of (str, str) to Tensor (B, k, F)
        The last ``k`` outputs on each delayed edge.
    """

    batch: int
    nodes: dict[str, Any]
    edges: dict[tuple[str, str], Tensor]

    def converted(self, fn) -> RunState:
        """The state with ``fn`` (a dtype or device move, as ``Module._apply`` gives)
        applied to every floating tensor."""
        def convert(tensor: Tensor) -> Tensor:
            return fn(tensor) if tensor.is_floating_point() else tensor
        return RunState(self.batch, _map_tensors(self.nodes, convert),
                        _map_tensors(self.edges, convert))


def fresh_state(graph: Graph, batch_size: int) -> RunState:
    """Zero states and delay buffers for a batch (the graph must be built)."""
    dtype, device = model_dtype_device(graph)
    nodes = {name: (node.initial_state(batch_size) if isinstance(node, Stateful) else None)
             for name, node in graph.nodes.items()}
    edges = {(e.source, e.target): torch.zeros(batch_size, e.delay,
                                               int(graph.nodes[e.source].output_dim),
                                               dtype=dtype, device=device)
             for e in plan_of(graph).delayed}
    return RunState(batch_size, nodes, edges)


def kept_state(model, batch_size: int, reset: bool) -> RunState:
    """The state left by the last call, or a fresh one.

    A call with another batch size than the kept state starts fresh: stateful
    nodes from zero, and stateless ones just work (reservoirpy users chain
    ``fit(train).run(test)`` on data of any batch size).
    """
    state = model._state
    if reset or state is None or state.batch != batch_size:
        return fresh_state(model, batch_size)
    return state


# ---------------------------------------------------------------- dtype/device
def model_dtype_device(graph: Graph) -> tuple[torch.dtype, torch.device]:
    """The dtype and device shared by all nodes of a model.

    Nodes without tensors (inputs, activations) follow the others; a model made
    of them only takes the dtype and device they were moved to (float32 and the
    CPU by default). A node converted to float16 or bfloat16 raises a
    :class:`ParameterError` here, so at the first run after the conversion.
    """
    holders = [node for node in graph.nodes.values() if not isinstance(node, TensorFree)]
    for node in holders or graph.nodes.values():  # .half() and .to(bfloat16) end here
        check_supported_dtype(node.dtype, type(node).__name__, node=node.name)
    if not holders:
        first = next(iter(graph.nodes.values()), None)
        if first is None:
            return torch.float32, torch.device("cpu")
        return first.dtype, first.device
    dtypes = {node.dtype for node in holders}
    devices = {node.device for node in holders}
    if len(dtypes) > 1:
        detail = ", ".join(f"{name}: {node.dtype}" for name, node in graph.nodes.items()
                           if not isinstance(node, TensorFree))
        raise GraphError(f"All nodes of a model must share one dtype. Got {detail}; "
                         f"call model.to(dtype).")
    if len(devices) > 1:
        detail = ", ".join(f"{name}: {node.device}" for name, node in graph.nodes.items()
                           if not isinstance(node, TensorFree))
        raise GraphError(f"All nodes of a model must be on one device. Got {detail}; "
                         f"call model.to(device).")
    return dtypes.pop(), devices.pop()


# ----------------------------------------------------------------------- build
def build_graph(graph: Graph, input_features: Mapping[str, int],
                target_dims: Mapping[str, int], only: set[str] | None = None
                ) -> dict[str, int]:
    """Infer every node's input and output size and build the unbuilt nodes.

    Parameters
    ----------
    graph : Graph
    input_features : mapping
        Number of external features for each input node (0: fed by feedback only).
    target_dims : mapping
        Target size for each trained node whose output size comes from its targets.
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
    out_dims: dict[str, int] = {}
    for name, node in graph.nodes.items():
        static = node.static_output_dim()
        if static is not None:
            out_dims[name] = static
        elif name in target_dims:
            out_dims[name] = int(target_dims[name])
    keys = None  # derived only when a node still has to be built
    for name in graph.dataflow_order():
        if only is not None and name not in only:
            continue
        node = graph.nodes[name]
        parts: list[tuple[str, int]] = []
        if input_features.get(name):
            parts.append(("external data", int(input_features[name])))
        for edge in graph.in_edges(name):
            if edge.source not in out_dims:
                raise GraphError(
                    f"Cannot infer the output size of '{edge.source}', which feeds "
                    f"'{name}' through feedback; give it an explicit size (units=...).")
            parts.append((f"'{edge.source}'", out_dims[edge.source]))
        width = sum(size for _, size in parts)
        if node.input_dim is not None and node.input_dim != width:
            senders = ", ".join(f"{who}: {size}" for who, size in parts) or "nothing"
            raise GraphError(
                f"Dimension mismatch: node '{name}' expects {node.input_dim} input features "
                f"but receives {width} ({senders}).")
        if width == 0 and name not in input_features:
            raise DataError(
                f"Node '{name}' receives no data: it is an input of the model and no data "
                f"was given for it (zero-feature data (T, 0) drives it by its bias alone).")
        if not node.built:
            if keys is None:
                keys = graph.seed_keys()
            node.build(width, keys[name], target_dims.get(name))
        out_dims[name] = int(node.output_dim)
    return out_dims


def external_features(graph: Graph, name: str) -> int | None:
    """Expected number of external features of an input node, if known."""
    node = graph.nodes[name]
    if node.input_dim is None:
        return None
    internal = 0
    for edge in graph.in_edges(name):
        source = graph.nodes[edge.source]
        size = source.static_output_dim()
        if size is None:
            size = source.output_dim
        if size is None:
            return None
        internal += size
    return node.input_dim - internal


def input_batches(graph: Graph, X: Any, dtype, device, name: str = "X"
                  ) -> tuple[dict[str, SequenceBatch], SequenceBatch]:
    """Normalise ``X`` (one array for every input, or a dict by input name)."""
    inputs = plan_of(graph).inputs
    if isinstance(X, Mapping):
        unknown = set(X) - set(inputs)
        missing = set(inputs) - set(X)
        if unknown or missing:
            raise DataError(
                f"The '{name}' dict must have one entry per input node {sorted(inputs)}. "
                f"Got keys {sorted(X)}.")
        batches = {n: as_batch(X[n], name=f"{name}[{n!r}]", dtype=dtype, device=device,
                               features=external_features(graph, n)) for n in inputs}
    else:
        batches = {}
        shared = None
        for node_name in inputs:
            expected = external_features(graph, node_name)
            if shared is None:
                shared = as_batch(X, name=name, dtype=dtype, device=device, features=expected)
            elif expected is not None and shared.features != expected:
                raise DataError(
                    f"The '{name}' argument must have {expected} features for input node "
                    f"'{node_name}'. Got {shared.features}.")
            batches[node_name] = shared
    reference = next(iter(batches.values()))
    for node_name, batch in batches.items():
        if batch.values.shape[:2] != reference.values.shape[:2]:
            raise DataError(
                f"All inputs must have the same batch size and length. Got "
                f"{tuple(batch.values.shape[:2])} for '{node_name}' and "
                f"{tuple(reference.values.shape[:2])}.")
    return batches, reference


def prepare(graph: Graph, X: Any, target_dims: Mapping[str, int] | None = None,
            only: set[str] | None = None, name: str = "X"
            ) -> tuple[dict[str, SequenceBatch], SequenceBatch]:
    """Normalise ``X``, build the graph for it, and check the sizes again."""
    dtype, device = model_dtype_device(graph)
    batches, reference = input_batches(graph, X, dtype, device, name)
    built = all(node.built for node in graph.nodes.values())
    features = {n: b.features for n, b in batches.items()}
    checked = graph._memo_store.setdefault("checked_sizes", set())
    key = (tuple(sorted(features.items())), None if only is None else tuple(sorted(only)))
    if not built or key not in checked:
        # on a built graph this only checks the sizes: nodes built apart may disagree
        build_graph(graph, features, target_dims or {}, only)
        if built:
            checked.add(key)
    if not built:
        dtype, device = model_dtype_device(graph)
        batches, reference = input_batches(graph, X, dtype, device, name)
    return batches, reference


def require_fitted(graph: Graph, exclude: set[str] = frozenset(),
                   include: set[str] | None = None) -> None:
    """Raise :class:`NotFittedError` for a closed-form node that has not been fitted."""
    for name, node in graph.nodes.items():
        if include is not None and name not in include:
            continue
        if isinstance(node, ClosedForm) and name not in exclude and not node.is_fitted():
            raise NotFittedError(
                f"Node '{name}' is not fitted yet: call model.fit(X, Y) before run().")


# ----------------------------------------------------------------- execution
def _push(buffer: Tensor, values: Tensor, lengths: Tensor | None) -> Tensor:
    """Append ``values`` (B, T, F) to a delay buffer (B, k, F), keeping the last k valid."""
    k = buffer.shape[1]
    joined = torch.cat([buffer, values], dim=1)
    if lengths is None:
        return joined[:, -k:]
    rows = [joined[b, int(n): int(n) + k] for b, n in enumerate(lengths.tolist())]
    return torch.stack(rows)


def _gather(plan: Plan, name: str, external: Mapping[str, Tensor],
            outputs: Mapping[str, Tensor], delayed: Mapping[tuple[str, str], Tensor]) -> Tensor:
    parts = []
    if name in external:
        parts.append(external[name])
    for edge in plan.sources[name]:
        parts.append(delayed[(edge.source, edge.target)] if edge.delay > 0
                     else outputs[edge.source])
    if len(parts) == 1:
        return parts[0]
    return torch.cat(parts, dim=-1)


def execute(graph: Graph, external: Mapping[str, Tensor], lengths: Tensor | None,
            state: RunState, forced: Mapping[str, Tensor] | None = None,
            collect: set[str] = frozenset(), only: set[str] | None = None,
            offset: int = 0) -> tuple[dict[str, Tensor], RunState, dict[str, Tensor]]:
    """Run the graph over one stretch of time.

    Parameters
    ----------
    graph : Graph
        A built graph.
    external : mapping of str to Tensor (B, T, F_i)
        Data for each input node (nodes fed only by feedback may be absent).
    lengths : Tensor (B,) or None
        Valid lengths within this stretch.
    state : RunState
        States and delay buffers before the stretch.
    forced : mapping of str to Tensor (B, T, O), optional
        Outputs imposed on nodes (teacher forcing); those nodes are not run.
    collect : set of str
        Nodes whose inputs are returned.
    only : set of str, optional
        Run only these nodes; the set must be closed under ancestors. Default: all.
    offset : int
        Time step of the stretch's first step, for error messages (chunked fits).

    Returns
    -------
    outputs : dict of str to Tensor (B, T, O)
    state : RunState
        States and buffers after the stretch.
    inputs : dict of str to Tensor (B, T, F)
        Inputs of the nodes in ``collect``.

    Raises
    ------
    DataError
        When a node's output holds NaN or inf
        (:func:`~deepreservoir.constraints.check_finite`).
    """
    plan = plan_of(graph)
    forced = forced or {}
    run = _execute_steps if plan.stepwise else _execute_sequence
    result = run(graph, plan, external, lengths, state, forced, collect, only)
    check_finite(plan.nodes, result[0], offset, skip=forced)
    return result


def _execute_sequence(graph, plan, external, lengths, state, forced, collect, only):
    outputs: dict[str, Tensor] = {}
    collected: dict[str, Tensor] = {}
    new_nodes = dict(state.nodes)
    new_edges = dict(state.edges)
    for name in plan.order:
        if only is not None and name not in only:
            continue
        shifted = {}
        for edge in plan.sources[name]:
            if edge.delay > 0:
                key = (edge.source, edge.target)
                source_values = outputs[edge.source]
                shifted[key] = torch.cat([state.edges[key], source_values],
                                         dim=1)[:, :source_values.shape[1]]
                new_edges[key] = _push(state.edges[key], source_values, lengths)
        x = _gather(plan, name, external, outputs, shifted)
        if name in collect:
            collected[name] = x
        if name in forced:
            outputs[name] = forced[name]
            continue
        y, node_state = plan.nodes[name].forward_sequence(x, state.nodes[name], lengths)
        outputs[name] = y
        new_nodes[name] = node_state
    return outputs, RunState(state.batch, new_nodes, new_edges), collected


def step_once(graph: Graph, plan: Plan, external: Mapping[str, Tensor],
              node_states: dict[str, Any], buffers: dict[tuple[str, str], Tensor],
              forced: Mapping[str, Tensor] | None = None, keep: Tensor | None = None,
              collect: Mapping[str, list] | None = None, only: set[str] | None = None,
              learning: Mapping[str, Tensor | None] | None = None,
              learners: dict[str, Any] | None = None,
              teacher: Mapping[str, Tensor] | None = None,
              predictions: dict[str, Tensor] | None = None,
              check: bool = True) -> dict[str, Tensor]:
    """Advance every node by one step, updating ``node_states`` and ``buffers`` in the dicts.

    ``external`` and ``forced`` hold (B, F) values for this step; ``keep`` (B,) marks
    the series still running (ragged batches). Nodes named in ``learning`` are
    online learners (:class:`~deepreservoir.kinds.Online`): they predict and then
    learn from their target of this step (``None``: predict only), updating
    ``learners`` (their learner states) in place; their prediction is what
    downstream and fed-back edges receive, unless ``teacher`` gives a value for
    them (teacher forcing: the target goes on instead). ``predictions``, when
    given, receives each learner's own prediction.

    With ``check`` (the default: one ``step()``), the model's outputs are checked
    for NaN and inf, and on a failure every node's, to name the first
    (:func:`~deepreservoir.constraints.check_finite`); loops over many steps pass
    ``check=False`` and check what they collected once, after the loop.
    """
    delayed = {key: buffer[:, 0] for key, buffer in buffers.items()} if buffers else buffers
    outputs: dict[str, Tensor] = {}
    replaced: dict[str, Tensor] = {}  # learners' own predictions where a target went on
    for name in plan.order:
        if only is not None and name not in only:
            continue
        x = _gather(plan, name, external, outputs, delayed)
        if collect is not None and name in collect:
            collect[name].append(x)
        if forced is not None and name in forced:
            outputs[name] = forced[name]
            continue
        if learning is not None and name in learning:
            outputs[name], learners[name] = plan.nodes[name].learning_step(
                x, learning[name], learners[name])
            if predictions is not None:
                predictions[name] = outputs[name]
            if teacher is not None and name in teacher:
                replaced[name] = outputs[name]
                outputs[name] = teacher[name]
            continue
        previous = node_states[name]
        y, new_state = plan.nodes[name].forward_step(x, previous)
        if new_state is not None and keep is not None:
            new_state = torch.where(keep.unsqueeze(-1), new_state, previous)
        node_states[name] = new_state
        outputs[name] = y
    if check and finite_check_enabled():
        _check_step(plan, {**outputs, **replaced} if replaced else outputs, forced or ())
    for key, buffer in buffers.items():
        incoming = outputs[key[0]].unsqueeze(1)
        pushed = incoming if buffer.shape[1] == 1 else torch.cat([buffer[:, 1:], incoming], 1)
        if keep is not None:
            pushed = torch.where(keep[:, None, None], pushed, buffer)
        buffers[key] = pushed
    return outputs


def _check_step(plan: Plan, outputs: Mapping[str, Tensor], skip) -> None:
    """The outputs (B, O) of one step: the model's outputs by one sum each, all on a failure."""
    watched = [n for n in plan.outputs if n in outputs and n not in skip] or [
        n for n in outputs if n not in skip]
    if not all(all_finite(outputs[name]) for name in watched):
        check_finite(plan.nodes, outputs, None, skip)


def _execute_steps(graph, plan, external, lengths, state, forced, collect, only):
    steps = next(iter(external.values())).shape[1] if external else int(
        next(iter(forced.values())).shape[1])
    node_states = dict(state.nodes)
    buffers = {key: buffer for key, buffer in state.edges.items()
               if only is None or key[0] in only}
    names = [n for n in plan.order if only is None or n in only]
    history: dict[str, list[Tensor]] = {name: [] for name in names}
    seen: dict[str, list[Tensor]] = {name: [] for name in collect}
    valid = None
    if lengths is not None:
        device = next(iter({**external, **forced}.values())).device
        time = torch.arange(steps, device=device)
        valid = time[None, :] < lengths.to(device)[:, None]
    for t in range(steps):
        step_external = {name: values[:, t] for name, values in external.items()}
        step_forced = {name: values[:, t] for name, values in forced.items()}
        keep = None if valid is None else valid[:, t]
        outputs = step_once(graph, plan, step_external, node_states, buffers, step_forced,
                            keep, seen, only, check=False)  # execute checks them all once
        for name in names:
            history[name].append(outputs[name])
    outputs = {name: torch.stack(values, dim=1) for name, values in history.items()}
    collected = {name: torch.stack(values, dim=1) for name, values in seen.items()}
    edges = {**state.edges, **buffers}
    return outputs, RunState(state.batch, node_states, edges), collected


def restore_outputs(graph: Graph, reference: SequenceBatch, outputs: Mapping[str, Tensor]):
    """The output(s) in the layout and type of the input: one array, or a dict by name."""
    names = plan_of(graph).outputs
    if len(names) == 1:
        return reference.restore(outputs[names[0]])
    return {name: reference.restore(outputs[name]) for name in names}


def step_inputs(graph: Graph, x: Any, dtype, device, features: Mapping[str, int | None]
                | None = None) -> tuple[dict[str, Tensor], bool, str]:
    """Normalise the data of one step: an array, a dict by input name, or ``None``.

    ``features`` (input name → expected external features) saves recomputing them.
    """
    plan = plan_of(graph)
    if features is None:
        features = {name: external_features(graph, name) for name in plan.inputs}
    if x is None:
        fed = [n for n in plan.inputs if features[n] != 0]
        if fed:
            raise DataError(
                f"step(None) runs with no external input, but input node(s) {fed} take "
                f"external data; pass step(x).")
        return {}, False, "numpy"
    if isinstance(x, Mapping):
        unknown = set(x) - set(plan.inputs)
        if unknown:
            raise DataError(
                f"The 'x' dict of step must be keyed by input node names {list(plan.inputs)}. "
                f"Got keys {sorted(x)}.")
        external, single, backend = {}, True, "numpy"
        for name, value in x.items():
            external[name], single, backend = as_step(
                value, name=f"x[{name!r}]", dtype=dtype, device=device,
                features=features[name])
        return external, single, backend
    external = {}
    values, single, backend = as_step(x, dtype=dtype, device=device)
    for name in plan.inputs:
        expected = features[name]
        if expected is not None and values.shape[-1] != expected:
            raise DataError(
                f"The 'x' argument of step must have {expected} features for input node "
                f"'{name}'. Got {values.shape[-1]}.")
        external[name] = values
    return external, single, backend
