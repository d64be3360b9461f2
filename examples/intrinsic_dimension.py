"""How many dimensions do reservoir states really use? Four estimators, checked first.

Run: ``python examples/intrinsic_dimension.py [--output DIR]``

1. Calibrate the estimators on data of known dimension: a 3-sphere and a
   Swiss roll embedded in R^40, with small noise.
2. Measure the states of a 200-unit reservoir driven by inputs of growing
   complexity: one sine (a closed curve in state space), two incommensurate
   sines (a torus), and white noise (no low-dimensional structure).

PCA at 90 % of the variance and the participation ratio measure linear
spread; TwoNN and the Levina–Bickel MLE measure the local, curved dimension.
Writes a bar chart (when matplotlib is installed) to ``DIR``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import deepreservoir as dr
from deepreservoir import analysis
from deepreservoir.threads import use_threads


def embed(points: np.ndarray, ambient: int, noise: float, rng) -> np.ndarray:
    frame, _ = np.linalg.qr(rng.standard_normal((ambient, points.shape[1])))
    return points @ frame.T + noise * rng.standard_normal((points.shape[0], ambient))


def main(output: Path):
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    sphere = rng.standard_normal((2000, 4))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=2000))
    roll = np.stack([t * np.cos(t), 21 * rng.uniform(size=2000), t * np.sin(t)], axis=1)
    print("known dimension (estimates: pca 90 %, participation ratio, TwoNN, MLE k=20):")
    for name, points, truth in (("3-sphere in R^40", embed(sphere, 40, 0.001, rng), 3),
                                ("Swiss roll in R^40", embed(roll, 40, 0.01, rng), 2)):
        estimate = analysis.intrinsic_dimension(points)
        print(f"  {name:20s} d = {truth}: " + ", ".join(
            f"{e} {float(v):.2f}" for e, v in zip(estimate["estimator"].values,
                                                  estimate.values)))

    steps = np.arange(3000)
    inputs = {
        "one sine": np.sin(2 * np.pi * steps / (20 * np.sqrt(2))),
        "two sines": 0.5 * (np.sin(2 * np.pi * steps / (20 * np.sqrt(2)))
                            + np.sin(2 * np.pi * steps / (7 * np.sqrt(3)))),
        "white noise": rng.uniform(-1, 1, steps.size),
    }
    results = []
    print("\nreservoir states (200 units, sr 0.9, lr 0.5), after 500 warm-up steps:")
    for name, u in inputs.items():
        reservoir = dr.Reservoir(200, sr=0.9, lr=0.5, seed=1, dtype=torch.float64)
        estimate = analysis.intrinsic_dimension(reservoir, u, warmup=500, k=20)
        results.append(estimate.isel(layer=0, drop=True).expand_dims(layer=[name]))
        print(f"  {name:12s}: " + ", ".join(
            f"{e} {float(v):.2f}" for e, v in zip(estimate["estimator"].values,
                                                  estimate.values[0])))
    print(f"\ndone in {time.perf_counter() - start:.1f} s")
    combined = results[0]
    for extra in results[1:]:
        combined = combined.combine_first(extra)
    combined.attrs = results[0].attrs
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        print("matplotlib is not installed: skipping the plot (pip install deepreservoir[plot]).")
        return combined
    output.mkdir(parents=True, exist_ok=True)
    analysis.plot(combined.sel(layer=list(inputs))).savefig(
        output / "intrinsic_dimension_states.png", dpi=110)
    print(f"plot written to {output / 'intrinsic_dimension_states.png'}")
    return combined


if __name__ == "__main__":
    use_threads()  # the shared policy: one thread unless DEEPRESERVOIR_NUM_THREADS says otherwise
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("outputs"),
                        help="folder for the plot (default: outputs)")
    main(parser.parse_args().output)
