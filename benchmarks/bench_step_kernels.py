"""Where the time of one reservoir step goes, and what the candidate patch saves.

Two tables, both for N = 1000 at 10 % density on the CPU:

1. **Kernels**: one call of each operation a step is made of, for a single
   series (B = 1) and a batch (B = 32): the sparse product with W stored as
   CSR with int64 indices (what ``Tensor.to_sparse_csr()`` gives, and what
   the library uses today), the same with int32 indices, the dense product,
   and ``tanh`` of the (B, N) pre-activation.
2. **Loops**: ``Reservoir.run`` over T steps with the shipped code and with
   each level of ``benchmarks/_candidate_patch.py`` (1: int32 CSR indices;
   2: + preallocated loop; 3: + states written over the drive), next to
   reservoirpy's ``run`` for B = 1. Before timing, the candidate is checked to
   reproduce the shipped states bit for bit.

Usage
-----
From the repository root, with the package importable (``pip install -e .``)::

    python benchmarks/bench_step_kernels.py               # torch.set_num_threads(1)
    python benchmarks/bench_step_kernels.py --threads 2
    python benchmarks/bench_step_kernels.py --steps 2000 --batch-steps 500  # quicker

Medians over ``--blocks`` blocks; the libraries and levels alternate within
each block. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import deepreservoir as dr

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _candidate_patch as patch

warnings.filterwarnings("ignore", message="Sparse CSR tensor support")

UNITS = 1000


def per_call_us(fn: Callable[[], object], calls: int, blocks: int) -> float:
    """Median over ``blocks`` of the mean time of ``calls`` calls, in µs."""
    for _ in range(max(calls // 10, 3)):
        fn()
    times = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return float(np.median(times))


def kernel_table(blocks: int) -> str:
    gen = torch.Generator().manual_seed(0)
    dense64 = torch.randn(UNITS, UNITS, generator=gen, dtype=torch.float64)
    dense64 *= torch.rand(UNITS, UNITS, generator=gen, dtype=torch.float64) < 0.1
    lines = ["| dtype | B | CSR int64 (shipped) | CSR int32 | dense | tanh (B, N) "
             "| int32 saving |", "|---|---|---|---|---|---|---|"]
    for dtype in (torch.float64, torch.float32):
        dense = dense64.to(dtype)
        csr64 = dense.to_sparse_csr()
        csr32 = patch.int32_csr(dense)
        for batch in (1, 32):
            state = torch.randn(batch, UNITS, generator=gen, dtype=dtype)
            calls = 2000 if batch == 1 else 200
            if batch == 1:
                vec, out = state[0], torch.empty(UNITS, dtype=dtype)
                t64, t32, tdn = (
                    per_call_us(lambda m=m, v=vec, o=out: torch.mv(m, v, out=o), calls, blocks)
                    for m in (csr64, csr32, dense))
            else:
                colmajor, out = state.T.contiguous(), torch.empty(UNITS, batch, dtype=dtype)
                t64, t32 = (
                    per_call_us(lambda m=m, s=colmajor, o=out: torch.mm(m, s, out=o),
                                calls, blocks)
                    for m in (csr64, csr32))
                row_out = torch.empty(batch, UNITS, dtype=dtype)
                tdn = per_call_us(lambda s=state, o=row_out, m=dense.T: torch.mm(s, m, out=o),
                                  calls, blocks)
            scratch = torch.empty_like(state)
            ttanh = per_call_us(lambda s=state, o=scratch: torch.tanh(s, out=o), calls, blocks)
            lines.append(f"| {str(dtype).removeprefix('torch.')} | {batch} | {t64:.1f} µs | "
                         f"{t32:.1f} µs | {tdn:.1f} µs | {ttanh:.1f} µs | "
                         f"{1 - t32 / t64:.0%} |")
    return "\n".join(lines)


def run_patched(node: dr.Reservoir, X: np.ndarray, level: int) -> np.ndarray:
    """``node.run(X)`` from zero states with the candidate applied up to ``level``."""
    patch.apply(level)
    node._operator_cache = None
    try:
        return node.run(X, reset=True)
    finally:
        patch.revert()
        node._operator_cache = None


def loop_table(steps: int, batch_steps: int, blocks: int, with_rpy: bool) -> str:
    rng = np.random.default_rng(0)
    lines = ["| dtype | B | T | contender | median | µs / step | vs shipped |",
             "|---|---|---|---|---|---|---|"]
    for dtype in (torch.float64, torch.float32):
        for batch, length in ((1, steps), (32, batch_steps)):
            X = rng.uniform(-1, 1, size=(length, 1) if batch == 1 else (batch, length, 1))
            node = dr.Reservoir(UNITS, sr=0.9, lr=0.3, seed=0, dtype=dtype)
            node.run(X[..., :5, :])
            contenders: dict[str, Callable[[], object]] = {}
            for level, label in patch.LEVELS.items():
                contenders[f"{level}: {label}"] = (
                    lambda level=level, node=node, X=X: run_patched(node, X, level))
            if with_rpy and batch == 1 and dtype == torch.float64:
                from reservoirpy.nodes import Reservoir

                theirs = Reservoir(UNITS, sr=0.9, lr=0.3, rc_connectivity=0.1, seed=0)
                theirs.run(X[:5])
                contenders["reservoirpy 0.4.2"] = lambda t=theirs, X=X: (t.reset(), t.run(X))
            samples: dict[str, list[float]] = {k: [] for k in contenders}
            for fn in contenders.values():
                fn()  # warm-up
            for _ in range(blocks):
                for label, fn in contenders.items():
                    start = time.perf_counter()
                    fn()
                    samples[label].append(time.perf_counter() - start)
            shipped = float(np.median(samples[f"0: {patch.LEVELS[0]}"]))
            for label, values in samples.items():
                med = float(np.median(values))
                lines.append(f"| {str(dtype).removeprefix('torch.')} | {batch} | {length} | "
                             f"{label} | {med:.3f} s | {med / length * 1e6:.1f} | "
                             f"{shipped / med:.2f}× |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--steps", type=int, default=10_000, help="T for B = 1")
    parser.add_argument("--batch-steps", type=int, default=2_000, help="T for B = 32")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--no-reservoirpy", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    patch.check_bitwise(0)
    print(f"torch {torch.__version__}, threads {args.threads}; candidate patch reproduces the "
          "shipped loop bit for bit (checked).\n")
    print("## Kernels (one call)\n")
    print(kernel_table(args.blocks))
    print("\n## Reservoir.run, shipped vs candidate levels\n")
    print(loop_table(args.steps, args.batch_steps, args.blocks, not args.no_reservoirpy))


if __name__ == "__main__":
    main()
