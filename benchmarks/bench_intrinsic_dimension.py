"""Intrinsic-dimension estimators on data of known dimension.

Run: ``python benchmarks/bench_intrinsic_dimension.py [--points 2000] [--seeds 3]``
and ``python benchmarks/bench_intrinsic_dimension.py --planted`` for the rank sweeps.

Each data set is drawn with ``--points`` points for each of ``--seeds`` seeds,
embedded isometrically in a higher-dimensional space by a random orthonormal
frame, with isotropic Gaussian noise of standard deviation σ per ambient
coordinate (0.01 unless stated; its norm, σ·√D, is 0.07 in R^50). Prints a
Markdown table of the mean estimate and the mean absolute error |d̂ − d| over
seeds, per estimator.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from deepreservoir.analysis import mle_dimension, participation_ratio, pca_dimension, twonn


def embed(points, ambient, noise, rng):
    frame, _ = np.linalg.qr(rng.standard_normal((ambient, points.shape[1])))
    return points @ frame.T + noise * rng.standard_normal((points.shape[0], ambient))


def sphere(n, d, rng):
    x = rng.standard_normal((n, d + 1))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def swiss_roll(n, rng):
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    return np.stack([t * np.cos(t), 21 * rng.uniform(size=n), t * np.sin(t)], axis=1)


#: name -> (true dimension, generator(n, rng) -> points)
DATASETS = {
    "Gaussian in 2-d subspace of R^50": (2, lambda n, r: embed(r.standard_normal((n, 2)),
                                                                50, 0.01, r)),
    "same, noise 0.001": (2, lambda n, r: embed(r.standard_normal((n, 2)), 50, 0.001, r)),
    "Gaussian in 5-d subspace of R^50": (5, lambda n, r: embed(r.standard_normal((n, 5)),
                                                                50, 0.01, r)),
    "Gaussian in 10-d subspace of R^50": (10, lambda n, r: embed(r.standard_normal((n, 10)),
                                                                  50, 0.01, r)),
    "anisotropic 5-d (sd 1, .5, .25, .12, .06) in R^50": (
        5, lambda n, r: embed(r.standard_normal((n, 5)) * [1, .5, .25, .125, .0625],
                              50, 0.001, r)),
    "swiss roll (2-d) in R^30": (2, lambda n, r: embed(swiss_roll(n, r), 30, 0.01, r)),
    "sphere S^3 in R^40": (3, lambda n, r: embed(sphere(n, 3, r), 40, 0.001, r)),
    "sphere S^5 in R^40": (5, lambda n, r: embed(sphere(n, 5, r), 40, 0.001, r)),
}

ESTIMATORS = {
    "PCA 90 %": lambda X: pca_dimension(X, variance=0.9),
    "PCA 99 %": lambda X: pca_dimension(X, variance=0.99),
    "participation ratio": participation_ratio,
    "TwoNN (fit, 10 % dropped)": twonn,
    "TwoNN (MLE)": lambda X: twonn(X, method="mle"),
    "MLE k=20": lambda X: mle_dimension(X, k=20),
}


def main(points: int, seeds: int) -> dict:
    table = {}
    timings = {name: 0.0 for name in ESTIMATORS}
    for label, (dimension, generate) in DATASETS.items():
        estimates = {name: [] for name in ESTIMATORS}
        for seed in range(seeds):
            X = generate(points, np.random.default_rng(seed))
            for name, estimator in ESTIMATORS.items():
                start = time.perf_counter()
                estimates[name].append(float(estimator(X)))
                timings[name] += time.perf_counter() - start
        table[label] = (dimension, {name: (np.mean(v), np.mean(np.abs(np.array(v) - dimension)))
                                    for name, v in estimates.items()})
    header = " | ".join(ESTIMATORS)
    print(f"| data set | d | {header} |")
    print("|---|---|" + "---|" * len(ESTIMATORS))
    errors = {name: [] for name in ESTIMATORS}
    for label, (dimension, results) in table.items():
        cells = []
        for name, (mean, error) in results.items():
            cells.append(f"{mean:.2f} ({error:.2f})")
            errors[name].append(error)
        print(f"| {label} | {dimension} | " + " | ".join(cells) + " |")
    print("| **mean abs. error** | | " + " | ".join(f"**{np.mean(e):.2f}**"
                                                      for e in errors.values()) + " |")
    calls = len(DATASETS) * seeds
    print(f"\nPoints per data set: {points}; seeds: {seeds}. Cells: mean estimate over seeds "
          f"(mean |d̂ − d|).")
    print("Mean time per call: " + ", ".join(f"{name} {1e3 * t / calls:.0f} ms"
                                              for name, t in timings.items()))
    return table


def planted_task(k: int, n_train: int = 512, n_test: int = 256, d: int = 16, m: int = 8,
                 noise: float = 0.05):
    """Targets depend on x only through a rank-k projection: y = x·U·Vᵀ + noise."""
    rng = np.random.default_rng(100 + k)
    U, _ = np.linalg.qr(rng.standard_normal((d, k)))
    V, _ = np.linalg.qr(rng.standard_normal((m, k)))
    X = rng.standard_normal((n_train + n_test, d))
    Y = X @ U @ V.T + noise * rng.standard_normal((n_train + n_test, m))
    return X[:n_train], Y[:n_train], X[n_train:], Y[n_train:]


def reduced_rank(data):
    """train_and_score(rank, seed): rank-r least squares (closed form, seed-free)."""
    X, Y, X_test, Y_test = data

    def train_and_score(rank, seed):
        coef = np.linalg.lstsq(X, Y, rcond=None)[0]
        _, _, vt = np.linalg.svd(X @ coef, full_matrices=False)
        prediction = X_test @ coef @ vt[:rank].T @ vt[:rank]
        return {"loss": float(np.mean((prediction - Y_test) ** 2))}
    return train_and_score


def sweep_planted(solver: str, data, ranks, seeds, fit):
    """A rank_sweep of one planted task with the closed form or with LoRA training."""
    import deepreservoir as dr
    from deepreservoir.analysis import rank_sweep

    m = data[1].shape[1]
    if solver == "exact":
        score = reduced_rank(data)
        return rank_sweep(score, ranks, seeds=1, full=lambda seed: score(m, seed))
    return rank_sweep(
        lambda r, s: dr.LoRAReadout(m, r=r, family=None, bias=False, beta=False, seed=s),
        ranks, seeds=seeds, data=data, fit=fit,
        full=lambda s: dr.LoRAReadout(m, r=0, full=True, bias=False, seed=s))


def planted(ks, ranks, seeds, epochs) -> None:
    """Markdown table: saturation rank r*(ε) of rank sweeps on planted rank-k tasks."""
    from deepreservoir.analysis import saturation_rank

    epsilons = [0.005, 0.01, 0.02]
    fit = {"epochs": epochs, "batch_size": 64, "lr": 0.03, "weight_decay": 0.0}
    print("| planted k | solver | " + " | ".join(f"r*(ε={e}) (seed range)" for e in epsilons)
          + " | loss at r = k | loss(full) | seconds |")
    print("|---|---|" + "---|" * (len(epsilons) + 3))
    for k in ks:
        data = planted_task(k)
        solvers = {"reduced-rank least squares": "exact",
                   "LoRAReadout(r, family=None), AdamW": "lora"}
        for name, run in solvers.items():
            start = time.perf_counter()
            sweep = sweep_planted(run, data, ranks, seeds, fit)
            seconds = time.perf_counter() - start
            result = saturation_rank(sweep, epsilons)
            cells = []
            for index in range(len(epsilons)):
                per_seed = result["r_star_seed"].isel(epsilon=index).values
                cells.append(f"{result['r_star'].values[index]:g} "
                             f"({per_seed.min():g}–{per_seed.max():g})")
            at_k = float(sweep["loss"].sel(rank=k).mean())
            full = float(sweep["loss_full"].mean())
            print(f"| {k} | {name} | " + " | ".join(cells)
                  + f" | {at_k:.4f} | {full:.4f} | {seconds:.0f} |")
    print(f"\nData: x ∈ R^16 (512 train, 256 test, N(0, I)), y ∈ R^8, noise σ = 0.05 (MSE "
          f"floor 0.0025); ranks {ranks}; LoRA: {len(range(seeds))} seeds, {fit}. r*(ε) is the "
          f"smallest rank with test MSE ≤ MSE(full) + ε on the seed-mean curve; the range is "
          f"over seeds.")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--planted", action="store_true",
                        help="rank sweeps on planted rank-k tasks instead of the ID table")
    parser.add_argument("--epochs", type=int, default=60)
    arguments = parser.parse_args()
    print("load average before: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    if arguments.planted:
        planted([1, 2, 4, 6], [1, 2, 3, 4, 5, 6, 7, 8], arguments.seeds, arguments.epochs)
    else:
        main(arguments.points, arguments.seeds)
    print("load average after: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
