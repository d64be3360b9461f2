r"""β diagnostics: the gate on each scaffold, its share of the output, and its ablation.

A LoRA layer computes the pre-activation

.. math::

    z = \underbrace{\beta\,W_{seed}\,h}_{\text{scaffold}}
      + \underbrace{\tfrac{\alpha}{r}\,B A\,h}_{\text{adapter}}
      + \underbrace{d}_{\text{drive}}

where ``h`` is what the layer multiplies (its input for ``Scaffold`` and
``LoRAReadout``; the previous state :math:`x[t-1]` for a ``Reservoir(r>0)``)
and ``d`` is the rest of the pre-activation (the bias ``b``; for a reservoir the
input drive ``W_in u[t] + b``). A reservoir's new state is
:math:`x[t] = (1 - a)\,x[t-1] + a\,\mathrm{act}(z)`.

* :func:`current_beta` and :func:`beta_history` read β per layer now and over
  training (the ``beta`` variable of the history ``fit`` returns).
* :func:`scaffold_share` measures :math:`\|\beta W_{seed} h\| / \|z\|` per
  layer on data, with norms taken over all samples, steps and units (Frobenius).
* :func:`beta_ablation` sets β = 0 in one layer at a time, then in all of them,
  re-evaluates a user metric, and restores β exactly.

Examples
--------
>>> import numpy as np
>>> import torch
>>> import deepreservoir as dr
>>> from deepreservoir import analysis
>>> layer = dr.Scaffold(8, r=2, seed=0, name="hidden", dtype=torch.float64)
>>> X = np.random.default_rng(0).standard_normal((20, 4))
>>> share = analysis.scaffold_share(layer, X)
>>> float(share["weight_share"][0])  # a fresh adapter has B = 0: all scaffold
1.0
>>> with torch.no_grad():
...     _ = layer.B_.fill_(1.0)
>>> 0 < float(analysis.scaffold_share(layer, X)["weight_share"][0]) < 1
True
>>> mean_output = lambda model: float(np.abs(model.run(X)).mean())
>>> result = analysis.beta_ablation(layer, mean_output)
>>> [str(v) for v in result["ablation"].values]
['none', 'hidden', 'all']
>>> float(layer.beta_.detach())  # restored
1.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from deepreservoir import functional as F
from deepreservoir.analysis._common import make_attrs
from deepreservoir.errors import DataError, NotFittedError, ParameterError, format_value
from deepreservoir.graph import Graph as Model
from deepreservoir.kinds import Gated, Scaffolded, Stateful, WeightedLayer
from deepreservoir.lora import LowRankAdapter
from deepreservoir.nodes.base import Node

__all__ = ["beta_ablation", "beta_history", "current_beta", "scaffold_share"]


# ----------------------------------------------------------------- layers
def _scalar_gate(node: Node) -> Tensor | None:
    beta = node.gate() if isinstance(node, Gated) and node.built else None
    if isinstance(beta, torch.nn.Parameter) and beta.numel() == 1:
        return beta
    return None


def _has_scaffold(node: Node) -> bool:
    """Whether the node computes ``β·W_seed·h`` (LoRA layers; reservoirs with r > 0)."""
    if isinstance(node, Scaffolded):
        return node.has_scaffold()
    return (isinstance(node, Stateful) and isinstance(node, LowRankAdapter)
            and isinstance(node, WeightedLayer) and node.r > 0)


def _as_model(target: Any, owner: str) -> Model:
    if isinstance(target, Model):
        return target
    if isinstance(target, Node):
        return target._as_model()
    raise ParameterError(
        f"The 'model' parameter of {owner} must be a Model or a node. Got {format_value(target)}."
    )


def _gate_pending(node: Node) -> bool:
    """Whether an unbuilt node will get a trained β when built (a gated adapter, a BetaGate)."""
    if not isinstance(node, Gated) or node.built:
        return False
    if isinstance(node, LowRankAdapter):
        return node.r > 0 and bool(getattr(node, "gated", True))
    return True


def _require_built_gates(model: Model, owner: str) -> None:
    """Raise a NotFittedError when gated nodes exist but are not built yet (no β to read)."""
    unbuilt = [name for name in _order(model) if _gate_pending(model.nodes[name])]
    if unbuilt:
        raise NotFittedError(
            f"The 'model' argument of {owner} is not built yet: the gated node(s) "
            f"{', '.join(repr(name) for name in unbuilt)} have no β until the model sees "
            f"data. Run or fit the model first."
        )


def _order(model: Model) -> list[str]:
    return model.dataflow_order()


def _select(model: Model, names: list[str], layers: Any, owner: str, what: str) -> list[str]:
    if layers is None:
        chosen = names
    else:
        chosen = [layers] if isinstance(layers, str) else list(layers)
        unknown = [name for name in chosen if name not in names]
        if unknown or not chosen:
            raise ParameterError(
                f"The 'layers' parameter of {owner} must name {what}: "
                f"{', '.join(names) or '(none)'}. Got {format_value(layers)}."
            )
    if not chosen:
        raise ParameterError(
            f"The 'model' parameter of {owner} has nothing to analyse: no node of "
            f"{', '.join(_order(model)) or '(none)'} is {what}."
        )
    return chosen


# ------------------------------------------------------------------ β values
def current_beta(model: Model | Node) -> xr.DataArray:
    """β of every gated node now: nodes with a trained scalar gate ``beta_``.

    Parameters
    ----------
    model : Model or Node
        Built; ``Scaffold``/``LoRAReadout`` with r > 0 and ``beta=True``,
        ``Reservoir`` with r > 0 and ``BetaGate`` have a gate.

    Returns
    -------
    xarray.DataArray, dims ``("layer",)``
        ``attrs["kind"] = "beta"``.

    Raises
    ------
    NotFittedError
        If no node has a β yet because the gated nodes are not built (run or
        fit the model first).
    ParameterError
        If no node has a gate.
    """
    owner = "current_beta"
    model = _as_model(model, owner)
    gated = [name for name in _order(model) if _scalar_gate(model.nodes[name]) is not None]
    if not gated:
        _require_built_gates(model, owner)
    _select(model, gated, None, owner, "a gated layer (a node with a trained β)")
    values = [float(_scalar_gate(model.nodes[name]).detach()) for name in gated]
    return xr.DataArray(np.array(values), dims=("layer",), coords={"layer": gated},
                        name="beta", attrs=make_attrs("beta", "read"))


def beta_history(history: xr.Dataset) -> xr.DataArray:
    """β per layer over training, from the history returned by ``model.fit``.

    Parameters
    ----------
    history : xarray.Dataset
        With a variable ``beta`` of dims ``("epoch", "layer")`` (value after
        each epoch; the layer coordinate holds node names).

    Returns
    -------
    xarray.DataArray, dims ``("epoch", "layer")``
        ``attrs["kind"] = "beta_history"``.

    Raises
    ------
    DataError
        If ``history`` has no ``beta`` variable with those dimensions.
    """
    if not isinstance(history, xr.Dataset):
        raise DataError(
            f"The 'history' argument of beta_history must be the xarray.Dataset returned by "
            f"fit. Got {format_value(history)}."
        )
    beta = history.get("beta")
    if beta is None or set(beta.dims) != {"epoch", "layer"}:
        found = "no 'beta' variable" if beta is None else f"'beta' with dims {beta.dims}"
        raise DataError(
            f"The 'history' argument of beta_history must have a variable 'beta' with dims "
            f"('epoch', 'layer'). Got {found}; variables: {', '.join(map(str, history))}."
        )
    result = beta.transpose("epoch", "layer").astype(float).copy()
    result.name = "beta"
    result.attrs = make_attrs("beta_history", "read")
    return result


# ------------------------------------------------------------- scaffold share
def _pieces(values: Any) -> list[Tensor]:
    """A run result (T, O), (B, T, O) or list of (T_i, O) as a list of float64 tensors."""
    items = values if isinstance(values, list) else [values]
    pieces: list[Tensor] = []
    for item in items:
        tensor = torch.as_tensor(item).detach().to(torch.float64)
        pieces.extend(list(tensor) if tensor.ndim == 3 else [tensor])
    return pieces


def _split(node: Node, received: Tensor, output: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(scaffold, adapter, drive) parts of the pre-activation of one series, (T, d_out)."""
    device = received.device

    def f64(tensor):
        return None if tensor is None else tensor.detach().to(device, torch.float64)

    gate = _scalar_gate(node)
    beta = 1.0 if gate is None else f64(gate)
    view = node.layer_view()
    A, B, _ = node.adapter_terms()
    W = f64(view.frozen if view.frozen is not None else view.weight)
    if view.recurrent:
        h = torch.cat([torch.zeros_like(output[:1]), output[:-1]])  # x[t-1], from x[-1] = 0
        drive = F.reservoir_drive(received, f64(view.Win), f64(view.bias))
    else:
        h = received
        drive = None if view.bias is None else f64(view.bias).expand(h.shape[0], -1)
    zeros = torch.zeros(h.shape[0], int(node.output_dim), dtype=torch.float64, device=device)
    scaffold = F.lora_linear(h, W, None, None, beta, 0.0)
    adapter = zeros
    if A is not None:
        adapter = F.lora_linear(h, None, f64(A), f64(B), 0.0, node.scale)
    return scaffold, adapter, zeros if drive is None else drive


def scaffold_share(model: Model | Node, X: Any, *, layers: Any = None) -> xr.Dataset:
    r"""The scaffold's share of each LoRA layer's pre-activation on data.

    With the decomposition of the module docstring, per layer

    * ``share`` :math:`= \|\beta W_{seed} h\| / \|z\|` (all of the pre-activation),
    * ``weight_share``
      :math:`= \|\beta W_{seed} h\| / \|\beta W_{seed} h + \tfrac{\alpha}{r} B A h\|`
      (the part through the effective matrix only, i.e. without bias and input
      drive): exactly 1 while ``B = 0``,

    where ``‖·‖`` is the Frobenius norm over every valid step of every series.
    The model runs once from zero states (:meth:`Model.states`), in eval mode
    (no dropout), and the parts are recomputed in float64 from what each layer
    received.

    Parameters
    ----------
    model : Model or Node
    X : data as for :meth:`Model.run`
    layers : str or list of str, optional
        Node names; default every node with a scaffold (``Scaffold``,
        ``LoRAReadout`` without ``full``, ``Reservoir`` with r > 0).

    Returns
    -------
    xarray.Dataset, dim ``layer``
        Variables ``share``, ``weight_share``, ``scaffold_norm``,
        ``adapter_norm``, ``drive_norm``, ``output_norm`` and ``beta`` (1 for a
        layer without a trained gate); ``attrs["kind"] = "scaffold_share"``.

    Raises
    ------
    ParameterError
        If the model has no layer with a scaffold, or ``layers`` names another node.
    """
    owner = "scaffold_share"
    model = _as_model(model, owner)
    names = [name for name in _order(model) if _has_scaffold(model.nodes[name])]
    chosen = _select(model, names, layers, owner, "a layer with a scaffold β·W_seed")
    was_training = model.training
    model.eval()
    try:
        outputs = model.states(X, nodes=chosen, reset=True)
        received = model.states(X, nodes=chosen, reset=True, inputs=True)
    finally:
        model.train(was_training)
    rows = {key: [] for key in ("scaffold_norm", "adapter_norm", "drive_norm", "output_norm",
                                "weight_norm", "beta")}
    with torch.no_grad():
        for name in chosen:
            node = model.nodes[name]
            sums = np.zeros(5)
            for u, y in zip(_pieces(received[name]), _pieces(outputs[name]),
                            strict=True):
                scaffold, adapter, drive = _split(node, u, y)
                parts = (scaffold, adapter, drive, scaffold + adapter + drive, scaffold + adapter)
                sums += np.array([float((p * p).sum()) for p in parts])
            norms = np.sqrt(sums)
            for key, value in zip(("scaffold_norm", "adapter_norm", "drive_norm", "output_norm",
                                   "weight_norm"), norms, strict=True):
                rows[key].append(value)
            gate = _scalar_gate(node)
            rows["beta"].append(1.0 if gate is None else float(gate.detach()))
    data = {key: ("layer", np.array(values)) for key, values in rows.items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        data["share"] = ("layer", data["scaffold_norm"][1] / data["output_norm"][1])
        data["weight_share"] = ("layer", data["scaffold_norm"][1] / data.pop("weight_norm")[1])
    return xr.Dataset(data, coords={"layer": chosen},
                      attrs=make_attrs("scaffold_share", "frobenius norms over all steps",
                                       norm="frobenius"))


# ------------------------------------------------------------------- ablation
class _ZeroGate:
    """Context: β = 0 in the given nodes, restored exactly afterwards."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = list(nodes)
        self.saved: list[tuple[Node, Tensor | None]] = []

    def __enter__(self) -> None:
        with torch.no_grad():
            for node in self.nodes:
                gate = _scalar_gate(node)
                if gate is not None:
                    self.saved.append((node, gate.detach().clone()))
                    gate.zero_()
                else:  # β fixed at 1: dropping β·W_seed is the same as β = 0
                    self.saved.append((node, None))
                    node.remove_scaffold()

    def __exit__(self, *exc: Any) -> None:
        with torch.no_grad():
            for node, value in self.saved:
                if value is None:
                    node.restore_scaffold()
                else:
                    _scalar_gate(node).copy_(value)


def _metrics(value: Any, owner: str) -> dict[str, float]:
    if isinstance(value, Mapping):
        items = dict(value)
    else:
        items = {"metric": value}
    try:
        return {str(key): float(v) for key, v in items.items()}
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"The 'evaluate' callable of {owner} must return a number or a dict of numbers. "
            f"Got {format_value(value)}."
        ) from exc


def beta_ablation(model: Model | Node, evaluate: Callable[[Model], Any], *,
                  layers: Any = None) -> xr.Dataset:
    """Set β = 0 in each layer, then in all of them, and re-evaluate.

    A layer without a trained gate (β fixed at 1) is ablated with
    ``remove_scaffold()``, which drops the same term. β (or the scaffold) is
    restored bit for bit after each evaluation, also when ``evaluate`` raises.

    Parameters
    ----------
    model : Model or Node
    evaluate : callable ``evaluate(model) -> float or dict of floats``
        E.g. ``lambda m: dr.training.evaluate(m, X_val, y_val)``.
    layers : str or list of str, optional
        Default: every node with a gate ``beta_`` or a scaffold.

    Returns
    -------
    xarray.Dataset, dim ``ablation``
        Coordinates ``"none"`` (the model as is), each layer name, and
        ``"all"``; one variable per metric, plus ``beta`` (dim ``layer``, the
        values before ablation). ``attrs["kind"] = "beta_ablation"``.

    Raises
    ------
    ParameterError
        If ``evaluate`` is not callable, or the model has no gated layer.
    DataError
        If ``evaluate`` returns something other than numbers.
    """
    owner = "beta_ablation"
    model = _as_model(model, owner)
    if not callable(evaluate):
        raise ParameterError(
            f"The 'evaluate' parameter of {owner} must be a callable evaluate(model) -> float "
            f"or dict. Got {format_value(evaluate)}."
        )
    names = [name for name in _order(model)
             if _scalar_gate(model.nodes[name]) is not None or _has_scaffold(model.nodes[name])]
    chosen = _select(model, names, layers, owner, "a layer with β or a scaffold")
    nodes = [model.nodes[name] for name in chosen]
    runs = [("none", [])] + [(name, [node]) for name, node in zip(chosen, nodes, strict=True)]
    runs.append(("all", nodes))
    results: list[dict[str, float]] = []
    for _, ablated in runs:
        with _ZeroGate(ablated):
            results.append(_metrics(evaluate(model), owner))
    keys = list(results[0])
    if any(list(row) != keys for row in results):
        raise DataError(f"The 'evaluate' callable of {owner} returned different keys per call.")
    betas = []
    for node in nodes:
        gate = _scalar_gate(node)
        betas.append(1.0 if gate is None else float(gate.detach()))
    data = {key: ("ablation", np.array([row[key] for row in results])) for key in keys}
    data["beta"] = ("layer", np.array(betas))
    return xr.Dataset(data, coords={"ablation": [name for name, _ in runs], "layer": chosen},
                      attrs=make_attrs("beta_ablation", "set beta = 0, re-evaluate",
                                       metrics=keys))
