"""The engine under every grid: cells persisted one file each, run here or on Dask.

A grid writes its results to ``out`` (netCDF) and keeps every finished cell as
its own small file in the sidecar folder ``<out>.cells/``:

* a cell is written under a temporary name and renamed, so it is complete or
  absent; a rerun computes only the cells whose file is missing;
* ``config.json`` in the folder records the fingerprint of what changes a
  cell's result; a rerun with another fingerprint is refused (another ``--out``
  or an emptied folder is needed), so cells of two configurations never mix;
* a lock file (:class:`~deepreservoir._processes.FolderLock`) refuses a second
  run on the same folder while the first lives, and is taken over once its
  process is gone; temporary files are removed only when their writer is gone;
* one worker runs the cells in this process; more workers, or a scheduler's
  address, run them on Dask (:class:`~deepreservoir.cluster.DaskPool`), whose
  local workers die with this process, even by SIGKILL.

:func:`deepreservoir.sweep.run_sweep` (the LottaLoRA grid) and
:func:`deepreservoir.experiment_sweep.run_experiment_sweep` (any axes) both run
on it; they differ only in their cells and how they merge them.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deepreservoir._processes import FolderLock, remove_stale_temps, write_atomic
from deepreservoir.errors import DataError, ParameterError, TrainingError

__all__ = ["check_out", "check_stamp", "check_where", "deliver", "run_cells", "sidecar_folder"]


def sidecar_folder(out: Path) -> Path:
    """The folder holding the finished cells of the grid written to ``out``."""
    return out.with_name(out.name + ".cells")


def check_out(out: str | os.PathLike, parameter: str) -> Path:
    """``out`` as a Path ending in ``.nc`` whose sidecar is a folder or absent.

    Parameters
    ----------
    out : path
        The merged Dataset's file.
    parameter : str
        How messages name ``out`` (``"The 'out' parameter of run_sweep (--out)"``).

    Returns
    -------
    Path

    Raises
    ------
    ParameterError
        Names ``parameter``, the value and what was expected.
    """
    out = Path(out)
    if out.suffix != ".nc":
        raise ParameterError(f"{parameter} must end in .nc. Got {str(out)!r}.")
    folder = sidecar_folder(out)
    for path, expected in ((out, "a netCDF file"), (folder, "a folder of cells")):
        if path.exists() and path.is_dir() != (path is folder):
            what = "a directory" if path.is_dir() else "a file"
            raise ParameterError(f"{parameter}: {str(path)!r} is {what}; expected {expected} "
                                 f"or nothing there.")
    return out


def check_stamp(folder: Path, payload: dict[str, Any]) -> None:
    """Write ``folder/config.json`` or check that its fingerprint is ``payload``'s.

    Raises
    ------
    DataError
        The folder's cells were computed with another fingerprint, or its stamp
        is not JSON.
    """
    stamp = folder / "config.json"
    if stamp.is_file():
        try:
            previous = json.loads(stamp.read_text())
            if not isinstance(previous, dict):
                raise ValueError("not an object")
        except ValueError:
            raise DataError(f"{str(stamp)!r} is not valid JSON; expected the stamp a sweep "
                            f"writes: use another --out or delete that folder.") from None
        if previous.get("fingerprint") != payload["fingerprint"]:
            shown = {k: v for k, v in previous.items() if k != "fingerprint"}
            raise DataError(
                f"The cells in {str(folder)!r} were computed with different data or training "
                f"options ({shown}); use another --out or delete that folder.")
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(stamp, lambda tmp: tmp.write_text(json.dumps(payload, indent=1, default=repr)))


def deliver(folder: str, name: str, write: Callable[[Path], Any]) -> str | bytes:
    """Worker side: persist one cell; return its path, or its bytes for the client.

    Where ``folder`` exists (this process, a local cluster, a file system shared
    with the workers) the cell is written there atomically by ``write(path)`` and
    its path returned; elsewhere (a remote worker without that folder) the file's
    bytes are returned and :func:`run_cells` writes them in the client.

    Parameters
    ----------
    folder : str
        The sidecar folder, as the client resolved it.
    name : str
        The cell's file name.
    write : callable
        ``write(path)`` writes the cell's file at ``path``.

    Returns
    -------
    str or bytes
    """
    path = Path(folder) / name
    if path.parent.is_dir():
        write_atomic(path, write)
        return str(path)
    with tempfile.TemporaryDirectory(prefix="deepreservoir-cell-") as scratch:
        scratch_file = Path(scratch) / name
        write(scratch_file)
        return scratch_file.read_bytes()


def check_where(workers: int, threads_per_worker: int, scheduler: str | None, owner: str,
                what: str) -> str:
    """Check where work runs, before anything is written; return the scheduler's label.

    Parameters
    ----------
    workers, threads_per_worker : int
        Each an int >= 1.
    scheduler : str or None
        A running Dask scheduler's address; it must answer (within 10 s).
    owner, what : str
        The caller's name (``run_sweep``) and what it runs (``sweep``), for messages.

    Returns
    -------
    str
        How messages name the scheduler parameter.

    Raises
    ------
    ParameterError
        A bad count, or an address where no scheduler answers.
    MissingDependencyError
        Dask is needed (``workers > 1`` or a scheduler) and not installed.
    """
    scheduler_parameter = f"The 'scheduler' parameter of {owner} (--scheduler)"
    from deepreservoir.cluster import positive_int

    positive_int(workers, "workers", owner)
    positive_int(threads_per_worker, "threads_per_worker", owner)
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ParameterError(f"{scheduler_parameter} must be the address of a running Dask "
                             f"scheduler (e.g. tcp://host:8786) or None. Got {scheduler!r}.")
    if workers > 1 or scheduler is not None:  # before any work: one line naming the extra
        from deepreservoir._extras import DISTRIBUTED_MODULES, require_extra

        require_extra(f"a {what} on Dask (--workers > 1 or --scheduler)", "distributed",
                      DISTRIBUTED_MODULES)
    if scheduler is not None:  # a wrong address fails fast, before any folder is made
        from deepreservoir.cluster import check_scheduler

        check_scheduler(scheduler, parameter=scheduler_parameter)
    return scheduler_parameter


def run_cells(*, out: str | os.PathLike, stamp: dict[str, Any], cells: Sequence[Any],
              cell_file: Callable[[Any], str], work: Callable[..., str | bytes],
              payload: Any, merge: Callable[[Path], Any], workers: int = 1,
              threads_per_worker: int = 1, scheduler: str | None = None,
              progress: bool = True, on_cell: Callable[[Any], None] | None = None,
              owner: str = "run_sweep", what: str = "sweep"):
    """Run every cell whose file is missing, then merge all cells into ``out``.

    Parameters
    ----------
    out : path
        The merged Dataset's netCDF file; cells live in ``<out>.cells/``.
    stamp : dict
        Written to ``config.json``; its ``"fingerprint"`` must match on a rerun.
    cells : sequence
        Every cell of the grid.
    cell_file : callable
        ``cell → file name`` inside the sidecar folder.
    work : callable
        A module-level function ``work(payload, cell, folder) -> str | bytes``
        that computes one cell and persists it with :func:`deliver`.
    payload : object
        The configuration every cell needs (pickled once per job).
    merge : callable
        ``folder → xarray.Dataset`` of the finished cells.
    workers, threads_per_worker, scheduler
        One worker and no scheduler: in this process, Dask not needed. Otherwise
        on Dask (:func:`deepreservoir.cluster.run_jobs`): a ``LocalCluster`` of
        ``workers`` processes, or the running scheduler at ``scheduler``
        (``workers`` is then ignored).
    progress : bool
        A tqdm bar over the cells, and a line saying where they run (stderr).
    on_cell : callable, optional
        Called with each cell as it finishes (in this process).
    owner, what : str
        The caller's name and what it runs, for messages.

    Returns
    -------
    (xarray.Dataset, dict)
        The merged Dataset and ``{"done_before": n, "trained": n, "total": n}``.

    Raises
    ------
    ParameterError
        A bad ``workers``, ``threads_per_worker``, ``scheduler`` (no scheduler
        answers there) or ``out``, or another live run holds the folder (its lock
        file names the pid; a lock whose process is gone is taken over, with a
        message on stderr).
    MissingDependencyError
        Dask is needed but the ``distributed`` extra is not installed.
    DataError
        The folder holds cells of another configuration.
    TrainingError
        A worker died as often as Dask allows; finished cells are kept.
    """
    scheduler_parameter = check_where(workers, threads_per_worker, scheduler, owner, what)
    parameter = f"The 'out' parameter of {owner} (--out)"
    out = check_out(out, parameter)
    folder = sidecar_folder(out)
    lock = FolderLock(folder, what=parameter,
                      hint=f"wait for that {what} to end or choose another --out").acquire()
    try:
        if lock.took_over is not None:
            print(f"deepreservoir {what}: {lock.took_over}", file=sys.stderr)
        check_stamp(folder, stamp)
        remove_stale_temps(folder)
        remove_stale_temps(out.parent, f".{glob.escape(out.name)}~*.tmp")
        todo = [cell for cell in cells if not (folder / cell_file(cell)).is_file()]
        stats = {"done_before": len(cells) - len(todo), "trained": 0, "total": len(cells)}
        jobs = [(payload, cell, str(folder.resolve())) for cell in todo]
        where = {"workers": workers, "threads_per_worker": threads_per_worker,
                 "scheduler": scheduler, "parameter": scheduler_parameter}
        _run(jobs, stats, folder, cell_file, work, where, progress, on_cell, what)
        merged = merge(folder)
        write_atomic(out, merged.to_netcdf)
        return merged, stats
    finally:
        lock.release()


def _run(jobs, stats, folder, cell_file, work, where, progress, on_cell, what) -> None:
    from tqdm.auto import tqdm

    from deepreservoir.cluster import run_jobs

    bars = []

    def started(description: str) -> None:  # once the workers are up: then the bar
        if progress and description != "running in this process":
            print(f"deepreservoir {what}: {len(jobs)} cells {description}", file=sys.stderr)
        bars.append(tqdm(total=stats["total"], initial=stats["done_before"],
                         desc=f"{what} cells", disable=not progress, unit="cell"))

    def finished(job: tuple, result: str | bytes) -> None:
        path = folder / cell_file(job[1])
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
    try:
        if jobs:
            run_jobs(work, jobs, finished, workers=where["workers"],
                     threads_per_worker=where["threads_per_worker"],
                     scheduler=where["scheduler"],
                     label=lambda job: Path(cell_file(job[1])).stem,
                     parameter=where["parameter"], on_start=started)
    except TrainingError as error:
        raise TrainingError(f"{error} The {stats['done_before'] + stats['trained']} finished "
                            f"cells are in {str(folder)!r}.") from None
    finally:
        for bar in bars:
            bar.close()
