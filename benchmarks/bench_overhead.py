"""What the library adds around the engine: import time and the cost of ``Model.step``.

Two measurements, each a ratio against its reference in the same environment:

1. **Import time.** ``python -c "import torch"`` against
   ``python -c "import torch, deepreservoir"`` in fresh processes, alternating;
   the extra seconds of ``import deepreservoir`` (target: at most 0.3 s). It also
   lists which heavy modules the import loaded (none of xarray, networkx,
   matplotlib, scikit-learn, scipy or ``deepreservoir.analysis`` should be).
2. **Step overhead.** ``Model.step(x)`` on a numpy step against the bare node
   steps it runs: ``node.forward_step(x, state)`` on prepared tensors, state
   threaded by hand (target: at most 2×). For a reservoir alone and for an ESN
   (reservoir and a fitted ridge readout), at N = 100 and N = 1000, one series.

Usage
-----
::

    python benchmarks/bench_overhead.py                 # torch.set_num_threads(1)
    python benchmarks/bench_overhead.py --imports 15 --steps 2000

Medians over repeated blocks; prints Markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

HEAVY = ("xarray", "networkx", "matplotlib", "sklearn", "scipy", "deepreservoir.analysis")


def _import_seconds(code: str) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - began


def import_time(repeats: int) -> dict[str, float]:
    """Median wall time of both imports over fresh processes, alternating."""
    torch_only, both = [], []
    for _ in range(repeats):
        torch_only.append(_import_seconds("import torch"))
        both.append(_import_seconds("import torch, deepreservoir"))
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, deepreservoir; "
         f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"],
        check=True, capture_output=True, text=True)
    return {"torch": statistics.median(torch_only), "both": statistics.median(both),
            "loaded": probe.stdout.strip() or "none"}


def _interleaved(first, second, calls: int, blocks: int) -> tuple[float, float, float]:
    """Seconds per call of two functions, timed in alternating blocks; and the median
    of the per-block ratios (which cancels the machine's drift between blocks)."""
    times_a, times_b = [], []
    for _ in range(blocks):
        for function, times in ((first, times_a), (second, times_b)):
            began = time.perf_counter()
            for _ in range(calls):
                function()
            times.append((time.perf_counter() - began) / calls)
    ratios = [a / b for a, b in zip(times_a, times_b)]
    return statistics.median(times_a), statistics.median(times_b), statistics.median(ratios)


def step_overhead(units: int, readout: bool, calls: int, blocks: int) -> dict[str, float]:
    """Seconds per step of ``Model.step`` and of the bare node steps."""
    import deepreservoir as dr

    rng = np.random.default_rng(0)
    series = rng.uniform(-1, 1, size=(500, 1))
    reservoir = dr.Reservoir(units, sr=0.9, lr=0.3, seed=1, dtype=torch.float64)
    model = reservoir >> dr.Ridge(1e-6, dtype=torch.float64) if readout else reservoir._as_model()
    if readout:
        model.fit(series[:-1], series[1:])
    else:
        model.run(series)
    nodes = [model.nodes[name] for name in model.execution_order()]
    x_numpy = series[0]
    x = torch.as_tensor(series[:1])
    states = [node.initial_state(1) if isinstance(node, dr.kinds.Stateful) else None
              for node in nodes]

    def bare():
        value = x
        with torch.no_grad():
            for i, node in enumerate(nodes):
                value, states[i] = node.forward_step(value, states[i])
        return value

    model.reset()
    stepped, direct, ratio = _interleaved(lambda: model.step(x_numpy), bare, calls, blocks)
    return {"model": stepped, "bare": direct, "ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--imports", type=int, default=9, help="fresh processes per import")
    parser.add_argument("--steps", type=int, default=1000, help="steps per timing block")
    parser.add_argument("--blocks", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    times = import_time(args.imports)
    extra = times["both"] - times["torch"]
    print("## Import time (median of fresh processes)\n")
    print("| import torch | import torch, deepreservoir | extra | target | heavy modules loaded |")
    print("|---|---|---|---|---|")
    print(f"| {times['torch']:.3f} s | {times['both']:.3f} s | {extra:.3f} s | <= 0.3 s | "
          f"{times['loaded']} |")

    print(f"\n## Model.step against the bare node steps ({args.threads} thread(s), one series)\n")
    print("| model | N | Model.step | bare forward_step | ratio (median of blocks) | target |")
    print("|---|---|---|---|---|---|")
    for readout in (False, True):
        for units in (100, 1000):
            result = step_overhead(units, readout, args.steps, args.blocks)
            name = "Reservoir >> Ridge" if readout else "Reservoir"
            print(f"| {name} | {units} | {1e6 * result['model']:.1f} µs | "
                  f"{1e6 * result['bare']:.1f} µs | {result['ratio']:.2f}× | "
                  f"<= 2× |")


if __name__ == "__main__":
    main()
