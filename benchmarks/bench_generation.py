"""Seeded weight generation and the reservoir build, side by side with reservoirpy.

One process, one thread each (torch, BLAS/LAPACK, deepreservoir's loops), median
of several repeats, the two libraries interleaved so that machine load hits both:

* building a Reservoir (N units, 10 % recurrent density, sr = 0.9, 5 input
  steps) in deepreservoir and in reservoirpy 0.4, at N in {300, 1000, 3000};
  the spectral cache is emptied before each of our builds, so every build
  pays its eigensolver;
* our build split into weight generation (``make_weight`` of W, Win, bias) and
  the spectral radius (dense LAPACK against ARPACK, and the one ``"auto"`` picks);
* Philox throughput: numpy against torch (CPU), in 32-bit words per second.

Run: ``python benchmarks/bench_generation.py [--repeats 5] [--sizes 300 1000 3000]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import reservoirpy
import torch
from _side_by_side import machine_info, one_thread
from reservoirpy.nodes import Reservoir as RpyReservoir

import deepreservoir as dr
import deepreservoir.spectral as spectral
from deepreservoir import seeding, seeding_torch
from deepreservoir.families import make_weight
from deepreservoir.seeding import SeedKey

DENSITY = 0.1


def median_time(function, repeats: int) -> float:
    function()  # warm-up: imports, allocator, caches of the libraries
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(functions: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, run in turn so that load hits all alike."""
    for function in functions.values():
        function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def build_comparison(n: int, repeats: int) -> dict[str, float]:
    data = np.random.default_rng(0).uniform(-1, 1, (5, 1))

    def ours():
        spectral.clear_cache()
        dr.Reservoir(n, sr=0.9, rc_connectivity=DENSITY, seed=1).run(data)

    def theirs():
        RpyReservoir(n, sr=0.9, rc_connectivity=DENSITY, seed=1).run(data)

    def generation():
        node = SeedKey(1)
        make_weight("normal", node, "W", (n, n), fan_in=n, fan_out=n, connectivity=DENSITY)
        make_weight("binary", node, "Win", (n, 1), fan_in=1, fan_out=n)
        make_weight("binary", node, "bias", (n,), fan_in=1, fan_out=n)

    return interleaved({"ours": ours, "reservoirpy": theirs, "generation": generation},
                       repeats)


def spectral_paths(n: int, repeats: int) -> dict[str, float | str]:
    matrix = make_weight("normal", SeedKey(1), "W", (n, n), fan_in=n, fan_out=n,
                         connectivity=DENSITY)
    result: dict[str, float | str] = {}
    for method in ("dense", "arpack"):
        if method == "dense" and n > 2000 and repeats > 1:
            repeats_here = 1  # minutes otherwise
        else:
            repeats_here = repeats

        def solve(method=method):
            spectral.clear_cache()
            spectral.radius(matrix, method=method)

        result[method] = median_time(solve, repeats_here)
    spectral.clear_cache()
    result["auto picks"] = spectral.radius(matrix)[2]
    return result


def philox_throughput(repeats: int, n_words: int = 4_000_000) -> dict[str, float]:
    key = SeedKey(1).tensor("W", (n_words,), "bench")
    cpu = torch.device("cpu")
    blocks = n_words // 4
    return {
        "numpy": n_words / median_time(lambda: seeding.random_uint32(key, n_words), repeats),
        "torch (int64 kernels)": n_words / median_time(
            lambda: seeding_torch._blocks(key, 0, blocks, 0, cpu, use_torch=True), repeats),
        "torch.random_uint32 (CPU: numpy words)": n_words / median_time(
            lambda: seeding_torch.random_uint32(key, n_words), repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 3000])
    args = parser.parse_args()
    limits = one_thread()
    print(machine_info())
    print(f"reservoirpy {reservoirpy.__version__}, torch threads {torch.get_num_threads()}")
    print("\nReservoir build (N, 10 % density, sr=0.9, 5 steps): median seconds")
    print(f"{'N':>6} {'ours':>9} {'rpy':>9} {'ours/rpy':>9} {'generation':>11} {'gen/rpy':>8}")
    for n in args.sizes:
        repeats = args.repeats if n <= 1000 else max(1, args.repeats // 2)
        t = build_comparison(n, repeats)
        print(f"{n:>6} {t['ours']:9.4f} {t['reservoirpy']:9.4f} "
              f"{t['ours'] / t['reservoirpy']:9.2f} {t['generation']:11.4f} "
              f"{t['generation'] / t['reservoirpy']:8.2f}", flush=True)
    print("\nSpectral radius of the raw W (10 % density): median seconds")
    for n in args.sizes:
        paths = spectral_paths(n, max(1, args.repeats // 2))
        print(f"{n:>6} dense {paths['dense']:8.4f}  arpack {paths['arpack']:8.4f}  "
              f"auto picks {paths['auto picks']}", flush=True)
    print("\nPhilox4x32-10 throughput, 4M words, one thread")
    rates = philox_throughput(args.repeats)
    for name, rate in rates.items():
        print(f"  {name:40s} {rate / 1e6:8.1f} M words/s  ({rate / rates['numpy']:.2f}× numpy)")
    if limits is not None:
        limits.unregister()


if __name__ == "__main__":
    main()
