"""A deep echo state network: three stacked reservoirs, all read by one ridge readout.

Run: ``python examples/deep_esn.py``

The input drives reservoir 1; reservoir 1 drives reservoir 2, which drives
reservoir 3 (a DeepESN, Gallicchio & Micheli 2017). The readout sees the states
of all three layers, concatenated. In graph terms::

    chain = Input() >> r1 >> r2 >> r3           # depth: each layer feeds the next
    readout = [r1, r2, r3] >> Ridge()           # every layer feeds the readout
    deep = chain & readout                       # one model: the union of both graphs

The task is a 10-step-ahead forecast of the Mackey–Glass series. The script
prints the test NRMSE of the deep ESN against a single reservoir with as many
units (600), and the echo-state-property verdict of each layer.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from reservoirpy.datasets import mackey_glass

import deepreservoir as dr
from deepreservoir import analysis
from deepreservoir.threads import use_threads

HORIZON = 10


def nrmse(prediction: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((prediction - target) ** 2)) / np.ptp(target))


def main() -> dict[str, float]:
    start = time.perf_counter()
    series = mackey_glass(3000 + HORIZON)
    inputs, targets = series[:-HORIZON], series[HORIZON:]
    train, test = slice(0, 2000), slice(2000, 3000)

    f64 = torch.float64
    r1 = dr.Reservoir(200, sr=0.9, lr=0.3, seed=1, name="r1", dtype=f64)
    r2 = dr.Reservoir(200, sr=0.9, lr=0.3, seed=2, name="r2", dtype=f64)
    r3 = dr.Reservoir(200, sr=0.9, lr=0.3, seed=3, name="r3", dtype=f64)
    readout = dr.Ridge(1e-6, name="readout", dtype=f64)
    deep = (dr.Input(name="u") >> r1 >> r2 >> r3) & ([r1, r2, r3] >> readout)
    print(deep)

    shallow = dr.Reservoir(600, sr=0.9, lr=0.3, seed=1, dtype=f64) >> dr.Ridge(1e-6, dtype=f64)

    errors = {}
    for name, model in (("deep ESN, 3 x 200 units", deep), ("single reservoir, 600 units",
                                                             shallow)):
        model.fit(inputs[train], targets[train], warmup=100)
        prediction = model.run(inputs[test])  # continues from the end of training
        errors[name] = nrmse(prediction, targets[test])
        print(f"{name:28s}: {HORIZON}-step-ahead NRMSE = {errors[name]:.2e}")

    report = analysis.check_esp(deep, inputs=inputs[:400], steps=300)
    for layer in report["layer"].values:
        row = report.sel(layer=layer)
        print(f"  {layer}: ρ = {float(row.rho):.2f}, σ_max = {float(row.sigma_max):.2f} -> "
              f"{row.verdict.item()}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return errors


if __name__ == "__main__":
    use_threads()  # the shared policy: one thread unless DEEPRESERVOIR_NUM_THREADS says otherwise
    main()
