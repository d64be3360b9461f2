"""A copy of a model with some nodes' hyperparameters changed: ``"node.parameter"`` keys.

Sweeps and searches address any hyperparameter of any node by the node's name
in the model (``model.nodes``) and the constructor argument, e.g.
``{"Reservoir-0.sr": 1.1, "Ridge-0.ridge": 1e-7}``. The copy is rebuilt from the
model's spec, as :func:`deepreservoir.load` rebuilds an artifact: every node is
constructed again from its hyperparameters (seeds included), so a changed value
takes effect wherever the node uses it (a new spectral radius rescales the
same seeded draw), and the copy is unbuilt and untrained.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepreservoir.errors import ParameterError

__all__ = ["node_hyperparameters", "split_key", "with_hyperparameters"]


def split_key(key: str, nodes: Mapping[str, Any], parameter: str) -> tuple[str, str]:
    """``"node.parameter"`` → ``(node, parameter)``, checked against ``nodes``.

    Parameters
    ----------
    key : str
        ``"Reservoir-0.sr"``: a node's name (node names hold no dot) and an argument.
    nodes : mapping
        The model's nodes by name.
    parameter : str
        How the caller names the keys, for the message.

    Returns
    -------
    (str, str)
        The node's name and the argument.

    Raises
    ------
    ParameterError
        The part before the first dot is not a node of ``nodes``, or nothing follows it.

    Examples
    --------
    >>> split_key("Ridge-0.ridge", {"Ridge-0": None}, "axes")
    ('Ridge-0', 'ridge')
    """
    node, _, argument = key.partition(".")
    if node not in nodes or not argument:
        raise ParameterError(
            f"The {parameter} key {key!r} must be 'node.parameter' with a node of the model: "
            f"one of {', '.join(repr(n) for n in nodes)}.")
    return node, argument


def node_hyperparameters(node) -> list[str]:
    """The constructor arguments of ``node``'s class that a key may set.

    Every named argument but ``self``, ``name``, ``input_dim`` and ``dtype``
    (the graph and the model's dtype decide those), in signature order.

    Parameters
    ----------
    node : Node

    Returns
    -------
    list of str
    """
    hidden = {"self", "name", "input_dim", "dtype"}
    arguments = inspect.signature(type(node).__init__).parameters
    return [name for name, argument in arguments.items()
            if name not in hidden and not name.startswith("_")
            and argument.kind not in (inspect.Parameter.VAR_POSITIONAL,
                                      inspect.Parameter.VAR_KEYWORD)]


def with_hyperparameters(model, overrides: Mapping[str, Any], *, parameter: str = "overrides",
                         seed: int | None = None):
    """A fresh, unbuilt copy of ``model`` with the hyperparameters ``overrides`` set.

    Parameters
    ----------
    model : Model
        Any model whose nodes are registered classes (every built-in node, and
        custom ones registered with :func:`deepreservoir.io.register_node`).
        Explicit arrays given to a node (``W=array``) are kept.
    overrides : mapping of str to value
        ``"node.parameter"`` → value; ``node`` a name of ``model.nodes`` and
        ``parameter`` an argument of that node's constructor.
    parameter : str
        How the caller names ``overrides``, for messages.
    seed : int, optional
        Reseed the whole copy: ``seed`` becomes the model's root seed and every
        node's own seed is cleared, so each node's key derives from ``seed`` and
        its place in the graph (``None``: keep every seed).

    Returns
    -------
    Model
        Same graph (nodes, edges, delays, feedback), same seeds, new values.

    Raises
    ------
    ParameterError
        An unknown node or argument, or a value the node's constructor refuses
        (its own message, prefixed by the key).

    Examples
    --------
    >>> import deepreservoir as dr
    >>> esn = dr.Reservoir(50, sr=0.9, seed=1) >> dr.Ridge(1e-6)
    >>> copy = with_hyperparameters(esn, {"Reservoir-0.sr": 1.2})
    >>> copy.nodes["Reservoir-0"].sr, esn.nodes["Reservoir-0"].sr
    (1.2, 0.9)
    """
    from deepreservoir.composition import model_class
    from deepreservoir.errors import ArtifactError
    from deepreservoir.graph import Link
    from deepreservoir.io import _construct, _spec
    from deepreservoir.model import Model

    if not isinstance(model, Model):
        raise ParameterError(f"with_hyperparameters needs a Model (nodes joined with >>); got "
                             f"{type(model).__name__}. Wrap a single node as Model([node]).")
    explicit: dict[str, Any] = {}
    spec = _spec(model, explicit)
    entries = {entry["name"]: entry for entry in spec["nodes"]}
    if seed is not None:
        for entry in entries.values():
            if "seed" in entry["hyperparameters"]:
                entry["hyperparameters"]["seed"] = None
    for key, value in overrides.items():
        node_name, argument = split_key(key, model.nodes, parameter)
        allowed = node_hyperparameters(model.nodes[node_name])
        if argument not in allowed:
            raise ParameterError(
                f"The {parameter} key {key!r}: {type(model.nodes[node_name]).__name__} has no "
                f"hyperparameter {argument!r}; expected one of {', '.join(allowed)}.")
        entries[node_name]["hyperparameters"][argument] = value
    nodes = {}
    for name, entry in entries.items():
        if entry["built"]:  # sizes are inferred again: an override may change them
            entry["input_dim"] = None
        try:
            nodes[name] = _construct(entry, explicit, Path("<spec>"))
        except ArtifactError as error:
            changed = [k for k in overrides if k.startswith(f"{name}.")]
            raise ParameterError(f"The {parameter} {', '.join(changed) or name}: "
                                 f"{str(error).split(': ', 2)[-1]}") from None
    links = [Link(nodes[e["source"]], nodes[e["target"]], int(e["delay"]), bool(e["feedback"]))
             for e in spec["edges"]]
    root = int(spec["model"]["seed"]) if seed is None else int(seed)
    return model_class()(list(nodes.values()), links, seed=root)
