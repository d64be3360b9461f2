"""Speed and accuracy of spectral_radius against reservoirpy, N = 2000 and 5000.

Run: ``python benchmarks/bench_spectral_radius.py [--sizes 2000 5000] [--repeats 3]``

For each N, a reservoir-style matrix (10 % density, normal entries, seed 0) is
built once. Timed, each ``repeats`` times (median reported):

* ``deepreservoir auto``: ``deepreservoir.analysis.spectral_radius(W)`` — dense
  LAPACK up to N = 3000, ARPACK (k = 16, W and Wᵀ) above, with an error bound;
* ``deepreservoir arpack``: the same with ``method="arpack"`` at every N;
* ``reservoirpy sparse``: ``reservoirpy.observables.spectral_radius`` on the
  scipy CSR matrix (ARPACK with k = 1);
* ``reservoirpy dense``: the same on the dense array (LAPACK ``eigvals``).

Accuracy is measured against ``scipy.linalg.eigvals`` on the dense matrix
(timed once). Results are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import scipy.linalg
import scipy.sparse

from deepreservoir.analysis import spectral_radius


def reservoir_matrix(n: int, density: float = 0.1, seed: int = 0) -> scipy.sparse.csr_matrix:
    rng = np.random.default_rng(seed)
    return scipy.sparse.random(n, n, density=density, random_state=seed,
                               data_rvs=rng.standard_normal, format="csr")


def timed(function, repeats: int):
    """(median seconds, last result)."""
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main(sizes: list[int], repeats: int) -> list[dict]:
    from reservoirpy.observables import spectral_radius as rpy_radius

    rows = []
    print("| N | method | median time (s) | time / reservoirpy sparse | relative error "
          "| reported error bound |")
    print("|---|---|---|---|---|---|", flush=True)
    for n in sizes:
        sparse = reservoir_matrix(n)
        dense = sparse.toarray()
        start = time.perf_counter()
        exact = float(np.abs(scipy.linalg.eigvals(dense)).max())
        reference_time = time.perf_counter() - start
        candidates = {
            "deepreservoir auto": lambda d=dense: spectral_radius(d),
            "deepreservoir arpack": lambda d=dense: spectral_radius(d, method="arpack"),
            "reservoirpy sparse (eigs k=1)": lambda s=sparse: rpy_radius(s),
            "reservoirpy dense (eigvals)": lambda d=dense: rpy_radius(d),
        }
        results = {}
        for name, function in candidates.items():
            results[name] = timed(function, repeats)  # no caching: every call recomputes
        baseline = results["reservoirpy sparse (eigs k=1)"][0]
        for name, (seconds, result) in results.items():
            value = float(result)
            bound = f"{float(result['error']):.1e}" if name.startswith("deepreservoir") else ""
            rows.append({"N": n, "method": name, "median_s": seconds,
                         "ratio": seconds / baseline, "rel_error": abs(value - exact) / exact,
                         "bound": bound})
        rows.append({"N": n, "method": "scipy.linalg.eigvals (reference, 1 run)",
                     "median_s": reference_time, "ratio": reference_time / baseline,
                     "rel_error": 0.0, "bound": ""})
        for row in rows[-len(candidates) - 1:]:
            print(f"| {row['N']} | {row['method']} | {row['median_s']:.3f} | {row['ratio']:.2f} "
                  f"| {row['rel_error']:.1e} | {row['bound']} |", flush=True)
        print("load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()), flush=True)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    print("load average before: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    main(arguments.sizes, arguments.repeats)
    print("load average after: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
