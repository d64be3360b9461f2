"""Draw one figure per analysis diagnostic into docs/figures/.

Run: ``python benchmarks/make_analysis_figures.py [--output docs/figures]``

Every figure is made by :func:`deepreservoir.analysis.plot` from a result
computed here, on seeded reservoirs and data, so the figures are reproducible.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

import deepreservoir as dr
from deepreservoir import analysis


def stack(results: list, names: list[str]):
    """Concatenate one-layer results along ``layer``, renaming the layers."""
    parts = [r.assign_coords(layer=[name]) for r, name in zip(results, names, strict=True)]
    combined = xr.concat(parts, dim="layer")
    combined.attrs = results[0].attrs
    return combined


def planted_sweep(k: int = 4):
    rng = np.random.default_rng(7)
    d, m, n = 24, 16, 1500
    U, _ = np.linalg.qr(rng.standard_normal((d, k)))
    V, _ = np.linalg.qr(rng.standard_normal((m, k)))
    X = rng.standard_normal((n, d))
    Y = X @ U @ np.diag(np.linspace(1.5, 0.6, k)) @ V.T + 0.05 * rng.standard_normal((n, m))

    def train_and_score(rank, seed):
        order = np.random.default_rng(seed).permutation(n)
        train, test = order[: n // 2], order[n // 2:]
        coef = np.linalg.lstsq(X[train], Y[train], rcond=None)[0]
        _, _, vt = np.linalg.svd(X[train] @ coef, full_matrices=False)
        prediction = X[test] @ coef @ vt[:rank].T @ vt[:rank]
        return {"loss": float(np.mean((prediction - Y[test]) ** 2))}

    return analysis.rank_sweep(train_and_score, list(range(1, 13)), seeds=5,
                               full=lambda seed: train_and_score(16, seed))


def beta_results() -> dict:
    """β over training, scaffold share and β = 0 ablation of a small trained scaffold MLP."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((1200, 20))
    teacher = rng.standard_normal((20, 5))
    labels = np.argmax(np.tanh(X @ teacher) + 0.3 * rng.standard_normal((1200, 5)), axis=1)
    X_train, y_train, X_test, y_test = X[:900], labels[:900], X[900:], labels[900:]
    model = (dr.Input(name="input")
             >> dr.Scaffold(64, r=4, seed=0, name="layer0")
             >> dr.Scaffold(64, r=4, seed=1, name="layer1")
             >> dr.LoRAReadout(5, r=4, seed=2, name="head"))
    history = model.fit(X_train, y_train, epochs=15, batch_size=64, lr=1e-2,
                        loss="cross_entropy", verbose=0, seed=0).history_
    return {
        "beta_history": analysis.beta_history(history),
        "scaffold_share": analysis.scaffold_share(model, X_test),
        "beta_ablation": analysis.beta_ablation(
            model, lambda m: dr.training.evaluate(m, X_test, y_test, loss="cross_entropy")),
    }


def main(output: Path, only: list[str] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if only and all(name in ("beta_history", "scaffold_share", "beta_ablation")
                    for name in only):
        figures = beta_results()
        save({name: figures[name] for name in only}, output, plt)
        print(f"done in {time.perf_counter() - start:.1f} s")
        return
    f64 = torch.float64
    u = np.sin(0.3 * np.arange(1500))[:, None] * 0.8
    deep = (dr.Reservoir(300, sr=0.9, lr=0.3, seed=1, name="res1", dtype=f64)
            >> dr.Reservoir(200, sr=1.2, lr=0.5, seed=2, name="res2", dtype=f64)
            >> dr.Reservoir(100, sr=0.7, lr=1.0, seed=3, name="res3", dtype=f64))
    deep.run(u[:2])  # build the layers
    figures = {
        "spectra": analysis.spectra(deep),
        "esp": analysis.check_esp(deep, inputs=u),
    }
    radii = (0.8, 1.0, 1.2, 1.5)
    figures["lyapunov"] = stack(
        [analysis.lyapunov_exponents(dr.Reservoir(200, sr=sr, lr=1.0, seed=4, dtype=f64),
                                     inputs=u[:1200], warmup=200, steps=1000)
         for sr in radii], [f"sr {sr}" for sr in radii])
    rng = np.random.default_rng(5)
    layers = [(2.0 * rng.standard_normal((128, 128)) / np.sqrt(128), "tanh")
              for _ in range(12)]
    figures["depth_lyapunov"] = analysis.depth_lyapunov(layers, n_samples=512)
    memory_radii = (0.5, 0.9, 0.99)
    figures["memory_capacity"] = stack(
        [analysis.memory_capacity(dr.Reservoir(100, sr=sr, input_scaling=0.1, seed=6,
                                               dtype=f64), 150, steps=8000)
         for sr in memory_radii], [f"sr {sr}" for sr in memory_radii])
    points = {}
    sphere = rng.standard_normal((2000, 4))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    frame, _ = np.linalg.qr(rng.standard_normal((40, 4)))
    points["3-sphere in R^40"] = sphere @ frame.T + 0.001 * rng.standard_normal((2000, 40))
    frame, _ = np.linalg.qr(rng.standard_normal((50, 5)))
    points["5-d subspace of R^50"] = (rng.standard_normal((2000, 5)) @ frame.T
                                      + 0.01 * rng.standard_normal((2000, 50)))
    states = dr.Reservoir(200, sr=0.9, lr=0.5, seed=1, dtype=f64).run(
        rng.uniform(-1, 1, (2500, 1)))[500:]
    points["reservoir states, white-noise input"] = states
    figures["intrinsic_dimension"] = stack(
        [analysis.intrinsic_dimension(p).expand_dims(layer=["x"]) for p in points.values()],
        list(points))
    sweep = planted_sweep()
    figures["rank_sweep"] = sweep
    figures["saturation_rank"] = analysis.saturation_rank(sweep, np.geomspace(1e-3, 0.3, 12))
    figures.update(beta_results())
    if only:
        figures = {name: figures[name] for name in only}
    save(figures, output, plt)
    print(f"done in {time.perf_counter() - start:.1f} s")


def save(figures: dict, output: Path, plt) -> None:
    for name, result in figures.items():
        figure = analysis.plot(result)
        figure.savefig(output / f"{name}.png", dpi=100)
        plt.close(figure)
        print(f"wrote {output / f'{name}.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("docs/figures"))
    parser.add_argument("--only", nargs="+", default=None,
                        help="draw only these figures, e.g. beta_history scaffold_share")
    arguments = parser.parse_args()
    main(arguments.output, arguments.only)
