"""Shared helpers of the studies: data (built-in or a user's file), recipes, verdicts, output.

Not a study (the leading underscore): a study loads it with
``deepreservoir.studies.load_helper("_common", Path(__file__).parent)``.

* **Data.** :func:`data` gives a built-in set (``"mnist1d"``, ``"digits"``) or a
  user's ``.npz`` file (``X``, ``y``, optionally ``X_test``, ``y_test``; see
  :func:`deepreservoir.data_files.load_npz`); :func:`data_label` names it.
* **Recipes.** ``"default"`` (α = r, fixed learning rates) or ``"paper"`` (α = 1
  and a learning rate searched per method on the validation split); :func:`train`
  applies one and :func:`recipe_line` states it, with the step count.
* **Verdicts.** Every difference from the paper is classified as one of
  :data:`VERDICTS` (:func:`verdict_table`).
* **Honest numbers.** :func:`mean_sd` writes ``n = 1`` instead of a zero spread;
  :func:`run_line` gives the wall time, CPU time, load and threads.
* **Study helpers.** :func:`study_data` (a study's data: the user's file or its
  built-in set), :func:`train_model` (a fully trained model of one's own under a
  recipe), :func:`path_ratios` (the scaffold path against the adapter path per
  layer), :func:`integer_epochs` (an epoch axis).
* Paper numbers come from :data:`PAPER_SOURCE` (in the repository).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from deepreservoir.sweep import TrainConfig, load_dataset, train_classifier

__all__ = [
    "LR_GRID",
    "PAPER_MNIST_MEDIUM",
    "PAPER_MNIST_MEDIUM_FULL",
    "PAPER_SOURCE",
    "QUICK_FILE_SAMPLES",
    "RECIPES",
    "VERDICTS",
    "Timer",
    "bar",
    "chance_line",
    "config_attrs",
    "data",
    "data_label",
    "figure",
    "finish",
    "integer_epochs",
    "md_table",
    "mean_sd",
    "netcdf_attrs",
    "path_ratios",
    "progress_bar",
    "rank_colors",
    "recipe_config",
    "recipe_line",
    "run_line",
    "runs_per_train",
    "steps",
    "study_data",
    "train",
    "train_model",
    "verdict_table",
    "write_outputs",
]

#: Where every paper figure a study quotes is written down (a file of the repository).
PAPER_SOURCE = "docs/paper.md"

#: The training recipes of the MLP studies (``--recipe``).
RECIPES = ("default", "paper")

#: Learning rates the "paper" recipe searches per method (full run, quick run).
LR_GRID = {False: (1e-3, 3e-3, 1e-2), True: (3e-3, 1e-2)}

#: How a summary classifies each comparison with the paper.
VERDICTS = {
    "agrees": "ours matches the paper's figure or claim within the stated tolerance",
    "dataset effect": "the data differ (e.g. MNIST-1D is harder than MNIST); the measure "
                      "does not transfer",
    "setup effect": "a choice of ours differs from the paper's (recipe, scale, step count, "
                    "size) and explains the gap",
    "real disagreement": "same measure, comparable setup, and the paper's figure is not "
                         "reached; the evidence is given",
}

#: The paper's MNIST test accuracy (%), medium preset, α = 1 (docs/paper.md).
PAPER_MNIST_MEDIUM = {1: 89.33, 2: 92.73, 4: 95.44, 8: 96.80, 16: 97.53, 32: 97.80}
PAPER_MNIST_MEDIUM_FULL = 98.38

#: Training samples a quick run keeps of a user's file (the test split stays whole).
QUICK_FILE_SAMPLES = 2000

_DATA: dict[tuple[str, int | None], dict[str, np.ndarray]] = {}


def data(name: str | os.PathLike, num_samples: int | None = None) -> dict[str, np.ndarray]:
    """A built-in data set by name, or a user's ``.npz`` file by path (cached per process).

    ``num_samples``: for mnist1d the samples generated; for digits and a file the
    training samples kept (the test split stays whole).
    """
    key = (str(name), num_samples)
    if key not in _DATA:
        _DATA[key] = load_dataset(name, num_samples=num_samples)
    return _DATA[key]


def data_label(name: str | os.PathLike | None) -> str:
    """A readable name: ``"MNIST-1D"``, ``"digits"``, or ``"file mnist.npz"``."""
    if name is None:
        return "none"
    text = str(name)
    return {"mnist1d": "MNIST-1D", "digits": "digits"}.get(text, f"file {Path(text).name}")


def study_data(user: str | os.PathLike | None, builtin: str, num_samples: int | None,
               quick: bool) -> tuple[dict[str, np.ndarray], str, str]:
    """The data of a study: the user's file when given, else the built-in set.

    Returns ``(data, key, label)``: ``key`` is ``builtin`` or the file's name (a
    coordinate value), ``label`` is :func:`data_label`'s. A quick run keeps the
    first :data:`QUICK_FILE_SAMPLES` training samples of a file.
    """
    if user is None:
        return data(builtin, num_samples), builtin, data_label(builtin)
    return (data(user, QUICK_FILE_SAMPLES if quick else None), Path(str(user)).name,
            data_label(user))


def steps(n_train: int, config: TrainConfig) -> int:
    """Optimizer steps of one run: epochs × batches of the training part (after validation)."""
    kept = n_train - round(config.validation_split * n_train)
    return int(config.epochs * math.ceil(max(kept, 1) / config.batch_size))


def recipe_config(recipe: str, config: TrainConfig) -> TrainConfig:
    """``config`` under ``recipe``: ``"paper"`` sets α = 1 (the paper's MNIST α)."""
    from dataclasses import replace

    if recipe not in RECIPES:
        raise ValueError(f"The 'recipe' parameter must be one of {', '.join(RECIPES)}. "
                         f"Got {recipe!r}.")
    return replace(config, alpha=1.0) if recipe == "paper" else config


def runs_per_train(recipe: str, quick: bool) -> int:
    """Trainings behind one :func:`train` call (the size of the learning-rate search)."""
    return len(LR_GRID[bool(quick)]) if recipe == "paper" else 1


def recipe_line(recipe: str, config: TrainConfig, n_train: int, quick: bool) -> str:
    """One sentence stating the recipe, its learning rates and its step count.

    ``config`` may be given before or after :func:`recipe_config` (the recipe's α is applied).
    """
    config = recipe_config(recipe, config)
    count = steps(n_train, config)
    alpha = ("α = r (scale 1)" if config.alpha is None
             else f"α = {config.alpha:g} (scale α/r)")
    if recipe == "paper":
        grid = ", ".join(f"{lr:g}" for lr in LR_GRID[bool(quick)])
        lrs = (f"lr searched per method over {{{grid}}} on the "
               f"{100 * config.validation_split:g} % validation split")
    else:
        lrs = f"lr {config.lr:g} (LottaLoRA) and {config.full_lr:g} (full), fixed"
    return (f"Recipe '{recipe}': {alpha}; {lrs}; {config.epochs} epochs × "
            f"{count // max(config.epochs, 1)} batches of {config.batch_size} = {count:,} "
            f"steps per run (the paper: lr 1e-3 over about 8,400 steps, 20 epochs of 54,000 "
            f"MNIST images).")


def _ticker(progress_bar, postfix: bool) -> list:
    """A callback ticking ``progress_bar`` once per epoch (none without a bar)."""
    if progress_bar is None:
        return []

    def tick(epoch, logs, model):
        progress_bar.update(1)
        if postfix and "val_accuracy" in logs:
            progress_bar.set_postfix(val_acc=f"{logs['val_accuracy']:.3f}")
    return [tick]


def _best_over(rates: Sequence[float], run_one) -> tuple[Any, dict[str, Any], dict]:
    """Run ``run_one(lr) -> (model, metrics)`` per rate; keep the best validation accuracy.

    Returns the best model, its metrics with ``lr`` added, and ``{lr: val_accuracy}``.
    """
    best, by_lr = None, {}
    for lr in rates:
        model, metrics = run_one(lr)
        by_lr[lr] = metrics["val_accuracy"]
        if best is None or metrics["val_accuracy"] > best[1]["val_accuracy"]:
            best = (model, {**metrics, "lr": lr})
    return best[0], best[1], by_lr


def train(dataset: dict[str, np.ndarray], config: TrainConfig, *, progress_bar=None,
          recipe: str = "default", quick: bool = False, **options: Any
          ) -> tuple[Any, dict[str, Any]]:
    """Train one run under ``recipe``, ticking ``progress_bar`` once per epoch.

    ``"default"``: :func:`deepreservoir.sweep.train_classifier` with ``config``.
    ``"paper"``: α = 1, and one run per learning rate of :data:`LR_GRID` (as
    ``lr`` for LottaLoRA, ``full_lr`` for full training); the run with the best
    validation accuracy is kept. Its metrics gain ``lr`` (the chosen rate) and
    ``val_accuracy_by_lr``. Every run's metrics gain ``steps``.
    """
    from dataclasses import replace

    callbacks = _ticker(progress_bar, postfix=True)
    config = recipe_config(recipe, config)
    full = bool(options.get("full", False))
    n_train = len(dataset["y_train"])
    if recipe == "default":
        model, metrics = train_classifier(dataset, config=config, callbacks=callbacks,
                                          **options)
        metrics["lr"] = config.full_lr if full else config.lr
        metrics["steps"] = steps(n_train, config)
        return model, metrics

    def run_one(lr):
        trial = replace(config, full_lr=lr) if full else replace(config, lr=lr)
        return train_classifier(dataset, config=trial, callbacks=callbacks, **options)

    model, metrics, by_lr = _best_over(LR_GRID[bool(quick)], run_one)
    metrics["val_accuracy_by_lr"] = by_lr
    metrics["steps"] = steps(n_train, config)
    return model, metrics


def train_model(build, dataset: dict[str, np.ndarray], config: TrainConfig, *,
                progress_bar=None, recipe: str = "default", quick: bool = False,
                seed: int = 0, lrs: Sequence[float] | None = None
                ) -> tuple[Any, dict[str, Any]]:
    """Train a fully trained model of one's own (``build(seed) -> Model``) under ``recipe``.

    As :func:`train` with ``full=True``: the learning rate is ``config.full_lr``
    (``"default"``) or searched over :data:`LR_GRID` on the validation split
    (``"paper"``); ``lrs`` replaces that list (the best validation accuracy is
    kept). The other options (epochs, batch, weight decay, validation split)
    come from ``config``. Metrics: ``test_accuracy``, ``val_accuracy``,
    ``trainable``, ``lr``, ``steps`` and, when more than one rate was tried,
    ``val_accuracy_by_lr``.
    """
    import deepreservoir as dr

    callbacks = _ticker(progress_bar, postfix=False)
    config = recipe_config(recipe, config)
    grid = tuple(lrs) if lrs is not None else (
        LR_GRID[bool(quick)] if recipe == "paper" else (config.full_lr,))

    def run_one(lr):
        model = build(seed)
        model.fit(dataset["x_train"], dataset["y_train"], epochs=config.epochs,
                  batch_size=config.batch_size, lr=lr, weight_decay=config.weight_decay,
                  loss="cross_entropy", validation_split=config.validation_split, seed=seed,
                  verbose=0, callbacks=callbacks)
        history = model.history_
        return model, {"val_accuracy": float(history["val_accuracy"].values[-1])
                       if "val_accuracy" in history else math.nan}

    model, found, by_lr = _best_over(grid, run_one)
    scores = dr.training.evaluate(model, dataset["x_test"], dataset["y_test"],
                                  loss="cross_entropy")
    metrics = {"test_accuracy": float(scores["accuracy"]), "val_accuracy": found["val_accuracy"],
               "lr": found["lr"], "trainable": int(model.footprint().trainable),
               "steps": steps(len(dataset["y_train"]), config)}
    if len(grid) > 1:
        metrics["val_accuracy_by_lr"] = by_lr
    return model, metrics


def path_ratios(model, x: np.ndarray) -> dict[str, float]:
    """Per adapted layer: median over samples of ‖β·W_seed·x‖ / ‖scale·B·A·x‖.

    ``x`` are the model's inputs (e.g. the test split); each layer is fed what it
    receives from the layers below (in evaluation mode, scaffold in place). A
    layer without a scaffold or without an adapter is left out.
    """
    import torch

    names = [name for name, node in model.nodes.items()
             if getattr(node, "W_", None) is not None and hasattr(node, "adapter_terms")]
    if not names:
        return {}
    model.eval()
    received = model.states(x, nodes=names, inputs=True)
    ratios = {}
    for name in names:
        node = model.nodes[name]
        A, B, gate = node.adapter_terms()
        if A is None or not node.scaffold_active:
            continue
        with torch.no_grad():
            inputs = torch.as_tensor(np.asarray(received[name]), dtype=node.W_.dtype,
                                     device=node.W_.device)
            scaffold = (gate * (inputs @ node.W_.T)).norm(dim=-1)
            adapter = (node.scale * ((inputs @ A.T) @ B.T)).norm(dim=-1)
            ratio = scaffold / adapter.clamp_min(torch.finfo(inputs.dtype).tiny)
        ratios[name] = float(ratio.median())
    return ratios


def integer_epochs(ax) -> None:
    """Integer ticks on an epoch axis (x)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def mean_sd(values: Sequence[float] | np.ndarray, scale: float = 1.0, digits: int = 1,
            unit: str = "", significant: bool = False) -> str:
    """``"56.3 ± 1.2 % (n = 3)"``; a single value is ``"56.3 % (n = 1)"``, never ``± 0.0``.

    ``digits`` decimals, or with ``significant`` that many significant digits for
    the mean and two for the sd (``"0.149 ± 0.04 (n = 10)"``). NaNs are left out
    of the count.
    """
    array = np.asarray(values, dtype=float).ravel() * scale
    array = array[np.isfinite(array)]
    mean_format, sd_format = (f".{digits}g", ".2g") if significant else (f".{digits}f",) * 2
    if array.size == 0:
        return "— (n = 0)"
    if array.size == 1:
        return f"{array[0]:{mean_format}}{unit} (n = 1)"
    return (f"{array.mean():{mean_format}} ± {array.std(ddof=1):{sd_format}}{unit} "
            f"(n = {array.size})")


def verdict_table(rows: Iterable[Sequence[str]]) -> str:
    """A markdown table of comparisons: what, paper, ours, verdict, cause and evidence.

    Each row is ``(what, paper, ours, verdict, cause)`` with ``verdict`` a key of
    :data:`VERDICTS`; the legend of the verdicts follows the table.
    """
    rows = [tuple(row) for row in rows]
    for row in rows:
        if len(row) != 5 or row[3] not in VERDICTS:
            raise ValueError(f"A verdict row must be (what, paper, ours, verdict, cause) with "
                             f"the verdict one of {', '.join(VERDICTS)}. Got {row!r}.")
    used = [kind for kind in VERDICTS if any(row[3] == kind for row in rows)]
    legend = "; ".join(f"*{kind}*: {VERDICTS[kind]}" for kind in used)
    return (md_table(["comparison", f"paper ({PAPER_SOURCE})", "ours", "verdict",
                      "cause and evidence"], rows) + "\n\nVerdicts: " + legend + ".")


def run_line(timer: Timer) -> str:
    """``"Run time: 550 s wall, 101 s CPU, load average 5.6 on 2 cores; 1 torch thread."``"""
    import torch

    threads = torch.get_num_threads()
    return (f"Run time: {timer.text()}; {threads} torch thread{'s' if threads != 1 else ''}.")


def rank_colors(ranks: Iterable[int]) -> dict[int, Any]:
    """One colour per rank, the same in every panel of every study figure."""
    import matplotlib

    palette = matplotlib.colormaps["viridis"]
    ranks = sorted(set(int(r) for r in ranks))
    return {r: palette(i / max(len(ranks) - 1, 1) * 0.9) for i, r in enumerate(ranks)}


def chance_line(ax, classes: int, *, percent: bool = True) -> None:
    """A labelled dotted line at chance accuracy (1/classes) on an accuracy axis."""
    value = (100.0 if percent else 1.0) / max(int(classes), 1)
    ax.axhline(value, color="0.5", ls=":", lw=1, label=f"chance (1/{int(classes)})")


def bar(total: int, desc: str, progress: bool):
    """A tqdm bar counting epochs (disabled when ``progress`` is false)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", disable=not progress)


class Timer:
    """Wall and CPU time since construction, in seconds."""

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.cpu_began = time.process_time()

    @property
    def seconds(self) -> float:
        """Wall time."""
        return time.perf_counter() - self.began

    @property
    def cpu_seconds(self) -> float:
        """CPU time of this process (all threads)."""
        return time.process_time() - self.cpu_began

    def text(self) -> str:
        """``"615 s wall, 65 s CPU (load average 14.3 on 2 cores)"``."""
        import os

        try:
            load = f", load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        except OSError:  # pragma: no cover - platforms without getloadavg
            load = ""
        return f"{self.seconds:.0f} s wall, {self.cpu_seconds:.0f} s CPU{load}"


def config_attrs(name: str, quick: bool, seed: int, timer: Timer, **config: Any
                 ) -> dict[str, Any]:
    """netCDF-safe attrs recording a study's configuration and run time."""
    import deepreservoir as dr

    attrs: dict[str, Any] = {"study": name, "quick": int(quick), "seed": int(seed),
                             "run_time_seconds": float(timer.seconds),
                             "cpu_time_seconds": float(timer.cpu_seconds),
                             "run_time": timer.text(),
                             "deepreservoir_version": dr.__version__}
    for key, value in config.items():
        if isinstance(value, TrainConfig):
            value = asdict(value)
        if isinstance(value, (dict, list, tuple)) or value is None:
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = int(value)
        attrs[key] = value
    return attrs


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def figure(ncols: int, width: float = 5.0, height: float = 4.0):
    """A matplotlib figure with ``ncols`` axes (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def write_outputs(out_dir: Path, name: str, ds: xr.Dataset, fig, summary: str) -> list[Path]:
    """Write ``<name>.nc``, ``<name>.png`` and ``<name>.md``; return their paths."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.{suffix}" for suffix in ("nc", "png", "md")]
    ds.to_netcdf(paths[0])
    fig.tight_layout()
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    paths[2].write_text(summary if summary.endswith("\n") else summary + "\n")
    return paths


def netcdf_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes netCDF can store: bools as ints, None as "none", containers as JSON."""
    safe: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, bool | np.bool_):
            safe[key] = int(value)
        elif value is None:
            safe[key] = "none"
        elif isinstance(value, dict | list | tuple):
            safe[key] = json.dumps(value, default=str)
        elif isinstance(value, np.generic):
            safe[key] = value.item()
        else:
            safe[key] = value
    return safe


def progress_bar(items: Iterable[Any], enabled: bool, description: str, total: int | None = None):
    """A tqdm bar over ``items`` when ``enabled``, else the items themselves."""
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=description, total=total, leave=False)


def finish(name: str, out_dir: Path, dataset: xr.Dataset, summary: str, fig,
           claims: Mapping[str, bool], config: Mapping[str, Any], timer: Timer) -> dict:
    """Write the three files of a study and return its result dict (the study contract).

    ``summary`` may contain ``{seconds}``, replaced by the run time; the run
    time and ``config`` are also stored in the Dataset's attributes.
    """
    seconds = timer.seconds
    claims = {key: bool(value) for key, value in claims.items()}
    dataset.attrs.update(netcdf_attrs({"study": name, "config": dict(config),
                                       "run_seconds": round(seconds, 2), "claims": claims}))
    text = summary.replace("{seconds}", f"{seconds:.1f}")
    paths = write_outputs(out_dir, name, dataset, fig, text)
    return {"dataset": dataset, "summary": text, "claims": claims,
            "files": [str(path) for path in paths]}

