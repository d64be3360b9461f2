"""Study 6: the echo-state conditions along depth, next to the learned gates β.

A LottaLoRA MLP is trained; then, for every adapted layer ``l``,
``dr.analysis.spectra`` gives σ₁ (largest singular value) and ρ (spectral
radius, square layers only) of the frozen matrix ``W_seed`` and of the
effective matrix ``β·W_seed + (α/r)·B·A``, and ``dr.analysis.depth_lyapunov``
the mean log-growth of a tangent vector through the layer. β is read from the
model after training and recorded after every epoch.

The ESN sufficient condition σ₁ < 1 (and the necessary ρ < 1, in the DeepESN
reading of a layer as one step of a map) is checked per layer: the paper's
point is that the condition fails everywhere while β stays positive.

The same MLP is also trained under the two other scaffold scales of
``dr.scaffold_mlp`` (He, N(0, 2/d_in), and σ = 0.1 absolute; the main one is
N(0, 1/d_in)), recording σ₁(W_seed), β and the test accuracy: the value β
settles at depends on the scaffold's scale, and the paper gives β medians
only for its Transformers, ViT, CfC and Decision Transformer, not for an MLP
(docs/paper.md), so an MLP β median has no paper value to be compared with.

Data: MNIST-1D (scikit-learn's digits in ``--quick``), or a user's ``.npz``
file (``--data FILE.npz``: ``X``, ``y``, optionally ``X_test``, ``y_test``).
No ``recipe``: the study trains with ``fit`` directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

import deepreservoir as dr
from deepreservoir import analysis
from deepreservoir.studies import load_helper

TITLE = "Echo-state conditions vs β across layers"
PAPER = "Fig. 17: σ₁(W_seed) far above 1 at every layer (sufficient ESP condition fails), β > 0"

#: The scaffold scales trained: the main one (full measurements) first.
SCALES = ("fan_in", "he", "sigma0.1")
SCALE_TEXT = {"fan_in": "N(0, 1/d_in)", "he": "He N(0, 2/d_in)", "sigma0.1": "σ = 0.1"}
#: The paper's β medians (docs/paper.md), none of them for an MLP.
PAPER_BETA = {"Transformers": 0.915, "ViT": 0.99}
#: Smallest mean difference of two scales' β medians (paired by seed) called a dependence.
SCALE_SPREAD = 0.1


def _config(quick: bool, seed: int, data: str | None) -> dict:
    if quick:
        config = {"dataset": "digits", "hidden": [128, 128, 128], "r": 8, "epochs": 20,
                  "lr": 3e-3, "batch_size": 128, "seeds": [seed]}
    else:
        config = {"dataset": "mnist1d", "hidden": [256, 256, 256, 256], "r": 8, "epochs": 30,
                  "lr": 3e-3, "batch_size": 128, "seeds": [seed, seed + 1, seed + 2]}
    if data is not None:
        config["dataset"] = str(data)
    config["scales"] = list(SCALES)
    return config


def _betas(model, layers: list[str]) -> list[float]:
    return [float(model.nodes[name].beta_.detach()) for name in layers]


def _rho_sentence(rho: np.ndarray) -> str:
    square = np.isfinite(rho[0, :, 1])
    if not square.any():
        return "No layer is square, so ρ is not defined. "
    frozen, effective = rho[:, square, 1], rho[:, square, 0]
    return (f"On the square layers ρ(W_seed) is {frozen.min():.2f}–{frozen.max():.2f} "
            "(the circular law puts it near 1 for N(0, 1/d)) and ρ(effective) "
            f"{effective.min():.2f}–{effective.max():.2f}, so the necessary condition ρ < 1 "
            + ("fails too after training. " if effective.min() >= 1 else
               "is not violated everywhere. "))


def _cell(common, values) -> str:
    """Mean ± sd over seeds (``n = 1``: the single value); ``—`` when undefined."""
    values = np.asarray(values, dtype=float)
    return common.mean_sd(values, digits=3) if np.isfinite(values).any() else "—"


def _scale_medians(beta_by_scale: np.ndarray) -> np.ndarray:
    """Per scale: the median of β over layers and seeds."""
    return np.median(beta_by_scale.reshape(len(SCALES), -1), axis=1)


def _scale_dependence(beta_by_scale: np.ndarray) -> tuple[bool, str]:
    """Whether the β median depends on the scale, paired by seed, and a sentence saying so.

    Each seed's median over layers is compared between two scales trained from
    the same scaffold seed; the pair of scales with the largest mean difference
    is reported. A dependence: that mean difference exceeds :data:`SCALE_SPREAD`
    and, with more than one seed, has the same sign in every seed.
    """
    per_seed = np.median(beta_by_scale, axis=2)  # (scale, seed)
    pairs = [(i, j) for i in range(len(SCALES)) for j in range(i + 1, len(SCALES))]
    i, j = max(pairs, key=lambda p: abs(np.mean(per_seed[p[0]] - per_seed[p[1]])))
    diffs = per_seed[i] - per_seed[j]
    if diffs.mean() < 0:
        i, j, diffs = j, i, -diffs
    same_sign = bool(np.all(diffs > 0))
    varies = bool(diffs.mean() > SCALE_SPREAD and same_sign)
    n = diffs.size
    if n > 1:
        text = (f"paired by scaffold seed, the β median under {SCALE_TEXT[SCALES[i]]} exceeds "
                f"that under {SCALE_TEXT[SCALES[j]]} by {diffs.mean():.2f} on average "
                f"({diffs.min():+.2f} to {diffs.max():+.2f} over the {n} seeds"
                + ("; the same sign in every seed)" if same_sign else
                   "; not the same sign in every seed)"))
    else:
        text = (f"the β median under {SCALE_TEXT[SCALES[i]]} exceeds that under "
                f"{SCALE_TEXT[SCALES[j]]} by {diffs.mean():.2f} (one seed, so its sign is not "
                "checked across seeds)")
    return varies, text


def _verdict_rows(frozen_s1_scale, beta_by_scale, history_by_scale, medians, label,
                  fan_in) -> list[list[str]]:
    """Every comparison with the paper, classified from the measured numbers."""
    rows = []
    main = frozen_s1_scale[0]
    ranges = "; ".join(f"{SCALE_TEXT[s]} {frozen_s1_scale[k].min():.2f}–"
                       f"{frozen_s1_scale[k].max():.2f}" for k, s in enumerate(SCALES))
    above = [bool(np.all(frozen_s1_scale[k] > 1)) for k in range(len(SCALES))]
    if all(above):
        verdict, cause = "agrees", (f"σ₁(W_seed) > 1 at every layer under all three scales "
                                    f"(lowest {frozen_s1_scale.min():.2f}); tolerance: the "
                                    "bound 1 itself, the paper gives no per-layer value")
    elif above[0] or any(above):
        holding = [SCALE_TEXT[s] for k, s in enumerate(SCALES) if above[k]]
        failing = [SCALE_TEXT[s] for k, s in enumerate(SCALES) if not above[k]]
        verdict, cause = "setup effect", (
            f"σ₁(W_seed) > 1 everywhere under {', '.join(holding)} but not under "
            f"{', '.join(failing)}: whether the bound is exceeded depends on the scaffold's "
            "scale, which the paper states two ways (N(0, 1/d_in) and σ = 0.1)")
    else:
        verdict, cause = "real disagreement", (
            f"σ₁(W_seed) ≤ 1 somewhere under every scale (lowest {main.min():.2f} at "
            "N(0, 1/d_in))")
    rows.append(["σ₁(W_seed) > 1 at every layer (sufficient ESP condition fails)",
                 "far above 1 at every layer", ranges, verdict, cause])

    final_min = beta_by_scale.min()
    history_min = np.nanmin(history_by_scale)
    positive = [bool(np.all(history_by_scale[k] > 0)) for k in range(len(SCALES))]
    ours = f"β after training {final_min:.3f}–{beta_by_scale.max():.3f}; lowest from start " \
           f"to end of training {history_min:.3f}"
    if all(positive):
        verdict, cause = "agrees", ("β > 0 at every layer, seed, scale and epoch "
                                    f"(lowest {history_min:.3f}); tolerance: the sign only")
    elif positive[0]:
        failing = [SCALE_TEXT[s] for k, s in enumerate(SCALES) if not positive[k]]
        verdict, cause = "setup effect", (f"β > 0 throughout under N(0, 1/d_in) but not "
                                          f"under {', '.join(failing)}")
    else:
        verdict, cause = "real disagreement", (
            f"β reaches {history_min:.3f} under N(0, 1/d_in) with a static scaffold")
    rows.append(["β stays positive with a static scaffold", "β > 0", ours, verdict, cause])

    ours = "; ".join(f"{SCALE_TEXT[s]} {medians[k]:.2f}" for k, s in enumerate(SCALES))
    varies, evidence = _scale_dependence(beta_by_scale)
    ratio = 0.1 * np.sqrt(np.asarray(fan_in, dtype=float))
    widths = (f"at these widths σ = 0.1 is {ratio.min():.2f}–{ratio.max():.2f}× the "
              "N(0, 1/d_in) σ, and He √2×")
    if varies:
        dependence = (f"the MLP's β median depends on the scaffold's scale: {evidence}; "
                      f"{widths}; so an MLP β median means little without its scale")
    else:
        dependence = (f"the MLP's β median depends little on the scale here: {evidence}, "
                      f"under the threshold {SCALE_SPREAD:g} or not consistent; {widths}")
    paper = ", ".join(f"{k} {v:g}" for k, v in PAPER_BETA.items())
    rows.append(["β median", f"none for an MLP ({paper}; CfC, Decision Transformer)",
                 f"{label} MLP: {ours}", "setup effect",
                 f"{dependence}; the paper reports no MLP β median, and its "
                 f"{'/'.join(f'{v:g}' for v in PAPER_BETA.values())} belong to other "
                 "architectures, so no figure of the paper applies"])
    return rows


def run(out_dir: Path, *, quick: bool = False, seed: int = 0, progress: bool = True,
        data: str | None = None) -> dict:
    """Train, measure σ₁, ρ, depth growth and β per layer, write the files.

    ``data``: a ``.npz`` file (``X``, ``y``, optionally ``X_test``, ``y_test``) in
    place of the built-in data set.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    common = load_helper("_common", Path(__file__).parent)
    timer = common.Timer()
    config = _config(quick, seed, data)
    label = common.data_label(config["dataset"])
    arrays = common.data(config["dataset"])
    classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    layers = [f"layer{i}" for i in range(len(config["hidden"]))]
    n_seeds, n_layers, epochs = len(config["seeds"]), len(layers), config["epochs"]
    shape = (n_seeds, n_layers, 2)  # matrix: effective, frozen
    sigma1, rho = np.full(shape, np.nan), np.full(shape, np.nan)
    growth = np.full((n_seeds, n_layers), np.nan)
    beta_by_scale = np.full((len(SCALES), n_seeds, n_layers), np.nan)
    frozen_by_scale = np.full_like(beta_by_scale, np.nan)
    history_by_scale = np.full((len(SCALES), n_seeds, epochs + 1, n_layers), np.nan)
    accuracy_by_scale = np.full((len(SCALES), n_seeds), np.nan)
    runs = [(k, i) for k in range(len(SCALES)) for i in range(n_seeds)]
    for k, i in common.progress_bar(runs, progress, "esp_beta", total=len(runs)):
        model_seed = config["seeds"][i]
        model = dr.scaffold_mlp(tuple(config["hidden"]), classes, r=config["r"],
                                seed=model_seed, scale=SCALES[k])
        model.run(arrays["x_train"][:2])  # build, so β can be read before training
        history_by_scale[k, i, 0] = _betas(model, layers)

        def record(epoch, logs, trained, k=k, i=i):
            history_by_scale[k, i, epoch + 1] = _betas(trained, layers)

        model.fit(arrays["x_train"], arrays["y_train"], epochs=epochs, lr=config["lr"],
                  batch_size=config["batch_size"], loss="cross_entropy", seed=model_seed,
                  verbose=0, callbacks=[record])
        scores = dr.training.evaluate(model, arrays["x_test"], arrays["y_test"],
                                      loss="cross_entropy")
        accuracy_by_scale[k, i] = scores["accuracy"]
        beta_by_scale[k, i] = _betas(model, layers)
        if k == 0:
            spectra = analysis.spectra(model).sel(layer=layers, matrix=["effective", "frozen"])
            sigma1[i] = spectra["spectral_norm"].values
            rho[i] = spectra["spectral_radius"].values
            frozen_by_scale[k, i] = sigma1[i, :, 1]
            depth = analysis.depth_lyapunov([model.nodes[name] for name in layers],
                                            inputs=arrays["x_test"])
            growth[i] = depth["growth"].values
        else:
            spectra = analysis.spectra(model).sel(layer=layers, matrix="frozen")
            frozen_by_scale[k, i] = spectra["spectral_norm"].values
    beta, beta_history, accuracy = beta_by_scale[0], history_by_scale[0], accuracy_by_scale[0]

    fan_in = [arrays["x_train"].shape[1], *config["hidden"][:-1]]
    dataset = xr.Dataset(
        {"sigma1": (("seed", "layer", "matrix"), sigma1),
         "rho": (("seed", "layer", "matrix"), rho),
         "depth_growth": (("seed", "layer"), growth),
         "beta": (("seed", "layer"), beta),
         "beta_history": (("seed", "epoch", "layer"), beta_history),
         "test_accuracy": ("seed", accuracy),
         "beta_by_scale": (("scale", "seed", "layer"), beta_by_scale),
         "beta_history_by_scale": (("scale", "seed", "epoch", "layer"), history_by_scale),
         "sigma1_frozen_by_scale": (("scale", "seed", "layer"), frozen_by_scale),
         "test_accuracy_by_scale": (("scale", "seed"), accuracy_by_scale)},
        coords={"seed": config["seeds"], "layer": layers, "matrix": ["effective", "frozen"],
                "epoch": np.arange(epochs + 1), "fan_in": ("layer", fan_in),
                "units": ("layer", config["hidden"]), "scale": list(SCALES)},
        attrs={"description": __doc__.strip().splitlines()[0], "paper": PAPER,
               "paper_source": common.PAPER_SOURCE, "data": label, "quick": int(quick),
               "note": "rho is NaN for rectangular layers; epoch 0 of beta_history is "
                       "before training; variables without a scale dimension are for the "
                       "scale fan_in, N(0, 1/d_in)"})

    frozen_s1 = sigma1[..., 1]
    effective_s1 = sigma1[..., 0]
    medians = _scale_medians(beta_by_scale)
    varies, evidence = _scale_dependence(beta_by_scale)
    claims = {
        "sufficient_esp_condition_fails_every_layer": bool(np.all(frozen_s1 > 1)
                                                           and np.all(effective_s1 > 1)),
        "beta_positive_every_layer": bool(np.all(beta_by_scale > 0)),
        "beta_positive_throughout_training": bool(np.all(history_by_scale > 0)),
        "beta_median_varies_with_scale": varies,
    }

    colors = dict(zip(SCALES, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.4))
    x = np.arange(n_layers)
    main = colors[SCALES[0]]
    for j, (name, style) in enumerate((("effective", "o-"), ("frozen W_seed", "s--"))):
        spread_j = sigma1[..., j].std(0, ddof=1) if n_seeds > 1 else None
        left.errorbar(x, sigma1[..., j].mean(0), yerr=spread_j, fmt=style, color=main,
                      label=f"σ₁ {name}", capsize=3)
        square = np.isfinite(rho[0, :, j])
        if square.any():
            left.plot(x[square], rho[:, square, j].mean(0), style[0] + ":", color=main,
                      mfc="white", label=f"ρ {name}")
    for k, scale in enumerate(SCALES[1:], start=1):
        left.plot(x, frozen_by_scale[k].mean(0), "s--", lw=1, color=colors[scale],
                  label=f"σ₁ W_seed, {SCALE_TEXT[scale]}")
    left.axhline(1, color="k", lw=0.8, label="ESN bound 1")
    left.set_xticks(x, layers)
    left.set_ylim(0, 1.45 * np.nanmax([sigma1.max(), frozen_by_scale.max()]))
    left.set_title(f"σ₁ and ρ per layer ({SCALE_TEXT[SCALES[0]]} in blue)", fontsize=10)
    left.legend(fontsize=8, ncol=2, loc="upper center")
    width = 0.8 / len(SCALES)
    for k, scale in enumerate(SCALES):
        spread_k = beta_by_scale[k].std(0, ddof=1) if n_seeds > 1 else None
        middle.bar(x + width * (k - (len(SCALES) - 1) / 2), beta_by_scale[k].mean(0), width,
                   yerr=spread_k, capsize=2, color=colors[scale], label=SCALE_TEXT[scale])
    middle.axhline(0, color="k", lw=0.8)
    middle.axhline(1, color="0.5", lw=0.8, ls=":", label="β = 1 (start)")
    middle.set_xticks(x, layers)
    middle.set_ylabel("β")
    middle.set_title("β after training, per scaffold scale", fontsize=10)
    middle.set_ylim(min(0, 1.1 * beta_by_scale.min()), 1.35 * max(1, beta_by_scale.max()))
    middle.legend(fontsize=8, ncol=2, loc="upper center")
    for k, scale in enumerate(SCALES):
        for j in range(n_layers):
            right.plot(history_by_scale[k, :, :, j].mean(0), color=colors[scale],
                       lw=1 + 0.5 * j / max(n_layers - 1, 1), alpha=0.5 + 0.5 * j / n_layers,
                       label=SCALE_TEXT[scale] if j == n_layers - 1 else None)
    right.axhline(0, color="k", lw=0.8)
    right.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_xlim(0, epochs)
    right.set_xlabel("epoch (0: before training)")
    right.set_ylabel("β (one line per layer)")
    right.set_title("β during training", fontsize=10)
    right.legend(fontsize=8)
    figure.suptitle(f"{label}, MLP {config['hidden']}, r = {config['r']}, "
                    f"{n_seeds} seed(s)", fontsize=11)
    figure.tight_layout()

    rows = [[name, fan_in[j], config["hidden"][j], _cell(common, frozen_s1[:, j]),
             _cell(common, effective_s1[:, j]), _cell(common, rho[:, j, 1]),
             _cell(common, rho[:, j, 0]), _cell(common, beta[:, j]),
             _cell(common, growth[:, j])] for j, name in enumerate(layers)]
    sigmas = {"fan_in": [1 / np.sqrt(d) for d in fan_in], "he": [np.sqrt(2 / d) for d in fan_in],
              "sigma0.1": [0.1]}
    scale_rows = [[SCALE_TEXT[s], f"{min(sigmas[s]):.3f}–{max(sigmas[s]):.3f}"
                   if len(set(sigmas[s])) > 1 else f"{sigmas[s][0]:.3f}",
                   f"{frozen_by_scale[k].min():.2f}–"
                   f"{frozen_by_scale[k].max():.2f}",
                   f"{beta_by_scale[k].min():.3f}–{beta_by_scale[k].max():.3f}",
                   f"{medians[k]:.3f}", _cell(common, accuracy_by_scale[k])]
                  for k, s in enumerate(SCALES)]
    claim_lines = [
        "- sufficient_esp_condition_fails_every_layer = "
        f"{claims['sufficient_esp_condition_fails_every_layer']}. Check: under N(0, 1/d_in), "
        f"lowest σ₁(W_seed) ({frozen_s1.min():.2f}) > 1 and lowest σ₁(effective) "
        f"({effective_s1.min():.2f}) > 1 over layers and seeds; the bound 1, no margin.",
        f"- beta_positive_every_layer = {claims['beta_positive_every_layer']}. Check: lowest "
        f"β after training over layers, seeds and scales ({beta_by_scale.min():.3f}) > 0.",
        f"- beta_positive_throughout_training = "
        f"{claims['beta_positive_throughout_training']}. Check: lowest β after any epoch, "
        f"over layers, seeds and scales ({np.nanmin(history_by_scale):.3f}) > 0.",
        f"- beta_median_varies_with_scale = {claims['beta_median_varies_with_scale']}. "
        "Check: for the pair of scales furthest apart, the mean over seeds of the paired "
        f"difference of each seed's β median (over layers) > {SCALE_SPREAD:g}, with the same "
        f"sign in every seed. Measured: {evidence}.",
    ]
    summary = "\n\n".join([
        f"# {TITLE}{' (quick)' if quick else ''}",
        f"Paper ({common.PAPER_SOURCE}): {PAPER}. The paper gives no per-layer σ₁ values, so "
        "σ₁ is compared with the ESN bound 1; its β medians (Transformers 0.915, ViT 0.99, "
        "CfC, Decision Transformer) are for other architectures, and none is given for an "
        "MLP.",
        f"Ours: {label} ({len(arrays['y_train'])} train / {len(arrays['y_test'])} test "
        f"samples, {classes} classes), LottaLoRA MLP hidden {config['hidden']}, "
        f"r = {config['r']}, {epochs} epochs, lr {config['lr']:g}, batch "
        f"{config['batch_size']}, seeds {config['seeds']}. Main scale W_seed ~ N(0, 1/d_in): "
        f"test accuracy {_cell(common, accuracy)}. "
        + (f"Mean ± sd over the {n_seeds} seeds (ρ: square layers only):" if n_seeds > 1
           else "One seed, so single values (n = 1; ρ: square layers only):"),
        common.md_table(["layer", "d_in", "d_out", "σ₁(W_seed)", "σ₁(effective)",
                         "ρ(W_seed)", "ρ(effective)", "β", "depth log-growth"], rows),
        f"σ₁(W_seed) ranges {frozen_s1.min():.2f}–{frozen_s1.max():.2f} and σ₁(effective) "
        f"{effective_s1.min():.2f}–{effective_s1.max():.2f}: the sufficient condition σ₁ < 1 "
        + ("fails at every layer, as in the paper. " if claims[
            "sufficient_esp_condition_fails_every_layer"] else "holds somewhere, unlike the "
           "paper. ")
        + _rho_sentence(rho)
        + f"β ends between {beta.min():.3f} and {beta.max():.3f}"
        + (": positive, as the paper finds." if np.all(beta > 0)
           else ": not positive everywhere, unlike the paper."),
        "The same MLP under the three scaffold scales (β median over layers and seeds):",
        common.md_table(["scale", "σ of W_seed's entries", "σ₁(W_seed) range", "β range",
                         "β median",
                         "test accuracy"], scale_rows),
        "## Where we differ",
        common.verdict_table(_verdict_rows(frozen_by_scale, beta_by_scale, history_by_scale,
                                           medians, label, fan_in)),
        "## Claims on this data",
        "\n".join(claim_lines),
        common.run_line(timer),
    ])
    return common.finish("esp_beta", out_dir, dataset, summary, figure, claims, config, timer)
