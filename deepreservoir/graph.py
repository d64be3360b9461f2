"""Model: a graph of nodes, composed with ``>>``, ``<<`` and ``&``.

Semantics follow reservoirpy 0.4:

* ``a >> b`` feeds a's output into b at the same time step (delay 0);
  a list on either side fans in (features concatenated in list order) or out.
* ``a >> k >> b`` with an int ``k`` feeds a's output from ``k`` steps earlier.
* ``a << b`` feeds b's previous output back into a (delay 1, a feedback edge).
* ``a & b`` merges two graphs; shared nodes are the same object.

A model's *inputs* are the nodes with no incoming forward edge (feedback edges
do not count); its *outputs* are the nodes with no outgoing forward edge.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import torch

from deepreservoir.errors import GraphError, format_value
from deepreservoir.nodes.base import Node
from deepreservoir.seeding import SeedKey

__all__ = ["Model", "connect", "feedback", "merge"]

_EDGE_COUNTER = itertools.count()


@dataclass(frozen=True)
class Edge:
    """A connection ``source → target`` with a delay in steps."""

    source: str
    target: str
    delay: int
    feedback: bool
    order: int


class _DelayedOutputs:
    """The left side of ``a >> k >> b``: a model whose outputs wait k steps."""

    def __init__(self, model: Model, delay: int) -> None:
        self.model = model
        self.delay = delay

    def __rshift__(self, other: Any) -> Model:
        return connect(self.model, other, delay=self.delay)


class Model(torch.nn.Module):
    """A directed graph of nodes with one torch executor.

    Build models with the operators rather than by hand:
    ``Reservoir(300, seed=1) >> Ridge(1e-6)``. ``Model`` is a ``torch.nn.Module``:
    ``.to(device)``, ``.double()``, ``parameters()`` and ``state_dict()`` behave as
    in torch, and only trainable tensors are parameters.

    Parameters
    ----------
    nodes : iterable of Node
    edges : iterable of Edge
    seed : int
        Root seed for nodes that have no seed of their own and no seeded parent.
    """

    def __init__(self, nodes: Iterable[Node] = (), edges: Iterable[Edge] = (),
                 seed: int = 0) -> None:
        super().__init__()
        self.nodes = torch.nn.ModuleDict()
        self.graph = nx.DiGraph()
        self.seed = seed
        self._state: dict | None = None
        # Orderings and key derivations depend only on the graph's structure; they
        # are memoized here and dropped whenever a node or an edge is added.
        self._structure_cache: dict = {}
        for node in nodes:
            self._add_node(node)
        for edge in edges:
            self._add_edge(edge)
        self._check_delay_zero_cycles()

    # ------------------------------------------------------------ construction
    @classmethod
    def from_node(cls, node: Node) -> Model:
        """A model holding a single node."""
        return cls([node])

    def _add_node(self, node: Node) -> None:
        if not isinstance(node, Node):
            raise GraphError(f"Models are made of nodes. Got {format_value(node)}.")
        existing = self.nodes[node.name] if node.name in self.nodes else None
        if existing is None:
            self.nodes[node.name] = node
            self.graph.add_node(node.name, index=len(self.graph))
            self._structure_cache.clear()
        elif existing is not node:
            raise GraphError(
                f"Two different nodes are named '{node.name}'; node names must be unique "
                f"within a model."
            )

    def _add_edge(self, edge: Edge) -> None:
        if self.graph.has_edge(edge.source, edge.target):
            current = self.graph.edges[edge.source, edge.target]["edge"]
            if (current.delay, current.feedback) != (edge.delay, edge.feedback):
                raise GraphError(
                    f"Nodes '{edge.source}' and '{edge.target}' are already connected with "
                    f"delay {current.delay}; cannot connect them again with delay {edge.delay}."
                )
            return
        self.graph.add_edge(edge.source, edge.target, edge=edge)
        self._structure_cache.clear()

    def _memo(self, key: Any, compute):
        cache = self._structure_cache
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def _check_delay_zero_cycles(self) -> None:
        instant = nx.DiGraph()
        instant.add_nodes_from(self.graph.nodes)
        instant.add_edges_from((u, v) for u, v, d in self.graph.edges(data="edge")
                               if d.delay == 0)
        try:
            cycle = nx.find_cycle(instant)
        except nx.NetworkXNoCycle:
            return
        names = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
        raise GraphError(
            f"The graph has a cycle with no delay: {names}. Close loops with feedback "
            f"(a << b) or a delayed edge (a >> 1 >> b)."
        )

    @property
    def edges(self) -> list[Edge]:
        """All edges, in the order they were made."""
        return sorted((d for _, _, d in self.graph.edges(data="edge")), key=lambda e: e.order)

    def in_edges(self, name: str) -> list[Edge]:
        """Edges into a node, in the order their features are concatenated."""
        return list(self._memo(("in_edges", name), lambda: sorted(
            (d for _, _, d in self.graph.in_edges(name, data="edge")), key=lambda e: e.order)))

    @property
    def input_names(self) -> list[str]:
        """Nodes fed by external data: those without an incoming forward edge."""
        return list(self._memo("input_names", lambda: [
            n for n in self._by_index() if not any(not e.feedback for e in self.in_edges(n))]))

    @property
    def output_names(self) -> list[str]:
        """Nodes whose outputs the model returns: those without an outgoing forward edge."""
        return list(self._memo("output_names", lambda: [
            n for n in self._by_index()
            if not any(not d.feedback for _, _, d in self.graph.out_edges(n, data="edge"))]))

    def _by_index(self) -> list[str]:
        return sorted(self.graph.nodes, key=lambda n: self.graph.nodes[n]["index"])

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        if name not in self.nodes:
            raise GraphError(
                f"No node named {name!r} in this model; it has {', '.join(self._by_index())}."
            )
        return self.nodes[name]

    # ---------------------------------------------------------------- ordering
    def execution_order(self) -> list[str]:
        """Nodes in the order one time step evaluates them (delay-0 topological sort)."""
        return list(self._memo("execution_order", self._compute_execution_order))

    def _compute_execution_order(self) -> list[str]:
        instant = nx.DiGraph()
        instant.add_nodes_from(self.graph.nodes)
        instant.add_edges_from((u, v) for u, v, d in self.graph.edges(data="edge")
                               if d.delay == 0)
        index = nx.get_node_attributes(self.graph, "index")
        return list(nx.lexicographical_topological_sort(instant, key=index.__getitem__))

    def is_acyclic(self) -> bool:
        """Whether the graph, delayed edges included, has no cycle."""
        return self._memo("is_acyclic", lambda: nx.is_directed_acyclic_graph(self.graph))

    def sequence_order(self) -> list[str]:
        """Topological order over all edges; valid only for acyclic graphs."""
        return list(self._memo("sequence_order", self._compute_sequence_order))

    def _compute_sequence_order(self) -> list[str]:
        index = nx.get_node_attributes(self.graph, "index")
        return list(nx.lexicographical_topological_sort(self.graph, key=index.__getitem__))

    # ----------------------------------------------------------------- seeding
    def seed_keys(self) -> dict[str, SeedKey]:
        """The seeding key of every node (see docs/seeding.md).

        A node with ``seed=s`` is the root ``SeedKey(s, "")``. Otherwise it hangs
        below its first forward parent, labelled by its name if given, else by its
        type and its position among that parent's children. A node with neither a
        seed nor a parent hangs below the model seed.
        """
        # Seeds and names of nodes can change after construction (``reseed``).
        identity = tuple((name, node.seed, node.user_name) for name, node in self.nodes.items())
        return dict(self._memo(("seed_keys", identity), self._compute_seed_keys))

    def _compute_seed_keys(self) -> dict[str, SeedKey]:
        keys: dict[str, SeedKey] = {}
        order = self.sequence_order() if self.is_acyclic() else self._forward_order()
        roots = 0
        for name in order:
            node = self.nodes[name]
            label = node.user_name
            if node.seed is not None:
                keys[name] = SeedKey(int(node.seed), "")
                continue
            parents = [e for e in self.in_edges(name) if not e.feedback]
            if not parents:
                label = label or f"{type(node).__name__}{roots}"
                roots += 1
                keys[name] = SeedKey(int(self.seed), label)
                continue
            parent = parents[0].source
            if label is None:
                siblings = sorted((d for _, _, d in self.graph.out_edges(parent, data="edge")
                                   if not d.feedback), key=lambda e: e.order)
                position = [e.target for e in siblings].index(name)
                label = f"{type(node).__name__}{position}"
            keys[name] = keys[parent].child(label)
        return keys

    def _forward_order(self) -> list[str]:
        return list(self._memo("forward_order", self._compute_forward_order))

    def _compute_forward_order(self) -> list[str]:
        forward = nx.DiGraph()
        forward.add_nodes_from(self.graph.nodes)
        forward.add_edges_from((u, v) for u, v, d in self.graph.edges(data="edge")
                               if not d.feedback)
        index = nx.get_node_attributes(self.graph, "index")
        try:
            return list(nx.lexicographical_topological_sort(forward, key=index.__getitem__))
        except nx.NetworkXUnfeasible:
            return self.execution_order()

    # -------------------------------------------------------------- operators
    def __rshift__(self, other: Any):
        if isinstance(other, int) and not isinstance(other, bool):
            if other < 0:
                raise GraphError(f"A delay must be an int >= 0. Got {other}.")
            return _DelayedOutputs(self, other)
        return connect(self, other)

    def __rrshift__(self, other: Any) -> Model:
        return connect(other, self)

    def __lshift__(self, other: Any) -> Model:
        return feedback(self, other)

    def __rlshift__(self, other: Any) -> Model:
        return feedback(other, self)

    def __and__(self, other: Any) -> Model:
        return merge(self, other)

    def __rand__(self, other: Any) -> Model:
        return merge(other, self)

    # ---------------------------------------------------------------- running
    def _build_for(self, input_features: dict[str, int], target_dims: dict[str, int]) -> None:
        from deepreservoir.executor import build_model
        build_model(self, input_features, target_dims)

    def reset(self) -> None:
        """Forget the states and delay buffers kept between calls."""
        self._state = None

    def run(self, X: Any, *, reset: bool = False):
        """Run the model over data and return the outputs.

        Parameters
        ----------
        X : ndarray, Tensor, list of arrays, or dict
            ``(T, F)``, ``(B, T, F)`` or a list of ``(T_i, F)``; a dict maps input
            node names to such data when the model has several inputs.
        reset : bool
            Start from zero states instead of the states left by the last call.

        Returns
        -------
        The output in the input's layout and type; a dict by node name when the
        model has several outputs.
        """
        from deepreservoir.executor import run_model
        return run_model(self, X, reset=reset)

    def states(self, X: Any, *, nodes: Any = None, reset: bool = False,
               inputs: bool = False) -> dict:
        """Run the model over data and return the output of every node, by name.

        The same executor as :meth:`run` computes the values, so the entry of an
        output node equals what :meth:`run` returns for the same call.

        Parameters
        ----------
        X : data as in :meth:`run`
        nodes : str or list of str, optional
            Return only these nodes. Then only they and their ancestors run
            (nodes downstream, e.g. an unfitted Ridge, are not needed) and the
            states kept between calls are left unchanged.
        reset : bool
            Start from zero states instead of the states left by the last call.
        inputs : bool
            Return what each node receives (its inputs concatenated in edge
            order, delayed edges shifted) instead of its output.

        Returns
        -------
        dict
            Node name → values of shape (T, O) / (B, T, O) / list of (T_i, O),
            in the layout and type of ``X`` as for :meth:`run`; keys in
            topological order. With ``nodes=None`` the kept states advance as
            after :meth:`run`.

        Examples
        --------
        >>> import numpy as np
        >>> import deepreservoir as dr
        >>> model = dr.Reservoir(10, seed=0, name="res") >> dr.Tanh(name="act")
        >>> {name: out.shape for name, out in model.states(np.ones((4, 2))).items()}
        {'res': (4, 10), 'act': (4, 10)}
        """
        from deepreservoir.executor import states_model
        return states_model(self, X, nodes=nodes, reset=reset, inputs=inputs)

    def step(self, x: Any):
        """Advance one time step: ``x`` of shape (F,) or (B, F); keeps the state."""
        from deepreservoir.executor import step_model
        return step_model(self, x)

    def fit(self, X: Any, Y: Any = None, *, warmup: int = 0, reset: bool = True,
            chunk_size: int | None = None, **training: Any):
        """Fit the model: closed form (Ridge) and, if it has parameters, by gradients.

        A model with gradient-trainable parameters (adapters, gates, heads, e.g.
        :class:`~deepreservoir.Scaffold`, :class:`~deepreservoir.LoRAReadout`,
        ``Reservoir(r=k)``) is trained by :func:`deepreservoir.training.fit`, which
        takes ``epochs``, ``batch_size``, ``lr``, ``loss``, ... as keywords and
        returns the history (an ``xarray.Dataset``). The order for a model with
        both kinds of node is documented there: Ridge nodes are solved first,
        then the parameters are trained through them, then the Ridge nodes are
        solved again on the trained features.

        Otherwise (only closed-form nodes) it fits by streaming ridge regression:
        the model runs over ``X`` once; each Ridge node accumulates ``XᵀX`` and
        ``XᵀY`` from its inputs after the first ``warmup`` steps of every series,
        then solves. Outputs of the nodes being fitted are replaced by their
        targets (teacher forcing), on feedback and forward edges alike.

        Parameters
        ----------
        X : data as in :meth:`run`
        Y : data with the same layout and lengths, or a dict by trainable node name
        warmup : int >= 0
            Steps discarded at the start of every series.
        reset : bool
            Start from zero states (default) instead of the states left by the last call.
        chunk_size : int, optional
            Process time in chunks of this many steps to bound memory.

        Returns
        -------
        self for closed-form fitting; the training history (``xarray.Dataset``)
        for gradient training.
        """
        from deepreservoir import training as _training
        if training or _training.has_gradient_nodes(self):
            return _training.fit(self, X, Y, warmup=warmup, chunk_size=chunk_size, **training)
        from deepreservoir.executor import fit_model
        fit_model(self, X, Y, warmup=warmup, reset=reset, chunk_size=chunk_size)
        return self

    # ------------------------------------------------------ LottaLoRA helpers
    def save(self, path: Any, *, overwrite: bool = True) -> Any:
        """Save the model as a JSON spec plus safetensors; see :func:`deepreservoir.io.save`."""
        from deepreservoir.io import save
        return save(self, path, overwrite=overwrite)

    def footprint(self, path: Any = None):
        """Trainable, frozen and stored counts; see :func:`deepreservoir.footprint.footprint`."""
        from deepreservoir.footprint import footprint
        return footprint(self, path)

    def reseed(self, seed: int | None) -> Model:
        """Regenerate every scaffold from root seed ``seed`` (``None``: the built seeds).

        Adapters, gates and heads are kept; see :meth:`deepreservoir.Scaffold.reseed`.
        """
        for node in self.nodes.values():
            if hasattr(node, "reseed"):
                node.reseed(seed)
        return self

    def remove_scaffold(self) -> Model:
        """Drop ``β·W_seed`` from every adapted layer (the "scaffold removed" ablation)."""
        for node in self.nodes.values():
            if hasattr(node, "remove_scaffold"):
                node.remove_scaffold()
        return self

    def restore_scaffold(self) -> Model:
        """Undo :meth:`remove_scaffold`."""
        for node in self.nodes.values():
            if hasattr(node, "restore_scaffold"):
                node.restore_scaffold()
        return self

    def alpha_convention(self) -> dict[str, str]:
        """The LoRA α convention of every adapted node, e.g. ``{"layer0": "α/r = 8/8 = 1"}``."""
        return {name: node.alpha_convention() for name, node in self.nodes.items()
                if hasattr(node, "alpha_convention")}

    def forward(self, x: torch.Tensor):
        """Differentiable pass over ``x`` (B, T, F) from zero states; returns a tensor.

        With several outputs, returns a dict of tensors by node name.
        """
        from deepreservoir.executor import forward_model
        return forward_model(self, x)

    def extra_repr(self) -> str:
        links = ", ".join(
            f"{e.source}{' >> ' + str(e.delay) if e.delay and not e.feedback else ''}"
            f"{' <<fb ' if e.feedback else ' >> '}{e.target}" for e in self.edges)
        return f"edges=[{links}]"


def _as_model(value: Any, side: str) -> Model:
    if isinstance(value, Model):
        return value
    if isinstance(value, Node):
        return Model.from_node(value)
    if isinstance(value, (list, tuple)):
        if not value:
            raise GraphError(f"The {side} operand is an empty list; it needs nodes or models.")
        return merge(*value)
    raise GraphError(
        f"The {side} operand of a model operator must be a Node, a Model or a list of them. "
        f"Got {format_value(value)}."
    )


def _combined(models: Sequence[Model], extra: Iterable[Edge] = ()) -> Model:
    nodes: list[Node] = []
    edges: list[Edge] = []
    seed = 0
    for model in models:
        nodes.extend(model.nodes[n] for n in model._by_index())
        edges.extend(model.edges)
        seed = seed or model.seed
    return Model(nodes, [*edges, *extra], seed=seed)


def merge(*operands: Any) -> Model:
    """Union of several graphs (``a & b``)."""
    models = [_as_model(m, "merge") for m in operands]
    return _combined(models)


def connect(left: Any, right: Any, delay: int = 0) -> Model:
    """``left >> right``: every output of left feeds every input of right."""
    if isinstance(right, int) and not isinstance(right, bool):
        return _as_model(left, "left") >> right
    source = _as_model(left, "left")
    target = _as_model(right, "right")
    _combined([source, target])  # name clashes are reported before loops
    links = [Edge(o, i, delay, False, next(_EDGE_COUNTER))
             for i in target.input_names for o in source.output_names]
    for link in links:
        if link.source == link.target:
            raise GraphError(
                f"Connecting '{link.source}' to itself with delay {delay} makes a loop; "
                f"use feedback (node << node) for a self-loop."
            )
    return _combined([source, target], links)


def feedback(receiver: Any, sender: Any, delay: int = 1) -> Model:
    """``receiver << sender``: sender's output of the previous step feeds receiver."""
    target = _as_model(receiver, "left")
    source = _as_model(sender, "right")
    links = [Edge(o, i, delay, True, next(_EDGE_COUNTER))
             for i in target.input_names for o in source.output_names]
    return _combined([target, source], links)
