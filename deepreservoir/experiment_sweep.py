"""A grid over any axes of an experiment, into one xarray Dataset.

Every combination of the ``[axes]`` values and every seed is a cell: one
:func:`~deepreservoir.experiment.run_trial`, kept as a JSON file in
``<out>.cells/`` (see :mod:`deepreservoir.cell_engine` for the guarantees:
atomic cells, reruns that compute only what is missing, a lock per folder,
workers on Dask). The merged Dataset has the axes and ``seed`` as dimensions,
in the file's order, and one variable per metric.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepreservoir.cell_engine import deliver, run_cells
from deepreservoir.experiment_config import ExperimentConfig

__all__ = ["cell_file", "merge_experiment", "run_experiment_sweep"]


def cell_file(cell: dict[str, Any]) -> str:
    """The file name of a cell: a digest of its axes' values and seed."""
    text = json.dumps(cell, sort_keys=True, default=repr)
    return f"cell-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"


def _work(config: ExperimentConfig, cell: dict[str, Any], folder: str) -> str | bytes:
    """Worker: run one cell and persist it (module-level: Dask pickles it by name)."""
    from deepreservoir.experiment import run_trial

    params = {k: v for k, v in cell.items() if k != "seed"}
    metrics = run_trial(config, params, cell["seed"])
    record = {"cell": cell, "metrics": metrics, "fingerprint": config.fingerprint()}
    return deliver(folder, cell_file(cell),
                   lambda path: path.write_text(json.dumps(record, default=float)))


def _coordinate(values: tuple[Any, ...]) -> np.ndarray:
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values)
    return np.asarray([v if isinstance(v, str) else json.dumps(v) for v in values], dtype=object)


def merge_experiment(config: ExperimentConfig, folder: Path):
    """The finished cells of ``folder`` as one Dataset; missing cells are NaN.

    Dimensions: the axes in file order, then ``seed``. Variables: every metric
    the cells report. Attributes: the model, data set, metric, fixed parameters
    (JSON), the fingerprint and the count of finished cells.
    """
    import xarray as xr

    from deepreservoir._version import __version__

    dims = [*config.axes, "seed"]
    coords = {name: _coordinate(values) for name, values in config.axes.items()}
    coords["seed"] = np.asarray(config.seeds)
    shape = tuple(len(coords[d]) for d in dims)
    variables: dict[str, np.ndarray] = {}
    done = 0
    for cell in config.cells():
        path = folder / cell_file(cell)
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        done += 1
        index = tuple([*(config.axes[n].index(cell[n]) for n in config.axes),
                       config.seeds.index(cell["seed"])])
        for name, value in record["metrics"].items():
            variables.setdefault(name, np.full(shape, np.nan))[index] = float(value)
    data = {name: (dims, values) for name, values in variables.items()}
    attrs = {"kind": "experiment", "model": config.model, "dataset": config.dataset,
             "metric": config.metric, "direction": config.direction,
             "data": json.dumps(config.data), "params": json.dumps(config.params),
             "config_fingerprint": config.fingerprint(), "cells_done": done,
             "cells_total": len(config.cells()), "deepreservoir_version": __version__}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def run_experiment_sweep(config: ExperimentConfig, out: str | os.PathLike, *, workers: int = 1,
                         threads_per_worker: int = 1, scheduler: str | None = None,
                         progress: bool = True,
                         on_cell: Callable[[dict[str, Any]], None] | None = None):
    """Run every cell of ``config``'s grid not yet finished; merge them into ``out``.

    Parameters
    ----------
    config : ExperimentConfig
        With at least one axis, or several seeds.
    out : path
        A ``.nc`` file; finished cells live in ``<out>.cells/``.
    workers, threads_per_worker, scheduler
        See :func:`deepreservoir.cell_engine.run_cells`.
    progress : bool
    on_cell : callable, optional

    Returns
    -------
    (xarray.Dataset, dict)
        The Dataset (dimensions: the axes, then ``seed``) and
        ``{"done_before": n, "trained": n, "total": n}``.

    Raises
    ------
    ParameterError, DataError
        See :func:`~deepreservoir.cell_engine.run_cells`; a cell's own errors
        (a hyperparameter the model refuses) propagate, its finished
        neighbours are kept.
    """
    stamp = {"fingerprint": config.fingerprint(), "model": config.model,
             "dataset": config.dataset, "data": config.data, "params": config.params,
             "axes": list(config.axes)}
    return run_cells(out=out, stamp=stamp, cells=config.cells(), cell_file=cell_file,
                     work=_work, payload=config,
                     merge=lambda folder: merge_experiment(config, folder), workers=workers,
                     threads_per_worker=threads_per_worker, scheduler=scheduler,
                     progress=progress, on_cell=on_cell, owner="run_experiment_sweep",
                     what="sweep")
