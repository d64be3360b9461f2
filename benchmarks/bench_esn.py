"""deepreservoir vs reservoirpy 0.4.2, side by side in one process.

Cases
-----
harvest
    (a) State harvesting: a reservoir of N = 1000 units at 10 % density, leak
    rate 0.3, spectral radius 0.9, driven by T = 10,000 steps of one series.
    Timed: ``run`` on a reservoir whose weights are already built.
batch
    (b) The same for 32 series: ours as ONE batch ``(32, T, 1)``, reservoirpy
    over the list of 32 series (its ``run`` processes them one after another).
    Reported as throughput (series·steps per second).
mackey
    (c) Mackey–Glass one-step-ahead ESN: N = 1000, sr 0.9, lr 0.3, ridge 1e-6,
    ``reservoirpy.datasets.mackey_glass(10_001)`` (raw values), fit on 9,000
    steps with a 100-step warmup, forecast the next 1,000 steps. NRMSE is the
    RMSE divided by the min–max range of the test targets, over seeds 0–2.
memory
    Peak resident memory of (a) and (b), each library in a fresh subprocess
    (``VmHWM`` from ``/proc/self/status`` after resetting it with
    ``/proc/self/clear_refs``), minus the resident memory just before the run.

Each timing is repeated; the libraries alternate within every round so that
drifts of the machine hit both alike. Warm-up: weights are built and one full
untimed run of every contender is done first. Medians are reported, with min
and max. Our reservoir is timed in float64 (reservoirpy's dtype) and float32
(our default).

Usage
-----
From the repository root, with the package importable (``pip install -e .``)::

    python benchmarks/bench_esn.py                       # every case
    python benchmarks/bench_esn.py --case harvest --repeats 9
    python benchmarks/bench_esn.py --threads 2           # torch.set_num_threads(2)
    OMP_WAIT_POLICY=ACTIVE python benchmarks/bench_esn.py --threads 2
    python benchmarks/bench_esn.py --json results.json   # also save raw timings

``--threads`` (default 1) sets ``torch.set_num_threads``; reservoirpy's
reservoir loop is single-threaded numpy/scipy either way. The tables are
printed as Markdown.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import reservoirpy
import torch
from reservoirpy.datasets import mackey_glass
from reservoirpy.nodes import Reservoir as RpyReservoir
from reservoirpy.nodes import Ridge as RpyRidge

import deepreservoir as dr

warnings.filterwarnings("ignore", message="Sparse CSR tensor support")

UNITS = 1000
DENSITY = 0.1
SR = 0.9
LR = 0.3
DTYPES = {"float64": torch.float64, "float32": torch.float32}


# ----------------------------------------------------------------- utilities
def machine_info(threads: int) -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "reservoirpy": reservoirpy.__version__,
        "numpy": np.__version__,
        "deepreservoir": dr.__version__,
        "torch_threads": threads,
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "load_average": load_average(),
    }


class CpuWatch:
    """CPU time that *other* processes used while we measured (in cores, on average).

    Reads the machine's busy time from ``/proc/stat`` and subtracts this
    process's own CPU time; 0 means the machine was ours alone, 1 means another
    process kept one core busy throughout. Reported with every table because
    timings on a shared 2-core machine mean little without it.
    """

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float]:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
        busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
        ticks = os.sysconf("SC_CLK_TCK")
        own = sum(os.times()[:4])
        return busy / ticks, own, time.perf_counter()

    def others(self) -> float:
        busy, own, now = self._read()
        busy0, own0, then = self.start
        return max(0.0, (busy - busy0) - (own - own0)) / max(now - then, 1e-9)


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def timed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call (``time.perf_counter``)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(samples: list[float]) -> dict:
    return {"median": float(np.median(samples)), "min": float(np.min(samples)),
            "max": float(np.max(samples)), "n": len(samples)}


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s" if seconds < 100 else f"{seconds:.1f} s"


def rpy_reservoir(seed: int) -> RpyReservoir:
    return RpyReservoir(UNITS, sr=SR, lr=LR, rc_connectivity=DENSITY, seed=seed)


def our_reservoir(seed: int, dtype: torch.dtype) -> dr.Reservoir:
    return dr.Reservoir(UNITS, sr=SR, lr=LR, rc_connectivity=DENSITY, seed=seed, dtype=dtype)


def harvest_inputs(series: int, steps: int) -> np.ndarray:
    """i.i.d. U(-1, 1) input, (steps, 1) for one series or (series, steps, 1)."""
    rng = np.random.default_rng(1234)
    if series == 1:
        return rng.uniform(-1.0, 1.0, size=(steps, 1))
    return rng.uniform(-1.0, 1.0, size=(series, steps, 1))


# -------------------------------------------------------------- (a) and (b)
def bench_harvest(series: int, steps: int, repeats: int) -> dict:
    """Time state harvesting for ``series`` series of ``steps`` steps."""
    X = harvest_inputs(series, steps)
    theirs_input = X if series == 1 else [X[i] for i in range(series)]
    theirs = rpy_reservoir(seed=0)
    theirs.run(theirs_input[:10] if series == 1 else [x[:10] for x in theirs_input])
    ours = {}
    for name, dtype in DTYPES.items():
        node = our_reservoir(seed=0, dtype=dtype)
        node.run(X[..., :10, :])  # builds the weights
        ours[name] = node

    def run_theirs():
        theirs.reset()
        return theirs.run(theirs_input)

    contenders: dict[str, Callable[[], object]] = {"reservoirpy (float64)": run_theirs}
    for name, node in ours.items():
        contenders[f"deepreservoir ({name})"] = (lambda n=node: n.run(X, reset=True))

    # Sanity: same shapes, finite, not saturated.
    shapes = {}
    for label, fn in contenders.items():
        out = fn()
        out = np.stack(out) if isinstance(out, list) else np.asarray(out)
        shapes[label] = out.shape
        if not np.all(np.isfinite(out)):
            raise RuntimeError(f"{label} produced non-finite states")
        del out
    samples: dict[str, list[float]] = {label: [] for label in contenders}
    for _ in range(repeats):
        for label, fn in contenders.items():
            samples[label].append(timed(fn))
    result = {label: summary(values) for label, values in samples.items()}
    nnz = {"reservoirpy": int(theirs.W.nnz),
           **{f"deepreservoir ({k})": int((v.W_ != 0).sum()) for k, v in ours.items()}}
    return {"series": series, "steps": steps, "timings": result, "shapes": shapes,
            "nnz": nnz, "raw": samples}


def harvest_table(res: dict, target_ratio: float) -> str:
    base = res["timings"]["reservoirpy (float64)"]["median"]
    work = res["series"] * res["steps"]
    lines = [
        "| contender | median | min | max | µs / step / series | series·steps / s "
        "| speed-up vs reservoirpy | target | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, stats in res["timings"].items():
        ratio = base / stats["median"]
        is_ours = label.startswith("deepreservoir")
        target = f"≥ {target_ratio:g}×" if is_ours else "—"
        met = ("yes" if ratio >= target_ratio else "no") if is_ours else "—"
        lines.append(
            f"| {label} | {fmt_s(stats['median'])} | {fmt_s(stats['min'])} | "
            f"{fmt_s(stats['max'])} | {stats['median'] / work * 1e6:.1f} | "
            f"{work / stats['median']:,.0f} | {ratio:.2f}× | {target} | {met} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------- (c)
def mackey_glass_split():
    series = mackey_glass(10_001)
    X, Y = series[:-1], series[1:]
    return X[:9000], Y[:9000], X[9000:10000], Y[9000:10000]


def nrmse(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - target) ** 2)) / (target.max() - target.min()))


def bench_mackey(seeds: list[int], fit_repeats: int) -> dict:
    X_train, Y_train, X_test, Y_test = mackey_glass_split()
    rows: dict[str, dict[str, list]] = {}

    def record(label, **values):
        row = rows.setdefault(label, {})
        for key, value in values.items():
            row.setdefault(key, []).append(value)

    for seed in seeds:
        # reservoirpy: weights are generated lazily on the first call.
        reservoir, readout = rpy_reservoir(seed), RpyRidge(ridge=1e-6)
        init = timed(lambda r=reservoir: r.initialize(X_train[:1]))
        model = reservoir >> readout
        fits = [timed(lambda m=model: m.fit(X_train, Y_train, warmup=100))]
        pred = model.run(X_test)  # continues from the end of training
        for _ in range(fit_repeats - 1):
            model.reset()
            fits.append(timed(lambda m=model: m.fit(X_train, Y_train, warmup=100)))
        record("reservoirpy (float64)", nrmse=nrmse(pred, Y_test), init=init, fit=fits)

        for name, dtype in DTYPES.items():
            node = our_reservoir(seed, dtype)
            init = timed(lambda n=node: n.run(X_train[:1]))  # builds the weights
            model = node >> dr.Ridge(ridge=1e-6, dtype=dtype)
            fits = [timed(lambda m=model: m.fit(X_train, Y_train, warmup=100))]
            pred = model.run(X_test)  # continues from the end of training
            for _ in range(fit_repeats - 1):
                fits.append(timed(lambda m=model: m.fit(X_train, Y_train, warmup=100)))
            record(f"deepreservoir ({name})", nrmse=nrmse(pred, Y_test), init=init, fit=fits)
    return {"seeds": seeds, "rows": rows}


def mackey_table(res: dict) -> str:
    rows = res["rows"]
    base = rows["reservoirpy (float64)"]
    base_nrmse = float(np.mean(base["nrmse"]))
    base_fit = float(np.median(np.concatenate(base["fit"])))
    seeds = ", ".join(str(s) for s in res["seeds"])
    lines = [
        f"| contender | NRMSE per seed ({seeds}) | mean NRMSE | vs reservoirpy "
        "| NRMSE target (within 10 %) | median fit | fit target (≤ reservoirpy) "
        "| weight init (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, row in rows.items():
        mean = float(np.mean(row["nrmse"]))
        fit = float(np.median(np.concatenate(row["fit"])))
        per_seed = ", ".join(f"{v:.3e}" for v in row["nrmse"])
        ours = label.startswith("deepreservoir")
        rel = mean / base_nrmse - 1.0
        acc = ("yes" if abs(rel) <= 0.10 or mean < base_nrmse else "no") if ours else "—"
        speed = ("yes" if fit <= base_fit else f"no ({fit / base_fit:.2f}×)") if ours else "—"
        lines.append(
            f"| {label} | {per_seed} | {mean:.3e} | {rel:+.1%} | {acc} | "
            f"{fmt_s(fit)} | {speed} | {fmt_s(float(np.median(row['init'])))} |")
    return "\n".join(lines)


# -------------------------------------------------------------------- memory
def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(case: str, library: str, steps: int, series: int) -> dict:
    """Run one contender once in this (fresh) process; report its peak RSS growth."""
    X = harvest_inputs(series, steps)
    if library == "reservoirpy":
        node = rpy_reservoir(seed=0)
        data = X if series == 1 else [X[i] for i in range(series)]
        node.run(data[:10] if series == 1 else [x[:10] for x in data])
        node.reset()

        def go():
            return node.run(data)
    else:
        node = our_reservoir(seed=0, dtype=DTYPES[library.split(":")[1]])
        node.run(X[..., :10, :])

        def go():
            return node.run(X, reset=True)
    before = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM (the peak RSS) to the current RSS
    start = time.perf_counter()
    out = go()
    seconds = time.perf_counter() - start
    peak = _rss_kib("VmHWM")
    out_bytes = sum(o.nbytes for o in out) if isinstance(out, list) else out.nbytes
    return {"case": case, "library": library, "rss_before_mib": before / 1024,
            "peak_increase_mib": (peak - before) / 1024, "output_mib": out_bytes / 2**20,
            "seconds": seconds}


def bench_memory(steps: int, series_b: int, threads: int) -> list[dict]:
    results = []
    for case, series in (("harvest", 1), ("batch", series_b)):
        for library in ("reservoirpy", "deepreservoir:float64", "deepreservoir:float32"):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--probe",
                   f"{case}:{library}", "--steps", str(steps), "--series", str(series),
                   "--threads", str(threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def memory_table(results: list[dict]) -> str:
    lines = ["| case | contender | output size | peak RSS increase during the run "
             "| peak / output | run time (this single run) |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['library']} | {r['output_mib']:.0f} MiB | "
            f"{r['peak_increase_mib']:.0f} MiB | {r['peak_increase_mib'] / r['output_mib']:.2f} "
            f"| {fmt_s(r['seconds'])} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", action="append",
                        choices=["harvest", "batch", "mackey", "memory"],
                        help="case(s) to run; default: all")
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds for (a)")
    parser.add_argument("--batch-repeats", type=int, default=3, help="timed rounds for (b)")
    parser.add_argument("--fit-repeats", type=int, default=3,
                        help="timed fits per seed for (c)")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--series", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--json", type=Path, help="write raw results here")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)

    if args.probe:
        case, library = args.probe.split(":", 1)
        series = 1 if case == "harvest" else args.series
        print(json.dumps(memory_probe(case, library, args.steps, series)))
        return

    cases = args.case or ["harvest", "batch", "mackey", "memory"]
    info = machine_info(args.threads)
    results: dict = {"machine": info}
    print("## Machine\n")
    print(", ".join(f"{k}: {v}" for k, v in info.items()))
    if "harvest" in cases:
        watch = CpuWatch()
        res = bench_harvest(1, args.steps, args.repeats)
        res["other_processes_cores"] = watch.others()
        results["harvest"] = res
        print(f"\n## (a) state harvesting, N={UNITS}, density {DENSITY}, T={args.steps}, "
              f"one series ({args.repeats} rounds)\n")
        print(harvest_table(res, 1.0))
        print(f"\nnnz of W: {res['nnz']}; CPU used by other processes meanwhile: "
              f"{res['other_processes_cores']:.2f} cores; load average {load_average()}")
    if "batch" in cases:
        watch = CpuWatch()
        res = bench_harvest(args.series, args.steps, args.batch_repeats)
        res["other_processes_cores"] = watch.others()
        results["batch"] = res
        print(f"\n## (b) {args.series} series × T={args.steps} (ours: one batch; "
              f"reservoirpy: run over the list) ({args.batch_repeats} rounds)\n")
        print(harvest_table(res, 8.0))
        print(f"\nCPU used by other processes meanwhile: {res['other_processes_cores']:.2f} cores; "
              f"load average {load_average()}")
    if "mackey" in cases:
        watch = CpuWatch()
        res = bench_mackey(args.seeds, args.fit_repeats)
        res["other_processes_cores"] = watch.others()
        results["mackey"] = res
        print(f"\n## (c) Mackey–Glass, N={UNITS}, fit 9,000 (warmup 100), "
              f"1-step forecast 1,000\n")
        print(mackey_table(res))
        print(f"\nCPU used by other processes meanwhile: {res['other_processes_cores']:.2f} cores; "
              f"load average {load_average()}")
    if "memory" in cases:
        res = bench_memory(args.steps, args.series, args.threads)
        results["memory"] = res
        print("\n## Peak memory of (a) and (b), one fresh process per row\n")
        print(memory_table(res))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
