"""``model.history_``: what ``fit`` recorded, as an ``xarray.Dataset`` on every path."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

__all__ = ["closed_form_history", "gradient_history"]


def _closed_form_variables(summary: dict[str, dict]) -> dict[str, Any]:
    names = list(summary)
    samples = np.array([summary[n]["samples"] for n in names], dtype=np.int64)
    mse = np.array([np.nan if summary[n].get("train_mse") is None else summary[n]["train_mse"]
                    for n in names], dtype=float)
    return {
        "samples": (("node",), samples, {"long_name": "rows each closed-form node was fitted on"}),
        "train_mse": (("node",), mse, {
            "long_name": "training mean squared error of each closed-form node",
            "description": "computed exactly from the sufficient statistics"}),
    }


def closed_form_history(summary: dict[str, dict], options: dict[str, Any],
                        path: str = "closed_form"):
    """The record of a closed-form (or online) fit: rows and training MSE per fitted node.

    Returns
    -------
    xarray.Dataset
        Dimension ``node``; variables ``samples`` and ``train_mse`` (NaN where a
        node cannot tell); attributes ``path`` and the options (JSON).
    """
    import xarray as xr

    config = {k: options.get(k) for k in ("warmup", "reset", "chunk_size", "seed")}
    return xr.Dataset(_closed_form_variables(summary),
                      coords={"node": np.array(list(summary), dtype=str)},
                      attrs={"path": path, "config": json.dumps(config)})


def gradient_history(rows: list[dict[str, float]], gates: list[dict[str, float]], model,
                     config, loss: Any, closed_form: dict[str, dict] | None = None):
    """The record of a gradient (or mixed) run.

    Returns
    -------
    xarray.Dataset
        Dimension ``epoch`` (1, 2, ...) with ``loss``, ``lr``, ``seconds`` and, with
        validation, ``val_loss`` (and ``val_accuracy`` for classification); ``beta``
        over ``("epoch", "layer")``: each trained gate β at the end of each epoch.
        A mixed run adds ``samples`` and ``train_mse`` over ``node`` for its
        closed-form nodes. Attributes ``path``, ``alpha_convention``,
        ``loss_function`` and ``config`` (JSON).
    """
    import xarray as xr

    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    epochs = np.arange(1, len(rows) + 1)
    data: dict[str, Any] = {
        k: ("epoch", np.array([row.get(k, np.nan) for row in rows], dtype=float))
        for k in keys}
    layers: list[str] = []
    for row in gates:
        layers.extend(k for k in row if k not in layers)
    beta = np.array([[row.get(k, np.nan) for k in layers] for row in gates],
                    dtype=float).reshape(len(gates), len(layers))
    data["beta"] = (("epoch", "layer"), beta, {
        "long_name": "gate β at the end of each epoch",
        "description": "one column per node with a trained scalar gate (Scaffold, "
                       "LoRAReadout or Reservoir with r > 0, BetaGate)"})
    coords: dict[str, Any] = {"epoch": epochs, "layer": np.array(layers, dtype=str)}
    if closed_form:
        data.update(_closed_form_variables(closed_form))
        coords["node"] = np.array(list(closed_form), dtype=str)
    attrs = {"path": "mixed" if closed_form else "gradient",
             "loss_function": loss if isinstance(loss, str) else "callable",
             "alpha_convention": json.dumps(model.alpha_convention(), ensure_ascii=False),
             "config": json.dumps(config.fingerprint())}
    return xr.Dataset(data, coords=coords, attrs=attrs)
