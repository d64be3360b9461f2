"""Study 9: LottaLoRA across eight architecture families, through ``dr.adapt``.

The paper's headline is that a frozen random scaffold with low-rank adapters
recovers 96–100 % of full training across architectures (docs/paper.md, "other
architectures"). Each family here is a helper ``_arch_<name>.py`` (the protocol
is in ``_arch_common.py``) with its own local data, generated or read from
files every machine has, never downloaded:

=========  ===================================  =====================================
family     network                              local data
=========  ===================================  =====================================
``cnn``    ResNet-style CNN                     scikit-learn's digits, upsampled
``vit``    ViT (patches + TransformerEncoder)   the same images
``gcn``    PyTorch Geometric ``GCNConv``        a stochastic block model (networkx)
``gin``    PyTorch Geometric ``GINConv``        random-graph generators told apart
``cfc``    ``ncps`` CfC                         irregularly sampled series
``text``   Transformer classifier               Python standard-library sources
``dt``     Decision Transformer                 CartPole trajectories (gymnasium)
``lm``     character-level Transformer LM       Python standard-library sources
=========  ===================================  =====================================

Per family, with one seed: the network trained fully, then fresh copies adapted
by ``dr.adapt`` at r ∈ RANKS (1 and 8; 1, 8 and 16 for the CNN) and trained;
the test metric, the trained parameters and the artifact (``dr.save_adapted``)
against the dense checkpoint; β and σ₁ (``dr.analysis.spectral_norm``) of every
adapted layer; at the largest rank, each layer group of the family trained
fully in turn (the others stay LoRA) to find which layers carry the gap; and
the contracts: ``dr.merge`` gives plain torch modules with the same outputs,
and ``dr.load_adapted`` on a freshly built network reproduces the outputs bit
for bit.

**Your data** (``--data FILE.npz``): the file names its family in a ``family``
entry (one name, or several for image files: ``family=["cnn", "vit"]``) and
holds that family's arrays (each family's ``DATA_KEYS``; CIFAR-10, PhysioNet or
ogbn-arxiv exported to ``.npz`` run the paper's own rows). Only the named
families run. A family whose optional packages are missing (``pip install
"deepreservoir[architectures]"``) is reported as not run.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

import deepreservoir as dr
from deepreservoir.adapt import adapted_layers
from deepreservoir.data_files import read_npz
from deepreservoir.errors import DataError
from deepreservoir.studies import load_helper

TITLE = "LottaLoRA across eight architectures (CNN, ViT, GCN, GIN, CfC, Transformer, DT, LM)"
PAPER = "other architectures (docs/paper.md): 96-100 % of full training on eight families"

_HERE = Path(__file__).parent
common = load_helper("_common", _HERE)
arch = load_helper("_arch_common", _HERE)

#: The families, in the order of the paper's table.
FAMILIES = ("cfc", "cnn", "gin", "gcn", "vit", "text", "dt", "lm")
#: Points of "% of full training" within which ours agrees with the paper's.
TOLERANCE = 3.0
#: A family short of the paper's row by more than TOLERANCE trains again this many
#: times longer (full and the compared rank): the evidence for a step-count effect.
LONGER = 3


def family_module(name: str):
    """The helper of a family (``_arch_<name>.py``)."""
    return load_helper(f"_arch_{name}", _HERE)


def missing_packages(family) -> list[str]:
    """The optional packages of ``family`` that are not installed."""
    return [name for name in family.REQUIRES if importlib.util.find_spec(name) is None]


def percent_of_full(value: float, full: float, higher_is_better: bool) -> float:
    """Ours as % of full training: value/full, or full/value for a loss or an error."""
    if not (np.isfinite(value) and np.isfinite(full)) or value == 0 or full == 0:
        return float("nan")
    return 100.0 * (value / full if higher_is_better else full / value)


def _families_of(data: Any) -> list[str]:
    if data is None:
        return list(FAMILIES)
    path = Path(data)
    named = read_npz(path, "data file", "a 'family' entry and that family's arrays").get(
        "family")
    if named is None:
        raise DataError(
            f"The data file {str(path)!r} has no 'family' entry. Expected the family it is "
            f"for, one of {', '.join(FAMILIES)} (e.g. np.savez(path, family='cnn', X=..., "
            f"y=...)).")
    names = [str(n) for n in np.atleast_1d(named)]
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise DataError(f"The data file {str(path)!r} names the families {unknown}; expected "
                        f"some of {', '.join(FAMILIES)}.")
    return names


def _file_bytes(state: dict[str, torch.Tensor], folder: Path, name: str) -> int:
    from safetensors.torch import save_file

    path = folder / f"{name}.safetensors"
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path))
    return path.stat().st_size


def _matrix(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().double().reshape(tensor.shape[0], -1)


def _layer_rows(model, family_name: str, rank: int) -> list[dict[str, Any]]:
    """β, σ₁(W_seed) and σ₁ of the merged weight of every adapted layer."""
    rows = []
    for name, layer in adapted_layers(model).items():
        frozen = layer.frozen_tensor()
        gate = layer.gate_value()
        sigma_seed = (float(dr.analysis.spectral_norm(_matrix(frozen)))
                      if frozen is not None else 0.0)
        rows.append({"family": family_name, "rank": rank, "layer": name,
                     "beta": float(gate.detach()) if torch.is_tensor(gate) else float(gate),
                     "sigma1_seed": sigma_seed,
                     "sigma1_merged": float(dr.analysis.spectral_norm(
                         _matrix(layer.effective_weight())))})
    return rows


def _plain(module) -> bool:
    return all(not type(m).__module__.startswith("deepreservoir.") for m in module.modules())


def _same_outputs(a, b) -> bool:
    if isinstance(a, (tuple, list)):
        return all(_same_outputs(x, y) for x, y in zip(a, b, strict=True))
    return bool(torch.equal(a, b))


def _close_outputs(a, b) -> bool:
    if isinstance(a, (tuple, list)):
        return all(_close_outputs(x, y) for x, y in zip(a, b, strict=True))
    scale = float(a.abs().max()) if a.numel() else 1.0
    return bool((a - b).abs().max() <= 1e-4 * max(1.0, scale))


def _contracts(family, task, model, seed: int, folder: Path) -> dict[str, bool]:
    """merge gives plain modules with the same outputs; load_adapted is bit for bit."""
    sample = family.sample(task)
    model.eval()
    with torch.no_grad():
        reference = model(*sample)
        merged = dr.merge(model).eval()
        merged_ok = _plain(merged) and _close_outputs(merged(*sample), reference)
        path = dr.save_adapted(model, folder / "contract.safetensors")
        again = dr.load_adapted(family.build(task, seed=seed), path).eval()
        loaded_ok = _same_outputs(again(*sample), reference)
    return {"merge_plain": merged_ok, "load_bitwise": loaded_ok}


def _adapted(family, task, r: int, seed: int, extra_train: list[str] = ()):
    model = family.build(task, seed=seed)
    options = dict(family.ADAPT)
    options["train"] = list(options.get("train", ())) + list(extra_train)
    return dr.adapt(model, r=r, seed=seed, **options)


def run_family(name: str, *, quick: bool, seed: int, data: Any, progress) -> dict[str, Any]:
    """Train one family fully, at each rank and with each layer group fully trained."""
    family = family_module(name)
    undefined = [n for n in arch.PROTOCOL if not hasattr(family, n)]
    if undefined:
        raise DataError(f"The architecture family '_arch_{name}.py' does not define "
                        f"{undefined}; expected every name of _arch_common.PROTOCOL.")
    missing = missing_packages(family)
    if missing:
        return {"name": name, "family": family, "missing": missing}
    hyper = family.HYPER["quick" if quick else "full"]
    task = family.load_task(quick=quick, seed=seed, data=data)
    result: dict[str, Any] = {"name": name, "family": family, "task": task, "missing": [],
                              "runs": {}, "layers": [], "groups": {}}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        model = family.build(task, seed=seed)
        total = sum(p.numel() for p in model.parameters())
        fit = arch.train(model, family, task, lr=hyper.lr_full, hyper=hyper, seed=seed)
        result["runs"]["full"] = {"metric": arch.evaluate(model, family, task), "trainable":
                                  arch.trainable_count(model), "bytes": _file_bytes(
                                      model.state_dict(), folder, "dense"), **fit}
        result["total_parameters"] = total
        progress(f"{name} full")
        for r in family.RANKS:
            model = _adapted(family, task, r, seed)
            fit = arch.train(model, family, task, lr=hyper.lr_lora, hyper=hyper, seed=seed)
            path = dr.save_adapted(model, folder / f"r{r}.safetensors")
            result["runs"][f"r{r}"] = {"metric": arch.evaluate(model, family, task),
                                       "trainable": arch.trainable_count(model),
                                       "bytes": path.stat().st_size, **fit}
            result["layers"] += _layer_rows(model, name, r)
            progress(f"{name} r={r}")
        top = max(family.RANKS)
        result["contracts"] = _contracts(family, task, model, seed, folder)
        if not quick and _shortfall(result) > TOLERANCE:
            result["longer"] = _longer(family, task, hyper, seed, _compared_rank(family))
            progress(f"{name} {LONGER}x epochs")
        groups = list(family.GROUPS.items())[: 1 if quick else None]
        for group, patterns in groups:
            model = _adapted(family, task, top, seed, patterns)
            fit = arch.train(model, family, task, lr=hyper.lr_lora, hyper=hyper, seed=seed)
            result["groups"][group] = {"metric": arch.evaluate(model, family, task),
                                       "trainable": arch.trainable_count(model), **fit}
            progress(f"{name} {group} full")
    extras = getattr(family, "extras", None)
    result["extras"] = extras(task, seed=seed, quick=quick) if extras is not None else {}
    return result


def _shortfall(result: dict) -> float:
    """Points of % of full training by which ours falls short of the paper's row."""
    family = result["family"]
    higher = family.METRIC.higher_is_better
    paper = percent_of_full(family.PAPER.lora, family.PAPER.full, higher)
    run = result["runs"].get(f"r{_compared_rank(family)}")
    if run is None:
        return float("nan")
    return paper - percent_of_full(run["metric"], result["runs"]["full"]["metric"], higher)


def _longer(family, task, hyper, seed: int, rank: int) -> dict[str, float]:
    """Full training and LoRA at ``rank`` again, with LONGER times the epochs."""
    longer = arch.Hyper(**{**vars(hyper), "epochs": hyper.epochs * LONGER})
    model = family.build(task, seed=seed)
    arch.train(model, family, task, lr=hyper.lr_full, hyper=longer, seed=seed)
    full = arch.evaluate(model, family, task)
    model = _adapted(family, task, rank, seed)
    fit = arch.train(model, family, task, lr=hyper.lr_lora, hyper=longer, seed=seed)
    return {"epochs": longer.epochs, "full": full, "lora": arch.evaluate(model, family, task),
            "steps": fit["steps"]}


def _learned(result: dict) -> float:
    """How far full training got from chance to perfect (1 = perfect); NaN without a chance."""
    family, task = result["family"], result["task"]
    full = result["runs"]["full"]["metric"]
    if family.METRIC.name == "accuracy" and task.info.get("classes"):
        chance = 1.0 / int(task.info["classes"])
    elif family.METRIC.name == "AUROC":
        chance = 0.5
    else:
        return float("nan")
    return (full - chance) / (1.0 - chance)


def _fmt(value: float, metric) -> str:
    if not np.isfinite(value):
        return "n/a"
    if metric.percent:
        return f"{100 * value:.2f} %"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def _size(num: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if num < 1000 or unit == "GB":
            return f"{num:.0f} {unit}" if unit == "B" else f"{num:.1f} {unit}"
        num /= 1000.0
    return f"{num:.1f} GB"


def _compared_rank(family) -> int:
    """The rank compared with the paper: the paper's, or our largest when it gives none."""
    rank = family.PAPER.rank
    return rank if rank in family.RANKS else max(family.RANKS)


def _gap_closed(result: dict, metric: float) -> float:
    """Fraction of the full-vs-LoRA gap at the largest rank that ``metric`` closes.

    NaN when LoRA is within 1 % of full training there, or ahead of it: no gap to
    share out.
    """
    full = result["runs"]["full"]["metric"]
    lora = result["runs"][f"r{max(result['family'].RANKS)}"]["metric"]
    shortfall = (full - lora) if result["family"].METRIC.higher_is_better else (lora - full)
    if not np.isfinite(shortfall) or shortfall <= 0.01 * abs(full):
        return float("nan")
    return (metric - lora) / (full - lora)


def _verdict(result: dict, quick: bool) -> tuple[str, str, str, str, str]:
    """One "Where we differ" row: (what, paper, ours, verdict, cause and evidence)."""
    family, task = result["family"], result["task"]
    higher = family.METRIC.higher_is_better
    rank = _compared_rank(family)
    paper = percent_of_full(family.PAPER.lora, family.PAPER.full, higher)
    ours = percent_of_full(result["runs"][f"r{rank}"]["metric"],
                           result["runs"]["full"]["metric"], higher)
    stated = f"r = {family.PAPER.rank}" if family.PAPER.rank else "rank not stated"
    what = f"{family.TITLE}: % of full training ({stated}; ours at r = {rank})"
    steps = result["runs"]["full"]["steps"]
    scale = (f"ours: {task.source}, {result['total_parameters']:,} parameters, {steps} "
             f"optimizer steps, one seed")
    diff = ours - paper
    if not np.isfinite(diff):
        return what, f"{paper:.1f} %", "n/a", "real disagreement", "no finite metric: " + scale
    learned = _learned(result)
    full_text = _fmt(result["runs"]["full"]["metric"], family.METRIC)
    if abs(diff) <= TOLERANCE:
        return what, f"{paper:.1f} %", f"{ours:.1f} %", "agrees", (
            f"within {TOLERANCE:g} points; {scale}")
    if quick:
        return what, f"{paper:.1f} %", f"{ours:.1f} %", "setup effect", (
            f"quick run, too small to compare; {scale}")
    if np.isfinite(learned) and learned < 0.25:
        return what, f"{paper:.1f} %", f"{ours:.1f} %", "dataset effect", (
            f"full training reaches only {full_text}, {100 * learned:.0f} % of the way from "
            f"chance to perfect on our task, so % of full is dominated by noise (one seed); "
            f"{scale}")
    if diff > 0 and paper >= 96.0:
        return what, f"{paper:.1f} %", f"{ours:.1f} %", "agrees", (
            f"LoRA at or above the paper's share (above 100 %: LoRA beat full training on "
            f"this seed); {scale}")
    if diff > 0:
        return what, f"{paper:.1f} %", f"{ours:.1f} %", "setup effect", (
            f"the paper's gap ({family.PAPER.lora:g} vs {family.PAPER.full:g}) is at its "
            f"scale ({family.PAPER.benchmark}); at ours full training is not ahead of LoRA; "
            f"{scale}")
    gaps = sorted(((_gap_closed(result, g["metric"]), name)
                   for name, g in result["groups"].items()), reverse=True)
    gap_text = "; ".join(f"training {name} fully closes {100 * closed:.0f} % of the gap at "
                         f"r = {max(family.RANKS)}" for closed, name in gaps
                         if np.isfinite(closed))
    longer = result.get("longer")
    if longer is not None:
        again = percent_of_full(longer["lora"], longer["full"], higher)
        longer_text = (f"with {LONGER}x the epochs ({longer['steps']} steps) ours is "
                       f"{again:.1f} % (full {_fmt(longer['full'], family.METRIC)}, LoRA "
                       f"{_fmt(longer['lora'], family.METRIC)})")
        if again - ours >= 0.5 * (paper - ours):
            return what, f"{paper:.1f} %", f"{ours:.1f} %", "setup effect", (
                f"the step count: {longer_text}, closing "
                f"{100 * (again - ours) / (paper - ours):.0f} % of the shortfall; "
                f"{gap_text}; {scale}")
        gap_text = f"{longer_text}; {gap_text}"
    return what, f"{paper:.1f} %", f"{ours:.1f} %", "real disagreement", (
        f"{-diff:.1f} points below the paper on our data; {gap_text}; {scale}")


def _results_table(results: list[dict]) -> str:
    rows = []
    for result in results:
        family = result["family"]
        paper_rank = f" (r = {family.PAPER.rank})" if family.PAPER.rank else ""
        paper_percent = percent_of_full(family.PAPER.lora, family.PAPER.full,
                                        family.METRIC.higher_is_better)
        paper = (f"{family.PAPER.benchmark}: {family.PAPER.lora:g}{paper_rank} vs "
                 f"{family.PAPER.full:g} ({paper_percent:.1f} %)")
        if result["missing"]:
            rows.append((family.TITLE, paper, "not run: needs " + ", ".join(result["missing"])
                         + ' (pip install "deepreservoir[architectures]")', "", "", "", ""))
            continue
        runs, metric = result["runs"], family.METRIC
        full = runs["full"]["metric"]
        higher = metric.higher_is_better
        ours = ", ".join(f"r = {r}: {_fmt(runs[f'r{r}']['metric'], metric)} "
                         f"({percent_of_full(runs[f'r{r}']['metric'], full, higher):.1f} %)"
                         for r in family.RANKS)
        top = f"r{max(family.RANKS)}"
        rows.append((family.TITLE, paper, f"{metric.name}, {result['task'].source}",
                     _fmt(full, metric), ours,
                     f"{runs[top]['trainable']:,} of {result['total_parameters']:,} "
                     f"({100 * runs[top]['trainable'] / result['total_parameters']:.1f} %)",
                     f"{_size(runs[top]['bytes'])} vs {_size(runs['full']['bytes'])}"))
    return common.md_table(
        ["family", "paper: LottaLoRA vs full (% of full)", "our metric and data", "ours: full",
         "ours: LottaLoRA (% of full)", "trained at the largest r", "artifact vs dense"], rows)


def _layer_table(results: list[dict]) -> str:
    rows = []
    for result in results:
        if result["missing"]:
            continue
        top = max(result["family"].RANKS)
        entries = [e for e in result["layers"] if e["rank"] == top]
        betas = np.array([e["beta"] for e in entries])
        seeds = np.array([e["sigma1_seed"] for e in entries])
        merged = np.array([e["sigma1_merged"] for e in entries])
        shares = {name: _gap_closed(result, g["metric"]) for name, g in result["groups"].items()}
        groups = "; ".join(
            f"{name}: {_fmt(g['metric'], result['family'].METRIC)}"
            + (f" ({100 * shares[name]:.0f} % of the gap)" if np.isfinite(shares[name])
               else " (no gap: LoRA within 1 % of full, or ahead)")
            for name, g in result["groups"].items())
        rows.append((result["family"].TITLE, f"{len(entries)}",
                     f"{np.median(betas):.3f} ({betas.min():.3f} to {betas.max():.3f})",
                     f"{np.median(seeds):.2f} ({seeds.min():.2f} to {seeds.max():.2f})",
                     f"{np.median(merged):.2f}", groups or "n/a"))
    return common.md_table(
        ["family", "adapted layers", "β at the largest r: median (range)",
         "σ₁(W_seed): median (range)", "σ₁(merged): median",
         "layer group trained fully at the largest r (share of the full-vs-LoRA gap closed)"],
        rows)


def _extras_text(results: list[dict]) -> str:
    lines = []
    for result in results:
        for key, value in result.get("extras", {}).items():
            shown = _size(value) if key.endswith("bytes") else (
                f"{value:.4g}" if isinstance(value, float) else str(value))
            lines.append(f"* {result['family'].TITLE}, {key.replace('_', ' ')}: {shown}")
    return "\n".join(lines) if lines else "(none)"


def _contract_text(results: list[dict]) -> str:
    rows = [(r["family"].TITLE, "yes" if r["contracts"]["merge_plain"] else "**no**",
             "yes" if r["contracts"]["load_bitwise"] else "**no**")
            for r in results if not r["missing"]]
    return common.md_table(["family", "dr.merge: plain torch modules, same outputs (1e-4)",
                            "dr.load_adapted: outputs bit for bit"], rows)


def _dataset(results: list[dict]) -> xr.Dataset:
    ran = [r for r in results if not r["missing"]]
    names = [r["name"] for r in ran]
    ranks = sorted({k for r in ran for k in r["family"].RANKS})
    variants = ["full", *(f"r{k}" for k in ranks)]
    shape = (len(names), len(variants))
    values = {key: np.full(shape, np.nan) for key in
              ("metric", "trainable", "artifact_bytes", "train_loss", "seconds", "steps")}
    for i, result in enumerate(ran):
        for j, variant in enumerate(variants):
            run = result["runs"].get(variant)
            if run is None:
                continue
            for key, source in (("metric", "metric"), ("trainable", "trainable"),
                                ("artifact_bytes", "bytes"), ("train_loss", "train_loss"),
                                ("seconds", "seconds"), ("steps", "steps")):
                values[key][i, j] = run[source]
    layers = [e for r in ran for e in r["layers"]]
    groups = [(r["name"], g, v["metric"], v["trainable"]) for r in ran
              for g, v in r["groups"].items()]
    dims = ("family", "variant")
    data = {key: (dims, value) for key, value in values.items()}
    data.update({
        "layer_family": ("entry", [e["family"] for e in layers]),
        "layer_rank": ("entry", np.array([e["rank"] for e in layers], dtype=np.int64)),
        "layer_name": ("entry", [e["layer"] for e in layers]),
        "beta": ("entry", np.array([e["beta"] for e in layers])),
        "sigma1_seed": ("entry", np.array([e["sigma1_seed"] for e in layers])),
        "sigma1_merged": ("entry", np.array([e["sigma1_merged"] for e in layers])),
        "group_family": ("group_run", [g[0] for g in groups]),
        "group_name": ("group_run", [g[1] for g in groups]),
        "group_metric": ("group_run", np.array([g[2] for g in groups], dtype=np.float64)),
        "group_trainable": ("group_run", np.array([g[3] for g in groups], dtype=np.float64)),
    })
    dataset = xr.Dataset(data, coords={"family": names, "variant": variants})
    dataset["metric"].attrs["description"] = "test metric: the family's METRIC"
    dataset.attrs["metrics"] = json.dumps({r["name"]: r["family"].METRIC.name for r in ran})
    dataset.attrs["sources"] = json.dumps({r["name"]: r["task"].source for r in ran})
    dataset.attrs["extras"] = json.dumps({r["name"]: r["extras"] for r in ran if r["extras"]})
    dataset.attrs["contracts"] = json.dumps({r["name"]: r["contracts"] for r in ran})
    dataset.attrs["longer"] = json.dumps({r["name"]: r["longer"] for r in ran if "longer" in r})
    dataset.attrs["not_run"] = json.dumps({r["name"]: r["missing"] for r in results
                                           if r["missing"]})
    return dataset


def _figure(results: list[dict]):
    ran = [r for r in results if not r["missing"]]
    fig, (left, right) = common.figure(2, width=6.0)
    ranks = sorted({k for r in ran for k in r["family"].RANKS})
    colors = common.rank_colors(ranks)
    width = 0.8 / max(len(ranks), 1)
    labelled: set[int] = set()
    for i, result in enumerate(ran):
        family, runs = result["family"], result["runs"]
        higher = family.METRIC.higher_is_better
        for j, rank in enumerate(ranks):
            if rank in family.RANKS:
                value = percent_of_full(runs[f"r{rank}"]["metric"], runs["full"]["metric"],
                                        higher)
                left.bar(i + (j - (len(ranks) - 1) / 2) * width, value, width,
                         color=colors[rank],
                         label=None if rank in labelled else f"r = {rank}")
                labelled.add(rank)
        left.plot(i, percent_of_full(family.PAPER.lora, family.PAPER.full, higher), "k_",
                  markersize=18, label="paper" if i == 0 else None)
        top = [e for e in result["layers"] if e["rank"] == max(family.RANKS)]
        right.scatter([e["sigma1_seed"] for e in top], [e["beta"] for e in top], s=12,
                      label=result["name"])
    left.axhline(100, color="0.6", lw=0.8)
    left.set_xticks(range(len(ran)), [r["name"] for r in ran])
    left.set_ylabel("% of full training")
    left.set_title("LottaLoRA through dr.adapt, per family")
    left.legend(fontsize=7)
    from matplotlib.ticker import NullFormatter

    right.set_xscale("log")
    right.xaxis.set_minor_formatter(NullFormatter())
    right.set_xlabel("σ₁(W_seed) per adapted layer")
    right.set_ylabel("β after training (largest r)")
    right.axhline(0, color="0.6", lw=0.8)
    right.set_title("β against σ₁ per layer")
    right.legend(fontsize=7, ncol=2)
    return fig


def run(out_dir, *, quick: bool = False, seed: int = 0, progress: bool = True,
        data: Any = None) -> dict:
    """Run the study; see the module docstring. Returns the study-contract dict."""
    timer = common.Timer()
    names = _families_of(data)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(names), desc="architectures", unit="family", disable=not progress)
    results = []
    for name in names:
        results.append(run_family(name, quick=quick, seed=seed, data=data,
                                  progress=bar.set_postfix_str))
        bar.update(1)
    bar.close()
    ran = [r for r in results if not r["missing"]]
    verdicts = [_verdict(r, quick) for r in ran]
    claims = {
        "every_family_ran": len(ran) == len(names),
        "merge_gives_plain_modules": all(r["contracts"]["merge_plain"] for r in ran),
        "load_adapted_is_bitwise": all(r["contracts"]["load_bitwise"] for r in ran),
        "artifact_smaller_than_dense": all(
            r["runs"][f"r{max(r['family'].RANKS)}"]["bytes"] < r["runs"]["full"]["bytes"]
            for r in ran),
        "fewer_trained_parameters": all(
            r["runs"][f"r{max(r['family'].RANKS)}"]["trainable"] < r["total_parameters"]
            for r in ran),
    }
    if not quick:
        claims["recovers_90_percent_at_the_compared_rank"] = all(
            percent_of_full(r["runs"][f"r{_compared_rank(r['family'])}"]["metric"],
                            r["runs"]["full"]["metric"], r["family"].METRIC.higher_is_better)
            >= 90.0 for r in ran)
    hyper = {r["name"]: vars(r["family"].HYPER["quick" if quick else "full"]) for r in ran}
    summary = "\n".join([
        f"# {TITLE}", "",
        f"{'Quick run' if quick else 'Full run'}, seed {seed}. Each family trains once "
        f"fully and once per rank through `dr.adapt` (AdamW, weight decay 1e-2 except on β, "
        f"cosine schedule, gradient clipping at 1), on local data; the paper's rows are on "
        f"its benchmarks (docs/paper.md), so the comparison is on % of full training. For a "
        f"loss or an error, % of full is full/LottaLoRA. A family more than {TOLERANCE:g} "
        f"points short of the paper's share trains again with {LONGER}x the epochs (full and "
        f"the compared rank), to test the step count. Settings per family: "
        f"`{json.dumps(hyper)}`.", "",
        "## Results", "", _results_table(results), "",
        "## Where we differ", "", common.verdict_table(verdicts) if verdicts else "(none)", "",
        "## β, σ₁ and the layers that carry the gap", "", _layer_table(results), "",
        "## Contracts", "", _contract_text(results), "",
        "## Further figures", "", _extras_text(results), "",
        common.run_line(timer), ""])
    config = {"quick": quick, "seed": seed, "families": names,
              "data": None if data is None else Path(data).name}
    return common.finish("architectures", Path(out_dir), _dataset(results), summary,
                         _figure(results), claims, config, timer)
