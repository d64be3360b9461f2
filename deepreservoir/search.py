"""Hyperparameter search with Optuna over an experiment's ranges, trials run here or on Dask.

:func:`run_search` draws trials from the ``[search.space]`` ranges of an
:class:`~deepreservoir.experiment_config.ExperimentConfig` with Optuna's TPE (or
random) sampler, seeded. A trial trains one model per seed of
``[experiment] seeds`` (reservoirpy's ``instances_per_trial``) and scores the
mean of the metric. The sampler's questions and answers stay in this process
(``study.ask`` / ``study.tell``), so the workers need no access to the study's
storage: a LocalCluster and a remote scheduler work alike.

Everything lives in one folder ``out`` (``NAME.search/``):

``study.log``
    Optuna's journal (a file-backed storage). A rerun loads it and runs only the
    trials still missing; trials that were in flight when a run was killed are
    marked failed ("interrupted") and their points asked again first.
``config.json``
    The experiment's fingerprint; a rerun with another configuration is refused.
``trials.nc``
    Every trial as an xarray Dataset along ``trial``: its parameters, the
    metric's mean, every metric's mean over the seeds, and its state.
``best/``
    The best trial's model (trained with the first seed), a normal artifact
    (:func:`deepreservoir.load`); ``best.json`` holds its parameters and scores.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from deepreservoir._processes import FolderLock, remove_stale_temps, write_atomic
from deepreservoir.cell_engine import check_stamp
from deepreservoir.errors import ParameterError, TrainingError
from deepreservoir.experiment_config import ExperimentConfig, Range

__all__ = ["STUDY_NAME", "distributions", "evaluate_point", "run_search", "trials_dataset"]

#: The Optuna study's name inside ``study.log``.
STUDY_NAME = "deepreservoir"


def distributions(space: dict[str, Range]) -> dict[str, Any]:
    """Optuna distributions of the ranges: float, int (both ends ints) or categorical."""
    import optuna

    result = {}
    for name, span in space.items():
        if span.choices is not None:
            result[name] = optuna.distributions.CategoricalDistribution(list(span.choices))
        elif span.is_int:
            result[name] = optuna.distributions.IntDistribution(span.low, span.high, log=span.log)
        else:
            result[name] = optuna.distributions.FloatDistribution(float(span.low),
                                                                  float(span.high), log=span.log)
    return result


def evaluate_point(config: ExperimentConfig, params: dict[str, Any], threads: int = 1
                   ) -> dict[str, Any]:
    """Worker: one trial, every seed; the mean of each metric and the per-seed values.

    Returns
    -------
    dict
        ``{"mean": {metric: mean over seeds}, "per_seed": [metrics, ...]}``; a
        trial that raises returns ``{"error": "Type: message"}`` instead, so one
        bad point does not stop the search (any exception: a factory is user code).
    """
    import torch

    from deepreservoir.experiment import run_trial

    torch.set_num_threads(threads)
    try:
        per_seed = [run_trial(config, params, seed) for seed in config.seeds]
    except Exception as error:  # a user's factory may raise anything; the search goes on
        return {"error": f"{type(error).__name__}: {error}"}
    keys = per_seed[0].keys()
    mean = {k: float(np.mean([m[k] for m in per_seed])) for k in keys}
    return {"mean": mean, "per_seed": per_seed}


def _sampler(config: ExperimentConfig, asked: int = 0):
    """The sampler for the trial after ``asked`` trials.

    It is seeded from ``(search.seed, asked)`` afresh for every trial, so a
    search resumed from its journal asks the same points as one never stopped
    (TPE keeps no other state: it reads the finished trials from the study).
    """
    import optuna

    from deepreservoir.training.options import derive_seed

    seed = derive_seed(config.search_seed, asked) % (2 ** 32)
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _open_study(config: ExperimentConfig, folder: Path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(folder / "study.log")))
    return optuna.create_study(study_name=STUDY_NAME, storage=storage,
                               sampler=_sampler(config), direction=config.direction,
                               load_if_exists=True)


def _recover(study) -> list[dict[str, Any]]:
    """Mark trials left running by a killed run as failed; return their points."""
    from optuna.trial import TrialState

    again = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, "error", "interrupted")
        study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
        again.append(dict(trial.params))
    return again


def _counted(study) -> int:
    """Trials that count against the budget: finished, or failed on their own."""
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state == TrialState.COMPLETE or (
                   t.state == TrialState.FAIL and t.user_attrs.get("error") != "interrupted"))


def _asked(study) -> int:
    """Trials asked so far, as a run never stopped would count them.

    Trials marked "interrupted" and their re-queued copies still waiting are
    left out, so a resumed search seeds its sampler as an uninterrupted one.
    """
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state != TrialState.WAITING and t.user_attrs.get("error") != "interrupted")


def _value(outcome: dict[str, Any], metric: str) -> float | None:
    if "error" in outcome:
        return None
    value = outcome["mean"][metric]
    return None if math.isnan(value) else value


def run_search(config: ExperimentConfig, out: str | os.PathLike, *, trials: int | None = None,
               workers: int = 1, threads_per_worker: int = 1, scheduler: str | None = None,
               progress: bool = True, save_best: bool = True,
               on_trial: Callable[[int, dict[str, Any]], None] | None = None):
    """Run the search until ``trials`` trials are finished; save the trials and the best model.

    Parameters
    ----------
    config : ExperimentConfig
        With a non-empty ``space``.
    out : path
        The search's folder (created); see the module docstring.
    trials : int, optional
        The budget (default ``config.trials``), counted over every run of this folder.
    workers, threads_per_worker, scheduler
        One worker and no scheduler: trials run in this process, one after the
        other (then the sequence of points is fixed by ``search.seed``). Otherwise
        ``workers`` trials are in flight at once on Dask (a LocalCluster, or the
        scheduler at ``scheduler``).
    progress : bool
        A tqdm bar over the trials.
    save_best : bool
        Train the best point again (first seed) and save it in ``out/best``.
    on_trial : callable, optional
        ``on_trial(number, outcome)`` as each trial finishes.

    Returns
    -------
    (xarray.Dataset, dict)
        The trials (:func:`trials_dataset`) and the best trial:
        ``{"number", "params", "value", "metrics", "artifact"}``.

    Raises
    ------
    ParameterError
        An empty space, a bad budget or folder, or another live search on the folder.
    DataError
        The folder holds a search of another configuration.
    TrainingError
        Every trial failed (the first error is quoted).
    """
    from deepreservoir._extras import DISTRIBUTED_MODULES, require_extra

    require_extra("a hyperparameter search", "distributed",
                  {k: v for k, v in DISTRIBUTED_MODULES.items() if k == "optuna"})
    if not config.space:
        raise ParameterError(f"{config.source}: a search needs ranges in [search.space]; "
                             f"got none (a grid of [axes] runs with 'deepreservoir sweep').")
    if config.axes:  # a grid's axes are categorical choices of the search
        config = replace(config, space={**{name: Range(choices=values)
                                           for name, values in config.axes.items()},
                                        **config.space}, axes={})
    budget = config.trials if trials is None else trials
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ParameterError(f"The 'trials' parameter of run_search must be an int >= 1. "
                             f"Got {budget!r}.")
    from deepreservoir.cell_engine import check_where

    check_where(workers, threads_per_worker, scheduler, "run_search", "search")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"The 'out' parameter of run_search: {str(folder)!r} is a file; "
                             f"expected a folder or nothing there.")
    folder.mkdir(parents=True, exist_ok=True)
    lock = FolderLock(folder, "search.lock", what="The 'out' parameter of the search (--out)",
                      hint="wait for that search to end or choose another --out").acquire()
    try:
        if lock.took_over is not None:
            print(f"deepreservoir search: {lock.took_over}", file=sys.stderr)
        check_stamp(folder, {"fingerprint": _fingerprint(config), "model": config.model,
                             "dataset": config.dataset, "metric": config.metric,
                             "space": {k: r.as_dict() for k, r in config.space.items()}})
        remove_stale_temps(folder)
        study = _open_study(config, folder)
        for point in _recover(study)[:max(budget - _counted(study), 0)]:
            study.enqueue_trial(point, skip_if_exists=False)
        _loop(study, config, budget, workers, threads_per_worker, scheduler, progress, on_trial)
        dataset = trials_dataset(study, config)
        write_atomic(folder / "trials.nc", dataset.to_netcdf)
        best = _best(study, config, folder, save_best)
        return dataset, best
    finally:
        lock.release()


def _fingerprint(config: ExperimentConfig) -> str:
    import hashlib

    text = json.dumps({"experiment": config.fingerprint(), "seeds": list(config.seeds),
                       "space": {k: r.as_dict() for k, r in config.space.items()},
                       "sampler": config.sampler, "seed": config.search_seed},
                      sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _record(study, trial, outcome: dict[str, Any], metric: str) -> None:
    from optuna.trial import TrialState

    value = _value(outcome, metric)
    if value is None:
        trial.set_user_attr("error", outcome.get("error", f"the metric {metric} is NaN"))
        study.tell(trial, state=TrialState.FAIL)
        return
    trial.set_user_attr("metrics", outcome["mean"])
    trial.set_user_attr("per_seed", outcome["per_seed"])
    study.tell(trial, value)


def _loop(study, config, budget, workers, threads, scheduler, progress, on_trial) -> None:
    from tqdm.auto import tqdm

    space = distributions(config.space)
    done = _counted(study)
    bar = tqdm(total=budget, initial=min(done, budget), desc="search trials",
               disable=not progress, unit="trial")

    def finish(trial, outcome) -> None:
        _record(study, trial, outcome, config.metric)
        bar.update(1)
        if on_trial is not None:
            on_trial(trial.number, outcome)

    try:
        def ask():
            study.sampler = _sampler(config, _asked(study))
            trial = study.ask(space)
            return trial, (config, dict(trial.params), threads)

        remaining = max(budget - done, 0)
        if remaining == 0:
            return
        if workers == 1 and scheduler is None:
            import torch

            previous = torch.get_num_threads()
            try:
                for _ in range(remaining):
                    trial, job = ask()
                    finish(trial, evaluate_point(*job))
            finally:
                torch.set_num_threads(previous)
            return
        from deepreservoir.cluster import DaskPool

        with DaskPool(scheduler=scheduler, workers=workers,
                      threads_per_worker=threads) as pool:
            # in flight: one trial per local worker; on a scheduler, one per worker thread
            pool.stream(evaluate_point, ask, finish, total=remaining,
                        in_flight=None if scheduler is not None else workers)
    finally:
        bar.close()


def trials_dataset(study, config: ExperimentConfig):
    """Every trial of ``study`` as an xarray Dataset along ``trial``.

    Variables: ``value`` (the metric's mean over the seeds; NaN when failed),
    ``state``, ``error`` (why a trial failed; empty otherwise), one variable per
    parameter (``param_NAME``), and the mean of every other metric
    (``mean_NAME``). Attributes: the metric, direction, best trial.
    """
    import xarray as xr

    every = study.get_trials(deepcopy=False)
    numbers = np.asarray([t.number for t in every], dtype=np.int64)
    data: dict[str, Any] = {
        "value": ("trial", np.asarray([t.value if t.value is not None else np.nan
                                       for t in every], dtype=np.float64)),
        "state": ("trial", np.asarray([t.state.name for t in every], dtype=object)),
    }
    for name, span in config.space.items():
        numeric = span.choices is None or all(
            isinstance(c, (int, float)) and not isinstance(c, bool) for c in span.choices)
        if numeric:
            values = np.asarray([t.params.get(name, np.nan) for t in every], dtype=np.float64)
        else:  # strings, true/false, or mixed: their TOML spelling (netCDF holds strings)
            values = np.asarray([_spelling(t.params[name]) if name in t.params else ""
                                 for t in every], dtype=object)
        data[f"param_{name}"] = ("trial", values)
    data["error"] = ("trial", np.asarray([str(t.user_attrs.get("error", "")) for t in every],
                                         dtype=object))
    metric_names = sorted({k for t in every for k in t.user_attrs.get("metrics", {})})
    for name in metric_names:
        data[f"mean_{name}"] = ("trial", np.asarray(
            [t.user_attrs.get("metrics", {}).get(name, np.nan) for t in every],
            dtype=np.float64))
    complete = [t for t in every if t.value is not None]
    attrs = {"kind": "search", "metric": config.metric, "direction": config.direction,
             "sampler": config.sampler, "seeds": json.dumps(list(config.seeds)),
             "model": config.model, "dataset": config.dataset,
             "best_trial": study.best_trial.number if complete else -1}
    return xr.Dataset(data, coords={"trial": numbers}, attrs=attrs)


def _spelling(value: Any) -> str:
    """A choice as the TOML file writes it: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _best(study, config: ExperimentConfig, folder: Path, save: bool) -> dict[str, Any]:
    import deepreservoir as dr
    from deepreservoir.experiment import train_trial
    from deepreservoir.experiment_data import data_kind

    complete = [t for t in study.get_trials(deepcopy=False) if t.value is not None]
    if not complete:
        errors = [t.user_attrs.get("error") for t in study.get_trials(deepcopy=False)]
        first = next((e for e in errors if e and e != "interrupted"), "no trial finished")
        raise TrainingError(f"Every trial of the search in {str(folder)!r} failed; the first "
                            f"error: {first}")
    trial = study.best_trial
    best = {"number": trial.number, "params": dict(trial.params), "value": trial.value,
            "metrics": trial.user_attrs.get("metrics", {}), "artifact": None}
    if save:
        model, metrics = train_trial(config, dict(trial.params), config.seeds[0])
        target = folder / "best"
        dr.save(model, target, overwrite=True)
        best["artifact"] = str(target)
        best["artifact_metrics"] = metrics
        if data_kind(config.dataset, config.data) == "series":
            best["artifact_note"] = ("artifact_metrics score the saved model on the test series "
                                     "run after the training series (an ESN's state carries "
                                     "over): run x_train, then x_test")
    write_atomic(folder / "best.json",
                 lambda tmp: tmp.write_text(json.dumps(best, indent=1, default=float)))
    return best
