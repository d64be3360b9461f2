"""``deepreservoir demo``: an ESN on Mackey–Glass and LottaLoRA on MNIST-1D, in about a minute.

1. An echo state network (500-unit reservoir, ridge readout) forecasts the
   Mackey–Glass series one step ahead; the NRMSE is printed.
2. The paper's medium MLP (512-256-128-64) is trained on MNIST-1D (generated
   locally, no network) with LottaLoRA at a few ranks and fully; a table gives
   rank, test accuracy, % of full training, % of parameters trained (of the
   dense network's parameters, as ``deepreservoir inspect`` counts them:
   :func:`deepreservoir.cli_report.learned`) and β per layer.
3. The spectral / echo-state report of both models is printed.
4. Results (netCDF), figures (PNG) and the two models (artifacts) are written
   to the output folder, which is named at the end.

``quick=True`` shrinks everything (smaller data, the tiny preset, 3 epochs) for tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from deepreservoir.cli_report import DENSE_SHARE

__all__ = ["DemoConfig", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo (the defaults are the full demo)."""

    esn_units: int = 500
    esn_train: int = 2000
    esn_test: int = 1000
    mnist1d_samples: int = 5000
    preset: str = "medium"
    ranks: tuple[int, ...] = (1, 4, 16)
    epochs: int = 20
    lr: float = 1e-2
    full_lr: float = 3e-3

    @classmethod
    def quick(cls) -> DemoConfig:
        """A configuration that runs in about 15 s on one core (for tests)."""
        return cls(esn_units=100, esn_train=500, esn_test=200, mnist1d_samples=1000,
                   preset="tiny", ranks=(1, 4), epochs=3)


def _mackey_glass_esn(config: DemoConfig, out: Path) -> tuple[Any, float, xr.Dataset]:
    from reservoirpy.datasets import mackey_glass

    import deepreservoir as dr

    n_train, n_test = config.esn_train, config.esn_test
    series = mackey_glass(n_train + n_test + 1)
    inputs, targets = series[:-1], series[1:]
    esn = (dr.Reservoir(config.esn_units, sr=0.9, lr=0.3, seed=1) >> dr.Ridge(ridge=1e-6))
    esn = esn.double()  # the readout solve at ridge 1e-6 wants float64 states
    esn.fit(inputs[:n_train], targets[:n_train], warmup=100)
    prediction = esn.run(inputs[n_train:])
    truth = targets[n_train:]
    nrmse = float(np.sqrt(np.mean((prediction - truth) ** 2)) / np.ptp(truth))
    ds = xr.Dataset(
        {"target": ("time", truth[:, 0]), "prediction": ("time", prediction[:, 0])},
        coords={"time": np.arange(n_train, n_train + n_test)},
        attrs={"nrmse": nrmse, "nrmse_definition": "RMSE / (max - min) of the test targets",
               "units": config.esn_units, "sr": 0.9, "lr": 0.3, "ridge": 1e-6,
               "train_steps": n_train, "warmup": 100, "task": "Mackey-Glass one-step forecast"})
    ds.to_netcdf(out / "esn_mackey_glass.nc")
    return esn, nrmse, ds


def _mnist1d_runs(config: DemoConfig, bar, seed: int) -> tuple[dict, xr.Dataset]:
    from deepreservoir.cli_report import learned
    from deepreservoir.sweep import TrainConfig, load_dataset, train_classifier

    bar.set_description("generating MNIST-1D")
    data = load_dataset("mnist1d", num_samples=config.mnist1d_samples)
    train = TrainConfig(epochs=config.epochs, lr=config.lr, full_lr=config.full_lr)
    models, rows, curves, shares = {}, {}, {}, {}
    for label, rank in [("full", 0), *((f"r={r}", r) for r in config.ranks)]:
        bar.set_description(f"mnist1d {label}")

        def tick(epoch, logs, model, _label=label):
            bar.update(1)
            if "val_accuracy" in logs:
                bar.set_postfix(val_acc=f"{logs['val_accuracy']:.3f}")

        model, metrics = train_classifier(data, preset=config.preset, rank=rank, seed=seed,
                                          full=rank == 0, config=train, callbacks=[tick])
        models[label] = model
        rows[label] = metrics
        curves[label] = model.history_["val_accuracy"].values
        shares[label] = learned(model)
    full = rows["full"]
    labels = [f"r={r}" for r in config.ranks]
    n_layers = max(len(rows[k]["beta"]) for k in labels)
    beta = np.full((len(labels), n_layers), np.nan)
    for i, k in enumerate(labels):
        beta[i, : len(rows[k]["beta"])] = rows[k]["beta"]
    accuracy = np.array([rows[k]["test_accuracy"] for k in labels])
    trainable = np.array([rows[k]["trainable"] for k in labels])
    ds = xr.Dataset(
        {"test_accuracy": ("rank", accuracy),
         "percent_of_full": ("rank", 100 * accuracy / full["test_accuracy"]),
         "trainable": ("rank", trainable),
         "dense": ("rank", [shares[k].dense for k in labels]),
         "percent_trained": ("rank", [shares[k].percent for k in labels]),
         "beta": (("rank", "layer"), beta),
         "val_accuracy": (("run", "epoch"), np.stack([curves[k] for k in ["full", *labels]])),
         "seconds": ("run", [rows[k]["seconds"] for k in ["full", *labels]])},
        coords={"rank": list(config.ranks), "layer": [f"layer{i}" for i in range(n_layers)],
                "run": ["full", *labels], "epoch": np.arange(1, config.epochs + 1)},
        attrs={"full_test_accuracy": full["test_accuracy"],
               "full_trainable": full["trainable"], "full_dense": shares["full"].dense,
               "full_percent_trained": shares["full"].percent,
               "percent_trained_definition": f"parameters trained, {DENSE_SHARE} (the same "
                                             "network with every weight stored)",
               "classes": int(np.unique(data["y_train"]).size), "preset": config.preset,
               "epochs": config.epochs, "lr": config.lr, "full_lr": config.full_lr,
               "alpha_convention": "alpha=None: α = r (scale 1)", "seed": seed,
               "n_train": len(data["y_train"]), "n_test": len(data["y_test"]),
               "dataset": "mnist1d (generated locally)"})
    return models, ds


def _table(ds: xr.Dataset) -> str:
    layers = [str(v) for v in ds["layer"].values]
    head = (f"{'rank':>6}{'accuracy':>10}{'% of full':>11}{'% trained':>11}  "
            + "  ".join(f"β {la}" for la in layers))
    lines = [head, "-" * len(head)]
    lines.append(f"{'full':>6}{ds.attrs['full_test_accuracy']:>10.3f}{100.0:>11.1f}"
                 f"{ds.attrs['full_percent_trained']:>11.2f}")
    for i, r in enumerate(ds["rank"].values):
        betas = "  ".join(f"{b:>{len('β ' + la)}.3f}"
                          for b, la in zip(ds["beta"].values[i], layers, strict=True))
        lines.append(f"{int(r):>6}{float(ds['test_accuracy'][i]):>10.3f}"
                     f"{float(ds['percent_of_full'][i]):>11.1f}"
                     f"{float(ds['percent_trained'][i]):>11.2f}  {betas}")
    dense = sorted({int(v) for v in ds["dense"].values})
    counts = " / ".join(f"{v:,}" for v in dense)
    if dense != [int(ds.attrs["full_dense"])]:
        counts = f"{counts} with LottaLoRA, {int(ds.attrs['full_dense']):,} fully trained"
    lines.append(f"% trained: parameters trained, {DENSE_SHARE} (the same network with every "
                 f"weight stored: {counts})")
    return "\n".join(lines)


def _lottalora_figure(runs: xr.Dataset):
    """Test accuracy against rank, β per layer and validation accuracy per epoch.

    Each run has one colour in every panel (full training black); the accuracy
    axes start at 0 and show chance (1 / number of classes) as a dotted line.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    ranks = [int(r) for r in runs["rank"].values]
    colour = {"full": "black", **{f"r={r}": f"C{i}" for i, r in enumerate(ranks)}}
    chance = 1 / runs.attrs["classes"] if runs.attrs.get("classes") else None
    fig, (acc, beta, curve) = plt.subplots(1, 3, figsize=(14, 4.2))

    acc.plot(ranks, runs["test_accuracy"], "-", color="0.6", lw=1, zorder=1)
    for i, r in enumerate(ranks):
        acc.plot([r], [float(runs["test_accuracy"][i])], "o", ms=8, color=colour[f"r={r}"],
                 label=f"r={r}", zorder=2)
    acc.axhline(runs.attrs["full_test_accuracy"], color=colour["full"], ls="--",
                label="full training")
    acc.set_xscale("log", base=2)
    acc.set_xticks(ranks, [str(r) for r in ranks])
    acc.minorticks_off()
    acc.set_xlabel("rank r")
    acc.set_ylabel("test accuracy")
    acc.set_title(f"MNIST-1D, {runs.attrs['preset']} preset: test accuracy")

    layers = np.arange(runs.sizes["layer"])
    for i, r in enumerate(ranks):
        beta.plot(layers, runs["beta"][i], "o-", color=colour[f"r={r}"], label=f"r={r}")
    beta.axhline(0, color="grey", lw=0.5)
    beta.set_xticks(layers, [str(v) for v in runs["layer"].values])
    beta.set_xlabel("layer")
    beta.set_ylabel("β after training")
    beta.set_title("β per layer")
    beta.legend(fontsize=9)

    for run in runs["run"].values:
        curve.plot(runs["epoch"], runs["val_accuracy"].sel(run=run), "-",
                   color=colour[str(run)], label="full training" if run == "full" else str(run))
    curve.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    curve.set_xlabel("epoch")
    curve.set_ylabel("validation accuracy")
    curve.set_title("validation accuracy during training")

    for axis in (acc, curve):
        if chance is not None:
            axis.axhline(chance, color="grey", ls=":", lw=1.2,
                         label=f"chance (1/{runs.attrs['classes']})")
        axis.set_ylim(0, 1)
        axis.legend(fontsize=9, loc="best", ncol=2)
    fig.tight_layout()
    return fig


def _figures(out: Path, esn_ds: xr.Dataset, runs: xr.Dataset, reports: dict) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepreservoir import analysis

    paths = []
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    top.plot(esn_ds["time"], esn_ds["target"], lw=2, label="target")
    top.plot(esn_ds["time"], esn_ds["prediction"], "--", label="ESN forecast")
    top.set_ylabel("x(t + 1)")
    top.legend(loc="upper right")
    top.set_title(f"Mackey–Glass one-step forecast, NRMSE {esn_ds.attrs['nrmse']:.2e}")
    bottom.plot(esn_ds["time"], esn_ds["prediction"] - esn_ds["target"], color="tab:red")
    bottom.set_ylabel("error")
    bottom.set_xlabel("time step")
    fig.tight_layout()
    paths.append(out / "esn_mackey_glass.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig = _lottalora_figure(runs)
    paths.append(out / "lottalora_mnist1d.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    for name, result in reports.items():
        fig = analysis.plot(result)
        paths.append(out / f"{name}.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def run_demo(out_dir: str | Path = "deepreservoir-demo", *, quick: bool = False,
             progress: bool = True, seed: int = 0, echo=print) -> dict[str, Any]:
    """Run the demo and write its files.

    Parameters
    ----------
    out_dir : path
        Output folder (created).
    quick : bool
        A tiny configuration (:meth:`DemoConfig.quick`).
    progress : bool
        tqdm bars on stderr.
    seed : int
        Seed of the MNIST-1D runs.
    echo : callable
        Where the text goes (``print`` by default).

    Returns
    -------
    dict
        ``nrmse``, ``runs`` (the MNIST-1D Dataset), ``files``, ``seconds``, ``out_dir``.
    """
    from tqdm.auto import tqdm

    from deepreservoir.cli_report import model_report

    began = time.perf_counter()
    config = DemoConfig.quick() if quick else DemoConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total_epochs = config.epochs * (len(config.ranks) + 1)
    stages = tqdm(total=4, desc="demo", disable=not progress, position=0)

    stages.set_description("ESN on Mackey-Glass")
    esn, nrmse, esn_ds = _mackey_glass_esn(config, out)
    stages.update(1)
    echo(f"\n[1/3] ESN ({config.esn_units} units) on Mackey–Glass, one-step forecast over "
         f"{config.esn_test} test steps: NRMSE = {nrmse:.2e}")

    stages.set_description("LottaLoRA on MNIST-1D")
    with tqdm(total=total_epochs, desc="mnist1d", unit="epoch", disable=not progress,
              position=1, leave=False) as bar:
        models, runs = _mnist1d_runs(config, bar, seed)
    stages.update(1)
    runs.to_netcdf(out / "lottalora_mnist1d.nc")
    echo(f"\n[2/3] LottaLoRA on MNIST-1D ({runs.attrs['n_train']} train / "
         f"{runs.attrs['n_test']} test, {config.preset} preset, {config.epochs} epochs, "
         f"α = r; lr {config.lr:g} LoRA, {config.full_lr:g} full)")
    echo(_table(runs))

    stages.set_description("spectra and ESP")
    best = f"r={max(config.ranks)}"
    lora = models[best]
    # 20 Buehner–Young iterations instead of 100: a looser but valid bound, 3× faster
    esn_report = model_report(esn, title="ESN (Mackey–Glass)", footprint=False,
                              inputs=esn_ds["target"].values[:, None], esp_maxiter=20)
    lora_report = model_report(lora, title=f"LottaLoRA {best} (MNIST-1D)", footprint=False)
    stages.update(1)
    echo("\n[3/3] Spectral / echo-state report\n")
    echo(esn_report.text)
    echo("")
    echo(lora_report.text)

    stages.set_description("writing files")
    results = {"esp_esn": esn_report.results["esp"],
               "spectra_esn": esn_report.results["spectra"],
               "spectra_lottalora": lora_report.results["spectra"],
               "depth_lyapunov_lottalora": lora_report.results["depth_lyapunov"]}
    for name, ds in results.items():
        ds.to_netcdf(out / f"{name}.nc")
    figures = _figures(out, esn_ds, runs, {"esp_esn": results["esp_esn"],
                                           "spectra_lottalora": results["spectra_lottalora"]})
    esn.save(out / "esn_model")
    lora.save(out / f"lottalora_r{max(config.ranks)}_model")
    stages.update(1)
    stages.close()
    seconds = time.perf_counter() - began
    files = sorted(p for p in out.iterdir())
    echo(f"\nWrote {len(files)} files to {out.resolve()} in {seconds:.0f} s:")
    for path in files:
        echo(f"  {path.name}{'/' if path.is_dir() else ''}")
    echo(f"Next: deepreservoir inspect {out / f'lottalora_r{max(config.ranks)}_model'}")
    return {"nrmse": nrmse, "runs": runs, "files": [*figures, *files], "seconds": seconds,
            "out_dir": out}
