"""An ESN generating Mackey–Glass from its own output, side by side with reservoirpy.

Run ``python examples/esn_generative_mackey_glass.py [--output DIR]``: 500 units learn
one-step-ahead prediction on 2,000 steps scaled to [-1, 1], then run free 400 steps after a
200-step warmup (settings: benchmarks/bench_generative.py); each seed's W and Win go to both
libraries. Prints NRMSE (RMSE / range of the targets), the steps before |error| first exceeds
0.1, and 5 windows continued in ONE generate call; ``--output DIR`` saves a plot there.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import reservoirpy.nodes as rpy
import scipy.sparse as sparse
import torch
from reservoirpy.datasets import mackey_glass
from threadpoolctl import threadpool_limits

import deepreservoir as dr
from deepreservoir.threads import use_threads

N, TRAIN, WARM, STEPS, F64 = 500, 2000, 200, 400, torch.float64


def weights(seed):  # W normal at 10 % density, spectral radius 0.99; Win ±1 at 20 %; no bias
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((N, N)) * (rng.random((N, N)) < 0.1)
    W *= 0.99 / np.max(np.abs(np.linalg.eigvals(W)))
    Win = np.where(rng.random((N, 1)) < 0.5, 1.0, -1.0) * (rng.random((N, 1)) < 0.2)
    return {"W": sparse.csr_matrix(W), "Win": Win, "bias": np.zeros(N), "lr": 0.3}


def scores(generated, target):  # NRMSE, and the first step with |error| > 0.1 (or STEPS)
    error = np.abs(generated - target)[:, 0]
    return np.sqrt(np.mean(error**2)) / np.ptp(target), int(np.argmax(np.append(error, 1) > 0.1))


def reservoirpy_generate(esn, warm):  # reservoirpy's generative loop, as in its tutorials
    esn.reset()
    x, out = esn.run(warm)[-1], np.empty((STEPS, 1))
    for i in range(STEPS):
        x = out[i] = esn(x)
    return out


def main(output: Path | None) -> None:
    use_threads()  # the shared policy: one thread unless DEEPRESERVOIR_NUM_THREADS says otherwise
    threadpool_limits(1)
    s = mackey_glass(TRAIN + 4 * 100 + STEPS + 2)
    s = 2 * (s - s[:TRAIN + 1].min()) / np.ptp(s[:TRAIN + 1]) - 1  # training window → [-1, 1]
    X, Y, warm, target = s[:TRAIN], s[1:TRAIN + 1], s[TRAIN - WARM:TRAIN], s[TRAIN + 1:][:STEPS]
    print("seed | NRMSE ours, reservoirpy | steps to |error|>0.1 | max |diff|, steps ≤ 50/200/400")
    table, first = [], None
    for seed in range(5):
        model = dr.Reservoir(**(w := weights(seed)), dtype=F64) >> dr.Ridge(1e-6, dtype=F64)
        ours = model.fit(X, Y, warmup=100).generate(STEPS, warmup=warm, reset=True)
        esn = (rpy.Reservoir(**w) >> rpy.Ridge(ridge=1e-6)).fit(X, Y, warmup=100)
        theirs = reservoirpy_generate(esn, warm)
        (n1, k1), (n2, k2), d = scores(ours, target), scores(theirs, target), np.abs(ours - theirs)
        table.append((n1, k1, n2, k2))
        print(f"{seed:4d} | {n1:.3e}, {n2:.3e} | {k1:3d}, {k2:3d} | "
              f"{d[:50].max():.1e}, {d[:200].max():.1e}, {d.max():.1e}")
        first = first or (model, ours, theirs)
    m = np.median(table, axis=0)
    print(f"median NRMSE: deepreservoir = {m[0]:.3e}, reservoirpy = {m[2]:.3e}\nmedian steps "
          f"before |error| > 0.1: deepreservoir = {m[1]:g}, reservoirpy = {m[3]:g}")
    ends = [TRAIN + 100 * k for k in range(5)]  # seed 0's model continues 5 windows at once
    t0 = time.perf_counter()
    batch = first[0].generate(STEPS, warmup=np.stack([s[e - WARM:e] for e in ends]), reset=True)
    t1 = time.perf_counter()
    alone = np.stack([first[0].generate(STEPS, warmup=s[e - WARM:e], reset=True) for e in ends])
    gap, t2 = np.abs(batch - alone).max(), time.perf_counter()
    steps = [scores(batch[b], s[e + 1:][:STEPS])[1] for b, e in enumerate(ends)]
    print(f"batched generate (B = 5) vs 5 calls: max abs difference = {gap:.1e}, "
          f"{t1 - t0:.2f} s vs {t2 - t1:.2f} s; steps to |error| > 0.1 per window: {steps}")
    if output is not None:
        import matplotlib.pyplot as plt
        plt.switch_backend("Agg")
        figure, axes = plt.subplots(figsize=(9, 3.5))
        axes.plot(np.hstack([target, first[1]]), label=["Mackey–Glass", "deepreservoir"])
        axes.plot(first[2], "--", label="reservoirpy")
        axes.set(title=f"Free run, seed 0, N = {N}", xlabel="free-run step")
        axes.legend(loc="upper right")
        output.mkdir(parents=True, exist_ok=True)
        figure.savefig(path := output / "esn_generative_mackey_glass.png", dpi=120,
                       bbox_inches="tight")
        print(f"plot written to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="folder for the plot (default: no plot)")
    main(parser.parse_args().output)
