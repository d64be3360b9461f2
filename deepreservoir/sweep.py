"""Grids of LottaLoRA runs (rank × seed × family × preset) into one netCDF Dataset.

:func:`train_classifier` trains one MLP (LottaLoRA or fully trained) on a
classification data set and scores it; the ``demo``, the studies and
:func:`run_sweep` all call it.

:func:`run_sweep` takes a grid read from a TOML file by
:func:`~deepreservoir.sweep_config.load_config` (see ``examples/sweep.toml`` and
docs/cli.md; re-exported here), trains every cell here or on Dask
(:func:`deepreservoir.cluster.run_jobs`: a local cluster or a running
scheduler, docs/sweeps.md), and persists every
finished cell at once as a small netCDF file in a sidecar folder
``<out>.cells/`` (written under a temporary name and renamed, so a file is
either complete or absent). A rerun skips the cells already there, so a crash
or Ctrl-C loses at most the cells in flight. At the end the cells are merged
into one Dataset with dimensions ``(preset, family, rank, seed)``.
"""

from __future__ import annotations

import glob
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from deepreservoir._processes import FolderLock, remove_stale_temps, write_atomic
from deepreservoir.errors import DataError, ParameterError, TrainingError
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

    Module-level (Dask pickles it by name). Where ``folder`` exists (this
    process, a local cluster, a file system shared with the workers) the cell is
    written there atomically and its path returned; elsewhere (a remote worker
    without that folder) the netCDF file's bytes are returned for the client to
    write.
    """
    key = (config.dataset, config.num_samples)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_dataset(config.dataset, num_samples=config.num_samples)
    data = _DATA_CACHE[key]
    preset, family, rank, seed = cell
    _, metrics = train_classifier(data, preset=preset, rank=rank, family=family, seed=seed,
                                  full=family == "full", config=config.train)
    dataset = _cell_dataset(cell, metrics, config.fingerprint())
    path = Path(folder) / _cell_name(cell)
    if path.parent.is_dir():
        write_atomic(path, dataset.to_netcdf)
        return str(path)
    with tempfile.TemporaryDirectory(prefix="deepreservoir-cell-") as scratch:
        scratch_file = Path(scratch) / path.name
        dataset.to_netcdf(scratch_file)
        return scratch_file.read_bytes()


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


def _check_sidecar(folder: Path, config: SweepConfig) -> None:
    stamp = folder / "config.json"
    payload = {"fingerprint": config.fingerprint(), "dataset": config.dataset,
               "num_samples": config.num_samples, "train": asdict(config.train)}
    if stamp.is_file():
        try:
            previous = json.loads(stamp.read_text())
        except ValueError:
            raise DataError(f"{str(stamp)!r} is not valid JSON; expected the stamp a sweep "
                            f"writes: use another --out or delete that folder.") from None
        if previous.get("fingerprint") != config.fingerprint():
            raise DataError(
                f"The cells in {str(folder)!r} were computed with different data or training "
                f"options ({previous.get('train')}); use another --out or delete that folder.")
        return
    write_atomic(stamp, lambda tmp: tmp.write_text(json.dumps(payload, indent=1)))


def sidecar_folder(out: Path) -> Path:
    """The folder holding the finished cells of the sweep written to ``out``."""
    return out.with_name(out.name + ".cells")


_SCHEDULER_PARAMETER = "The 'scheduler' parameter of run_sweep (--scheduler)"


def run_sweep(config: SweepConfig, out: str | os.PathLike, *, workers: int = 1,
              threads_per_worker: int = 1, scheduler: str | None = None,
              progress: bool = True, on_cell: Callable[[tuple], None] | None = None):
    """Train every cell not yet finished, then merge all cells into ``out`` (netCDF).

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
    for name, value in (("workers", workers), ("threads_per_worker", threads_per_worker)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ParameterError(f"The {name!r} parameter of run_sweep must be an int >= 1. "
                                 f"Got {value!r}.")
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ParameterError(f"{_SCHEDULER_PARAMETER} must be the address of a running Dask "
                             f"scheduler (e.g. tcp://host:8786) or None. Got {scheduler!r}.")
    if workers > 1 or scheduler is not None:  # before any work: one line naming the extra
        from deepreservoir._extras import DISTRIBUTED_MODULES, require_extra

        require_extra("a sweep on Dask (--workers > 1 or --scheduler)", "distributed",
                      DISTRIBUTED_MODULES)
    if scheduler is not None:  # a wrong address fails fast, before any folder is made
        from deepreservoir.cluster import check_scheduler

        check_scheduler(scheduler, parameter=_SCHEDULER_PARAMETER)
    out = Path(out)
    if out.suffix != ".nc":
        raise ParameterError(f"The 'out' parameter of run_sweep must end in .nc. Got {str(out)!r}.")
    folder = sidecar_folder(out)
    for path, expected in ((out, "a netCDF file"), (folder, "a folder of cells")):
        if path.exists() and path.is_dir() != (path is folder):
            what = "a directory" if path.is_dir() else "a file"
            raise ParameterError(f"The 'out' parameter of run_sweep: {str(path)!r} is {what}; "
                                 f"expected {expected} or nothing there.")
    lock = FolderLock(folder, what="The 'out' parameter of run_sweep (--out)",
                      hint="wait for that sweep to end or choose another --out").acquire()
    try:
        if lock.took_over is not None:
            print(f"deepreservoir sweep: {lock.took_over}", file=sys.stderr)
        _check_sidecar(folder, config)
        remove_stale_temps(folder)
        remove_stale_temps(out.parent, f".{glob.escape(out.name)}~*.tmp")
        where = {"workers": workers, "threads_per_worker": threads_per_worker,
                 "scheduler": scheduler}
        return _run_locked(config, out, folder, where, progress, on_cell)
    finally:
        lock.release()


def _run_locked(config: SweepConfig, out: Path, folder: Path, where: dict[str, Any],
                progress: bool, on_cell: Callable | None):
    """:func:`run_sweep` once the cells' folder is locked."""
    from tqdm.auto import tqdm

    from deepreservoir.cluster import run_jobs

    cells = config.cells()
    todo = [c for c in cells if not (folder / _cell_name(c)).is_file()]
    stats = {"done_before": len(cells) - len(todo), "trained": 0, "total": len(cells)}
    bars = []

    def started(description: str) -> None:  # once the workers are up: then the bar
        if progress and description != "running in this process":
            print(f"deepreservoir sweep: {len(todo)} cells {description}", file=sys.stderr)
        bars.append(tqdm(total=len(cells), initial=stats["done_before"], desc="sweep cells",
                         disable=not progress, unit="cell"))

    def finished(job: tuple, result: str | bytes) -> None:
        path = folder / _cell_name(job[1])
        if isinstance(result, bytes):  # a worker that does not see the folder
            write_atomic(path, lambda tmp: tmp.write_bytes(result))
        elif not path.is_file():
            raise DataError(
                f"A Dask worker wrote the cell {result!r} into a folder of the same name on its "
                f"own host, which this host does not see; expected --out on a file system "
                f"shared by this process and every worker, or a path the workers lack (then "
                f"the cells come back to this process).")
        stats["trained"] += 1
        bars[0].update(1)
        if on_cell is not None:
            on_cell(job[1])

    # On an exception or Ctrl-C the jobs left are cancelled and the local workers stopped;
    # finished cells are on disk, partial ones temporary files, removed by the next run.
    jobs = [(config, cell, str(folder.resolve())) for cell in todo]
    try:
        if todo:
            run_jobs(_run_cell, jobs, finished, workers=where["workers"],
                     threads_per_worker=where["threads_per_worker"],
                     scheduler=where["scheduler"],
                     label=lambda job: _cell_name(job[1])[:-len(".nc")],
                     parameter=_SCHEDULER_PARAMETER, on_start=started)
    except TrainingError as error:
        raise TrainingError(f"{error} The {stats['done_before'] + stats['trained']} finished "
                            f"cells are in {str(folder)!r}.") from None
    finally:
        for bar in bars:
            bar.close()
    merged = merge_cells(config, folder)
    write_atomic(out, merged.to_netcdf)
    return merged, stats
