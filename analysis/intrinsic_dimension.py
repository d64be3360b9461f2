"""Study 7: the saturation rank r*(ε) of LoRA against geometric intrinsic-dimension estimates.

Two settings:

* **Planted tasks** with a known dimension k: ``Y = X·U·diag(s)·Vᵀ + noise``
  with ``U`` (d × k), ``V`` (m × k) orthonormal, so the targets depend on ``X``
  only through a rank-k projection. The model is a single
  ``LoRAReadout(m, r)`` over a frozen random ``W_seed`` trained by gradient
  descent; ``dr.analysis.rank_sweep`` sweeps r and ``saturation_rank`` gives
  r*(ε) = min r with loss(r) ≤ loss(full) + ε, ``full`` being the fully
  trained matrix. PCA (90 % of the variance), participation ratio, TwoNN and
  the Levina–Bickel MLE are run on the inputs and on the targets.
* **MNIST-1D** (digits in ``--quick``): a LottaLoRA MLP at several ranks
  against the same MLP fully trained; r*(ε) on test accuracy, and the same
  estimators on the inputs and on the last hidden layer's activations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

import deepreservoir as dr
from deepreservoir import analysis
from deepreservoir.datasets import load_digits, load_mnist1d
from deepreservoir.studies import load_helper

TITLE = "Intrinsic dimension: saturation rank r*(ε) against PCA, participation ratio, TwoNN"
PAPER = ("Claim (3): the rank at which LoRA saturates, r*(ε) = min r with "
         "loss(r) ≤ loss(full) + ε, estimates the task's intrinsic dimension, like PCA")

ESTIMATORS = ["pca", "participation_ratio", "twonn", "mle"]



def _config(quick: bool, seed: int) -> dict:
    if quick:
        return {"planted_k": [2, 4], "planted_ranks": [1, 2, 3, 4, 5, 6], "planted_seeds": 1,
                "planted_epochs": 60, "planted_eps": [0.01],
                "dataset": "digits", "hidden": [64, 32], "ranks": [1, 2, 4, 8, 16],
                "seeds": 1, "epochs": 15, "lr": 3e-3, "eps": [0.01, 0.02, 0.05], "seed": seed}
    return {"planted_k": [1, 3, 6], "planted_ranks": [1, 2, 3, 4, 5, 6, 7, 8, 10],
            "planted_seeds": 3, "planted_epochs": 100, "planted_eps": [0.01],
            "dataset": "mnist1d", "hidden": [128, 64], "ranks": [1, 2, 4, 8, 16, 32],
            "seeds": 3, "epochs": 30, "lr": 3e-3, "eps": [0.01, 0.02, 0.05], "seed": seed}


def planted_task(k: int, seed: int, n: int = 1200, d: int = 20, m: int = 12,
                 noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Inputs (n, d) and targets (n, m) that depend on the inputs through a rank-k map."""
    rng = np.random.default_rng(1000 * seed + k)
    left, _ = np.linalg.qr(rng.standard_normal((d, k)))
    right, _ = np.linalg.qr(rng.standard_normal((m, k)))
    x = rng.standard_normal((n, d))
    y = x @ left @ np.diag(np.linspace(1.5, 0.6, k)) @ right.T
    y += noise * rng.standard_normal((n, m))
    return x.astype(np.float32), y.astype(np.float32)


def _estimates(points: np.ndarray) -> np.ndarray:
    result = analysis.intrinsic_dimension(points, variance=0.9, k=20)
    return np.array([float(result.sel(estimator=name)) for name in ESTIMATORS])


def _planted(config: dict, common, progress: bool):
    ks, ranks = config["planted_k"], config["planted_ranks"]
    loss = np.full((len(ks), len(ranks), config["planted_seeds"]), np.nan)
    loss_full = np.full((len(ks), config["planted_seeds"]), np.nan)
    r_star = np.full((len(ks), len(config["planted_eps"])), np.nan)
    geometry = np.full((len(ks), 2, len(ESTIMATORS)), np.nan)  # source: inputs, targets
    for i, k in enumerate(common.progress_bar(ks, progress, "planted tasks")):
        x, y = planted_task(k, config["seed"])
        train, test = slice(0, 800), slice(800, None)
        m = y.shape[1]

        def score(model, seed, x=x, y=y, train=train, test=test):
            model.fit(x[train], y[train], epochs=config["planted_epochs"], batch_size=400,
                      lr=3e-2, weight_decay=0.0, loss="mse", seed=seed, verbose=0)
            return {"loss": float(np.mean((model.run(x[test]) - y[test]) ** 2))}

        sweep = analysis.rank_sweep(
            lambda rank, seed, m=m, score=score: score(
                dr.Input() >> dr.LoRAReadout(m, r=rank, seed=seed), seed),
            ranks, config["planted_seeds"],
            full=lambda seed, m=m, score=score: score(
                dr.Input() >> dr.LoRAReadout(m, r=0, full=True, seed=seed), seed))
        loss[i] = sweep["loss"].values
        loss_full[i] = sweep["loss_full"].values
        r_star[i] = analysis.saturation_rank(sweep, config["planted_eps"])["r_star"].values
        geometry[i, 0] = _estimates(x)
        geometry[i, 1] = _estimates(y)
    return loss, loss_full, r_star, geometry


def _activations(model, x: np.ndarray, last_hidden: str) -> np.ndarray:
    """Outputs of node ``last_hidden``: the model's chain up to it, sharing its nodes."""
    nodes = model.nodes
    names = ["input", *[f"layer{i}" for i in range(int(last_hidden[5:]) + 1)]]
    chain = nodes[names[0]]
    for name in names[1:]:
        chain = chain >> nodes[name]
    return np.asarray(chain.run(x))


def _benchmark(config: dict, common, progress: bool):
    data = load_digits(seed=config["seed"]) if config["dataset"] == "digits" else load_mnist1d()
    hidden = tuple(config["hidden"])
    last = f"layer{len(hidden) - 1}"
    models = {}

    def train(model, seed):
        model.fit(data["x_train"], data["y_train"], epochs=config["epochs"], lr=config["lr"],
                  loss="cross_entropy", seed=seed, verbose=0)
        return model

    def score(model):
        return {"accuracy": float(dr.training.evaluate(
            model, data["x_test"], data["y_test"], loss="cross_entropy")["accuracy"])}

    def lora(rank, seed):
        model = train(dr.scaffold_mlp(hidden, 10, r=rank, seed=seed), seed)
        models[("lora", rank, seed)] = model
        return score(model)

    def full(seed):
        model = train(dr.scaffold_mlp(hidden, 10, full=True, seed=seed), seed)
        models[("full", seed)] = model
        return score(model)

    cells = len(config["ranks"]) * config["seeds"]
    bar = common.progress_bar(range(cells + config["seeds"]), progress, config["dataset"])
    ticks = iter(bar)

    def ticking(function):
        def wrapped(*args):
            next(ticks, None)
            return function(*args)
        return wrapped

    sweep = analysis.rank_sweep(ticking(lora), config["ranks"], config["seeds"],
                                full=ticking(full))
    saturation = analysis.saturation_rank(sweep, config["eps"], greater_is_better=True)
    top = max(config["ranks"])
    geometry = np.stack([
        _estimates(data["x_test"]),
        _estimates(_activations(models[("full", 0)], data["x_test"], last)),
        _estimates(_activations(models[("lora", top, 0)], data["x_test"], last)),
    ])
    return sweep, saturation, geometry


def _saturation_sentence(saturation, mean_acc: np.ndarray, full_acc: float,
                         ranks: list[int]) -> str:
    missing = [float(e) for e in saturation["epsilon"].values
               if not np.isfinite(saturation["r_star"].sel(epsilon=e).item())]
    recovered = 100 * mean_acc[-1] / full_acc
    text = (f"At r = {ranks[-1]} LottaLoRA recovers {recovered:.1f} % of full training's "
            "accuracy; the paper's MNIST medium preset recovers 99.4 % at r = 32 "
            "(97.80 against 98.38). ")
    if missing:
        text += (f"For ε = {', '.join(f'{e:g}' for e in missing)} no swept rank comes within ε "
                 "of full training, so r*(ε) is undefined there (NaN): on this data and "
                 "training budget the curve has not saturated by the largest rank, and r* "
                 "would need larger ranks or longer training.")
    return text


def run(out_dir: Path, *, quick: bool = False, seed: int = 0, progress: bool = True) -> dict:
    """Run both rank sweeps and the geometric estimators, write the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    common = load_helper("_common", Path(__file__).parent)
    timer = common.Timer()
    config = _config(quick, seed)
    loss, loss_full, planted_r_star, planted_geometry = _planted(config, common, progress)
    sweep, saturation, geometry = _benchmark(config, common, progress)

    sources = ["inputs", "last hidden layer (full training)",
               f"last hidden layer (LottaLoRA r={max(config['ranks'])})"]
    dataset = xr.Dataset(
        {"planted_loss": (("k", "planted_rank", "planted_seed"), loss),
         "planted_loss_full": (("k", "planted_seed"), loss_full),
         "planted_r_star": (("k", "planted_epsilon"), planted_r_star),
         "planted_geometry": (("k", "planted_source", "estimator"), planted_geometry),
         "accuracy": (("rank", "seed"), sweep["accuracy"].values),
         "accuracy_full": ("seed", sweep["accuracy_full"].values),
         "r_star": ("epsilon", saturation["r_star"].values),
         "r_star_low": ("epsilon", saturation["r_star_low"].values),
         "r_star_high": ("epsilon", saturation["r_star_high"].values),
         "geometry": (("source", "estimator"), geometry)},
        coords={"k": config["planted_k"], "planted_rank": config["planted_ranks"],
                "planted_seed": np.arange(config["planted_seeds"]),
                "planted_epsilon": config["planted_eps"], "planted_source": ["inputs", "targets"],
                "estimator": ESTIMATORS, "rank": config["ranks"],
                "seed": np.arange(config["seeds"]), "epsilon": config["eps"],
                "source": sources},
        attrs={"description": __doc__.strip().splitlines()[0], "paper": PAPER,
               "pca_variance": 0.9, "mle_neighbours": 20, "twonn_discard_fraction": 0.1})

    mean_acc = sweep["accuracy"].values.mean(axis=1)
    full_acc = float(sweep["accuracy_full"].values.mean())
    claims = {
        "planted_k_recovered": bool(np.array_equal(planted_r_star[:, 0], config["planted_k"])),
        "targets_pca_matches_k": bool(np.all(np.abs(planted_geometry[:, 1, 0]
                                                    - np.array(config["planted_k"])) <= 1)),
        "accuracy_grows_with_rank": bool(mean_acc[-1] > mean_acc[0]),
        "saturates_within_5_points": bool(np.isfinite(saturation["r_star"].sel(
            epsilon=0.05).item())),
    }

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for i, k in enumerate(config["planted_k"]):
        line, = left.semilogy(config["planted_ranks"], loss[i].mean(axis=1), "o-",
                              label=f"k = {k}")
        left.axhline(loss_full[i].mean(), color=line.get_color(), ls=":", lw=1)
        left.axvline(k, color=line.get_color(), ls="--", lw=0.8)
    left.set_xlabel("LoRA rank r")
    left.set_ylabel("test MSE (dotted: full training)")
    left.set_title("planted tasks: loss saturates at r = k")
    left.legend(fontsize=8)
    spread = sweep["accuracy"].values.std(axis=1)
    right.errorbar(config["ranks"], mean_acc, yerr=spread, fmt="o-", capsize=3,
                   label="LottaLoRA")
    right.axhline(full_acc, color="k", ls=":", label="full training")
    right.set_xscale("log", base=2)
    right.set_xlabel("LoRA rank r")
    right.set_ylabel("test accuracy")
    right.set_title(f"{config['dataset']}, MLP {config['hidden']}")
    right.legend(fontsize=8)
    figure.tight_layout()

    planted_rows = [[k, *[f"{v:g}" for v in planted_r_star[i]],
                     *[f"{v:.2f}" for v in planted_geometry[i, 1]],
                     *[f"{v:.2f}" for v in planted_geometry[i, 0]]]
                    for i, k in enumerate(config["planted_k"])]
    eps_cols = [f"r*(ε={e:g})" for e in config["planted_eps"]]
    bench_rows = [[f"{e:g}", f"{float(saturation['r_star'].sel(epsilon=e)):g}",
                   f"{float(saturation['r_star_low'].sel(epsilon=e)):g}–"
                   f"{float(saturation['r_star_high'].sel(epsilon=e)):g}"]
                  for e in config["eps"]]
    geometry_rows = [[source, *[f"{v:.1f}" for v in geometry[i]]]
                     for i, source in enumerate(sources)]
    accuracy_rows = [[r, f"{mean_acc[i]:.3f} ± {spread[i]:.3f}",
                      f"{100 * mean_acc[i] / full_acc:.1f} %"]
                     for i, r in enumerate(config["ranks"])]
    summary = "\n\n".join([
        f"# {TITLE}",
        f"Paper: {PAPER}. REFERENCE.md has no r* values for MNIST; the nearest published "
        "number is Li et al. 2018's random-subspace d_int90 = 750 for an MNIST fully "
        "connected net, a count of *parameters*, not a rank, so it is not on the same scale.",
        f"## Planted tasks (known k; d = 20 inputs, m = 12 outputs, 800 train / 400 test, "
        f"{config['planted_seeds']} seed(s))",
        "r* from the LoRA rank sweep (MSE, ε in MSE units; one missing direction costs at "
        "least 0.6²/12 = 0.03), and the geometric estimators (PCA 90 %, participation ratio, "
        "TwoNN, MLE k = 20) on the targets and on the inputs:",
        common.md_table(["k", *eps_cols, *[f"targets: {e}" for e in ESTIMATORS],
                      *[f"inputs: {e}" for e in ESTIMATORS]], planted_rows),
        "The rank sweep recovers k " + ("exactly at every k" if claims["planted_k_recovered"]
                                        else "not at every k (see table)")
        + ". The estimators see k only on the targets (where PCA and the participation ratio "
        "undercount when the planted directions have unequal scales); on the inputs they see "
        "the ambient 20 dimensions (TwoNN and MLE undershoot in 20-d, as usual), which says "
        "nothing about the task.",
        f"## {config['dataset']} (MLP {config['hidden']}, {config['epochs']} epochs, "
        f"{config['seeds']} seed(s))",
        f"Full training: test accuracy {full_acc:.3f}.",
        common.md_table(["rank", "accuracy", "% of full"], accuracy_rows),
        common.md_table(["ε (accuracy)", "r*(ε), seed mean curve", "r* range over seeds"],
                     bench_rows),
        _saturation_sentence(saturation, mean_acc, full_acc, config["ranks"]),
        "Geometric estimators on the test inputs and activations:",
        common.md_table(["points", *ESTIMATORS], geometry_rows),
        "The saturation rank and the geometric estimates measure different things: r* is the "
        "rank of the *change* the task needs on top of the random scaffold; PCA and the other "
        "estimators describe the spread of the points. They need not agree (compare r* with "
        "the activation estimates above): the paper's 'reminiscent of PCA' is an analogy, "
        "which only the planted tasks, where both are k by construction, can confirm.",
        "Claims on this data: " + ", ".join(f"{k} = {v}" for k, v in claims.items()) + ".",
        "Run time: {seconds} s.",
    ])
    return common.finish("intrinsic_dimension", out_dir, dataset, summary, figure, claims,
                         config, timer)
