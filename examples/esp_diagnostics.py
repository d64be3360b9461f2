"""Is my reservoir an echo state network? Spectra, ESP conditions, contraction, Lyapunov.

Run: ``python examples/esp_diagnostics.py [--output DIR]``

Checks three systems and prints what holds and what does not:

1. a 300-unit leaky reservoir (sr 0.9, lr 0.3) — the usual case: no
   sufficient condition holds, yet it contracts on its input;
2. a deep chain whose second layer has sr 1.3 — a necessary condition fails;
3. a 2x2 tanh network with ρ(W) = 0.7 that has no echo state property
   (three attracting fixed points with zero input).

Writes the ESP and spectra plots (when matplotlib is installed) to ``DIR``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import deepreservoir as dr
from deepreservoir import analysis
from deepreservoir.threads import use_threads


def show(title: str, report) -> None:
    print(f"\n== {title}: overall verdict '{report.attrs['verdict']}'")
    for layer in report["layer"].values:
        row = report.sel(layer=layer)
        print(f"  layer {layer}: ρ = {float(row.rho):.3f}, σ_max = {float(row.sigma_max):.3f}, "
              f"ρ(|W|) = {float(row.rho_abs):.3f}, "
              f"inf_D σ_max(DWD⁻¹) ≤ {float(row.diagonal_scaling_bound):.3f}, "
              f"contraction rate {float(row.contraction_rate):.4f}/step")
        print(f"    -> {row.verdict.item()}: {row.explanation.item()}")


def main(output: Path) -> dict:
    start = time.perf_counter()
    u = np.sin(0.3 * np.arange(1200))[:, None] * 0.8

    single = dr.Reservoir(300, sr=0.9, lr=0.3, seed=1, dtype=torch.float64)
    esp_single = analysis.check_esp(single, inputs=u)
    show("300-unit reservoir", esp_single)
    print("  spectra:", {k: float(v) for k, v in analysis.spectra(single).sel(
        matrix="effective").isel(layer=0)[["spectral_radius", "spectral_norm",
                                            "leaky_spectral_radius"]].items()})
    lyapunov = analysis.lyapunov_exponents(single, inputs=u, warmup=200, steps=1000)
    print(f"  maximal Lyapunov exponent on this input: {float(lyapunov.exponents[0, 0]):.4f}"
          f" per step")

    deep = (dr.Reservoir(200, sr=0.9, lr=0.5, seed=2, name="layer1", dtype=torch.float64)
            >> dr.Reservoir(100, sr=1.3, lr=1.0, seed=3, name="layer2", dtype=torch.float64))
    esp_deep = analysis.check_esp(deep, inputs=u)
    show("deep chain", esp_deep)
    print(f"  DeepESN necessary radius max_l ρ((1−a_l)I + a_l W_l) = "
          f"{esp_deep.attrs['deep_esn_radius']:.3f}")

    counterexample = np.array([[-0.7, -2.8], [0.7, 2.1]])
    esp_counter = analysis.check_esp(counterexample, steps=300, n_states=12)
    show("2x2 counterexample (ρ = 0.7)", esp_counter)
    print(f"\nall checks in {time.perf_counter() - start:.1f} s")

    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        print("matplotlib is not installed: skipping the plots (pip install deepreservoir[plot]).")
        return {"single": esp_single, "deep": esp_deep, "counterexample": esp_counter}
    output.mkdir(parents=True, exist_ok=True)
    analysis.plot(esp_deep).savefig(output / "esp_deep_chain.png", dpi=110)
    analysis.plot(esp_counter).savefig(output / "esp_counterexample.png", dpi=110)
    analysis.plot(analysis.spectra(deep)).savefig(output / "spectra_deep_chain.png", dpi=110)
    print(f"plots written to {output}")
    return {"single": esp_single, "deep": esp_deep, "counterexample": esp_counter}


if __name__ == "__main__":
    use_threads()  # the shared policy: one thread unless DEEPRESERVOIR_NUM_THREADS says otherwise
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("outputs"),
                        help="folder for the plots (default: outputs)")
    main(parser.parse_args().output)
