"""NARMA-10 with a 50-unit ESN: deepreservoir (and reservoirpy 0.4.2) against the literature.

Task
----
The generator is ``deepreservoir.datasets.narma10`` with ``u(t) ~ U[0, 0.5]`` i.i.d.;
the network reads ``u(t)`` and is trained to output ``y(t+1)``. ``--definition``
picks the update rule (printed, and written into every table):

* ``textbook`` (default)::

      y(t+1) = 0.3·y(t) + 0.05·y(t)·Σ_{i=0}^{9} y(t−i) + 1.5·u(t−9)·u(t) + 0.1

* ``reservoirpy`` (the rule of ``reservoirpy.datasets.narma(order=10)``, whose sum
  and delayed input reach one step further back)::

      y(t+1) = 0.3·y(t) + 0.05·y(t)·Σ_{i=1}^{10} y(t−i) + 1.5·u(t−10)·u(t) + 0.1

Every seed draws its own input sequence and its own reservoir; the first 200
generated steps (the system's transient) are dropped, then come a 100-step
reservoir warmup, 1,000 training steps and 1,000 test steps, in one continuous
run (the test run starts from the state at the end of training). The textbook
system diverges for a few input draws (about 1 seed in 50 at these lengths,
e.g. seeds 75 and 83); such a seed is reported and left out.

Score: ``NMSE = mean((ŷ − y)²) / var(y)``, both over the test steps. Literature
reference: 0.107 ± 0.012 at N = 50 with 1,000 training and 1,000 test steps
(see BENCHMARKS.md, section "(d) NARMA-10", for the measurements, the
protocol study and why the figures differ).

Protocols (``--protocol``); model selection never sees test data: each grid
point is scored on a *validation split inside the training part* (fit on its
first 700 steps, score on its last 300), mean validation NMSE over the tuning
seeds; the best point is refitted on the full 1,000 training steps of each
evaluation seed and scored once on its test steps.

* ``grid`` (default): the first protocol, a 400-point grid with ridge ≥ 1e-12,
  leak rate 0.5 or 1 and input scaling ≥ 0.01.
* ``literature``: the region the protocol study found (BENCHMARKS.md (d)): leak
  rate 0.7-0.9, spectral radius about 1, reservoir bias 0.1-1, input scaling
  0.01-0.1 and ridge 1e-12 to 1e-10 (the readout needs next to no
  regularisation: a 50-unit reservoir fitted on 1,000 steps barely overfits, and
  the quadratic terms the task needs are small at these input scalings).

``--readout`` (deepreservoir only): ``library`` (default) fits ``dr.Ridge``;
``centred`` solves the same ridge problem on states centred in a first pass
(numpy, a diagnostic). ``dr.Ridge`` centres its accumulated XᵀX instead
(``XᵀX − n·x̄x̄ᵀ``), which cancels most of the float64 digits when the states
vary little around a large mean: below input scaling 0.01, or with ridge below
1e-12, its test NMSE jumps on some seeds (0.39 against 0.15 on seed 28 at input
scaling 0.03 and ridge 1e-14). With ``centred`` the literature grid extends to
input scaling 0.003 and ridge 1e-16.

Fixed choices (both protocols): N = 50, W normal at 10 % density, Win ±1 on
every unit (input connectivity 1), reservoir bias ±1 times ``bias_scaling``,
Ridge with an unpenalised intercept on the reservoir states only (the input is
not fed to the readout), float64. Each reservoir is run once per seed; every
ridge value is fitted on those states (the same as ``reservoir >> Ridge``).

Usage
-----
From the repository root, with the package importable (``pip install -e .``)::

    python benchmarks/bench_narma.py                         # grid protocol, textbook
    python benchmarks/bench_narma.py --protocol literature --no-reservoirpy
    python benchmarks/bench_narma.py --protocol literature --readout centred --no-reservoirpy
    python benchmarks/bench_narma.py --definition reservoirpy
    python benchmarks/bench_narma.py --tune-seeds 0 1 --test-seeds 0 1 2  # quicker
    python benchmarks/bench_narma.py --protocol literature --no-reservoirpy --study

``--study`` then changes one thing at a time around deepreservoir's selected
point (the definition, the target alignment, how NMSE is normalised, warmup,
training length, a linear memory-only baseline) and separates the spread over
reservoirs on one data set from the spread over data sets.

Prints Markdown tables: the definition and protocol, the grid's best validation
points, and the test NMSE against the literature value.
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings

import numpy as np
import torch

import deepreservoir as dr
from deepreservoir.datasets import NARMA10_DEFINITIONS, narma10
from deepreservoir.errors import DataError

warnings.filterwarnings("ignore", message="Sparse CSR tensor support")

UNITS = 50
TRANSIENT, WARMUP, TRAIN, TEST = 200, 100, 1000, 1000
VALIDATION = 300  # last steps of the training part used for model selection
LITERATURE = (0.107, 0.012)

GRIDS = {
    "grid": {
        "sr": [0.7, 0.9, 1.0, 1.1, 1.25],
        "lr": [0.5, 1.0],
        "input_scaling": [0.01, 0.03, 0.1, 0.3, 1.0],
        "bias_scaling": [0.0, 0.1],
        "ridge": [1e-12, 1e-10, 1e-8, 1e-6],
    },
    "literature": {
        "sr": [0.9, 1.0, 1.05, 1.1],
        "lr": [0.7, 0.8, 0.9],
        "input_scaling": [0.01, 0.03, 0.1],
        "bias_scaling": [0.1, 0.3, 1.0],
        "ridge": [1e-12, 1e-11, 1e-10],
    },
}
# --readout centred: the same region, extended to where only a two-pass solve is accurate
CENTRED_LITERATURE = {**GRIDS["literature"], "input_scaling": [0.003, 0.01, 0.03],
                      "ridge": [1e-16, 1e-14, 1e-12]}


def nmse(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean((pred - target) ** 2) / np.var(target))


def states_ours(seed: int, u: np.ndarray, sr: float, lr: float, input_scaling: float,
                bias_scaling: float) -> np.ndarray:
    reservoir = dr.Reservoir(UNITS, sr=sr, lr=lr, input_scaling=input_scaling,
                             bias_scaling=bias_scaling, rc_connectivity=0.1,
                             input_connectivity=1.0, seed=seed, dtype=torch.float64)
    return np.asarray(reservoir.run(u))


def readout_ours(ridge: float, x_fit, y_fit, x_eval) -> np.ndarray:
    return np.asarray(dr.Ridge(ridge=ridge, dtype=torch.float64).fit(x_fit, y_fit).run(x_eval))


def states_theirs(seed: int, u: np.ndarray, sr: float, lr: float, input_scaling: float,
                  bias_scaling: float) -> np.ndarray:
    from reservoirpy.mat_gen import bernoulli
    from reservoirpy.nodes import Reservoir

    bias = bernoulli(input_scaling=bias_scaling) if bias_scaling else 0.0
    reservoir = Reservoir(UNITS, sr=sr, lr=lr, input_scaling=input_scaling, bias=bias,
                          rc_connectivity=0.1, input_connectivity=1.0, seed=seed)
    return np.asarray(reservoir.run(u))


def readout_theirs(ridge: float, x_fit, y_fit, x_eval) -> np.ndarray:
    from reservoirpy.nodes import Ridge

    return np.asarray(Ridge(ridge=ridge).fit(x_fit, y_fit).run(x_eval))


def readout_centred(ridge: float, x_fit, y_fit, x_eval) -> np.ndarray:
    """Ridge with an unpenalised intercept, solved on states centred in a first pass.

    A diagnostic, not the library: ``dr.Ridge`` centres its accumulated XᵀX
    (``XᵀX − n·x̄x̄ᵀ``), which cancels most digits when the states vary little
    around a large mean (small input scaling, reservoir bias); this solve keeps them.
    """
    x_mean, y_mean = x_fit.mean(axis=0), y_fit.mean(axis=0)
    xc, yc = x_fit - x_mean, y_fit - y_mean
    system = xc.T @ xc + ridge * np.eye(xc.shape[1])
    try:  # an LU solve: lstsq would cut the small singular values these systems carry
        weights = np.linalg.solve(system, xc.T @ yc)
    except np.linalg.LinAlgError:
        weights = np.linalg.lstsq(system, xc.T @ yc, rcond=None)[0]
    return (x_eval - x_mean) @ weights + y_mean


CONTENDERS = {"deepreservoir (float64)": (states_ours, readout_ours),
              "reservoirpy (float64)": (states_theirs, readout_theirs)}
CENTRED = "deepreservoir states, centred two-pass ridge (float64)"


def series(seed: int, definition: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The seed's input and target, or None when the system diverges on its draws."""
    try:
        return narma10(WARMUP + TRAIN + TEST, seed, transient=TRANSIENT, definition=definition)
    except DataError:  # the system diverged on this seed's draws (named in the error)
        return None


def scores(contender, data, seed: int, reservoir_params: dict, ridges: list[float],
           fit_steps: int, eval_steps: int) -> list[float]:
    """Fit on ``fit_steps`` after the warmup, score the next ``eval_steps``, for each ridge."""
    make_states, readout = contender
    u, y = data
    x = make_states(seed, u, **reservoir_params)  # one continuous run
    stop = WARMUP + fit_steps
    fit_x, fit_y = x[WARMUP:stop], y[WARMUP:stop]
    eval_x, eval_y = x[stop: stop + eval_steps], y[stop: stop + eval_steps]
    return [nmse(readout(ridge, fit_x, fit_y, eval_x), eval_y) for ridge in ridges]


def grid_search(contender, grid: dict, datasets: dict) -> list[tuple[float, dict]]:
    """Mean validation NMSE of every grid point, best first."""
    names = [name for name in grid if name != "ridge"]
    results = []
    for values in itertools.product(*(grid[name] for name in names)):
        params = dict(zip(names, values, strict=True))
        per_seed = [scores(contender, data, seed, params, grid["ridge"],
                           TRAIN - VALIDATION, VALIDATION)
                    for seed, data in datasets.items()]
        for ridge, column in zip(grid["ridge"], zip(*per_seed, strict=True), strict=True):
            results.append((float(np.mean(column)), {**params, "ridge": ridge}))
    results.sort(key=lambda item: item[0])
    return results


def load(seeds: list[int], definition: str) -> dict:
    datasets = {}
    for seed in seeds:
        data = series(seed, definition)
        if data is None:
            print(f"Seed {seed}: the {definition} NARMA-10 system diverges on its input draws; "
                  f"left out.")
        else:
            datasets[seed] = data
    return datasets


def study(contender, best: dict, definition: str, seeds: list[int]) -> None:
    """Change one thing at a time around the selected point; print the test NMSE of each."""
    params = {k: v for k, v in best.items() if k != "ridge"}
    make_states, readout = contender
    other = next(d for d in NARMA10_DEFINITIONS if d != definition)
    lag = 9 if definition == "textbook" else 10  # the delayed input of the product term

    def one(seed, *, rule=definition, warmup=WARMUP, train=TRAIN, test=TEST, shift=0,
            features="states", reservoir_seed=None, norm="test"):
        try:
            u, y = narma10(warmup + shift + train + test, seed, transient=TRANSIENT,
                           definition=rule)
        except DataError:  # diverged on this seed's draws
            return None
        if shift:  # the target for u(t) becomes y(t), the output one step earlier
            u, y = u[shift:], y[:-shift]
        if features == "lags":  # linear memory only: u(t), ..., u(t-49)
            x = np.stack([np.concatenate([np.zeros(k), u[: len(u) - k, 0]])
                          for k in range(50)], axis=1)
        else:
            x = make_states(seed if reservoir_seed is None else reservoir_seed, u, **params)
        if features == "lags+product":
            x = np.hstack([x, (x[:, 0] * x[:, lag])[:, None]])
        if features == "states+u":
            x = np.hstack([x, u])
        stop = warmup + train
        pred = readout(best["ridge"], x[warmup:stop], y[warmup:stop], x[stop: stop + test])
        target = y[stop: stop + test]
        ref = {"test": target, "train": y[warmup:stop], "train+test": y[warmup: stop + test]}
        return nmse(pred, target) * float(np.var(target) / np.var(ref[norm]))

    variants = [
        ("as selected", {}),
        (f"definition {other}", {"rule": other}),
        ("target y(t) instead of y(t+1) (reservoirpy's pairing of u[order:] with y)",
         {"shift": 1}),
        (f"definition {other} and target y(t)", {"rule": other, "shift": 1}),
        ("NMSE normalised by var(y) over the training steps", {"norm": "train"}),
        ("NMSE normalised by var(y) over training + test", {"norm": "train+test"}),
        ("readout also reads u(t)", {"features": "states+u"}),
        ("warmup 20", {"warmup": 20}),
        ("warmup 500", {"warmup": 500}),
        ("2,000 training steps", {"train": 2000}),
        ("5,000 training steps", {"train": 5000}),
        ("no reservoir: ridge on u(t), ..., u(t-49)", {"features": "lags"}),
        (f"no reservoir: u(t), ..., u(t-49) and the product u(t)·u(t-{lag})",
         {"features": "lags+product"}),
    ]
    print(f"### One change at a time ({definition} NARMA-10; sr {params['sr']}, lr "
          f"{params['lr']}, input_scaling {params['input_scaling']}, bias_scaling "
          f"{params['bias_scaling']}, ridge {best['ridge']:g}; seeds {seeds[0]}-{seeds[-1]})\n")
    print("| change | test NMSE mean ± sd | median | seeds |")
    print("|---|---|---|---|")
    for label, change in variants:
        values = [v for v in (one(seed, **change) for seed in seeds) if v is not None]
        print(f"| {label} | {np.mean(values):.4f} ± {np.std(values, ddof=1):.4f} | "
              f"{np.median(values):.4f} | {len(values)} |")
    # the literature's ± is over reservoirs on one data set: separate the two spreads
    means, spreads = [], []
    for seed in seeds[:10]:
        values = [one(seed, reservoir_seed=1000 + r) for r in range(10)]
        if None not in values:
            means.append(np.mean(values))
            spreads.append(np.std(values, ddof=1))
    print(f"\nOne data set, 10 reservoirs (seeds 1000-1009), for each of {len(means)} data "
          f"sets: sd over reservoirs {np.median(spreads):.4f} (median over data sets); "
          f"the data sets' means range {min(means):.4f} – {max(means):.4f} "
          f"(mean {np.mean(means):.4f}, sd {np.std(means, ddof=1):.4f}); "
          f"{np.mean(np.array(means) <= LITERATURE[0]):.0%} of them at or below "
          f"{LITERATURE[0]}.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--definition", choices=NARMA10_DEFINITIONS, default="textbook",
                        help="NARMA-10 update rule (see deepreservoir.datasets.narma10)")
    parser.add_argument("--protocol", choices=sorted(GRIDS), default="grid",
                        help="hyperparameter grid searched on validation data")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--test-seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--readout", choices=["library", "centred"], default="library",
                        help="deepreservoir's readout: dr.Ridge (library) or a two-pass "
                             "centred solve on the same states (diagnostic)")
    parser.add_argument("--no-reservoirpy", action="store_true")
    parser.add_argument("--study", action="store_true",
                        help="after the test, change one thing at a time around "
                             "deepreservoir's selected point (definition, target "
                             "alignment, normalisation, warmup, training length, ...)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    contenders = {label: (CONTENDERS[label], GRIDS[args.protocol]) for label in CONTENDERS}
    if args.readout == "centred":
        grid = CENTRED_LITERATURE if args.protocol == "literature" else GRIDS[args.protocol]
        del contenders["deepreservoir (float64)"]
        contenders = {CENTRED: ((states_ours, readout_centred), grid), **contenders}
    if args.no_reservoirpy:
        del contenders["reservoirpy (float64)"]
    tuning = load(args.tune_seeds, args.definition)
    testing = load(args.test_seeds, args.definition)
    print(f"NARMA-10 definition: {args.definition}; protocol: {args.protocol}; "
          f"readout: {args.readout}")
    for label, (_, grid) in contenders.items():
        size = np.prod([len(v) for v in grid.values()])
        print(f"Grid for {label} ({size} points): {grid}")
    print(f"Tuning seeds {sorted(tuning)} (validation = last {VALIDATION} of the "
          f"{TRAIN} training steps); test seeds {sorted(testing)}.\n")
    summary = []
    for label, (contender, grid) in contenders.items():
        start = time.perf_counter()
        ranked = grid_search(contender, grid, tuning)
        best_val, best = ranked[0]
        params = {k: v for k, v in best.items() if k != "ridge"}
        tests = [scores(contender, data, seed, params, [best["ridge"]], TRAIN, TEST)[0]
                 for seed, data in testing.items()]
        elapsed = time.perf_counter() - start
        print(f"### {label}, {args.definition} NARMA-10, {args.protocol} protocol: best "
              f"validation points ({elapsed:.0f} s for grid + test)\n")
        print("| rank | sr | lr | input_scaling | bias_scaling | ridge | mean validation NMSE |")
        print("|---|---|---|---|---|---|---|")
        for rank, (val, p) in enumerate(ranked[:5], 1):
            print(f"| {rank} | {p['sr']} | {p['lr']} | {p['input_scaling']} | "
                  f"{p['bias_scaling']} | {p['ridge']:g} | {val:.4f} |")
        print()
        summary.append((label, best, best_val, tests))

    ref, ref_sd = LITERATURE
    print(f"### Test NMSE ({args.definition} NARMA-10, {args.protocol} protocol; 1,000 steps "
          f"after 1,000 training steps)\n")
    print("| contender | definition | selected (sr, lr, input_scaling, bias_scaling, ridge) "
          "| validation NMSE | test NMSE mean ± sd | median | min – max | literature "
          "| within 1 sd of it |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, best, best_val, tests in summary:
        mean = float(np.mean(tests))
        sd = float(np.std(tests, ddof=1)) if len(tests) > 1 else 0.0
        within = "yes" if abs(mean - ref) <= ref_sd else ("better" if mean < ref else "no")
        print(f"| {label} | {args.definition} | ({best['sr']}, {best['lr']}, "
              f"{best['input_scaling']}, {best['bias_scaling']}, {best['ridge']:g}) | "
              f"{best_val:.4f} | {mean:.4f} ± {sd:.4f} | {float(np.median(tests)):.4f} | "
              f"{min(tests):.4f} – {max(tests):.4f} | {ref} ± {ref_sd} | {within} |")
    print(f"\nPer-seed test NMSE ({args.definition} NARMA-10):")
    for label, _, _, tests in summary:
        print(f"- {label}: " + ", ".join(f"{t:.4f}" for t in tests))
    if args.study:
        label, best, _, _ = summary[0]
        print()
        study(contenders[label][0], best, args.definition, sorted(testing))


if __name__ == "__main__":
    main()
