"""Next-generation reservoir computing on Lorenz: ``NVAR >> Ridge``, next to reservoirpy.

Run: ``python examples/nvar_lorenz.py``

The setting is reservoirpy's NVAR example (Gauthier et al. 2021): the Lorenz
system sampled every dt = 0.025 (``reservoirpy.datasets.lorenz``, RK23, from
x0 = (17.677, 12.931, 43.914)), dr.NVAR(delay=2, order=2, strides=1) — the input,
the input one step before, and their 21 quadratic monomials — read by a ridge
regression (ridge = 2.5e-6, with bias). As in that example, the readout learns
the *difference* ``u[t+1] - u[t]`` on the first 600 steps, of which the first
200 are warmup (400 training rows).

The test part is a one-step-ahead forecast of the state, ``u[t] + Δ̂[t]``, with
the true ``u[t]`` as input (reservoirpy's tutorial then integrates the
differences in a closed loop; a chaotic loop would turn rounding into
divergence, so the side-by-side comparison uses one step). Both models
continue from the store left by ``fit``. The script prints the NRMSE (RMSE over
the range of the target) of both libraries and the largest difference between
their predictions: the features are bitwise equal, the readouts differ by
solver rounding, amplified by the conditioning of the quadratic features of the
raw series (κ ≈ 1e14), to ~1e-7.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from reservoirpy.datasets import lorenz
from reservoirpy.nodes import NVAR as RpyNVAR
from reservoirpy.nodes import Ridge as RpyRidge

import deepreservoir as dr
from deepreservoir.threads import use_threads

N_TRAIN, WARMUP, RIDGE = 600, 200, 2.5e-6


def nrmse(prediction: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((prediction - target) ** 2)) / np.ptp(target))


def main() -> dict[str, float]:
    start = time.perf_counter()
    u = lorenz(5400, x0=[17.677, 12.931, 43.914], h=0.025, method="RK23")  # (5400, 3)
    u_train, du_train = u[:N_TRAIN], u[1:N_TRAIN + 1] - u[:N_TRAIN]
    u_test, target = u[N_TRAIN:-1], u[N_TRAIN + 1:]

    ours = dr.NVAR(2, 2, 1, dtype=torch.float64) >> dr.Ridge(RIDGE, dtype=torch.float64)
    ours.fit(u_train, du_train, warmup=WARMUP)
    ours_prediction = u_test + ours.run(u_test)  # continues from the end of training

    theirs = RpyNVAR(delay=2, order=2, strides=1) >> RpyRidge(ridge=RIDGE)
    theirs.fit(u_train, du_train, warmup=WARMUP)
    theirs_prediction = u_test + theirs.run(u_test)

    results = {
        "deepreservoir": nrmse(ours_prediction, target),
        "reservoirpy": nrmse(theirs_prediction, target),
        "difference": float(np.max(np.abs(ours_prediction - theirs_prediction))),
    }
    print(f"dr.NVAR(delay=2, order=2) >> Ridge(ridge={RIDGE}): {N_TRAIN - WARMUP} training "
          f"rows, one-step-ahead forecast of {len(target)} steps")
    print(f"deepreservoir NRMSE = {results['deepreservoir']:.6e}")
    print(f"reservoirpy NRMSE = {results['reservoirpy']:.6e}")
    print(f"max abs difference of the predictions = {results['difference']:.3e}")
    print(f"({time.perf_counter() - start:.1f} s)")
    return results


if __name__ == "__main__":
    use_threads()  # the shared policy: one thread unless DEEPRESERVOIR_NUM_THREADS says otherwise
    main()
