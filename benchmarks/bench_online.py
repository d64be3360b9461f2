"""Batch speed of online learning: B learners in one deepreservoir call vs B reservoirpy runs.

Task (issue 10)
---------------
A reservoir (N = 100 and N = 300; ``W`` normal at 10 % density, spectral radius
0.9, ``Win`` U(-0.5, 0.5), bias U(-0.2, 0.2), leak rate 0.5, drawn once by a
numpy generator and given to both libraries as the same arrays, ``W`` as one
scipy CSR matrix) feeds an online readout that learns one-step-ahead prediction
of Mackey–Glass (``reservoirpy.datasets.mackey_glass``, scaled to [-1, 1]):
B = 32 series of T = 1,000 steps, consecutive pieces of one long series, fit
warmup 10, with

* RLS (``alpha`` 1e-3: P starts at 1000·I) and
* LMS (learning rate 1e-3).

deepreservoir fits the ``(32, T, 1)`` batch in ONE call,
``(Reservoir(...) >> RLS(...)).fit(X, Y, warmup=10)``: 32 independent learners
advance together, each with its own weights (and its own P for RLS).
reservoirpy has no batch of learners: it builds ``Reservoir(...) >> RLS(...)``
32 times and fits each on its series (a model fitted twice keeps its learned
``Wout``, so a fresh model per series is the independent-learner equivalent).
Both sides build their models inside the timed region (measured: a few ms).

Checked: every series' learned ``Wout`` and bias agree between the libraries
(max abs difference over the 32 learners, float64 both). Also timed:
deepreservoir in float32 (same check, against reservoirpy's float64) and
B = 1 (one series, one learner: the per-step overhead of each library).

Timing: ``--repeats`` rounds (default 3) in which the contenders alternate; the
median wall time and its ratio reservoirpy / deepreservoir (> 1: we are faster),
and the same for the CPU time of the process (user + system, ``getrusage``),
which a busy shared machine disturbs less than wall time; also the system CPU
time and minor page faults of one call (median, and the largest of the rounds),
because fresh pages for large temporaries can cost more than the arithmetic
(see BENCHMARKS.md). One thread everywhere (torch, deepreservoir's loops, BLAS).

Usage
-----
From the repository root::

    python benchmarks/bench_online.py                         # N = 100 and 300, RLS and LMS
    python benchmarks/bench_online.py --units 300 --kinds RLS --repeats 5
    python benchmarks/bench_online.py --quick                 # tiny sizes, a few seconds

Prints Markdown tables, then one ``SUMMARY {json}`` line for scripts and tests.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sparse  # noqa: E402
import torch  # noqa: E402
from _side_by_side import load_average, machine_info, one_thread  # noqa: E402
from reservoirpy.datasets import mackey_glass  # noqa: E402
from reservoirpy.nodes import LMS as RpyLMS  # noqa: E402
from reservoirpy.nodes import RLS as RpyRLS  # noqa: E402
from reservoirpy.nodes import Reservoir as RpyReservoir  # noqa: E402

import deepreservoir as dr  # noqa: E402

warnings.filterwarnings("ignore", message="Sparse CSR tensor support")

LR = 0.5
WARMUP = 10
OPTIONS = {"RLS": {"alpha": 1e-3}, "LMS": {"learning_rate": 1e-3}}
DTYPES = {"float64": torch.float64, "float32": torch.float32}


# ----------------------------------------------------------------- utilities






def explicit_weights(n: int, seed: int = 0):
    """Float64 ``W`` (CSR, spectral radius 0.9), ``Win`` (n, 1) and ``bias`` (n,)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, n)) * (rng.random((n, n)) < 0.1)
    W *= 0.9 / np.max(np.abs(np.linalg.eigvals(W)))
    return sparse.csr_matrix(W), rng.uniform(-0.5, 0.5, (n, 1)), rng.uniform(-0.2, 0.2, n)


def data(series: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``series`` consecutive pieces of Mackey–Glass in [-1, 1]: X (B, T, 1), Y = next step."""
    s = mackey_glass(series * steps + 1)
    s = 2.0 * (s - s.min()) / (s.max() - s.min()) - 1.0
    X = np.stack([s[b * steps:(b + 1) * steps] for b in range(series)])
    Y = np.stack([s[b * steps + 1:(b + 1) * steps + 1] for b in range(series)])
    return X, Y


def measured(fn) -> tuple[dict, object]:
    """Wall seconds, user and system CPU seconds and minor page faults of one call."""
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out = fn()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": wall, "user": after.ru_utime - before.ru_utime,
            "sys": after.ru_stime - before.ru_stime,
            "minflt": after.ru_minflt - before.ru_minflt}, out


# ------------------------------------------------------------------ contenders
def ours(kind: str, weights, X, Y, dtype):
    """One call: B learners (or one, for a (T, F) series); returns Wout (B, F, O), bias (B, O)."""
    W, Win, bias = weights
    readout = getattr(dr, kind)(**OPTIONS[kind], dtype=dtype)
    model = dr.Reservoir(W=W, Win=Win, bias=bias, lr=LR, dtype=dtype) >> readout
    model.fit(X, Y, warmup=WARMUP)
    return (readout.Wout_.transpose(1, 2).double().numpy(),
            readout.bias_.double().numpy())


def theirs(kind: str, weights, X, Y):
    """One fresh reservoirpy model per series, fitted one after another."""
    W, Win, bias = weights
    cls = RpyRLS if kind == "RLS" else RpyLMS
    X, Y = (X[None], Y[None]) if X.ndim == 2 else (X, Y)
    wouts, biases = [], []
    for x, y in zip(X, Y, strict=True):
        readout = cls(**OPTIONS[kind])
        (RpyReservoir(W=W, Win=Win, bias=bias, lr=LR) >> readout).fit(x, y, warmup=WARMUP)
        wouts.append(readout.Wout)
        biases.append(np.ravel(readout.bias))
    return np.stack(wouts), np.stack(biases)


def bench_case(kind: str, units: int, X, Y, repeats: int) -> dict:
    """B learners at once vs B reservoirpy fits, and one learner each; weights compared."""
    weights = explicit_weights(units)
    series = X.shape[0]

    def contenders_for(X, Y):
        return {
            f"reservoirpy, {series} fits": lambda: theirs(kind, weights, X, Y),
            f"deepreservoir float64, one call (B = {series})":
                lambda: ours(kind, weights, X, Y, torch.float64),
            f"deepreservoir float32, one call (B = {series})":
                lambda: ours(kind, weights, X, Y, torch.float32),
            "reservoirpy, B = 1": lambda: theirs(kind, weights, X[0], Y[0]),
            "deepreservoir float64, B = 1":
                lambda: ours(kind, weights, X[0], Y[0], torch.float64),
        }

    for fn in contenders_for(X[:, :2 * WARMUP], Y[:, :2 * WARMUP]).values():
        fn()  # untimed, on 20 steps: first calls, imports, caches
    contenders = contenders_for(X, Y)
    samples: dict[str, list[dict]] = {label: [] for label in contenders}
    outputs = {}
    for _ in range(repeats):
        for label, fn in contenders.items():
            stats, outputs[label] = measured(fn)
            samples[label].append(stats)
    labels = list(contenders)
    reference = outputs[labels[0]]
    agreement = {}
    for label in labels[1:3]:
        wout, bias = outputs[label]
        agreement[label] = {"Wout": float(np.abs(wout - reference[0]).max()),
                            "bias": float(np.abs(bias - reference[1]).max())}
    wout, bias = outputs[labels[4]]
    agreement[labels[4]] = {"Wout": float(np.abs(wout - outputs[labels[3]][0]).max()),
                            "bias": float(np.abs(bias - outputs[labels[3]][1]).max())}
    for values in samples.values():
        for s in values:
            s["cpu"] = s["user"] + s["sys"]
    timings = {label: {key: float(np.median([s[key] for s in values]))
                       for key in ("wall", "cpu", "user", "sys", "minflt")}
               for label, values in samples.items()}
    for label, values in samples.items():
        timings[label]["minflt_max"] = max(s["minflt"] for s in values)
    for key in ("wall", "cpu"):
        base_batch, base_one = timings[labels[0]][key], timings[labels[3]][key]
        for label in labels:
            base = base_one if "B = 1" in label else base_batch
            timings[label][f"speedup_{key}"] = base / timings[label][key]
    return {"kind": kind, "units": units, "series": series, "steps": X.shape[1],
            "timings": timings, "agreement": agreement, "raw": samples}


def table(res: dict) -> str:
    steps, series = res["steps"], res["series"]
    lines = ["| contender | median wall | µs / step / learner | reservoirpy / ours, wall "
             "| CPU (user + system) | reservoirpy / ours, CPU | system CPU | minor faults, "
             "median (max) | max abs diff Wout, bias vs reservoirpy |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, t in res["timings"].items():
        learners = 1 if "B = 1" in label else series
        agree = res["agreement"].get(label)
        agree = f"{agree['Wout']:.1e}, {agree['bias']:.1e}" if agree else "(reference)"
        ref = label.startswith("reservoirpy")
        wall = "1 (ref.)" if ref else f"{t['speedup_wall']:.2f}×"
        cpu = "1 (ref.)" if ref else f"{t['speedup_cpu']:.2f}×"
        lines.append(
            f"| {label} | {t['wall']:.3f} s | {t['wall'] / (steps * learners) * 1e6:.1f} | "
            f"{wall} | {t['cpu']:.2f} s | {cpu} | {t['sys']:.2f} s | "
            f"{t['minflt']:,.0f} ({t['minflt_max']:,}) | {agree} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--kinds", nargs="+", choices=list(OPTIONS), default=list(OPTIONS))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--series", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="N = 30, T = 200, 4 series, 1 round")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.units, args.steps, args.series, args.repeats = [30], 200, 4, 1
    limits = one_thread()  # noqa: F841 - kept alive for the run

    info = machine_info()
    print("## Machine\n\n" + ", ".join(f"{k}: {v}" for k, v in info.items()))
    X, Y = data(args.series, args.steps)
    results = []
    for units in args.units:
        for kind in args.kinds:
            began = time.perf_counter()
            res = bench_case(kind, units, X, Y, args.repeats)
            results.append(res)
            print(f"\n## {kind}, N = {units}, {args.series} series × T = {args.steps} "
                  f"({args.repeats} rounds; load average {load_average()}, "
                  f"{time.perf_counter() - began:.0f} s)\n")
            print(table(res))
    compact = {f"{r['kind']} N={r['units']}": {
        "speedup_batch_float64": r["timings"][
            f"deepreservoir float64, one call (B = {r['series']})"]["speedup_wall"],
        "speedup_batch_float32": r["timings"][
            f"deepreservoir float32, one call (B = {r['series']})"]["speedup_wall"],
        "speedup_one": r["timings"]["deepreservoir float64, B = 1"]["speedup_wall"],
        "cpu_speedup_batch_float64": r["timings"][
            f"deepreservoir float64, one call (B = {r['series']})"]["speedup_cpu"],
        "cpu_speedup_batch_float32": r["timings"][
            f"deepreservoir float32, one call (B = {r['series']})"]["speedup_cpu"],
        "cpu_speedup_one": r["timings"]["deepreservoir float64, B = 1"]["speedup_cpu"],
        "max_diff_float64": r["agreement"][
            f"deepreservoir float64, one call (B = {r['series']})"]["Wout"],
        "max_diff_float32": r["agreement"][
            f"deepreservoir float32, one call (B = {r['series']})"]["Wout"],
        "max_diff_one": r["agreement"]["deepreservoir float64, B = 1"]["Wout"],
    } for r in results}
    print("\nSUMMARY " + json.dumps(compact))
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))
    return compact


if __name__ == "__main__":
    main()
