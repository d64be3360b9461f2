r"""Memory capacity of reservoirs, scored on held-out data.

Jaeger's short-term memory capacity of a reservoir driven by a scalar i.i.d.
input ``u``: for each delay ``k`` a linear readout :math:`y_k(t) = w_k^\top x(t) + c_k`
is trained to recall :math:`u(t - k)`, and

.. math::

    MC_k = \mathrm{corr}^2\big(u(t-k),\, y_k(t)\big), \qquad MC = \sum_{k=0}^{k_{\max}} MC_k.

Delay 0 is the current input, which the state ``x(t)`` already contains, so
the sum over ``k = 0, 1, …`` of a linear reservoir
:math:`x(t) = W x(t-1) + W_{in} u(t)` equals the rank of the Krylov matrix
:math:`[W_{in}, W W_{in}, W^2 W_{in}, \dots]` (at most ``N``): the state
space is a rank-``r`` projection of the input history, and the ``MC_k`` are the
diagonal of that projection.

Each readout is trained by ridge regression
(:func:`deepreservoir.functional.ridge_solve`) on a training split and scored
on a separate test split. Bias: the in-sample estimate is biased upwards (a
readout with ``N`` weights fits ``N`` directions of noise, about ``N / T`` per
delay), so it is never reported. The held-out score is biased slightly
downwards by estimation error in the weights, and upwards by the chance
correlation of unrelated series, about ``1 / T_test`` per delay; summed over
many delays the latter adds up to ``(k_max + 1) / T_test``, reported as
``null_level``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from deepreservoir import functional as F
from deepreservoir.analysis._common import (
    as_sequence,
    as_tensor,
    check_finite,
    check_int,
    check_real,
    default_inputs,
    ensure_built,
    find_layers,
    layer_drive,
    layer_inputs,
    make_attrs,
    model_input_dim,
)
from deepreservoir.errors import DataError, ParameterError
from deepreservoir.graph import Graph as Model
from deepreservoir.nodes.base import Node

__all__ = ["memory_capacity"]


def _capacity(states: Tensor, series: Tensor, k_max: int, warmup: int, train: int,
              ridge: float) -> np.ndarray:
    """Held-out corr² for delays 0..k_max; states (T, N), series (T,)."""
    steps = states.shape[0]
    start = max(warmup, k_max)
    rows = torch.arange(start, steps, device=states.device)
    x = states[rows]
    targets = torch.stack([series[rows - k] for k in range(k_max + 1)], dim=1)
    x_train, x_test = x[:train], x[train:]
    y_train, y_test = targets[:train], targets[train:]
    weights, bias = F.ridge_solve(x_train.T @ x_train, x_train.T @ y_train, x_train.sum(0),
                                  y_train.sum(0), x_train.shape[0], ridge, True)
    prediction = x_test @ weights.T + bias
    pc = prediction - prediction.mean(0)
    yc = y_test - y_test.mean(0)
    covariance = (pc * yc).sum(0)
    variance = (pc**2).sum(0) * (yc**2).sum(0)
    score = torch.where(variance > 0, covariance**2 / variance.clamp_min(1e-300),
                        torch.zeros_like(variance))
    return score.cpu().numpy()


def memory_capacity(target: Any, k_max: int, *, inputs: Any = None, steps: int = 6000,
                    warmup: int = 200, train_fraction: float = 0.5, ridge: float = 1e-9,
                    seed: int = 0, lr: float = 1.0, activation: str = "tanh",
                    Win: Any = None) -> xr.Dataset:
    r"""Memory capacity :math:`MC_k` for delays ``0..k_max`` and their sum, on held-out data.

    Parameters
    ----------
    target : Model, Reservoir node, or Tensor/ndarray (N, N)
        A model must have one input feature; each of its reservoirs is scored
        on its own states (dim ``layer``). A bare matrix needs ``Win``.
    k_max : int
        Largest delay (delays ``0..k_max`` are scored).
    inputs : array_like, shape (T,) or (T, 1), optional
        The scalar input; default ``steps`` i.i.d. uniform values on [-1, 1]
        from ``seed``.
    steps : int
        Length of the default input.
    warmup : int
        Initial steps dropped (transient from the zero state). At least
        ``k_max`` steps are dropped so every delay has a target.
    train_fraction : float in (0, 1)
        Fraction of the remaining steps used to train; the rest scores.
    ridge : float >= 0
        Ridge penalty of the readouts (states are in float64).
    seed : int
    lr, activation :
        Leak rate and activation of a bare matrix.
    Win : array_like, shape (N,) or (N, 1)
        Input weights of a bare matrix.

    Returns
    -------
    xarray.Dataset
        ``memory_capacity`` (layer, k) — :math:`MC_k` on the test split;
        ``total`` (layer) — :math:`\sum_k MC_k`. ``attrs``:
        ``kind="memory_capacity"``, ``null_level`` (expected sum for a
        memoryless reservoir, :math:`(k_{\max} + 1)/T_{test}`), ``bias`` (a
        note), and the parameters.
    """
    owner = "memory_capacity"
    k_max = check_int(k_max, "k_max", owner, low=0)
    steps = check_int(steps, "steps", owner, low=2)
    warmup = check_int(warmup, "warmup", owner, low=0)
    train_fraction = check_real(train_fraction, "train_fraction", owner, 0.0, 1.0,
                                closed="neither")
    ridge = check_real(ridge, "ridge", owner, 0.0, None)
    seed = check_int(seed, "seed", owner, low=0)
    lr = check_real(lr, "lr", owner, 0.0, 1.0, closed="right")

    if inputs is None:
        series = default_inputs(steps, 1, seed, dtype=torch.float64, device=torch.device("cpu"))
    else:
        series = as_sequence(inputs, owner)
        if series.shape[1] != 1:
            raise DataError(
                f"The 'inputs' argument of {owner} must be one scalar series, shape (T,) or "
                f"(T, 1). Got shape {tuple(series.shape)}."
            )
    usable = series.shape[0] - max(warmup, k_max)
    train = int(usable * train_fraction)
    if train < 2 or usable - train < 2:
        raise ParameterError(
            f"The 'inputs' parameter of {owner} is too short: {series.shape[0]} steps leave "
            f"{usable} after dropping max(warmup, k_max) = {max(warmup, k_max)}; at least 4 "
            f"are needed, and many more (>> N) for a meaningful estimate."
        )

    collected: list[tuple[str, Tensor]] = []
    if isinstance(target, (Model, Node)):
        features = model_input_dim(target)
        if features not in (None, 1):
            raise DataError(
                f"{owner} needs a model with one input feature. Its input takes {features}."
            )
        model = ensure_built(target, 1, owner)
        layers = find_layers(target, owner, recurrent_only=True, square_only=True)
        received = layer_inputs(model, series, [layer.name for layer in layers], owner)
        for layer in layers:
            drive = layer_drive(layer, received[layer.name][0])
            collected.append((layer.name, _states(layer.weight, drive, layer.lr,
                                                  layer.activation)))
    else:
        layers = find_layers(target, owner, lr=lr, activation=activation, square_only=True)
        layer = layers[0]
        n = layer.weight.shape[0]
        if Win is None:
            raise ParameterError(
                f"The 'Win' parameter of {owner} is needed for a bare matrix: an array of "
                f"shape ({n},) or ({n}, 1). Got None."
            )
        win = check_finite(as_tensor(Win, "Win", owner, device=layer.weight.device), "Win",
                           owner).reshape(n, -1) if np.size(Win) == n else None
        if win is None:
            raise DataError(
                f"The 'Win' argument of {owner} must have shape ({n},) or ({n}, 1). Got shape "
                f"{tuple(np.shape(Win))}."
            )
        drive = F.reservoir_drive(series.to(layer.weight.device), win, None)
        collected.append((layer.name, _states(layer.weight, drive, layer.lr, layer.activation)))

    u = series[:, 0]
    scores = np.stack([
        _capacity(states, u.to(states.device), k_max, warmup, train, ridge)
        for _, states in collected])
    test = usable - train
    bias_note = ("held-out corr² (train/test split); the in-sample estimate is biased upwards "
                 "by about N/T per delay and is not used; chance correlation adds about "
                 "1/T_test per delay (null_level for the sum)")
    return xr.Dataset(
        {"memory_capacity": (("layer", "k"), scores),
         "total": ("layer", scores.sum(axis=1))},
        coords={"layer": [name for name, _ in collected], "k": np.arange(k_max + 1)},
        attrs=make_attrs("memory_capacity", "ridge readout per delay, held-out corr²",
                         k_max=k_max, warmup=warmup, train_steps=train, test_steps=test,
                         ridge=ridge, seed=seed, null_level=(k_max + 1) / test,
                         bias=bias_note))


def _states(W: Tensor, drive: Tensor, lr: float, activation: str) -> Tensor:
    W = W.to(torch.float64)
    start = torch.zeros(1, W.shape[0], dtype=W.dtype, device=W.device)
    with torch.no_grad():
        states, _ = F.run_reservoir(start, drive.to(W.device, W.dtype)[None], W, lr,
                                    F.get_activation(activation))
    return states[0]
