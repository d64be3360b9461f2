"""reservoirpy's hyperparameter tutorial side by side: ``reservoirpy.hyper`` and ``deepreservoir``.

Run: ``python benchmarks/bench_search.py [--trials 200] [--workers 2] [--task doublescroll]``

Both sides search the tutorial's space (sr, leak rate and ridge on log scales,
500 units, 5 ESNs per trial with seeds 1234…1238) for the same budget on the
same data, with the tutorial's loss: the RMSE of a 2-step forecast over the
peak-to-peak range of the training inputs, averaged over the 5 ESNs.

* reservoirpy: ``parallel_research`` (random search, joblib processes, ``--workers``),
  the objective of tutorial 4 written against reservoirpy's own nodes.
* deepreservoir: :func:`deepreservoir.search.run_search` with TPE and with the
  random sampler, trials on a Dask LocalCluster of ``--workers`` processes.

Prints the best loss of each and the wall time; one thread per process on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("DEEPRESERVOIR_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

CONFIGS = {"doublescroll": "search_doublescroll.toml", "mackey_glass": "search_mackey_glass.toml"}
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def tutorial_objective(dataset, config, *, N, sr, lr, input_scaling, ridge, seed):
    """Tutorial 4's objective (reservoirpy 0.4): mean NRMSE over ``instances_per_trial`` ESNs."""
    from reservoirpy.nodes import Reservoir, Ridge
    from reservoirpy.observables import nrmse

    x_train, x_test, y_train, y_test = dataset
    losses = []
    for instance in range(config["instances_per_trial"]):
        model = Reservoir(units=N, sr=sr, lr=lr, input_scaling=input_scaling,
                          seed=seed + instance) >> Ridge(ridge=ridge)
        prediction = model.fit(x_train, y_train).run(x_test)
        losses.append(nrmse(y_test, prediction, norm_value=np.ptp(x_train)))
    return {"loss": float(np.mean(losses))}


def reservoirpy_search(task, trials: int, workers: int) -> tuple[float, dict, float]:
    from reservoirpy.hyper import parallel_research

    dataset = (task.x_train, task.x_test, task.y_train, task.y_test)
    with tempfile.TemporaryDirectory() as folder:
        config = {"exp": "bench-search", "hp_max_evals": trials, "hp_method": "random",
                  "seed": 42, "instances_per_trial": 5,
                  "hp_space": {"N": ["choice", 500], "sr": ["loguniform", 1e-2, 10],
                               "lr": ["loguniform", 1e-3, 1], "input_scaling": ["choice", 1.0],
                               "ridge": ["loguniform", 1e-8, 1e1], "seed": ["choice", 1234]}}
        path = Path(folder) / "config.json"
        path.write_text(json.dumps(config))
        began = time.perf_counter()
        params, loss = parallel_research(tutorial_objective, dataset, str(path),
                                         report_path=folder, n_jobs=workers,
                                         inner_max_num_threads=1)
        return float(loss), params, time.perf_counter() - began


def deepreservoir_search(config, trials: int, workers: int, sampler: str
                         ) -> tuple[float, dict, float]:
    from dataclasses import replace

    from deepreservoir.search import run_search

    with tempfile.TemporaryDirectory() as folder:
        began = time.perf_counter()
        _, best = run_search(replace(config, sampler=sampler), Path(folder) / "search",
                             trials=trials, workers=workers, progress=False, save_best=False)
        return float(best["value"]), best["params"], time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--task", choices=sorted(CONFIGS), default="doublescroll")
    args = parser.parse_args()
    from deepreservoir.experiment_config import load_experiment
    from deepreservoir.experiment_data import load_task

    config = load_experiment(EXAMPLES / CONFIGS[args.task])
    task = load_task(config.dataset, config.data)
    rows = [("reservoirpy parallel_research (random)",
             *reservoirpy_search(task, args.trials, args.workers))]
    for sampler in ("random", "tpe"):
        rows.append((f"deepreservoir search ({sampler})",
                     *deepreservoir_search(config, args.trials, args.workers, sampler)))
    print(f"\n{args.task}: {args.trials} trials × 5 ESNs of 500 units, {args.workers} workers, "
          f"1 thread each\n")
    print("| search | best loss (NRMSE) | wall time (s) | best sr, lr, ridge |")
    print("|---|---|---|---|")
    for name, loss, params, seconds in rows:
        point = ", ".join(f"{params[k]:.3g}" for k in ("sr", "lr", "ridge"))
        print(f"| {name} | {loss:.3e} | {seconds:.0f} | {point} |")


if __name__ == "__main__":
    main()
