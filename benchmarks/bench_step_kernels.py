"""Where the time of one reservoir step goes, and which operator layout is fastest.

Two tables, for N = 1000 on the CPU:

1. **Kernels**: one call of each operation a step is made of, for a single
   series (B = 1) and a batch (B = 32), at 10 % density: the sparse product
   with W stored as CSR with int64 indices (what ``Tensor.to_sparse_csr()``
   gives), the same with int32 indices (``functional.csr_operator``, what the
   library uses), the dense product, and ``tanh`` of the (B, N) pre-activation.
2. **Loops**: ``functional.run_reservoir`` over T steps at several densities
   and batch sizes, with W as int32 CSR and as a dense matrix (the in-place
   path), next to the differentiable reference loop (``list`` + ``stack``,
   fresh tensors each step) and, for B = 1 at 10 %, reservoirpy's ``run``.
   ``Reservoir.recurrent_operator`` picks CSR below a density threshold that
   depends on B (see ``deepreservoir/nodes/reservoir.py``).

Usage
-----
From the repository root, with the package importable (``pip install -e .``)::

    python benchmarks/bench_step_kernels.py               # torch.set_num_threads(1)
    python benchmarks/bench_step_kernels.py --threads 2
    python benchmarks/bench_step_kernels.py --steps 2000 --batch-steps 500  # quicker

Medians over ``--blocks`` blocks; the contenders alternate within each block.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from deepreservoir import functional as F

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
        csr32 = F.csr_operator(dense)
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


def random_weights(density: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A random (N, N) W of the given density with spectral scale about 0.9, and (1, N) Win."""
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(UNITS, UNITS, generator=gen, dtype=torch.float64)
    W *= torch.rand(UNITS, UNITS, generator=gen, dtype=torch.float64) < density
    W *= 0.9 / np.sqrt(density * UNITS)
    Win = torch.rand(UNITS, 1, generator=gen, dtype=torch.float64) * 2 - 1
    return W.to(dtype), Win.to(dtype)


def loop_table(steps: int, batch_steps: int, blocks: int, with_rpy: bool,
               densities: list[float], batches: list[int]) -> str:
    rng = np.random.default_rng(0)
    lines = ["| dtype | density | B | T | contender | median | µs / step | vs reference |",
             "|---|---|---|---|---|---|---|---|"]
    for dtype in (torch.float64, torch.float32):
        for density in densities:
            W, Win = random_weights(density, dtype)
            csr = F.csr_operator(W)
            for batch in batches:
                length = steps if batch == 1 else batch_steps
                u = torch.as_tensor(rng.uniform(-1, 1, size=(batch, length, 1)), dtype=dtype)
                drive = u @ Win.T
                state = torch.zeros(batch, UNITS, dtype=dtype)
                contenders: dict[str, Callable[[], object]] = {
                    "reference loop (autograd path)": lambda d=drive, s=state, m=W: (
                        F._run_reservoir_autograd(s, d, m, 0.3, torch.tanh, None)),
                    "in-place, int32 CSR": lambda d=drive, s=state, m=csr: (
                        F.run_reservoir(s, d, m, 0.3, torch.tanh)),
                    "in-place, dense": lambda d=drive, s=state, m=W: (
                        F.run_reservoir(s, d, m, 0.3, torch.tanh)),
                }
                if with_rpy and batch == 1 and dtype == torch.float64 and density == 0.1:
                    from reservoirpy.nodes import Reservoir

                    theirs = Reservoir(UNITS, sr=0.9, lr=0.3, rc_connectivity=0.1, seed=0)
                    X = u[0].numpy()
                    theirs.run(X[:5])
                    contenders["reservoirpy 0.4.2"] = lambda t=theirs, X=X: (t.reset(), t.run(X))
                samples: dict[str, list[float]] = {k: [] for k in contenders}
                with torch.no_grad():
                    for fn in contenders.values():
                        fn()  # warm-up
                    for _ in range(blocks):
                        for label, fn in contenders.items():
                            start = time.perf_counter()
                            fn()
                            samples[label].append(time.perf_counter() - start)
                reference = float(np.median(samples["reference loop (autograd path)"]))
                for label, values in samples.items():
                    med = float(np.median(values))
                    lines.append(
                        f"| {str(dtype).removeprefix('torch.')} | {density:g} | {batch} | "
                        f"{length} | {label} | {med:.3f} s | {med / length * 1e6:.1f} | "
                        f"{reference / med:.2f}× |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--steps", type=int, default=10_000, help="T for B = 1")
    parser.add_argument("--batch-steps", type=int, default=2_000, help="T for B = 32")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--no-reservoirpy", action="store_true")
    parser.add_argument("--densities", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 32])
    parser.add_argument("--skip-kernels", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, threads {args.threads}\n")
    if not args.skip_kernels:
        print("## Kernels (one call)\n")
        print(kernel_table(args.blocks))
    print("\n## run_reservoir: reference loop vs the in-place loop with CSR and dense W\n")
    print(loop_table(args.steps, args.batch_steps, args.blocks, not args.no_reservoirpy,
                     args.densities, args.batches))


if __name__ == "__main__":
    main()
