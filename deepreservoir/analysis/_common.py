"""Shared plumbing of the analysis functions: argument checks and layer discovery.

A *layer* is one matrix the analysis can look at: a reservoir's recurrent
matrix ``W_``, or the effective weight of a node that exposes
``effective_weight()`` (LoRA layers, ``β·W_seed + (α/r)·B·A``). Models are
walked in topological order, so the layer order is the order data flows.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import torch
from torch import Tensor

from deepreservoir._version import __version__
from deepreservoir.errors import (
    DataError,
    DeepReservoirError,
    GraphError,
    ParameterError,
    format_value,
)
from deepreservoir.graph import Graph as Model
from deepreservoir.kinds import WeightedLayer, dense
from deepreservoir.nodes.base import Node

__all__ = [
    "Layer",
    "as_points",
    "as_tensor",
    "check_finite",
    "check_int",
    "check_real",
    "find_layers",
    "layer_inputs",
    "make_attrs",
]

#: Activations whose derivative the Jacobian code knows (see functional.activation_derivative).
ELEMENTWISE = ("tanh", "relu", "sigmoid", "identity")


# ----------------------------------------------------------------- checks
def check_int(value: Any, name: str, owner: str, low: int | None = None,
              high: int | None = None, what: str | None = None) -> int:
    """Return ``value`` as an int or raise a ParameterError naming it."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and low is not None and value < low:
        ok = False
    if ok and high is not None and value > high:
        ok = False
    if not ok:
        if what is None:
            if low is not None and high is not None:
                what = f"an int in [{low}, {high}]"
            elif low is not None:
                what = f"an int >= {low}"
            else:
                what = "an int"
        raise ParameterError(
            f"The '{name}' parameter of {owner} must be {what}. Got {format_value(value)}."
        )
    return int(value)


def check_real(value: Any, name: str, owner: str, low: float | None = None,
               high: float | None = None, closed: str = "both") -> float:
    """Return ``value`` as a float in an interval or raise a ParameterError naming it."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and np.isfinite(float(value))
    if ok and low is not None:
        ok = value >= low if closed in ("both", "left") else value > low
    if ok and high is not None:
        ok = value <= high if closed in ("both", "right") else value < high
    if not ok:
        left = "[" if closed in ("both", "left") else "("
        right = "]" if closed in ("both", "right") else ")"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ParameterError(
            f"The '{name}' parameter of {owner} must be a float in {left}{lo}, {hi}{right}. "
            f"Got {format_value(value)}."
        )
    return float(value)


def as_tensor(value: Any, name: str, owner: str, *, dtype: torch.dtype = torch.float64,
              device: torch.device | str | None = None) -> Tensor:
    """A floating tensor from an array, a tensor or nested lists (no copy when possible)."""
    if isinstance(value, Tensor):
        tensor = value.detach()
        if tensor.layout != torch.strided:
            tensor = tensor.to_dense()
        if tensor.is_complex():
            _refuse_complex(tensor, name, owner)
    else:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"The '{name}' argument of {owner} must be an array or a tensor. "
                f"Got {format_value(value)}."
            ) from exc
        if np.iscomplexobj(array):
            _refuse_complex(array, name, owner)
        try:
            tensor = torch.as_tensor(np.asarray(array, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"The '{name}' argument of {owner} must be an array or a tensor. "
                f"Got {format_value(value)}."
            ) from exc
    return tensor.to(device=device if device is not None else tensor.device, dtype=dtype)


def _refuse_complex(value: Any, name: str, owner: str) -> None:
    """Raise a DataError for complex data: casting to real would drop the imaginary part."""
    raise DataError(
        f"The '{name}' argument of {owner} must be real-valued. Got complex data "
        f"({format_value(value)}); casting it to real would drop the imaginary part, so "
        f"pass the real part (or the magnitude) explicitly."
    )


def check_finite(tensor: Tensor, name: str, owner: str) -> Tensor:
    """Raise a DataError counting the NaN and Inf entries of ``tensor``."""
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        nans = int(torch.isnan(tensor).sum())
        infs = int((~finite).sum()) - nans
        raise DataError(
            f"The '{name}' argument of {owner} must be finite. Got {nans} NaN and {infs} Inf "
            f"values in an array of shape {tuple(tensor.shape)}."
        )
    return tensor


def as_square(value: Any, name: str, owner: str, *, dtype: torch.dtype = torch.float64,
              device: torch.device | str | None = None) -> Tensor:
    """A finite square matrix, or a DataError that prints the shape."""
    tensor = as_tensor(value, name, owner, dtype=dtype, device=device)
    if tensor.ndim != 2 or tensor.shape[0] != tensor.shape[1]:
        raise DataError(
            f"The '{name}' argument of {owner} must be a square matrix (N, N). "
            f"Got shape {tuple(tensor.shape)}."
        )
    if tensor.shape[0] == 0:
        raise DataError(
            f"The '{name}' argument of {owner} is an empty matrix: shape "
            f"{tuple(tensor.shape)}; it needs at least one row and column."
        )
    return check_finite(tensor, name, owner)


def as_points(value: Any, name: str, owner: str, *, dtype: torch.dtype = torch.float64,
              device: torch.device | str | None = None) -> Tensor:
    """Points ``(n_points, n_features)``; a ``(B, T, N)`` batch is flattened to ``(B·T, N)``."""
    tensor = as_tensor(value, name, owner, dtype=dtype, device=device)
    if tensor.ndim == 3:
        tensor = tensor.reshape(-1, tensor.shape[-1])
    if tensor.ndim != 2:
        raise DataError(
            f"The '{name}' argument of {owner} must have shape (n_points, n_features) or "
            f"(B, T, N). Got shape {tuple(tensor.shape)}."
        )
    return check_finite(tensor, name, owner)


def make_attrs(kind: str, method: str, **params: Any) -> dict[str, Any]:
    """Result attributes that survive a netCDF round trip (no None, bool or dict values)."""
    attrs: dict[str, Any] = {"kind": kind, "method": method,
                             "deepreservoir_version": __version__}
    for key, value in params.items():
        if value is None:
            value = "none"
        elif isinstance(value, bool):
            value = int(value)
        elif isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, torch.dtype):
            value = str(value)
        attrs[key] = value
    return attrs


# --------------------------------------------------------------- layers
@dataclass
class Layer:
    """One matrix to analyse, with what is needed to step or differentiate through it.

    Attributes
    ----------
    name : str
        The node name, or ``"matrix"`` / ``"layer{i}"`` for bare tensors.
    weight : Tensor, shape (N_out, N_in)
        The effective matrix (``layer_view().weight`` of the node).
    frozen : Tensor or None
        The frozen scaffold when it differs from ``weight`` (an adapted layer).
    Win : Tensor (N, F) or None
    bias : Tensor (N,) or None
    lr : float or Tensor (N,)
        Leak rate (1 for feedforward layers; per unit for a reservoir built so).
    activation : str
    recurrent : bool
        Whether the layer is iterated over time.
    node : Node or None
    """

    name: str
    weight: Tensor
    frozen: Tensor | None
    Win: Tensor | None
    bias: Tensor | None
    lr: float | Tensor
    activation: str
    recurrent: bool
    node: Node | None = None


def _node_layer(node: Node, name: str | None = None) -> Layer | None:
    """The layer of a node that declares one (:class:`~deepreservoir.kinds.WeightedLayer`)."""
    if not isinstance(node, WeightedLayer):
        return None
    if not node.built:
        from deepreservoir.errors import NotFittedError
        raise NotFittedError(
            f"Node '{node.name}' has no tensors yet: run or fit it on data first, or pass "
            f"inputs to the analysis so it can build the model."
        )
    view = node.layer_view()
    lr = view.lr
    if isinstance(lr, Tensor) and lr.numel() == 1:
        lr = float(lr)
    return Layer(
        name=name or node.name,
        weight=dense(view.weight),
        frozen=dense(view.frozen),
        Win=dense(view.Win),
        bias=dense(view.bias),
        lr=lr if isinstance(lr, Tensor) else float(lr),
        activation=str(view.activation),
        recurrent=bool(view.recurrent),
        node=node,
    )


def _nodes_of(target: Model | Node) -> list[Node]:
    return list(target.nodes.values()) if isinstance(target, Model) else [target]


def node_order(model: Model) -> list[str]:
    """Topological order of a model's nodes (forward edges only when there is feedback)."""
    return model.dataflow_order()


def find_layers(target: Any, owner: str, *, lr: float = 1.0, activation: str = "tanh",
                recurrent_only: bool = False, square_only: bool = False) -> list[Layer]:
    """The layers of a model, a node, one matrix or a sequence of matrices.

    Parameters
    ----------
    target : Model, Node, Tensor, ndarray, or sequence of them
        A bare matrix becomes one layer named ``"matrix"`` with the given ``lr``
        and ``activation``; a sequence of matrices (or of ``(W, activation)``
        pairs) becomes layers ``layer0, layer1, ...``.
    owner : str
        Function name for error messages.
    recurrent_only : bool
        Keep only layers iterated over time (reservoirs, and bare matrices).
    square_only : bool
        Raise if a layer's matrix is not square.

    Raises
    ------
    ParameterError
        If nothing in ``target`` can be analysed.
    """
    layers: list[Layer] = []
    if isinstance(target, (Model, Node)) and not all(
            node.built for node in _nodes_of(target)):
        features = model_input_dim(target)
        if features is not None:  # the input size is declared: build now, as a run would
            try:
                ensure_built(target, features, owner)
            except DeepReservoirError:
                pass  # e.g. an unfitted readout: the layers before it are built anyway
    if isinstance(target, list) and target and all(isinstance(t, Layer) for t in target):
        layers = list(target)
        where = "layers"
    elif isinstance(target, Model):
        for name in node_order(target):
            layer = _node_layer(target.nodes[name], name)
            if layer is not None:
                layers.append(layer)
        where = f"model with nodes {', '.join(node_order(target)) or '(none)'}"
    elif isinstance(target, Node):
        layer = _node_layer(target)
        if layer is not None:
            layers.append(layer)
        where = f"{type(target).__name__} node '{target.name}'"
    elif isinstance(target, (Tensor, np.ndarray)) and np.ndim(target) == 2:
        matrix = as_tensor(target, "target", owner)
        check_finite(matrix, "target", owner)
        layers.append(Layer("matrix", matrix, None, None, None, float(lr), activation, True))
        where = "matrix"
    elif isinstance(target, Sequence) and not isinstance(target, (str, bytes)):
        for index, item in enumerate(target):
            item_activation = activation
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str):
                item, item_activation = item
            if isinstance(item, Node):
                layer = _node_layer(item)
                if layer is not None:
                    layers.append(layer)
                continue
            matrix = as_tensor(item, f"target[{index}]", owner)
            if matrix.ndim != 2:
                raise DataError(
                    f"The 'target[{index}]' argument of {owner} must be a 2-D matrix. "
                    f"Got shape {tuple(matrix.shape)}."
                )
            check_finite(matrix, f"target[{index}]", owner)
            layers.append(Layer(f"layer{index}", matrix, None, None, None, float(lr),
                                item_activation, False))
        where = f"sequence of {len(target)} items"
    else:
        raise ParameterError(
            f"The 'target' parameter of {owner} must be a Model, a node, a matrix or a "
            f"sequence of matrices. Got {format_value(target)}."
        )
    if recurrent_only:
        layers = [layer for layer in layers if layer.recurrent]
    if not layers:
        kind = "recurrent matrix (a Reservoir)" if recurrent_only else (
            "matrix (a node with W_ or effective_weight())")
        raise ParameterError(
            f"The 'target' parameter of {owner} has nothing to analyse: the {where} has no "
            f"{kind}."
        )
    if square_only:
        for layer in layers:
            if layer.weight.shape[0] != layer.weight.shape[1]:
                what = (f"The 'target' argument of {owner}" if layer.node is None
                        and len(layers) == 1 else
                        f"The matrix of layer '{layer.name}' passed to {owner}")
                raise DataError(
                    f"{what} must be a square matrix (N, N). "
                    f"Got shape {tuple(layer.weight.shape)}."
                )
    return layers


# ------------------------------------------------------------ driving data
def default_inputs(length: int, features: int, seed: int, *, dtype: torch.dtype,
                   device: torch.device) -> Tensor:
    """I.i.d. uniform input on [-1, 1], shape (length, features), from an explicit seed."""
    generator = torch.Generator().manual_seed(int(seed))
    values = torch.rand(length, features, generator=generator, dtype=torch.float64)
    return (2.0 * values - 1.0).to(device=device, dtype=dtype)


def as_sequence(inputs: Any, owner: str, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """Input data as ``(T, F)`` (a 1-D series becomes one feature)."""
    tensor = as_tensor(inputs, "inputs", owner, dtype=dtype)
    if tensor.ndim == 1:
        tensor = tensor[:, None]
    if tensor.ndim != 2:
        raise DataError(
            f"The 'inputs' argument of {owner} must have shape (T,) or (T, F). "
            f"Got shape {tuple(tensor.shape)}."
        )
    if tensor.shape[0] == 0:
        raise DataError(
            f"The 'inputs' argument of {owner} is empty: shape {tuple(tensor.shape)}; "
            f"a series needs >= 1 step."
        )
    return check_finite(tensor, "inputs", owner)


def model_input_dim(target: Any) -> int | None:
    """Number of external input features of a node or single-input model, if known."""
    if isinstance(target, Node):
        return target.input_dim
    if isinstance(target, Model):
        names = target.input_names
        if len(names) != 1:
            return None
        return target.nodes[names[0]].input_dim
    return None


def ensure_built(target: Any, features: int, owner: str) -> Model | None:
    """Build a node or model for ``features`` input features; return the model used."""
    from deepreservoir.executor import build_graph
    if isinstance(target, Node):
        model = target._as_model()
    elif isinstance(target, Model):
        model = target
    else:
        return None
    names = model.input_names
    if len(names) != 1:
        raise GraphError(
            f"{owner} drives models with exactly one input node. This model has "
            f"{len(names)}: {', '.join(names)}."
        )
    if not all(node.built for node in model.nodes.values()):
        build_graph(model, {names[0]: int(features)}, {})
    return model


def layer_inputs(model: Model, inputs: Tensor, wanted: list[str], owner: str) -> dict[str, Tensor]:
    """The input sequence each wanted node receives, from one reference run of the model.

    Calls :meth:`Model.states` with ``inputs=True`` and ``reset=True``: the
    model's own executor runs from zero states on ``inputs`` (T, F), only the
    ancestors of the wanted nodes are evaluated, and the states the model keeps
    between calls are left untouched.

    Returns
    -------
    dict
        Node name → Tensor (1, T, F_node), float64.

    Raises
    ------
    GraphError
        If the model has feedback or delayed edges upstream of a wanted node
        (the analyses re-run each layer alone on what it received).
    """
    graph = model.graph
    needed: set[str] = set()
    for name in wanted:
        needed |= nx.ancestors(graph, name) | {name}
    for source, target, data in graph.edges(data="edge"):
        if target in needed and (data.feedback or data.delay):
            raise GraphError(
                f"{owner} runs the layers of feed-forward chains; the edge "
                f"'{source}' -> '{target}' has delay {data.delay}"
                f"{' (feedback)' if data.feedback else ''}. Pass the layer itself instead."
            )
    from deepreservoir.executor import prepare

    # check the data against the model under the analysis' own argument name first
    prepare(model, inputs[None], only=needed, name="inputs")
    received = model.states(inputs[None], nodes=wanted, reset=True, inputs=True)
    return {name: received[name].detach().to(torch.float64) for name in wanted}


def layer_drive(layer: Layer, received: Tensor) -> Tensor:
    """The drive ``Win·u[t] + b`` of a layer, (T, N) in float64, from what it receives (T, F).

    Calls :func:`deepreservoir.functional.reservoir_drive`; a layer without
    ``Win`` gets a zero drive (plus its bias).
    """
    from deepreservoir import functional as F

    device = layer.weight.device
    x = received.to(device=device, dtype=torch.float64)
    bias = None if layer.bias is None else layer.bias.to(device, torch.float64)
    if layer.Win is None:
        drive = torch.zeros(x.shape[0], layer.weight.shape[0], dtype=torch.float64,
                            device=device)
        return drive if bias is None else drive + bias
    return F.reservoir_drive(x, layer.Win.to(device, torch.float64), bias)


def recurrent_layer_drives(target: Any, inputs: Any, length: int, seed: int, *, lr: float,
                           activation: str, owner: str) -> tuple[list[Layer], dict[str, Tensor]]:
    """The square recurrent layers of ``target`` and the (T, N) drive each one receives.

    For a model or a node, ``inputs`` (default: ``length`` seeded uniform steps)
    runs through the model and every reservoir gets ``Win·u + b`` of what it
    receives there. For a bare (N, N) matrix, ``inputs`` is that drive itself
    (default: ``length`` zero steps), and ``lr`` and ``activation`` describe the map.
    """
    if activation not in ELEMENTWISE:
        raise ParameterError(
            f"The 'activation' parameter of {owner} must be one of {', '.join(ELEMENTWISE)}. "
            f"Got {activation!r}."
        )
    if isinstance(target, (Model, Node)):
        features = model_input_dim(target)
        if inputs is None:
            if features is None:
                raise ParameterError(
                    f"The 'inputs' parameter of {owner} is needed: the model's input size "
                    f"is unknown until it sees data. Got None."
                )
            series = default_inputs(length, features, seed, dtype=torch.float64,
                                    device=torch.device("cpu"))
        else:
            series = as_sequence(inputs, owner)
        model = ensure_built(target, series.shape[1], owner)
        layers = find_layers(target, owner, recurrent_only=True, square_only=True)
        received = layer_inputs(model, series, [layer.name for layer in layers], owner)
        return layers, {layer.name: layer_drive(layer, received[layer.name][0])
                        for layer in layers}
    layers = find_layers(target, owner, lr=lr, activation=activation, square_only=True)
    layer = layers[0]
    n = layer.weight.shape[0]
    if inputs is None:
        return layers, {layer.name: torch.zeros(length, n, dtype=torch.float64,
                                                device=layer.weight.device)}
    drive = check_finite(as_tensor(inputs, "inputs", owner), "inputs", owner)
    if drive.ndim != 2 or drive.shape[1] != n:
        raise DataError(
            f"The 'inputs' argument of {owner} for a bare ({n}, {n}) matrix is the "
            f"drive Win·u + b and must have shape (T, {n}). Got shape {tuple(drive.shape)}."
        )
    return layers, {layer.name: drive}
