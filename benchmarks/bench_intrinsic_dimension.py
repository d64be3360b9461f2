"""Intrinsic-dimension estimators on data of known dimension.

Run: ``python benchmarks/bench_intrinsic_dimension.py [--points 2000] [--seeds 3]``

Each data set is drawn with ``--points`` points for each of ``--seeds`` seeds,
embedded isometrically in a higher-dimensional space by a random orthonormal
frame, with isotropic Gaussian noise of standard deviation σ per ambient
coordinate (0.01 unless stated; its norm, σ·√D, is 0.07 in R^50). Prints a
Markdown table of the mean estimate and the mean absolute error |d̂ − d| over
seeds, per estimator.
"""

from __future__ import annotations

import argparse
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    arguments = parser.parse_args()
    main(arguments.points, arguments.seeds)
