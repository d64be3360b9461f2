"""Study 3: static scaffold against one resampled every epoch or every batch (Table 4, β claims).

The same LottaLoRA MLP on MNIST-1D is trained with its scaffold fixed (the
method), redrawn at every epoch, or redrawn at every batch
(``fit(..., resample=...)``). The paper (MNIST, medium) finds that accuracy
drops sharply when the scaffold moves (r = 2: 92.73 → 67.96 → 42.46 %), that β
stays positive with a static scaffold, and that with a resampled one the
optimizer silences the scaffold, |β| < 0.001.

Resampling every batch regenerates every frozen matrix at each step, which
makes those runs about twice as slow as static ones on CPU. ``quick`` uses the
tiny preset and fewer samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from deepreservoir.studies import load_helper
from deepreservoir.sweep import TrainConfig

common = load_helper("_common", Path(__file__).parent)

TITLE = "Static vs resampled scaffold: accuracy and β"
PAPER = ("Table 4 and the β claims: resampled every epoch / batch vs static at r = 2, 4, 8; "
         "β > 0 static, |β| < 0.001 resampled")

NAME = "scaffold_resampling"
MODES = ("static", "epoch", "batch")
PAPER_ACCURACY = {"static": {2: 92.73, 4: 95.44, 8: 96.80},
                  "epoch": {2: 67.96, 4: 89.00, 8: 95.53},
                  "batch": {2: 42.46, 4: 54.94, 8: 91.19}}


def _config(quick: bool) -> dict:
    if quick:
        return {"dataset": "digits", "preset": "tiny", "num_samples": None,
                "ranks": (2, 8), "seeds": 1,
                "train": TrainConfig(epochs=8)}
    return {"dataset": "mnist1d", "preset": "medium", "num_samples": None,
            "ranks": (2, 4, 8), "seeds": 2, "train": TrainConfig(epochs=20)}


def run(out_dir: Path, *, quick: bool = False, seed: int = 0, progress: bool = True) -> dict:
    """Train every mode × rank × seed; write scaffold_resampling.nc/.png/.md."""
    timer = common.Timer()
    config = _config(quick)
    train, ranks = config["train"], config["ranks"]
    seeds = [seed + i for i in range(config["seeds"])]
    data = common.data(config["dataset"], config["num_samples"])
    label = "MNIST-1D" if config["dataset"] == "mnist1d" else config["dataset"]
    shape = (len(MODES), len(ranks), len(seeds))
    accuracy = np.full(shape, np.nan)
    beta = np.full((*shape, 5), np.nan)  # 5: most hidden layers of a preset
    seconds = np.full(shape, np.nan)
    with common.bar(int(np.prod(shape)) * train.epochs, "resampling", progress) as progress_bar:
        for i, mode in enumerate(MODES):
            for j, rank in enumerate(ranks):
                progress_bar.set_description(f"resampling {mode} r={rank}")
                for k, s in enumerate(seeds):
                    _, m = common.train(data, train, progress_bar=progress_bar,
                                        preset=config["preset"], rank=rank, seed=s,
                                        resample=None if mode == "static" else mode)
                    accuracy[i, j, k] = m["test_accuracy"]
                    beta[i, j, k, : len(m["beta"])] = m["beta"]
                    seconds[i, j, k] = m["seconds"]
    n_layers = int(np.sum(np.isfinite(beta[0, 0, 0])))
    beta = beta[..., :n_layers]
    ds = xr.Dataset(
        {"accuracy": (("mode", "rank", "seed"), accuracy),
         "beta": (("mode", "rank", "seed", "layer"), beta),
         "train_seconds": (("mode", "rank", "seed"), seconds),
         "paper_accuracy": (("mode", "rank"), [[PAPER_ACCURACY[m].get(r, np.nan) for r in ranks]
                                               for m in MODES])},
        coords={"mode": list(MODES), "rank": list(ranks), "seed": seeds,
                "layer": [f"layer{i}" for i in range(n_layers)]})
    abs_beta = np.abs(ds["beta"])
    median_abs = {m: float(abs_beta.sel(mode=m).median()) for m in MODES}
    mean_acc = 100 * ds["accuracy"].mean("seed")
    low_rank = ranks[0]
    claims = {
        "static_beta_positive": bool((ds["beta"].sel(mode="static") > 0).all()),
        "resampled_beta_below_static": bool(max(median_abs["epoch"], median_abs["batch"])
                                            < median_abs["static"]),
        "resampled_beta_below_0.001": bool(max(median_abs["epoch"], median_abs["batch"])
                                           < 1e-3),
        "static_beats_batch_resampling_at_low_rank": bool(
            float(mean_acc.sel(mode="static", rank=low_rank))
            > float(mean_acc.sel(mode="batch", rank=low_rank))),
        "static_beats_epoch_resampling_at_low_rank": bool(
            float(mean_acc.sel(mode="static", rank=low_rank))
            > float(mean_acc.sel(mode="epoch", rank=low_rank))),
        "epoch_beats_batch_resampling_at_low_rank": bool(
            float(mean_acc.sel(mode="epoch", rank=low_rank))
            > float(mean_acc.sel(mode="batch", rank=low_rank))),
    }
    ds.attrs = common.config_attrs(
        NAME, quick, seed, timer, preset=config["preset"], ranks=list(ranks), seeds=seeds,
        dataset=config["dataset"], train=train,
        median_abs_beta=json_safe(median_abs),
        alpha_convention="alpha=None: α = r (scale 1); the paper's MNIST runs use α = 1")

    fig, axes = common.figure(2)
    for mode, marker in zip(MODES, "os^", strict=True):
        axes[0].plot(ranks, mean_acc.sel(mode=mode), marker=marker, label=f"ours, {mode}")
        axes[0].plot(ranks, ds["paper_accuracy"].sel(mode=mode), marker=marker, ls=":",
                     color=axes[0].lines[-1].get_color(), alpha=0.6,
                     label=f"paper MNIST, {mode}")
    axes[0].set_xscale("log", base=2)
    axes[0].set_xlabel("rank r")
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title(f"accuracy: ours ({label}) solid, paper (MNIST) dotted")
    axes[0].legend(fontsize=7)
    positions = np.arange(len(MODES))
    values = [abs_beta.sel(mode=m).values.ravel() for m in MODES]
    axes[1].boxplot(values, positions=positions)
    for p, v in zip(positions, values, strict=True):
        axes[1].plot(np.full(v.size, p), v, "k.", alpha=0.4)
    axes[1].set_xticks(positions, list(MODES))
    axes[1].set_yscale("log")
    axes[1].axhline(1e-3, color="tab:red", ls="--", lw=1, label="paper: |β| < 0.001 resampled")
    axes[1].set_ylabel("|β| after training (all layers, ranks, seeds)")
    axes[1].set_title("β distribution")
    axes[1].legend(fontsize=8)

    rows = []
    for rank in ranks:
        row = [str(rank)]
        for mode in MODES:
            paper = PAPER_ACCURACY[mode].get(rank)
            row.append(f"{'—' if paper is None else f'{paper:.2f}'} / "
                       f"{float(mean_acc.sel(mode=mode, rank=rank)):.1f}")
        rows.append(row)
    beta_rows = [[m, "> 0 (median 0.915–0.99 in other models)" if m == "static" else "< 0.001",
                  f"{median_abs[m]:.3g}",
                  f"{float(ds['beta'].sel(mode=m).min()):.3g} … "
                  f"{float(ds['beta'].sel(mode=m).max()):.3g}"] for m in MODES]
    summary = "\n".join([
        f"# {TITLE}{' (quick)' if quick else ''}",
        "",
        f"Paper: {PAPER}.",
        "",
        f"Test accuracy %, paper (MNIST, medium) / ours ({label}, "
        f"{config['preset']}, mean over seeds {seeds}):",
        "",
        common.md_table(["r", *(f"{m}" for m in MODES)], rows),
        "",
        "β after training, all hidden layers, ranks and seeds:",
        "",
        common.md_table(["scaffold", "paper", "ours: median abs(β)", "ours: range of β"],
                        beta_rows),
        "",
        f"Setup: {config['preset']} preset, {train.epochs} epochs, lr {train.lr:g}, α = r "
        f"(scale 1; the paper uses α = 1), {len(data['y_train'])} train / "
        f"{len(data['y_test'])} test samples. Training time per run (mean): "
        + ", ".join(f"{m} {float(ds['train_seconds'].sel(mode=m).mean()):.0f} s"
                    for m in MODES) + ".",
        "",
        "**Where we differ.** "
        + ("As in the paper, the static scaffold keeps β > 0 at every layer. "
           if claims["static_beta_positive"] else
           "Unlike the paper, some static-scaffold β end ≤ 0. ")
        + ("Resampling shrinks β "
           f"(median |β| {median_abs['epoch']:.3g} per epoch, {median_abs['batch']:.3g} per "
           f"batch, against {median_abs['static']:.3g} static), "
           if claims["resampled_beta_below_static"] else "Resampling does not shrink β here, ")
        + ("and it falls below the paper's 0.001."
           if claims["resampled_beta_below_0.001"] else
           "but not to the paper's |β| < 0.001: the scaffold is damped, not silenced.")
        + f" Accuracies are on a different data set ({label}), so compare the orderings, "
          f"not the numbers. At r = {low_rank} the paper has static > per epoch > per batch "
          f"({PAPER_ACCURACY['static'].get(low_rank, float('nan')):g} > "
          f"{PAPER_ACCURACY['epoch'].get(low_rank, float('nan')):g} > "
          f"{PAPER_ACCURACY['batch'].get(low_rank, float('nan')):g}); ours is "
          f"{float(mean_acc.sel(mode='static', rank=low_rank)):.1f} / "
          f"{float(mean_acc.sel(mode='epoch', rank=low_rank)):.1f} / "
          f"{float(mean_acc.sel(mode='batch', rank=low_rank)):.1f}: "
          + ("the same ordering."
             if claims["static_beats_epoch_resampling_at_low_rank"]
             and claims["epoch_beats_batch_resampling_at_low_rank"] else
             "static clearly ahead, but per-epoch resampling is not better than per-batch "
             "here (both fall to the level the adapters and head reach without a usable "
             "scaffold)."
             if claims["static_beats_epoch_resampling_at_low_rank"]
             and claims["static_beats_batch_resampling_at_low_rank"] else
             "a different ordering."),
        "",
        "Claims on this data: " + ", ".join(f"{k} = {v}" for k, v in claims.items()) + ".",
        "",
        f"Run time: {timer.text()}.",
    ])
    files = common.write_outputs(out_dir, NAME, ds, fig, summary)
    return {"dataset": ds, "summary": summary, "claims": claims, "files": files}


def json_safe(values: dict) -> dict:
    """Floats rounded for the attrs."""
    return {k: round(float(v), 6) for k, v in values.items()}
