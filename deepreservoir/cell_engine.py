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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deepreservoir._processes import FolderLock, remove_stale_temps, write_atomic
from deepreservoir.errors import DataError, ParameterError

__all__ = ["check_out", "check_stamp", "run_cells", "sidecar_folder"]


def sidecar_folder(out: Path) -> Path:
    """The folder holding the finished cells of the grid written to ``out``."""
    return out.with_name(out.name + ".cells")


def check_out(out: str | os.PathLike, parameter: str) -> Path:
    """``out`` as a Path ending in ``.nc`` whose sidecar is a folder or absent.

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
        except ValueError:
            raise DataError(f"{str(stamp)!r} is not valid JSON; expected the stamp a sweep "
                            f"writes: use another --out or delete that folder.") from None
        if previous.get("fingerprint") != payload["fingerprint"]:
            shown = {k: v for k, v in previous.items() if k != "fingerprint"}
            raise DataError(
                f"The cells in {str(folder)!r} were computed with different data or options "
                f"({shown}); use another --out or delete that folder.")
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(stamp, lambda tmp: tmp.write_text(json.dumps(payload, indent=1, default=repr)))


def run_cells(*, out: str | os.PathLike, stamp: dict[str, Any], cells: Sequence[Any],
              cell_file: Callable[[Any], str], work: Callable[..., Any],
              job: Callable[[Any, str], tuple], merge: Callable[[Path], Any],
              workers: int = 1, threads_per_worker: int = 1, scheduler: str | None = None,
              progress: bool = True, on_cell: Callable[[Any], None] | None = None,
              parameter: str = "The 'out' parameter (--out)", what: str = "sweep"):
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
        A top-level (picklable) function ``work(*job(cell, folder))`` that computes
        one cell and writes its file atomically.
    job : callable
        ``(cell, folder) → arguments of work``.
    merge : callable
        ``folder → xarray.Dataset`` of the finished cells.
    workers, threads_per_worker, scheduler
        One worker and no scheduler: in this process. Otherwise on Dask: a
        ``LocalCluster`` of ``workers`` processes, or the scheduler at ``scheduler``.
    progress : bool
        A tqdm bar over the cells.
    on_cell : callable, optional
        Called with each cell as it finishes.

    Returns
    -------
    (xarray.Dataset, dict)
        The merged Dataset and ``{"done_before": n, "trained": n, "total": n}``.

    Raises
    ------
    ParameterError
        A bad ``workers``, ``out`` or ``scheduler``, or another live run holds the folder.
    DataError
        The folder holds cells of another configuration.
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ParameterError(f"The 'workers' parameter must be an int >= 1. Got {workers!r}.")
    if (not isinstance(threads_per_worker, int) or isinstance(threads_per_worker, bool)
            or threads_per_worker < 1):
        raise ParameterError(f"The 'threads_per_worker' parameter must be an int >= 1. "
                             f"Got {threads_per_worker!r}.")
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
        _run(todo, stats, folder, work, job, workers, threads_per_worker, scheduler,
             progress, on_cell, what)
        merged = merge(folder)
        write_atomic(out, merged.to_netcdf)
        return merged, stats
    finally:
        lock.release()


def _run(todo, stats, folder, work, job, workers, threads_per_worker, scheduler, progress,
         on_cell, what) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=stats["total"], initial=stats["done_before"], desc=f"{what} cells",
               disable=not progress, unit="cell")

    def finished(cell) -> None:
        stats["trained"] += 1
        bar.update(1)
        if on_cell is not None:
            on_cell(cell)

    try:
        if workers == 1 and scheduler is None:
            import torch

            threads = torch.get_num_threads()
            try:
                for cell in todo:
                    work(*job(cell, str(folder)))
                    finished(cell)
            finally:
                torch.set_num_threads(threads)
        elif todo:
            from deepreservoir.cluster import DaskPool

            by_job = {}
            jobs = []
            for cell in todo:
                arguments = job(cell, str(folder))
                by_job[id(arguments)] = cell
                jobs.append(arguments)
            with DaskPool(scheduler=scheduler, workers=workers,
                          threads_per_worker=threads_per_worker) as pool:
                pool.run(work, jobs, lambda arguments, _: finished(by_job[id(arguments)]))
    finally:
        bar.close()
