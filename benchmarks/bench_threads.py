"""The Mackey–Glass example under a background load, at each thread setting.

On a shared 2-core machine torch's default (one thread per core) made the time
loop of a reservoir 10–100× slower than one thread once other processes were
busy: every small kernel of every step waits for a core. deepreservoir's time
loop now picks its thread count by the size of one step and restores it after
(``deepreservoir.threads``). This benchmark runs the work of
``examples/esn_mackey_glass.py`` (a 500-unit float64 ESN: fit on 2,000 steps,
forecast 1,000) in fresh processes while ``--load`` busy processes spin, with

* **default**: nothing set; the library chooses (one thread for this size);
* **torch default**: the library's choice overridden with torch's own count
  (``DEEPRESERVOIR_NUM_THREADS`` = the number of cores), i.e. the old behaviour;
* **1 thread** and **2 threads**, fixed for torch and the library.

The target: the default within 1.5× of the best setting.

Usage
-----
::

    python benchmarks/bench_threads.py                 # 2 busy processes, 5 runs each
    python benchmarks/bench_threads.py --load 0        # a quiet machine

Prints a Markdown table of median seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

WORK = """
import time, numpy as np, torch
from reservoirpy.datasets import mackey_glass
{setup}
import deepreservoir as dr
series = mackey_glass(3001)
inputs, targets = series[:-1], series[1:]
esn = (dr.Reservoir(500, sr=0.9, lr=0.3, seed=1) >> dr.Ridge(ridge=1e-6)).double()
began = time.perf_counter()
esn.fit(inputs[:2000], targets[:2000], warmup=100)
prediction = esn.run(inputs[2000:])
print(time.perf_counter() - began)
"""

SETTINGS = {
    "default (library chooses)": ("", {}),
    "torch default (old behaviour)": ("", {"DEEPRESERVOIR_NUM_THREADS": str(os.cpu_count())}),
    "1 thread": ("torch.set_num_threads(1)", {"DEEPRESERVOIR_NUM_THREADS": "1"}),
    "2 threads": ("torch.set_num_threads(2)", {"DEEPRESERVOIR_NUM_THREADS": "2"}),
}


def _run(setup: str, env: dict[str, str]) -> float:
    result = subprocess.run([sys.executable, "-c", WORK.format(setup=setup)], check=True,
                            capture_output=True, text=True, env={**os.environ, **env})
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=2, help="busy background processes")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.load)]
    try:
        time.sleep(0.5)
        times: dict[str, list[float]] = {name: [] for name in SETTINGS}
        for _ in range(args.runs):
            for name, (setup, env) in SETTINGS.items():
                times[name].append(_run(setup, env))
    finally:
        for process in busy:
            process.kill()
    medians = {name: statistics.median(values) for name, values in times.items()}
    best = min(medians.values())
    print(f"## Mackey–Glass example (fit 2,000 + forecast 1,000 steps, N = 500, float64), "
          f"{args.load} busy background process(es), {os.cpu_count()} cores\n")
    print("| setting | median seconds | × best |")
    print("|---|---|---|")
    for name, value in medians.items():
        print(f"| {name} | {value:.2f} | {value / best:.2f}× |")
    print(f"\ndefault within 1.5× of the best: "
          f"{'yes' if medians['default (library chooses)'] <= 1.5 * best else 'no'}")


if __name__ == "__main__":
    main()
