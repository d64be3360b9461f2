"""NARMA-10 with a 50-unit ESN: deepreservoir (and reservoirpy 0.4.2) vs the literature.

Task
----
``y(t+1) = 0.3·y(t) + 0.05·y(t)·Σ_{i=0}^{9} y(t−i) + 1.5·u(t−9)·u(t) + 0.1`` with
``u(t) ~ U[0, 0.5]`` i.i.d. The network reads ``u(t)`` and is trained to output
``y(t+1)``. The generator is ``deepreservoir.datasets.narma10``, written because
``reservoirpy.datasets.narma`` uses ``Σ y(t−n..t−1)`` and ``u(t−n)``, one step
off the textbook recurrence above. Every seed draws its own input sequence
and its own reservoir; the first 200 generated steps (the system's transient)
are dropped, then come a 100-step reservoir warmup, 1,000 training steps and
1,000 test steps, in one continuous run (the test run starts from the state
at the end of training).

Score: ``NMSE = mean((ŷ − y)²) / var(y)`` on the test steps. Literature
reference (``/work/shared/REFERENCE.md``): 0.107 ± 0.012 at N = 50 with 1,000
training and 1,000 test steps.

Model selection (no test data involved): a small grid over spectral radius,
leak rate, input scaling and ridge is scored on a *validation split inside
the training part* (fit on its first 700 steps, score on its last 300), mean
validation NMSE over the tuning seeds; the best point is then refitted on the
full 1,000 training steps of each evaluation seed and scored once on its test
steps. Fixed choices (not tuned): N = 50, W normal at 10 % density, Win ±1
on every unit (input connectivity 1), reservoir bias ±1 times ``bias_scaling``
(tuned, 0 or 0.1), Ridge with an unpenalised intercept on the reservoir
states only (the input is not fed to the readout), float64.

Usage
-----
From the repository root, with the package importable (``pip install -e .``)::

    python benchmarks/bench_narma.py                  # grid on seeds 0-4, test on 0-9
    python benchmarks/bench_narma.py --no-reservoirpy # ours only
    python benchmarks/bench_narma.py --tune-seeds 0 1 --test-seeds 0 1 2  # quicker

Prints Markdown tables: the grid's best validation points and the test NMSE.
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings

import numpy as np
import torch

import deepreservoir as dr
from deepreservoir.datasets import narma10

warnings.filterwarnings("ignore", message="Sparse CSR tensor support")

UNITS = 50
TRANSIENT, WARMUP, TRAIN, TEST = 200, 100, 1000, 1000
VALIDATION = 300  # last steps of the training part used for model selection
LITERATURE = (0.107, 0.012)

GRID = {
    "sr": [0.7, 0.9, 1.0, 1.1, 1.25],
    "lr": [0.5, 1.0],
    "input_scaling": [0.01, 0.03, 0.1, 0.3, 1.0],
    "bias_scaling": [0.0, 0.1],
    "ridge": [1e-12, 1e-10, 1e-8, 1e-6],
}



def nmse(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean((pred - target) ** 2) / np.var(target))


def make_ours(seed: int, sr: float, lr: float, input_scaling: float, bias_scaling: float,
              ridge: float):
    reservoir = dr.Reservoir(UNITS, sr=sr, lr=lr, input_scaling=input_scaling,
                             bias_scaling=bias_scaling, rc_connectivity=0.1,
                             input_connectivity=1.0, seed=seed, dtype=torch.float64)
    return reservoir >> dr.Ridge(ridge=ridge, dtype=torch.float64)


def make_theirs(seed: int, sr: float, lr: float, input_scaling: float, bias_scaling: float,
                ridge: float):
    from reservoirpy.mat_gen import bernoulli
    from reservoirpy.nodes import Reservoir, Ridge

    bias = bernoulli(input_scaling=bias_scaling) if bias_scaling else 0.0
    reservoir = Reservoir(UNITS, sr=sr, lr=lr, input_scaling=input_scaling, bias=bias,
                          rc_connectivity=0.1, input_connectivity=1.0, seed=seed)
    return reservoir >> Ridge(ridge=ridge)


def score(make, seed: int, params: dict, fit_steps: int, eval_steps: int) -> float:
    """Fit on warmup + ``fit_steps``, then score the next ``eval_steps``."""
    u, y = narma10(WARMUP + TRAIN + TEST, seed, transient=TRANSIENT)
    model = make(seed, **params)
    stop = WARMUP + fit_steps
    model.fit(u[:stop], y[:stop], warmup=WARMUP)
    pred = model.run(u[stop: stop + eval_steps])  # continues from the end of training
    return nmse(pred, y[stop: stop + eval_steps])


def grid_search(make, seeds: list[int]) -> list[tuple[float, dict]]:
    """Mean validation NMSE of every grid point, best first."""
    results = []
    for values in itertools.product(*GRID.values()):
        params = dict(zip(GRID, values, strict=True))
        scores = [score(make, s, params, TRAIN - VALIDATION, VALIDATION) for s in seeds]
        results.append((float(np.mean(scores)), params))
    results.sort(key=lambda item: item[0])
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--test-seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--no-reservoirpy", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    contenders = {"deepreservoir (float64)": make_ours}
    if not args.no_reservoirpy:
        contenders["reservoirpy (float64)"] = make_theirs

    size = np.prod([len(v) for v in GRID.values()])
    print(f"Grid ({size} points): {GRID}")
    print(f"Tuning seeds {args.tune_seeds} (validation = last {VALIDATION} of the "
          f"{TRAIN} training steps); test seeds {args.test_seeds}.\n")
    summary = []
    for label, make in contenders.items():
        start = time.perf_counter()
        ranked = grid_search(make, args.tune_seeds)
        best_val, best = ranked[0]
        tests = [score(make, s, best, TRAIN, TEST) for s in args.test_seeds]
        elapsed = time.perf_counter() - start
        print(f"### {label}: best validation points ({elapsed:.0f} s for grid + test)\n")
        print("| rank | sr | lr | input_scaling | bias_scaling | ridge | mean validation NMSE |")
        print("|---|---|---|---|---|---|---|")
        for rank, (val, p) in enumerate(ranked[:5], 1):
            print(f"| {rank} | {p['sr']} | {p['lr']} | {p['input_scaling']} | "
                  f"{p['bias_scaling']} | {p['ridge']:g} | {val:.4f} |")
        print()
        summary.append((label, best, best_val, tests))

    ref, ref_sd = LITERATURE
    print("### Test NMSE (1,000 steps after 1,000 training steps)\n")
    print("| contender | selected (sr, lr, input_scaling, bias_scaling, ridge) | validation NMSE "
          "| test NMSE mean ± sd | min – max | literature | within 1 sd of it |")
    print("|---|---|---|---|---|---|---|")
    for label, best, best_val, tests in summary:
        mean, sd = float(np.mean(tests)), float(np.std(tests, ddof=1)) if len(tests) > 1 else 0.0
        within = "yes" if abs(mean - ref) <= ref_sd else (
            "better" if mean < ref else "no")
        print(f"| {label} | ({best['sr']}, {best['lr']}, {best['input_scaling']}, "
              f"{best['bias_scaling']}, {best['ridge']:g}) | {best_val:.4f} | "
              f"{mean:.4f} ± {sd:.4f} | "
              f"{min(tests):.4f} – {max(tests):.4f} | {ref} ± {ref_sd} | {within} |")
    print("\nPer-seed test NMSE:")
    for label, _, _, tests in summary:
        print(f"- {label}: " + ", ".join(f"{t:.4f}" for t in tests))


if __name__ == "__main__":
    main()
