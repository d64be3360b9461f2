"""Study 8: the time axis — an ESN with a ridge readout against LoRA on the recurrent matrix.

Three ways to train a reservoir on NARMA-10 and on a one-step Mackey–Glass
forecast, with the same reservoir (same seed, N, spectral radius, leak):

* ``esn_ridge``: ``Reservoir >> Ridge``, the classical ESN, solved in closed form;
* ``lora_W``: ``Reservoir(r=k) >> LoRAReadout(1, r=1)``, a LoRA adapter and β on
  the recurrent matrix ``W`` and a LoRA readout, trained together by
  backpropagation through time (Adam, windows of the training series);
* ``readout_gradient``: ``Reservoir(r=0) >> LoRAReadout(1, r=1)``, the same
  gradient training with ``W`` left alone — the control that tells what the
  adapter on ``W`` adds over gradient training of the readout alone.

A one-output readout has rank ≤ 1, so ``LoRAReadout(1, r=1)`` is as expressive as
the ridge readout; only the training differs. Every model is then run over
the whole series from zero state, and scored on the test steps: NARMA-10 by
NMSE = mean((ŷ − y)²)/var(y), Mackey–Glass by NRMSE = RMSE / (max − min).

NARMA-10 is ``dr.datasets.narma10`` as it stands, the textbook definition
(Atiya & Parlos; the sum covers y(t−9..t), the product u(t−9)·u(t); see
docs/paper.md). Beside the three contenders, the closed-form ESN + Ridge is
re-run on more seeds and under single changes of its set-up (input scaling,
spectral radius, density of W, washout, an input bias, the input fed to the
readout, and N = 100), each scored on the test steps: not a tuned result but
a measurement of how far each choice moves the NMSE, which classifies the gap
to the literature's 0.107 ± 0.012.

**Your series** (``deepreservoir reproduce time_axis --data series.npz``): a
``.npz`` with ``X`` (T, F), the input at each step, and ``y`` (T, O), the target
at each step (``DATA_KIND = "series"``, read by
:func:`deepreservoir.data_files.load_series_npz`). The three contenders are also
trained on it, with the Mackey–Glass reservoir settings, on the first half of
the steps (split in time, never shuffled) and scored on the second half by
NRMSE; the paper has no figure for it, so it gets a table and no verdict. No
``recipe`` (no MLP is trained).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import xarray as xr

import deepreservoir as dr
from deepreservoir.datasets import narma10
from deepreservoir.studies import load_helper

#: ``data`` is one time series, not a classification set (see deepreservoir.studies).
DATA_KIND = "series"

TITLE = "The time axis: ESN + Ridge against LoRA on W (BPTT) + LoRAReadout"
PAPER = ("reservoir-computing reference values: NARMA-10 NMSE 0.107 ± 0.012 (N = 50, "
         "1,000/1,000 steps); Mackey–Glass 84-step free-run NRMSE 2.8e-4 (Jaeger 2001, N = 400)")

TRANSIENT, WARMUP, TRAIN, TEST = 200, 100, 1000, 1000
WINDOW, STRIDE, WINDOW_WARMUP = 100, 25, 20
CONTENDERS = ["esn_ridge", "lora_W", "readout_gradient"]
# Chosen on a validation split of the training part (seeds 0 and 1, last 300 steps),
# never on test data: sr 0.9, input scaling 0.1, ridge 1e-10 for NARMA-10. For
# Mackey–Glass a common reservoirpy setting (leak 0.3, ridge 1e-6), not tuned here.
TASKS = {
    "narma10": {"units": 50, "sr": 0.9, "lr": 1.0, "input_scaling": 0.1, "ridge": 1e-10,
                "input_connectivity": 1.0, "score": "NMSE"},
    "mackey_glass": {"units": 100, "sr": 0.9, "lr": 0.3, "input_scaling": 1.0, "ridge": 1e-6,
                     "input_connectivity": 0.1, "score": "NRMSE (min-max)"},
}



#: The literature's NARMA-10 NMSE at N = 50 (docs/paper.md); our mean agrees with it
#: within 2·√(sd² + SE²), SE being our mean's standard error (see _tolerance).
NARMA_REFERENCE, NARMA_REFERENCE_SD = 0.107, 0.012
#: Mackey–Glass references (docs/paper.md): 84-step free-run NRMSE.
MG_REFERENCES = {"Jaeger (2001)": (400, 3000, 2.8e-4), "Jaeger & Haas (2004)": (1000, None, 6e-5)}
#: Single changes of the NARMA-10 ESN + Ridge set-up: name → changed settings.
VARIANTS = {
    "as in this study": {},
    "input scaling 0.05": {"input_scaling": 0.05},
    "input scaling 0.5": {"input_scaling": 0.5},
    "spectral radius 0.8": {"sr": 0.8},
    "spectral radius 1.0": {"sr": 1.0},
    "dense W (100 %)": {"rc_connectivity": 1.0},
    "washout 200": {"washout": 200},
    "input bias 0.1": {"bias_scaling": 0.1},
    "readout also sees u(t)": {"readout_input": True},
    "N = 100 (not the reference's N)": {"units": 100},
    # BENCHMARKS.md (d), row 9: chosen on validation steps of seeds 0-9, never on test steps
    "literature set-up (sr 1.1, leak 0.8, input 0.01, bias 0.3, ridge 1e-12)": {
        "sr": 1.1, "lr": 0.8, "input_scaling": 0.01, "bias_scaling": 0.3, "ridge": 1e-12},
}
QUICK_VARIANTS = ["as in this study", "input scaling 0.5", "washout 200",
                  "N = 100 (not the reference's N)",
                  "literature set-up (sr 1.1, leak 0.8, input 0.01, bias 0.3, ridge 1e-12)"]


def _config(quick: bool, seed: int) -> dict:
    if quick:
        return {"seeds": [seed], "r": 4, "epochs": 30, "lr": 1e-2, "batch_size": 16,
                "narma_seeds": [seed + i for i in range(3)], "variants": QUICK_VARIANTS}
    return {"seeds": [seed, seed + 1], "r": 4, "epochs": 150, "lr": 1e-2, "batch_size": 16,
            "narma_seeds": [seed + i for i in range(10)], "variants": list(VARIANTS)}


def _mean_sd(values) -> str:
    """``"0.149 ± 0.04 (n = 10)"``: :func:`_common.mean_sd` to 3 significant digits."""
    common = load_helper("_common", Path(__file__).parent)
    return common.mean_sd(values, digits=3, significant=True)


def _standard_error(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else np.nan


def _tolerance(values: np.ndarray) -> float:
    """Largest |mean − 0.107| called agreement: 2·√(0.012² + SE²) (SE: our mean's)."""
    error = _standard_error(values)
    error = 0.0 if not np.isfinite(error) else error
    return float(2 * np.hypot(NARMA_REFERENCE_SD, error))


def narma_variant(name: str, seed: int) -> float:
    """Test NMSE of the closed-form ESN + Ridge on NARMA-10 under one set-up variant.

    The reservoir runs over the whole series from zero state; the library's ridge
    readout (``dr.Ridge``, unpenalised intercept) is fitted on the TRAIN steps after
    the washout and scored on the TEST steps that follow.
    """
    spec = {**TASKS["narma10"], "units": 50, "rc_connectivity": 0.1, "bias_scaling": 0.0,
            "washout": WARMUP, "readout_input": False, **VARIANTS[name]}
    washout = spec["washout"]
    u, y = narma10(washout + TRAIN + TEST, seed, transient=TRANSIENT)
    reservoir = dr.Reservoir(spec["units"], sr=spec["sr"], lr=spec["lr"],
                             input_scaling=spec["input_scaling"],
                             rc_connectivity=spec["rc_connectivity"],
                             input_connectivity=spec["input_connectivity"],
                             bias_scaling=spec["bias_scaling"], seed=seed, dtype=torch.float64)
    states = np.asarray(reservoir.run(u, reset=True))
    features = np.hstack([states, u] if spec["readout_input"] else [states])
    train, test = slice(washout, washout + TRAIN), slice(washout + TRAIN, None)
    readout = dr.Ridge(spec["ridge"], dtype=torch.float64).fit(features[train], y[train])
    return _score("narma10", np.asarray(readout.run(features[test])), y[test])



def mackey_glass_task(steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mackey–Glass (τ = 17) input x(t) and one-step target x(t+1), each (steps, 1)."""
    from reservoirpy.datasets import mackey_glass

    series = mackey_glass(steps + 1 + 100 * seed)[100 * seed:]
    return series[:-1], series[1:]


def _score(task: str, prediction: np.ndarray, target: np.ndarray) -> float:
    error = prediction - target
    if task == "narma10":
        return float(np.mean(error**2) / np.var(target))
    return float(np.sqrt(np.mean(error**2)) / np.ptp(target))


#: Reservoir settings for a user's series: those of the Mackey–Glass task.
USER_TASK = {**TASKS["mackey_glass"], "score": "NRMSE (min-max)"}


def _reservoir(task: str, seed: int, r: int) -> dr.Reservoir:
    spec = TASKS.get(task, USER_TASK)
    return dr.Reservoir(spec["units"], sr=spec["sr"], lr=spec["lr"],
                        input_scaling=spec["input_scaling"], rc_connectivity=0.1,
                        input_connectivity=spec["input_connectivity"], seed=seed, r=r,
                        dtype=torch.float64)


def _windows(series: np.ndarray) -> np.ndarray:
    starts = range(0, len(series) - WINDOW + 1, STRIDE)
    return np.stack([series[s: s + WINDOW] for s in starts])


def _train(task: str, contender: str, seed: int, u: np.ndarray, y: np.ndarray,
           config: dict, stop: int = WARMUP + TRAIN, warmup: int = WARMUP
           ) -> tuple[np.ndarray, float]:
    """Train one contender on the first ``stop`` steps (the first ``warmup`` not scored);
    predictions for all steps."""
    if contender == "esn_ridge":
        ridge = TASKS.get(task, USER_TASK)["ridge"]
        model = _reservoir(task, seed, 0) >> dr.Ridge(ridge, dtype=torch.float64)
        model.fit(u[:stop], y[:stop], warmup=warmup)
        return np.asarray(model.run(u, reset=True)), float("nan")
    r = config["r"] if contender == "lora_W" else 0
    model = _reservoir(task, seed, r) >> dr.LoRAReadout(y.shape[1], r=1, seed=seed,
                                                        dtype=torch.float64)
    history = model.fit(_windows(u[:stop]), _windows(y[:stop]), epochs=config["epochs"],
                        batch_size=config["batch_size"], lr=config["lr"], weight_decay=0.0,
                        loss="mse", warmup=WINDOW_WARMUP, seed=seed, verbose=0).history_
    return np.asarray(model.run(u, reset=True)), float(history["loss"].values[-1])


def _verdict_rows(variant_scores: dict[str, np.ndarray], mg_score: np.ndarray,
                  config: dict) -> list[list[str]]:
    """Every comparison with the literature, classified from the measured numbers."""
    rows = []
    base = variant_scores["as in this study"]
    gap = base.mean() - NARMA_REFERENCE
    error = _standard_error(base)
    tolerance = _tolerance(base)
    same_n = {k: v for k, v in variant_scores.items()
              if "units" not in VARIANTS[k] and k != "as in this study"}
    explains = [k for k, v in same_n.items()
                if abs(v.mean() - NARMA_REFERENCE) <= _tolerance(v)]
    closest = (min(same_n, key=lambda k: abs(same_n[k].mean() - NARMA_REFERENCE))
               if same_n else None)
    bigger = {k: v.mean() for k, v in variant_scores.items() if "units" in VARIANTS[k]}
    setting = (f"N = 50, sr {TASKS['narma10']['sr']:g}, leak {TASKS['narma10']['lr']:g}, "
               f"input scaling {TASKS['narma10']['input_scaling']:g}, W 10 % dense, washout "
               f"{WARMUP}, ridge {TASKS['narma10']['ridge']:g}, readout on the states only; "
               f"textbook NARMA-10 (dr.datasets.narma10), {TRAIN:,}/{TEST:,} steps")
    ours = f"{_mean_sd(base)} over seeds {config['narma_seeds'][0]}–" \
           f"{config['narma_seeds'][-1]} ({setting})"
    rule = (f"tolerance ±{tolerance:.3f} = 2·√(0.012² + SE²), SE {error:.3f} the standard "
            "error of our mean" if np.isfinite(error) else
            f"tolerance ±{tolerance:.3f} = 2 sd of the reference (one seed, no SE)")
    if abs(gap) <= tolerance:
        verdict = "agrees"
        cause = f"our mean is {gap:+.3f} from 0.107, within the {rule}"
        if base.size < 5:
            cause += (f"; with {base.size} seeds our own uncertainty is wide, so this does not "
                      "exclude a gap a full run would resolve")
    elif explains:
        verdict = "setup effect"
        cause = (f"our mean is {gap:+.3f} from 0.107 ({rule}); at the same N = 50, "
                 + ", ".join(f"'{k}' gives {same_n[k].mean():.3f}" for k in explains)
                 + ", within its tolerance: the gap comes from that choice of ours (scored on "
                 "the test steps, as a diagnostic, not as a tuned result"
                 + ("; the literature set-up itself was chosen on validation steps only, "
                    "BENCHMARKS.md (d)" if any(k.startswith("literature") for k in explains)
                    else "") + ")")
    else:
        verdict = "real disagreement"
        tried = ", ".join(same_n) if same_n else "none"
        cause = (f"our mean is {gap:+.3f} from 0.107 ({rule}; median {np.median(base):.3f}, "
                 f"worst seed {base.max():.3f}: each seed draws its own series as well as its "
                 f"own reservoir), and no single change of the "
                 f"set-up at N = 50 brings it within tolerance (tried: {tried}"
                 + (f"; closest '{closest}' at {same_n[closest].mean():.3f}, even scored on "
                    "the test steps" if closest else "") + ")"
                 + "".join(f"; {k} gives {v:.3f}" for k, v in bigger.items())
                 + ". Same measure, N and step counts as the reference; the rest of its "
                 "set-up (reservoir topology, tuning) is not in docs/paper.md, so the gap "
                 "stays unexplained here")
    rows.append(["NARMA-10, ESN + Ridge, test NMSE",
                 f"{NARMA_REFERENCE} ± {NARMA_REFERENCE_SD} (N = 50, 1,000/1,000 steps)",
                 ours, verdict, cause])

    units = TASKS["mackey_glass"]["units"]
    reference = "; ".join(f"{name}: {value:.1e} at N = {n_units}"
                          + (f" from {points:,} training points" if points else "")
                          for name, (n_units, points, value) in MG_REFERENCES.items())
    smallest = min(n_units for n_units, _, _ in MG_REFERENCES.values())
    rows.append(["Mackey–Glass, ESN + Ridge", f"84-step free-run NRMSE: {reference}",
                 f"one-step NRMSE (RMSE / range) {_mean_sd(mg_score)} at N = {units}, "
                 f"{TRAIN:,} training steps",
                 "setup effect",
                 f"a different measure (one step ahead, fed the true input, against 84 "
                 f"steps of free run) and normalisation, a reservoir {smallest / units:.0f}× "
                 f"smaller than the smallest reference's and {TRAIN:,} training steps: the "
                 "numbers are not comparable, and no claim is made from them"])
    return rows


def _figure(tasks, seeds, example, example_target, mean, score, variant_scores, config):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(CONTENDERS, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    figure, axes = plt.subplots(2, 2, figsize=(14, 8.5))
    for i, task in enumerate(tasks):
        ax = axes[0, i]
        ax.plot(example_target[i], "k", lw=2, label="target")
        for j, contender in enumerate(CONTENDERS):
            ax.plot(example[i, j], "--", lw=1, color=colors[contender], label=contender)
        ax.set_title(f"{task}: first 200 test steps (seed {seeds[0]})", fontsize=10)
        ax.set_xlabel("test step")
        ax.legend(fontsize=8, ncol=2)
    bars = axes[1, 0]
    width = 0.25
    for j, contender in enumerate(CONTENDERS):
        spread = score[:, j].std(axis=1, ddof=1) if score.shape[2] > 1 else None
        bars.bar(np.arange(len(tasks)) + width * (j - 1), mean[:, j], width, yerr=spread,
                 capsize=3, color=colors[contender], label=contender)
    narma = tasks.index("narma10")
    bars.hlines(NARMA_REFERENCE, narma - 0.45, narma + 0.45, color="k", ls="--", lw=1.2,
                label=f"literature NARMA-10, N = 50 ({NARMA_REFERENCE})")
    bars.set_yscale("log")
    bars.set_xticks(range(len(tasks)), [f"{t}\n{TASKS[t]['score']}" for t in tasks])
    bars.set_title(f"test error, lower is better ({len(seeds)} seed(s))", fontsize=10)
    bars.legend(fontsize=8)
    ax = axes[1, 1]
    names = [k for k in VARIANTS if k in variant_scores]
    positions = np.arange(len(names))
    for i, name in enumerate(names):
        values = variant_scores[name]
        ax.plot(values, np.full(values.shape, i), "o", color="tab:blue", alpha=0.35, ms=4)
        ax.plot([values.mean()], [i], "D", color="tab:blue", ms=7)
    ax.axvspan(NARMA_REFERENCE - 2 * NARMA_REFERENCE_SD, NARMA_REFERENCE
               + 2 * NARMA_REFERENCE_SD, color="0.85",
               label=f"reference {NARMA_REFERENCE} ± 2 sd")
    ax.axvline(NARMA_REFERENCE, color="k", ls="--", lw=1)
    ax.set_yticks(positions, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(left=0)
    ax.set_xlabel("NARMA-10 test NMSE (dots: seeds; diamond: mean)")
    ax.set_title(f"ESN + Ridge, one change at a time ({len(config['narma_seeds'])} seeds)",
                 fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure


def _user_series(path, seeds: list[int], config: dict, common, progress: bool) -> dict:
    """The three contenders on a user's series: test NRMSE (contender, seed)."""
    from deepreservoir.data_files import load_series_npz

    series = load_series_npz(path)
    u, y, split = series["x"], series["y"], series["split"]
    warmup = min(WARMUP, split // 10)
    score = np.full((len(CONTENDERS), len(seeds)), np.nan)
    jobs = [(j, k) for j in range(len(CONTENDERS)) for k in range(len(seeds))]
    for j, k in common.progress_bar(jobs, progress, "your series", total=len(jobs)):
        prediction, _ = _train("user", CONTENDERS[j], seeds[k], u, y, config, stop=split,
                               warmup=warmup)
        score[j, k] = _score("user", prediction[split:], y[split:])
    return {"score": score, "steps": len(u), "split": split, "warmup": warmup,
            "label": common.data_label(path)}


def run(out_dir: Path, *, quick: bool = False, seed: int = 0, progress: bool = True,
        data: str | Path | None = None) -> dict:
    """Train the three contenders on both tasks and seeds (and a user's series), write the
    files."""
    user_file = data  # ``data`` below holds the benchmarks' generated series
    common = load_helper("_common", Path(__file__).parent)
    timer = common.Timer()
    config = _config(quick, seed)
    tasks, seeds = list(TASKS), config["seeds"]
    score = np.full((len(tasks), len(CONTENDERS), len(seeds)), np.nan)
    train_loss = np.full_like(score, np.nan)
    seconds = np.full_like(score, np.nan)
    example = np.full((len(tasks), len(CONTENDERS), 200), np.nan)
    example_target = np.full((len(tasks), 200), np.nan)
    cells = [(i, j, k) for i in range(len(tasks)) for j in range(len(CONTENDERS))
             for k in range(len(seeds))]
    data = {}
    for i, j, k in common.progress_bar(cells, progress, "time_axis", total=len(cells)):
        task, contender, model_seed = tasks[i], CONTENDERS[j], seeds[k]
        if (task, model_seed) not in data:
            steps = WARMUP + TRAIN + TEST
            data[task, model_seed] = (narma10(steps, model_seed, transient=TRANSIENT)
                                      if task == "narma10" else
                                      mackey_glass_task(steps, model_seed))
        u, y = data[task, model_seed]
        clock = common.Timer()
        prediction, train_loss[i, j, k] = _train(task, contender, model_seed, u, y, config)
        seconds[i, j, k] = clock.seconds
        test = slice(WARMUP + TRAIN, None)
        score[i, j, k] = _score(task, prediction[test], y[test])
        if k == 0:
            example[i, j] = prediction[test][:200, 0]
            example_target[i] = y[test][:200, 0]
    variants = config["variants"]
    narma_seeds = config["narma_seeds"]
    variant_score = np.full((len(variants), len(narma_seeds)), np.nan)
    jobs = [(v, s) for v in range(len(variants)) for s in range(len(narma_seeds))]
    for v, s in common.progress_bar(jobs, progress, "NARMA-10 variants", total=len(jobs)):
        variant_score[v, s] = narma_variant(variants[v], narma_seeds[s])
    variant_scores = {name: variant_score[v] for v, name in enumerate(variants)}
    user = (None if user_file is None
            else _user_series(user_file, seeds, config, common, progress))

    dataset = xr.Dataset(
        {"score": (("task", "contender", "seed"), score),
         "train_loss": (("task", "contender", "seed"), train_loss),
         "train_seconds": (("task", "contender", "seed"), seconds),
         "example_prediction": (("task", "contender", "step"), example),
         "example_target": (("task", "step"), example_target),
         "narma_variant_nmse": (("variant", "narma_seed"), variant_score)},
        coords={"task": tasks, "contender": CONTENDERS, "seed": seeds, "step": np.arange(200),
                "score_name": ("task", [TASKS[t]["score"] for t in tasks]),
                "units": ("task", [TASKS[t]["units"] for t in tasks]),
                "variant": variants, "narma_seed": narma_seeds},
        attrs={"description": __doc__.strip().splitlines()[0], "paper": PAPER,
               "paper_source": common.PAPER_SOURCE, "quick": int(quick),
               "narma_definition": "textbook (dr.datasets.narma10)",
               "window": WINDOW, "stride": STRIDE, "window_warmup": WINDOW_WARMUP,
               "warmup": WARMUP, "train_steps": TRAIN, "test_steps": TEST,
               "narma_reference": NARMA_REFERENCE,
               "narma_reference_sd": NARMA_REFERENCE_SD,
               "data": "none" if user_file is None else str(user_file)})
    if user is not None:
        dataset["user_score"] = (("contender", "seed"), user["score"])
        dataset.attrs.update(user_steps=user["steps"], user_split=user["split"])
    mean = score.mean(axis=2)
    narma, mg = tasks.index("narma10"), tasks.index("mackey_glass")
    ridge, lora, control = (CONTENDERS.index(m) for m in CONTENDERS)
    base = variant_scores["as in this study"]
    claims = {
        "lora_on_W_improves_on_gradient_readout": bool(np.all(mean[:, lora] < mean[:, control])),
        "esn_ridge_best_on_mackey_glass": bool(mean[mg, ridge] < mean[mg, [lora, control]].min()),
        "esn_ridge_best_on_narma10": bool(mean[narma, ridge] < mean[narma, [lora, control]].min()),
        "narma10_esn_within_tolerance_of_reference": bool(abs(base.mean() - NARMA_REFERENCE)
                                                          <= _tolerance(base)),
    }
    figure = _figure(tasks, seeds, example, example_target, mean, score, variant_scores,
                     config)

    rows = []
    for i, task in enumerate(tasks):
        for j, contender in enumerate(CONTENDERS):
            rows.append([task, contender, TASKS[task]["units"], _mean_sd(score[i, j]),
                         f"{np.nanmean(seconds[i, j]):.1f}"])
    variant_rows = [[name, _mean_sd(variant_scores[name]),
                     f"{variant_scores[name].mean() - NARMA_REFERENCE:+.3f}"]
                    for name in variants]
    n_seeds = len(seeds)
    claim_lines = [
        f"- lora_on_W_improves_on_gradient_readout = "
        f"{claims['lora_on_W_improves_on_gradient_readout']}. Check: lora_W's mean test "
        "error < readout_gradient's on both tasks (NARMA-10 "
        f"{mean[narma, lora]:.3g} vs {mean[narma, control]:.3g}, Mackey–Glass "
        f"{mean[mg, lora]:.3g} vs {mean[mg, control]:.3g}); strict, no margin.",
        f"- esn_ridge_best_on_mackey_glass = {claims['esn_ridge_best_on_mackey_glass']}. "
        f"Check: ESN + Ridge's mean test NRMSE ({mean[mg, ridge]:.3g}) < both others'; "
        "strict, no margin.",
        f"- esn_ridge_best_on_narma10 = {claims['esn_ridge_best_on_narma10']}. Check: ESN + "
        f"Ridge's mean test NMSE ({mean[narma, ridge]:.3g}) < both others'; strict, no "
        "margin.",
        f"- narma10_esn_within_tolerance_of_reference = "
        f"{claims['narma10_esn_within_tolerance_of_reference']}. Check: |mean NMSE of ESN + "
        f"Ridge over {len(narma_seeds)} seed(s) ({base.mean():.3f}) − {NARMA_REFERENCE}| ≤ "
        f"{_tolerance(base):.3f} = 2·√(0.012² + SE²), SE the standard error of our mean.",
    ]
    summary = "\n\n".join([
        f"# {TITLE}{' (quick)' if quick else ''}",
        f"Reference ({common.PAPER_SOURCE}): {PAPER}. The LottaLoRA paper itself has no "
        "recurrent benchmark; these are the reservoir-computing reference values that "
        f"{common.PAPER_SOURCE} gathers.",
        f"Ours: NARMA-10 in its textbook definition (dr.datasets.narma10; {TRANSIENT} "
        f"transient steps dropped) and a one-step Mackey–Glass forecast; seeds {seeds}; "
        f"{WARMUP} warm-up, {TRAIN} training and {TEST} test steps; BPTT on windows of "
        f"{WINDOW} steps (stride {STRIDE}, first {WINDOW_WARMUP} steps of each window not "
        f"scored), Adam lr {config['lr']:g}, {config['epochs']} epochs, batch "
        f"{config['batch_size']}, LoRA rank on W r = {config['r']}; float64. "
        + ("Mean ± sd over the seeds of the test score:" if n_seeds > 1 else
           "One seed, so single values (n = 1):"),
        common.md_table(["task", "contender", "N", "test score", "train seconds"], rows),
        f"NARMA-10, ESN + Ridge on {len(narma_seeds)} seed(s) "
        f"({narma_seeds[0]}–{narma_seeds[-1]}), one change of its set-up at a time (N = 50 "
        "unless stated; scored on the test steps, to measure each choice's effect, not to "
        "tune):",
        common.md_table(["variant", "test NMSE", "minus 0.107"], variant_rows),
        "What the comparison shows: "
        + ("the adapter on W lowers the error against gradient training of the readout alone "
           "on both tasks; " if claims["lora_on_W_improves_on_gradient_readout"] else
           "the adapter on W does not lower the error on both tasks against gradient "
           "training of the readout alone; ")
        + ("the closed-form ridge readout stays the most accurate on both tasks at this "
           "training budget." if claims["esn_ridge_best_on_mackey_glass"]
           and claims["esn_ridge_best_on_narma10"] else
           "the closed-form ridge readout is not the most accurate on every task (see table)."),
        *([] if user is None else [
            f"Your series ({user['label']}, {user['steps']:,} steps): trained on the first "
            f"{user['split']:,} (the first {user['warmup']} not scored), tested on the "
            f"remaining {user['steps'] - user['split']:,}, split in time; Mackey–Glass "
            "reservoir settings; test NRMSE (RMSE / range). No published figure exists for "
            "it, so no verdict:",
            common.md_table(["contender", "test NRMSE"],
                            [[c, _mean_sd(user["score"][j])]
                             for j, c in enumerate(CONTENDERS)])]),
        "## Where we differ",
        common.verdict_table(_verdict_rows(variant_scores, score[mg, ridge], config)),
        "## Claims on this data",
        "\n".join(claim_lines),
        common.run_line(timer),
    ])
    return common.finish("time_axis", out_dir, dataset, summary, figure, claims, config, timer)
