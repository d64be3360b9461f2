"""The reservoir time loop against reservoirpy and against this CPU's own kernel ceilings.

Everything runs in one process on one thread (torch, BLAS, deepreservoir's loops),
with the contenders alternating inside each block, and reports medians:

1. **Ceilings**: the GFLOP/s of a dense ``mm`` (N = 1000, 256 columns) and of the
   CSR product the loop uses (N = 1000, 10 % dense, 32 and 256 columns), float32
   and float64, so the gap between the loop and the hardware shows.
2. **Throughput** at N = 1000, 10 % density: ``Reservoir.run`` of B series
   (B ∈ {1, 32, 256}) against reservoirpy's ``run`` of one series, as series-steps
   per second, with the achieved useful GFLOP/s (``2·nnz·B`` per step).
3. **One series**: time per step at N = 100 and N = 1000 (ratio to reservoirpy).
4. **Cost growth**: time per step for N ∈ {100, 300, 1000, 3000, 10000} at B = 1
   and B = 32 (ours) and B = 1 (reservoirpy), with the exponent of a log–log fit;
   ``--figure PATH`` draws it.

Both libraries get the same explicit weights (a scipy sparse W with spectral
radius 0.9, dense ±1 Win), so weight generation is not timed here (see
``bench_generation.py``).

Usage
-----
::

    python benchmarks/bench_time_loop.py
    python benchmarks/bench_time_loop.py --figure docs/figures/time_loop_growth.png
    python benchmarks/bench_time_loop.py --quick     # small sizes, a smoke run
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from _side_by_side import machine_info, one_thread
from reservoirpy.nodes import Reservoir as RpyReservoir

import deepreservoir as dr
from deepreservoir import step_kernels

warnings.filterwarnings("ignore", message="Sparse CSR tensor support")


def weights(units: int, density: float, seed: int):
    rng = np.random.default_rng(seed)
    W = sp.random(units, units, density=density, random_state=rng, format="csr",
                  data_rvs=rng.standard_normal)
    W = W * (0.9 / np.sqrt(density * units))  # circular law: spectral radius ≈ 0.9
    Win = rng.choice([-1.0, 1.0], size=(units, 1))
    return W, Win


def median_blocks(contenders: dict, blocks: int) -> dict:
    """Median seconds per call of each contender, alternating within each block."""
    for fn in contenders.values():
        fn()
    times = {name: [] for name in contenders}
    for _ in range(blocks):
        for name, fn in contenders.items():
            began = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - began)
    return {name: float(np.median(values)) for name, values in times.items()}


def ceilings(blocks: int) -> list[dict]:
    rows = []
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        dense = torch.randn(1000, 1000, generator=gen, dtype=dtype)
        sparse = dense * (torch.rand(1000, 1000, generator=gen) < 0.1)
        csr = step_kernels.operator_for(sparse, "csr")
        nnz = csr._nnz()
        for columns in (32, 256):
            x = torch.randn(1000, columns, generator=gen, dtype=dtype)
            out = torch.empty(1000, columns, dtype=dtype)
            seconds = median_blocks({
                "dense": lambda x=x, out=out, a=dense: [torch.mm(a, x, out=out)
                                                         for _ in range(10)],
                "csr": lambda x=x, out=out, a=csr: [torch.mm(a, x, out=out) for _ in range(10)],
            }, blocks)
            rows.append({"dtype": str(dtype).split(".")[1], "columns": columns,
                         "dense_gflops": 2e6 * columns * 10 / seconds["dense"] / 1e9,
                         "csr_gflops": 2 * nnz * columns * 10 / seconds["csr"] / 1e9})
    return rows


def pair(units: int, density: float, dtype: torch.dtype, seed: int = 1):
    W, Win = weights(units, density, seed)
    ours = dr.Reservoir(units, W=W, Win=Win, bias=np.zeros(units), dtype=dtype)
    theirs = RpyReservoir(W=W, Win=Win, bias=np.zeros(units))
    return ours, theirs, W.nnz


def throughput(units: int, density: float, batches, dtypes, steps: int, blocks: int):
    rows = []
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        ours, theirs, nnz = pair(units, density, dtype)
        for batch in batches:
            x = rng.standard_normal((batch, steps, 1))
            one = x[0]
            ours.run(x[:, :2], reset=True)
            theirs.run(one[:2])
            seconds = median_blocks({"ours": lambda x=x, m=ours: m.run(x, reset=True),
                                     "theirs": lambda one=one, m=theirs: m.run(one)}, blocks)
            ours_step = seconds["ours"] / steps
            theirs_series_step = seconds["theirs"] / steps
            rows.append({
                "N": units, "dtype": str(dtype).split(".")[1], "B": batch,
                "ours_us_per_step": ours_step * 1e6,
                "reservoirpy_us_per_series_step": theirs_series_step * 1e6,
                "throughput_ratio": theirs_series_step * batch / ours_step,
                "time_ratio_per_series_step": ours_step / batch / theirs_series_step,
                "gflops": 2 * nnz * batch / ours_step / 1e9,
                "kernel": ours.recurrent_operator(batch).layout.__repr__().split(".")[-1],
            })
    return rows


def fitted_exponent(sizes, seconds) -> float:
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def growth(sizes, steps: int, blocks: int) -> dict:
    rows = []
    for units in sizes:
        n_steps = max(20, steps * 1000 // max(units, 1000) // (10 if units >= 10000 else 1))
        rows += throughput(units, 0.1, (1, 32), (torch.float32,), n_steps, blocks)
    result = {"rows": rows}
    for label, key, batch in (("ours B=1", "ours_us_per_step", 1),
                              ("ours B=32", "ours_us_per_step", 32),
                              ("reservoirpy B=1", "reservoirpy_us_per_series_step", 1)):
        chosen = [r for r in rows if r["B"] == batch]
        result[label] = {"N": [r["N"] for r in chosen], "us": [r[key] for r in chosen],
                         "exponent": fitted_exponent([r["N"] for r in chosen],
                                                     [r[key] for r in chosen])}
    return result


def draw(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label in ("reservoirpy B=1", "ours B=1", "ours B=32"):
        line = result[label]
        ax.loglog(line["N"], line["us"], "o-",
                  label=f"{label} (slope {line['exponent']:.2f})")
    ax.set_xlabel("units N (10 % dense W)")
    ax.set_ylabel("µs per step")
    ax.set_title("Time per step, float32, one thread")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(rows, columns) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = ""
    for row in rows:
        cells = [f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--figure", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    limits = one_thread()
    info = machine_info()
    steps = 30 if args.quick else args.steps
    blocks = 2 if args.quick else args.blocks
    sizes = (100, 300) if args.quick else (100, 300, 1000, 3000, 10000)
    result = {"machine": info, "ceilings": ceilings(blocks)}
    result["throughput"] = throughput(300 if args.quick else 1000, 0.1, (1, 32, 256),
                                      (torch.float32, torch.float64), steps, blocks)
    result["one_series_small"] = throughput(100, 0.1, (1,), (torch.float32, torch.float64),
                                            steps, blocks)
    result["growth"] = growth(sizes, steps, blocks)
    result["machine"]["load_after"] = machine_info()["load"]
    print(f"# time loop, {info['date']}, {info['cpu']}, load {info['load']} → "
          f"{result['machine']['load_after']}\n")
    print(table(result["ceilings"], ["dtype", "columns", "dense_gflops", "csr_gflops"]))
    print(table(result["throughput"] + result["one_series_small"],
                ["N", "dtype", "B", "kernel", "ours_us_per_step",
                 "reservoirpy_us_per_series_step", "throughput_ratio",
                 "time_ratio_per_series_step", "gflops"]))
    for label in ("ours B=1", "ours B=32", "reservoirpy B=1"):
        line = result["growth"][label]
        print(f"{label}: exponent {line['exponent']:.2f}; µs/step "
              + ", ".join(f"N={n}: {u:.3g}" for n, u in zip(line["N"], line["us"])))
    if args.figure:
        draw(result["growth"], args.figure)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1, default=str)
    del limits


if __name__ == "__main__":
    main()
