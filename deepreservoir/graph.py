"""The structure of a model: nodes, edges with delays, orders and seed keys.

Semantics follow reservoirpy 0.4:

* ``a >> b`` feeds a's output into b at the same time step (delay 0);
  a list on either side fans in (features concatenated in list order) or out.
  Each element of a list counts on its own: in ``[a >> b, a] >> c``, ``c``
  receives ``b``'s and ``a``'s outputs, in that order.
* ``a >> k >> b`` with an int ``k`` feeds a's output from ``k`` steps earlier.
* ``a << b`` feeds b's previous output back into a (delay 1, a feedback edge).
* ``a & b`` merges two graphs; shared nodes are the same object.

A graph's *inputs* are the nodes with no incoming forward edge (feedback edges
do not count); its *outputs* are the nodes with no outgoing forward edge.

A :class:`Graph` is immutable once made: operators build new graphs. Orders and
seed keys depend only on the structure and are computed once. ``networkx`` is
imported on first use, so ``import deepreservoir`` stays cheap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from deepreservoir.errors import GraphError, format_value
from deepreservoir.kinds import Stateful
from deepreservoir.nodes.base import Node
from deepreservoir.seeding import SeedKey

__all__ = ["Edge", "Graph", "Link"]


def __getattr__(name: str):
    # ``from deepreservoir.graph import Model`` kept working after Model moved to
    # deepreservoir.model; the class is looked up, not imported (layer map).
    if name == "Model":
        from deepreservoir.composition import model_class

        return model_class()
    raise AttributeError(f"module 'deepreservoir.graph' has no attribute {name!r}")


@dataclass(frozen=True)
class Link:
    """A connection between two node objects, with a delay in steps."""

    source: Node
    target: Node
    delay: int
    feedback: bool


@dataclass(frozen=True)
class Edge:
    """A connection ``source → target`` between node names in one graph.

    ``order`` is the position of the edge in the graph: inputs of a node are
    concatenated in this order.
    """

    source: str
    target: str
    delay: int
    feedback: bool
    order: int


def _checked_delay(delay: int) -> int:
    if delay < 0:
        raise GraphError(f"A delay must be an int >= 0. Got {delay}.")
    return delay


def _refuse_repeats(nodes: list[Node], side: str) -> None:
    """A node listed twice on one side of ``>>`` would be one edge counted twice."""
    seen: set[int] = set()
    for node in nodes:
        if id(node) in seen:
            raise GraphError(
                f"Node '{node.name}' appears twice on the {side} of '>>' (in a list, or as "
                f"the output of two elements): one connection cannot carry it twice. List it "
                f"once.")
        seen.add(id(node))


class _DelayedOutputs:
    """The left side of ``a >> k >> b``: a graph whose outputs wait k steps."""

    def __init__(self, graph: Graph, delay: int) -> None:
        self.graph = graph
        self.delay = _checked_delay(delay)

    def __rshift__(self, other: Any) -> Graph:
        if isinstance(other, _DelayedInputs):
            raise GraphError(
                f"'a >> {self.delay} >> ({other.delay} >> b)' gives two delays for one "
                f"connection; write one.")
        return type(self.graph).connect(self.graph, other, delay=self.delay)


class _DelayedInputs:
    """``k >> b`` (reservoirpy's form): a graph whose inputs will receive data k steps late.

    ``a >> (k >> b)`` connects ``a`` to ``b`` with delay k, and ``(k >> b) >> c``
    stays delayed on ``b``'s side until a left operand arrives.
    """

    def __init__(self, graph: Graph, delay: int) -> None:
        self.graph = graph
        self.delay = _checked_delay(delay)

    def __rrshift__(self, other: Any) -> Graph:
        return type(self.graph).connect(other, self.graph, delay=self.delay)

    def __rshift__(self, other: Any) -> _DelayedInputs:
        return _DelayedInputs(type(self.graph).connect(self.graph, other), self.delay)


def _assign_names(nodes: list[Node]) -> list[str]:
    """Names by place: the user's name, else ``<Class>-<k>`` for the k-th unnamed node."""
    taken = {node.user_name for node in nodes if node.user_name is not None}
    counters: dict[str, int] = defaultdict(int)
    names = []
    for node in nodes:
        if node.user_name is not None:
            names.append(node.user_name)
            continue
        kind = type(node).__name__
        while True:
            candidate = f"{kind}-{counters[kind]}"
            counters[kind] += 1
            if candidate not in taken:
                break
        names.append(candidate)
    return names


class Graph(torch.nn.Module):
    """A directed graph of nodes whose edges carry delays.

    Parameters
    ----------
    nodes : iterable of Node
        In composition order (it sets default names and seed-key labels).
    links : iterable of Link
        In order; a node's inputs are concatenated in link order.
    seed : int
        Root seed for nodes that have no seed of their own and no seeded parent.
    """

    def __init__(self, nodes: Iterable[Node] = (), links: Iterable[Link] = (),
                 seed: int = 0) -> None:
        super().__init__()
        ordered: list[Node] = []
        seen: set[int] = set()
        for node in nodes:
            if not isinstance(node, Node):
                raise GraphError(f"Models are made of nodes. Got {format_value(node)}.")
            if id(node) not in seen:
                seen.add(id(node))
                ordered.append(node)
        names = _assign_names(ordered)
        if len(set(names)) != len(names):
            duplicate = next(n for n in names if names.count(n) > 1)
            raise GraphError(
                f"Two different nodes are named '{duplicate}'; node names must be unique "
                f"within a model.")
        self.nodes = torch.nn.ModuleDict()
        for node, name in zip(ordered, names, strict=True):
            if node.user_name is None:
                node._graph_name = name
            self.nodes[name] = node
        name_of = {id(node): name for node, name in zip(ordered, names, strict=True)}
        edges: list[Edge] = []
        pairs: dict[tuple[str, str], Edge] = {}
        for link in links:
            if id(link.source) not in name_of or id(link.target) not in name_of:
                raise GraphError("A link refers to a node outside the graph.")
            edge = Edge(name_of[id(link.source)], name_of[id(link.target)], int(link.delay),
                        bool(link.feedback), len(edges))
            current = pairs.get((edge.source, edge.target))
            if current is not None:
                if (current.delay, current.feedback) != (edge.delay, edge.feedback):
                    raise GraphError(
                        f"Nodes '{edge.source}' and '{edge.target}' are already connected "
                        f"with delay {current.delay}; cannot connect them again with delay "
                        f"{edge.delay}.")
                continue
            pairs[(edge.source, edge.target)] = edge
            edges.append(edge)
        self._edges = tuple(edges)
        self.seed = int(seed)
        self._memo_store: dict = {}
        self._check_delay_zero_cycles()

    # ------------------------------------------------------------ construction
    @classmethod
    def from_node(cls, node: Node) -> Graph:
        """A graph holding a single node."""
        return cls([node])

    @classmethod
    def _parts(cls, value: Any, side: str) -> list[Graph]:
        """The operands of an operator: each element of a list on its own."""
        if isinstance(value, Graph):
            return [value]
        if isinstance(value, Node):
            return [cls.from_node(value)]
        if isinstance(value, (list, tuple)):
            if not value:
                raise GraphError(
                    f"The {side} operand is an empty list; it needs nodes or models.")
            parts: list[Graph] = []
            for item in value:
                parts.extend(cls._parts(item, side))
            return parts
        raise GraphError(
            f"The {side} operand of a model operator must be a Node, a Model or a list of "
            f"them. Got {format_value(value)}.")

    @classmethod
    def _combined(cls, graphs: list[Graph], extra: Iterable[Link] = ()) -> Graph:
        nodes: list[Node] = []
        links: list[Link] = []
        seed = 0
        for graph in graphs:
            nodes.extend(graph.nodes.values())
            links.extend(graph.links())
            seed = seed or graph.seed
        return cls(nodes, [*links, *extra], seed=seed)

    @classmethod
    def merge(cls, *operands: Any) -> Graph:
        """Union of several graphs (``a & b``)."""
        parts: list[Graph] = []
        for operand in operands:
            parts.extend(cls._parts(operand, "merge"))
        return cls._combined(parts)

    @classmethod
    def connect(cls, left: Any, right: Any, delay: int = 0) -> Any:
        """``left >> right``: every output of left feeds every input of right."""
        if isinstance(right, int) and not isinstance(right, bool):
            return cls._combined(cls._parts(left, "left")) >> right
        if isinstance(left, int) and not isinstance(left, bool):
            return _DelayedInputs(cls._combined(cls._parts(right, "right")), left)
        if isinstance(right, _DelayedInputs):
            return cls.connect(left, right.graph, delay + right.delay)
        sources = cls._parts(left, "left")
        targets = cls._parts(right, "right")
        cls._combined([*sources, *targets])  # name clashes are reported before loops
        outputs = [node for part in sources for node in part.output_nodes()]
        inputs = [node for part in targets for node in part.input_nodes()]
        _refuse_repeats(outputs, "left")
        _refuse_repeats(inputs, "right")
        links = [Link(o, i, delay, False) for i in inputs for o in outputs]
        for link in links:
            if link.source is link.target:
                raise GraphError(
                    f"Connecting '{link.source.name}' to itself with delay {delay} makes a "
                    f"loop; use feedback (node << node) for a self-loop.")
        return cls._combined([*sources, *targets], links)

    @classmethod
    def feedback(cls, receiver: Any, sender: Any, delay: int = 1) -> Graph:
        """``receiver << sender``: sender's output of the previous step feeds receiver."""
        targets = cls._parts(receiver, "left")
        sources = cls._parts(sender, "right")
        outputs = [node for part in sources for node in part.output_nodes()]
        inputs = [node for part in targets for node in part.input_nodes()]
        links = [Link(o, i, delay, True) for i in inputs for o in outputs]
        return cls._combined([*targets, *sources], links)

    # ------------------------------------------------------------ structure
    def _memo(self, key: Any, compute):
        store = self._memo_store
        if key not in store:
            store[key] = compute()
        return store[key]

    def name_of(self, node: Node) -> str:
        """The name of a node (the object) in this graph."""
        for name, held in self.nodes.items():
            if held is node:
                return name
        raise GraphError(f"Node '{node.name}' is not in this model.")

    @property
    def edges(self) -> list[Edge]:
        """All edges, in order, between node names."""
        return list(self._edges)

    def links(self) -> list[Link]:
        """All edges, in order, between node objects."""
        return [Link(self.nodes[e.source], self.nodes[e.target], e.delay, e.feedback)
                for e in self._edges]

    @property
    def graph(self):
        """The structure as a ``networkx.DiGraph`` (edge attribute ``edge``: an :class:`Edge`)."""
        def build():
            import networkx as nx

            graph = nx.DiGraph()
            for index, name in enumerate(self.nodes):
                graph.add_node(name, index=index)
            for edge in self.edges:
                graph.add_edge(edge.source, edge.target, edge=edge)
            return graph
        return self._memo("networkx", build)

    def in_edges(self, name: str) -> list[Edge]:
        """Edges into a node, in the order their features are concatenated."""
        incoming = self._memo("in_edges", lambda: self._group_edges("target"))
        return list(incoming.get(name, ()))

    def out_edges(self, name: str) -> list[Edge]:
        """Edges out of a node, in order."""
        outgoing = self._memo("out_edges", lambda: self._group_edges("source"))
        return list(outgoing.get(name, ()))

    def _group_edges(self, end: str) -> dict[str, list[Edge]]:
        grouped: dict[str, list[Edge]] = defaultdict(list)
        for edge in self.edges:
            grouped[getattr(edge, end)].append(edge)
        return dict(grouped)

    @property
    def input_names(self) -> list[str]:
        """Nodes fed by external data: those without an incoming forward edge."""
        return list(self._memo("input_names", lambda: [
            n for n in self.nodes if not any(not e.feedback for e in self.in_edges(n))]))

    @property
    def output_names(self) -> list[str]:
        """Nodes whose outputs the model returns: those without an outgoing forward edge."""
        return list(self._memo("output_names", lambda: [
            n for n in self.nodes if not any(not e.feedback for e in self.out_edges(n))]))

    def input_nodes(self) -> list[Node]:
        """The input nodes, as objects."""
        return [self.nodes[n] for n in self.input_names]

    def output_nodes(self) -> list[Node]:
        """The output nodes, as objects."""
        return [self.nodes[n] for n in self.output_names]

    def node(self, name: str) -> Node:
        """The node called ``name``."""
        if name not in self.nodes:
            raise GraphError(
                f"No node named {name!r} in this model; it has {', '.join(self.nodes)}.")
        return self.nodes[name]

    def _by_index(self) -> list[str]:
        return list(self.nodes)

    # ---------------------------------------------------------------- ordering
    def _sorted(self, keep) -> list[str] | None:
        """Lexicographic topological order (by composition index) over the kept edges."""
        import networkx as nx

        subgraph = nx.DiGraph()
        subgraph.add_nodes_from(self.nodes)
        subgraph.add_edges_from((e.source, e.target) for e in self.edges if keep(e))
        index = {name: i for i, name in enumerate(self.nodes)}
        try:
            return list(nx.lexicographical_topological_sort(subgraph, key=index.__getitem__))
        except nx.NetworkXUnfeasible:
            return None

    def _check_delay_zero_cycles(self) -> None:
        if not any(e.delay == 0 for e in self.edges) or len(self.nodes) < 2:
            return
        import networkx as nx

        instant = nx.DiGraph()
        instant.add_nodes_from(self.nodes)
        instant.add_edges_from((e.source, e.target) for e in self.edges if e.delay == 0)
        try:
            cycle = nx.find_cycle(instant)
        except nx.NetworkXNoCycle:
            return
        names = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
        raise GraphError(
            f"The graph has a cycle with no delay: {names}. Close loops with feedback "
            f"(a << b) or a delayed edge (a >> 1 >> b).")

    def execution_order(self) -> list[str]:
        """Nodes in the order one time step evaluates them (delay-0 topological sort)."""
        return list(self._memo("execution_order",
                               lambda: self._sorted(lambda e: e.delay == 0)))

    def is_acyclic(self) -> bool:
        """Whether the graph, delayed edges included, has no cycle."""
        return self._memo("sequence_order", lambda: self._sorted(lambda e: True)) is not None

    def sequence_order(self) -> list[str]:
        """Topological order over all edges; valid only for acyclic graphs."""
        order = self._memo("sequence_order", lambda: self._sorted(lambda e: True))
        if order is None:
            raise GraphError("The graph has a cycle through delayed edges; it has no "
                             "sequence order.")
        return list(order)

    def forward_order(self) -> list[str]:
        """Topological order over forward (non-feedback) edges."""
        def compute():
            order = self._sorted(lambda e: not e.feedback)
            return order if order is not None else self.execution_order()
        return list(self._memo("forward_order", compute))

    def dataflow_order(self) -> list[str]:
        """The order to infer sizes and seeds in: all edges if acyclic, else forward edges."""
        return self.sequence_order() if self.is_acyclic() else self.forward_order()

    def has_time_structure(self) -> bool:
        """Whether outputs depend on earlier steps: a stateful node, a delay or feedback."""
        return bool(any(e.delay > 0 for e in self.edges)
                    or any(isinstance(node, Stateful) for node in self.nodes.values()))

    # ----------------------------------------------------------------- seeding
    def seed_keys(self) -> dict[str, SeedKey]:
        """The seeding key of every node (see docs/seeding.md).

        A node with ``seed=s`` is the root ``SeedKey(s, "")``. Otherwise it hangs
        below its first forward parent, labelled by its name if given, else by its
        type and its position among that parent's children. A node with neither a
        seed nor a parent hangs below the model seed.
        """
        identity = (self.seed, tuple((n.seed, n.user_name) for n in self.nodes.values()))
        return dict(self._memo(("seed_keys", identity), self._compute_seed_keys))

    def _compute_seed_keys(self) -> dict[str, SeedKey]:
        keys: dict[str, SeedKey] = {}
        roots = 0
        for name in self.dataflow_order():
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
                siblings = [e.target for e in self.out_edges(parent) if not e.feedback]
                label = f"{type(node).__name__}{siblings.index(name)}"
            keys[name] = keys[parent].child(label)
        return keys

    # -------------------------------------------------------------- operators
    def __rshift__(self, other: Any):
        if isinstance(other, int) and not isinstance(other, bool):
            return _DelayedOutputs(self, other)
        return type(self).connect(self, other)

    def __rrshift__(self, other: Any) -> Graph:
        return type(self).connect(other, self)

    def __lshift__(self, other: Any) -> Graph:
        return type(self).feedback(self, other)

    def __rlshift__(self, other: Any) -> Graph:
        return type(self).feedback(other, self)

    def __and__(self, other: Any) -> Graph:
        return type(self).merge(self, other)

    def __rand__(self, other: Any) -> Graph:
        return type(self).merge(other, self)

    def extra_repr(self) -> str:
        links = ", ".join(
            f"{e.source}{' >> ' + str(e.delay) if e.delay and not e.feedback else ''}"
            f"{' <<fb ' if e.feedback else ' >> '}{e.target}" for e in self.edges)
        return f"edges=[{links}]"
