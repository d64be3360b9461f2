"""Grids of LottaLoRA runs (rank × seed × family × preset) into one netCDF Dataset.

:func:`train_classifier` trains one MLP (LottaLoRA or fully trained) on a
classification data set and scores it; the ``demo``, the studies and
:func:`run_sweep` all call it.

:func:`run_sweep` takes a grid read from a TOML file by
:func:`~deepreservoir.sweep_config.load_config` (see ``examples/sweep.toml`` and
docs/cli.md; re-exported here), trains every cell here or on Dask (a local
cluster or a running scheduler, docs/sweeps.md) through the cell engine of
:mod:`deepreservoir.cell_engine`,
which persists every finished cell at once as a small netCDF file in a sidecar
folder ``<out>.cells/`` (written under a temporary name and renamed, so a file
is either complete or absent). A rerun skips the cells already there, so a
crash or Ctrl-C loses at most the cells in flight. At the end the cells are
merged into one Dataset with dimensions ``(preset, family, rank, seed)``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from deepreservoir.cell_engine import deliver, run_cells, sidecar_folder
from deepreservoir.errors import ParameterError
from deepreservoir.sweep_config import (
    DATASETS,
    SweepConfig,
    TrainConfig,
    load_config,
    parse_config,
)
from deepreservoir.training.trainer import gate_values

__all__ = [
    "DATASETS",
    "SweepConfig",
    "TrainConfig",
    "load_config",
    "load_dataset",
    "merge_cells",
    "parse_config",
    "run_sweep",
    "sidecar_folder",
    "train_classifier",
]

#: Largest number of hidden layers of a preset (for the ``layer`` dimension of β).
_MAX_LAYERS = 5


def load_dataset(name: str | os.PathLike, *, num_samples: int | None = None, seed: int = 42
                 ) -> dict[str, np.ndarray]:
    """``mnist1d`` (generated locally), ``digits`` (scikit-learn) or a user's ``.npz`` file.

    ``num_samples``: for mnist1d, the samples generated (80 % train, 20 % test);
    for digits and a file, the training samples kept (the test split stays whole).
    A file is read by :func:`deepreservoir.data_files.load_npz` (``X`` and ``y``,
    optionally ``X_test`` and ``y_test``; otherwise a 20 % test split drawn with seed 0).
    Features are float32 and labels int64.
    """
    from deepreservoir.data_files import is_data_file, load_npz
    from deepreservoir.datasets import load_digits, load_mnist1d

    if name == "mnist1d":
        return load_mnist1d(seed=seed, num_samples=num_samples or 5000)
    if name == "digits" or is_data_file(name):
        data = load_digits() if name == "digits" else load_npz(name)
        if num_samples:  # the first training samples; the test split stays whole
            data = {**data, "x_train": data["x_train"][:num_samples],
                    "y_train": data["y_train"][:num_samples]}
        return data
    raise ParameterError(f"The 'dataset' parameter must be one of {', '.join(DATASETS)} or a "
                         f"path to a .npz file with X and y. Got {name!r}.")


def train_classifier(data: Mapping[str, np.ndarray], *, preset: str = "medium", rank: int = 8,
                     family: Any = "normal", seed: int = 0, full: bool = False,
                     config: TrainConfig | None = None, resample: str | None = None,
                     callbacks: Iterable[Any] = (), remove_scaffold: bool = False,
                     bias: bool | str = False) -> tuple[Any, dict[str, Any]]:
    """Train one MLP classifier and score it on the test split.

    Parameters
    ----------
    data : dict
        ``x_train (N, F)``, ``y_train (N,)``, ``x_test``, ``y_test``.
    preset : str
        A key of :data:`deepreservoir.PRESETS`.
    rank, family
        LottaLoRA rank and scaffold family (``family=None``: W_seed = 0).
    seed : int
        Scaffold, adapter, shuffling and dropout seed.
    full : bool
        Train the same MLP fully (Dense layers) instead; ``rank`` and ``family`` are ignored.
    resample : {None, "epoch", "batch"}
        The resampled-scaffold ablation.
    bias : bool or "seeded"
        Hidden biases of the Scaffold layers (``"seeded"``: frozen, drawn from the seed).
    remove_scaffold : bool
        Also score the model with ``β·W_seed`` removed (key ``test_accuracy_removed``).

    Returns
    -------
    model : Model
    metrics : dict
        ``test_accuracy``, ``val_accuracy``, ``train_loss``, ``trainable``,
        ``dense`` (parameters of the dense network), ``seconds`` and ``beta``
        (list of the hidden layers' β, empty for full training).
    """
    import deepreservoir as dr

    config = config or TrainConfig()
    classes = int(max(data["y_train"].max(), data["y_test"].max())) + 1
    if full:
        model = dr.scaffold_mlp(preset, classes, full=True, dropout=config.dropout, seed=seed)
    else:
        model = dr.scaffold_mlp(preset, classes, r=rank, alpha=config.alpha,
                                rslora=config.rslora, family=family, dropout=config.dropout,
                                seed=seed, bias=bias, scale=config.scale, b_init=config.b_init)
    began = time.perf_counter()
    history = model.fit(data["x_train"], data["y_train"], epochs=config.epochs,
                        batch_size=config.batch_size,
                        lr=config.full_lr if full else config.lr,
                        weight_decay=config.weight_decay, loss="cross_entropy",
                        validation_split=config.validation_split, seed=seed, verbose=0,
                        resample=resample, callbacks=list(callbacks)).history_
    seconds = time.perf_counter() - began
    scores = dr.training.evaluate(model, data["x_test"], data["y_test"], loss="cross_entropy")
    footprint = model.footprint()
    betas = [value for name, value in gate_values(model).items() if name.startswith("layer")]
    metrics: dict[str, Any] = {
        "test_accuracy": float(scores["accuracy"]),
        "val_accuracy": float(history["val_accuracy"][-1]) if "val_accuracy" in history
        else math.nan,
        "train_loss": float(history["loss"][-1]),
        "trainable": int(footprint.trainable),
        "dense": int(footprint.dense),
        "seconds": seconds,
        "beta": betas,
    }
    if remove_scaffold:
        model.remove_scaffold()
        metrics["test_accuracy_removed"] = float(dr.training.evaluate(
            model, data["x_test"], data["y_test"], loss="cross_entropy")["accuracy"])
        model.restore_scaffold()
    return model, metrics


# ------------------------------------------------------------------------ cells
def _cell_name(cell: tuple[str, str, int, int]) -> str:
    preset, family, rank, seed = cell
    return f"{preset}__{family}__r{rank}__s{seed}.nc"


def _cell_dataset(cell: tuple[str, str, int, int], metrics: dict[str, Any], fingerprint: str):
    import xarray as xr

    preset, family, rank, seed = cell
    beta = np.full(_MAX_LAYERS, np.nan)
    beta[: len(metrics["beta"])] = metrics["beta"]
    scalars = {k: metrics[k] for k in ("test_accuracy", "val_accuracy", "train_loss",
                                       "trainable", "dense", "seconds")}
    data = {k: xr.DataArray(v) for k, v in scalars.items()}
    data["beta"] = xr.DataArray(beta, dims=("layer",))
    return xr.Dataset(data, coords={"layer": [f"layer{i}" for i in range(_MAX_LAYERS)]},
                      attrs={"preset": preset, "family": family, "rank": rank, "seed": seed,
                             "config_fingerprint": fingerprint})


#: Data sets already loaded in this process (mnist1d takes seconds to generate).
_DATA_CACHE: dict[tuple[str, int | None], dict[str, np.ndarray]] = {}


def _run_cell(config: SweepConfig, cell: tuple[str, str, int, int], folder: str
              ) -> str | bytes:
    """Train one cell and persist it; the job of :func:`run_sweep`'s workers.

    Module-level (Dask pickles it by name); persisted by
    :func:`deepreservoir.cell_engine.deliver` (a path, or the file's bytes for a
    worker that does not see ``folder``).
    """
    key = (config.dataset, config.num_samples)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_dataset(config.dataset, num_samples=config.num_samples)
    data = _DATA_CACHE[key]
    preset, family, rank, seed = cell
    _, metrics = train_classifier(data, preset=preset, rank=rank, family=family, seed=seed,
                                  full=family == "full", config=config.train)
    dataset = _cell_dataset(cell, metrics, config.fingerprint())
    return deliver(folder, _cell_name(cell), dataset.to_netcdf)


def merge_cells(config: SweepConfig, folder: Path):
    """Merge the finished cells of ``folder`` into one Dataset.

    LottaLoRA variables have dimensions ``(preset, family, rank, seed)`` (and
    ``layer`` for ``beta``); the fully trained baseline's are ``full_*`` with
    ``(preset, seed)``. Missing cells are NaN.
    """
    import xarray as xr

    shape = (len(config.presets), len(config.families), len(config.ranks), len(config.seeds))
    names = ("test_accuracy", "val_accuracy", "train_loss", "trainable", "dense", "seconds")
    grid = {k: np.full(shape, np.nan) for k in names}
    beta = np.full((*shape, _MAX_LAYERS), np.nan)
    full_shape = (len(config.presets), len(config.seeds))
    full = {k: np.full(full_shape, np.nan) for k in names}
    done = 0
    for cell in config.cells():
        path = folder / _cell_name(cell)
        if not path.is_file():
            continue
        done += 1
        preset, family, rank, seed = cell
        with xr.open_dataset(path) as ds:
            p, s = config.presets.index(preset), config.seeds.index(seed)
            if family == "full":
                for k in names:
                    full[k][p, s] = float(ds[k])
            else:
                index = (p, config.families.index(family), config.ranks.index(rank), s)
                for k in names:
                    grid[k][index] = float(ds[k])
                beta[index] = ds["beta"].values
    dims = ("preset", "family", "rank", "seed")
    data = {k: (dims, v) for k, v in grid.items()}
    data["beta"] = ((*dims, "layer"), beta)
    if config.full:
        data.update({f"full_{k}": (("preset", "seed"), v) for k, v in full.items()})
        data["percent_of_full"] = (dims, 100 * grid["test_accuracy"]
                                   / full["test_accuracy"][:, None, None, :])
    coords = {"preset": list(config.presets), "family": list(config.families),
              "rank": list(config.ranks), "seed": list(config.seeds),
              "layer": [f"layer{i}" for i in range(_MAX_LAYERS)]}
    from deepreservoir._version import __version__

    attrs = {"kind": "sweep", "dataset": config.dataset,
             "num_samples": -1 if config.num_samples is None else config.num_samples,
             "train": json.dumps(asdict(config.train)), "config_fingerprint": config.fingerprint(),
             "cells_done": done, "cells_total": len(config.cells()),
             "deepreservoir_version": __version__,
             "alpha_convention": "alpha=None: α = r (scale 1)" if config.train.alpha is None
             else f"α = {config.train.alpha:g}, scale α/{'√r' if config.train.rslora else 'r'}"}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def run_sweep(config: SweepConfig, out: str | os.PathLike, *, workers: int = 1,
              threads_per_worker: int = 1, scheduler: str | None = None,
              progress: bool = True, on_cell: Callable[[tuple], None] | None = None):
    """Train every cell not yet finished, then merge all cells into ``out`` (netCDF).

    The LottaLoRA grid is one configuration of the cell engine
    (:func:`deepreservoir.cell_engine.run_cells`), which
    :func:`deepreservoir.experiment_sweep.run_experiment_sweep` also runs on.

    Parameters
    ----------
    config : SweepConfig
    out : path
        The merged Dataset's file; finished cells live in ``<out>.cells/``.
    workers : int
        1 (and no ``scheduler``): train in this process, Dask not needed.
        More: a local Dask cluster of that many worker processes
        (:class:`deepreservoir.cluster.DaskPool`). Ignored with ``scheduler``.
    threads_per_worker : int
        Torch threads of each worker (and of this process with one worker).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``): its workers
        train the cells. A worker that sees ``<out>.cells/`` (a shared file
        system) writes its cells there; one that does not sends them back to
        this process, which writes them.
    progress : bool
        A tqdm bar over the cells, and a line saying where they run (stderr).
    on_cell : callable, optional
        Called with each cell as it finishes (in this process).

    Returns
    -------
    (xarray.Dataset, dict)
        The merged Dataset and ``{"done_before": n, "trained": n, "total": n}``.

    Raises
    ------
    ParameterError
        A bad ``workers``, ``threads_per_worker``, ``scheduler`` (no scheduler
        answers there) or ``out``, or another live sweep writes ``<out>.cells/``
        (its lock file ``sweep.lock`` names the pid; a lock whose process is gone
        is taken over, with a message on stderr).
    MissingDependencyError
        Dask is needed (``workers > 1`` or ``scheduler``) but the ``distributed``
        extra is not installed.
    DataError
        ``<out>.cells/`` holds cells computed with other data or training options.
    TrainingError
        A worker died (killed, out of memory) as often as Dask allows; finished
        cells are kept.

    Notes
    -----
    The workers of a local cluster die with this process, even when it is killed
    by SIGKILL. Every cell is written atomically (complete or absent), so a rerun
    trains only what is missing. At start-up only the temporary files whose
    writer is gone are removed. A script calling this with ``workers > 1`` must
    guard its entry point with ``if __name__ == "__main__":`` (spawned processes).
    """
    stamp = {"fingerprint": config.fingerprint(), "dataset": config.dataset,
             "num_samples": config.num_samples, "train": asdict(config.train)}
    return run_cells(out=out, stamp=stamp, cells=config.cells(), cell_file=_cell_name,
                     work=_run_cell, payload=config,
                     merge=lambda folder: merge_cells(config, folder), workers=workers,
                     threads_per_worker=threads_per_worker, scheduler=scheduler,
                     progress=progress, on_cell=on_cell, owner="run_sweep", what="sweep")
