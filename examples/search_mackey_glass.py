"""reservoirpy's hyperparameter tutorial as a deepreservoir search, on Mackey–Glass.

Run: ``python examples/search_mackey_glass.py [--trials 200] [--workers 2] [--out DIR]``

Reads ``search_mackey_glass.toml`` (the tutorial's space: sr, leak rate and ridge
on log scales, 500 units, 5 ESNs per trial, the NRMSE over the training range),
searches it with Optuna's TPE (trials on a Dask LocalCluster with ``--workers``),
then loads the best model, a normal artifact, and scores it again.
Rerunning the command resumes the search from its journal in ``DIR``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import deepreservoir as dr
from deepreservoir.experiment import series_metrics
from deepreservoir.experiment_config import load_experiment
from deepreservoir.experiment_data import load_task
from deepreservoir.search import run_search
from deepreservoir.threads import use_threads

CONFIG = Path(__file__).with_name("search_mackey_glass.toml")


def main(out: Path, trials: int | None, workers: int) -> float:
    config = load_experiment(CONFIG)
    trials_ds, best = run_search(config, out, trials=trials, workers=workers, progress=False)
    finished = int((trials_ds.state == "COMPLETE").sum())
    print(f"{finished} trials finished; best trial {best['number']}: "
          + ", ".join(f"{k} = {v:.3g}" for k, v in best["params"].items()))
    print(f"best mean NRMSE over {len(config.seeds)} seeds = {best['value']:.3e}")
    model = dr.load(best["artifact"])  # spec + seed + a fitted readout
    task = load_task(config.dataset, config.data)
    model.run(task.x_train)  # the test series continues from the training's final state
    scores = series_metrics(model.run(task.x_test), task.y_test, task.x_train)
    print(f"reloaded best model (seed {config.seeds[0]}): NRMSE = {scores['nrmse_train']:.3e}")
    return best["value"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None, help="budget (default: the TOML's)")
    parser.add_argument("--workers", type=int, default=1, help="Dask workers (1: no Dask)")
    parser.add_argument("--out", type=Path, default=Path("search_mackey_glass.search"))
    args = parser.parse_args()
    use_threads()  # one thread unless DEEPRESERVOIR_NUM_THREADS says otherwise
    main(args.out, args.trials, args.workers)
