"""Unsupervised adaptation: nodes that learn from their inputs alone, before the rest trains.

Every :class:`~deepreservoir.kinds.Unsupervised` node of a model (e.g.
intrinsic plasticity) adapts, in dataflow order, to what it receives from the
nodes upstream, which are already adapted. Its input sequence is computed by
the executor: the node's ancestors run over the data (from zero states, or from
the states kept from the last call with ``reset=False``), and what the node
receives is collected without running the node itself or anything downstream.
A node that feeds back into itself (its input depends on its own output)
cannot be adapted this way and is refused.

The node's :meth:`~deepreservoir.kinds.Unsupervised.adapt` decides how it
learns (intrinsic plasticity: sequentially, series after series, with the
first ``warmup`` steps of each left out). Afterwards the model's kept state is
cleared, so the next call starts from zero states.
"""

from __future__ import annotations

from typing import Any

import torch

from deepreservoir.errors import DataError, GraphError, ParameterError, format_value
from deepreservoir.executor import execute, kept_state, prepare, require_fitted
from deepreservoir.kinds import Unsupervised
from deepreservoir.threads import thread_scope

__all__ = ["fit_unsupervised", "unsupervised_nodes"]


def unsupervised_nodes(model) -> list[str]:
    """Names of the model's unsupervised nodes, in dataflow order."""
    return [name for name in model.dataflow_order()
            if isinstance(model.nodes[name], Unsupervised)]


def _check_options(warmup: Any, reset: Any) -> None:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ParameterError(
            f"The 'warmup' parameter of fit must be an int >= 0. Got {format_value(warmup)}.")
    if not isinstance(reset, bool):
        raise ParameterError(
            f"The 'reset' parameter of fit must be a bool. Got {format_value(reset)}.")


def _upstream(model, names: list[str]) -> dict[str, set[str]]:
    """Each node's ancestors; refuses a node that lies on a cycle (it feeds back into itself)."""
    import networkx as nx

    graph = model.graph
    ancestors = {}
    for name in names:
        if any(nx.has_path(graph, successor, name) for successor in graph.successors(name)):
            raise GraphError(
                f"Node '{name}' ({type(model.nodes[name]).__name__}) cannot adapt without "
                f"targets: its input depends on its own output through feedback or a delay. "
                f"Adapt it in a model without that loop, then connect it.")
        ancestors[name] = set(nx.ancestors(graph, name))
    return ancestors


def fit_unsupervised(model, X: Any, *, warmup: int = 0, reset: bool = True) -> dict[str, dict]:
    """Adapt every unsupervised node of ``model`` to ``X``; see the module docstring.

    Parameters
    ----------
    model : Model
    X : data as in :meth:`~deepreservoir.Model.run`
        ``(T, F)``, ``(B, T, F)``, a ragged list, or a dict by input node.
    warmup : int
        Steps at the start of every series that are not learned from.
    reset : bool
        Run the upstream nodes from zero states (default), or from the states
        kept from the last call.

    Returns
    -------
    dict
        Node name → ``{"samples": n}``, ``n`` the time steps (summed over the
        series, after warmup) each node learned from in one pass.

    Raises
    ------
    DataError
        Bad data, or ``warmup`` leaving no step.
    GraphError
        An unsupervised node that feeds back into itself.
    NotFittedError
        An upstream closed-form node that is not fitted yet.
    """
    _check_options(warmup, reset)
    names = unsupervised_nodes(model)
    if not names:
        return {}
    ancestors = _upstream(model, names)
    needed = set(names).union(*ancestors.values())
    batches, reference = prepare(model, X, only=needed)
    require_fitted(model, include=needed - set(names))
    lengths = reference.lengths
    sizes = (lengths.tolist() if lengths is not None
             else [reference.steps] * reference.batch_size)
    samples = int(sum(max(int(n) - warmup, 0) for n in sizes))
    if samples == 0:
        raise DataError(
            f"The 'warmup' parameter ({warmup}) leaves no step to adapt on: the series have "
            f"{sorted({int(n) for n in sizes})} steps.")
    external = {n: b.values for n, b in batches.items()}
    summary = {}
    with torch.no_grad(), thread_scope(model, reference.batch_size):
        for name in names:
            node = model.nodes[name]
            # The node is forced (not run): only what it receives is wanted.
            forced = {name: reference.values.new_zeros(()).expand(
                reference.batch_size, reference.steps, int(node.output_dim))}
            state = kept_state(model, reference.batch_size, reset)
            _, _, received = execute(model, external, lengths, state, forced, {name},
                                     only=ancestors[name] | {name})
            node.adapt(received[name], lengths, warmup)
            summary[name] = {"samples": samples}
    model._state = None
    return summary
