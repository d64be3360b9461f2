"""LottaLoRA against full training on MNIST-1D and scikit-learn's digits.

Protocol (the paper's MNIST recipe, with the same learning-rate search for every method):

* data: MNIST-1D generated locally by ``mnist1d``'s ``make_dataset`` (its default
  arguments: 4000 train / 1000 test, 40 features, seed 42), or scikit-learn's
  8×8 digits (1438 train / 359 test, 64 features scaled to [0, 1]); 10 % of the
  training set is held out for validation (a draw seeded by the run's seed);
* medium preset (512-256-128-64), ReLU, dropout 0.1, AdamW (weight decay 1e-2),
  batch 128, cosine decay, ``--epochs`` epochs (default 40) for every method;
* full training: ``Dense`` layers with trained biases (575,050 parameters on
  784 inputs); LottaLoRA: ``Scaffold`` layers (frozen N(0, 1/d_in), rank-r
  adapters, β, no hidden biases) and a fully trained head. r = 0 is the frozen
  random network with only the head trained;
* α convention: α = r (``alpha=None``), i.e. the adapter's scale α/r is 1 at every rank;
* learning rate: for every method, each lr of the grid is trained once with
  seed 0 and the lr with the best final validation accuracy is kept (the same
  search budget for every method); seeds 1 and 2 are then trained at that lr,
  and the seed-0 run of the search is reused as the first seed. Seeds drive the
  scaffold, the adapters' A, shuffling, dropout and the validation split. Test
  accuracy is reported as mean ± std (population std over the 3 seeds).

Run:  python benchmarks/bench_lottalora_accuracy.py --dataset mnist1d --out mnist1d.json
      python benchmarks/bench_lottalora_report.py mnist1d.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import deepreservoir as dr
from deepreservoir.datasets import load_digits, load_mnist1d

RANKS = (0, 1, 2, 4, 8, 16, 32)
LRS = (3e-3, 1e-2, 3e-2)
SEEDS = (0, 1, 2)
ALPHAS = {"r": ("alpha=r (scale 1)", None), "1": ("alpha=1 (paper MNIST, scale 1/r)", 1.0)}


def build(method: dict, classes: int, seed: int):
    if method["kind"] == "full":
        return dr.scaffold_mlp("medium", classes, full=True, dropout=0.1, seed=seed)
    return dr.scaffold_mlp("medium", classes, r=method["r"], alpha=method["alpha"],
                           dropout=0.1, seed=seed, family=method.get("family", "normal"),
                           bias=method.get("bias", False))


def train(method: dict, data: dict, lr: float, seed: int, epochs: int, resample=None):
    classes = int(data["y_train"].max()) + 1
    model = build(method, classes, seed)
    history = model.fit(data["x_train"], data["y_train"], epochs=epochs, batch_size=128, lr=lr,
                        weight_decay=1e-2, loss="cross_entropy", validation_split=0.1,
                        seed=seed, verbose=0, resample=resample).history_
    return model, history


def _test_accuracy(model, data: dict) -> float:
    return dr.training.evaluate(model, data["x_test"], data["y_test"])["accuracy"]


def _betas(history) -> list[float]:
    return [float(v) for v in history.beta.values[-1]] if history.beta.size else []


def methods_for(ranks, alphas, full: bool) -> list[dict]:
    methods = [{"name": "full training", "kind": "full"}] if full else []
    for r in ranks:
        if r == 0:
            methods.append({"name": "r=0 (frozen scaffold, head only)", "kind": "lora", "r": 0,
                            "alpha": None})
            continue
        for key in alphas:
            label, alpha = ALPHAS[key]
            methods.append({"name": f"r={r}, {label}", "kind": "lora", "r": r, "alpha": alpha})
    return methods


def run(dataset: str, epochs: int, ranks, lrs, seeds, ablations: bool, alphas=("r",),
        full: bool = True) -> dict:
    data = load_mnist1d() if dataset == "mnist1d" else load_digits()
    results = {"dataset": dataset, "epochs": epochs, "lr_grid": list(lrs), "seeds": list(seeds),
               "n_train": len(data["y_train"]), "n_test": len(data["y_test"]),
               "alpha_convention": "alpha=r (scale alpha/r = 1) unless the name says otherwise",
               "methods": []}
    for method in methods_for(ranks, alphas, full):
        began = time.perf_counter()
        search, first = {}, {}
        for lr in lrs:
            model, history = train(method, data, lr, seeds[0], epochs)
            search[lr] = float(history.val_accuracy[-1])
            first[lr] = (_test_accuracy(model, data), _betas(history), model.footprint())
        best = max(search, key=search.get)
        accuracy, betas, footprint = first[best]
        accuracies, final_betas = [accuracy], [betas]
        for seed in seeds[1:]:
            model, history = train(method, data, best, seed, epochs)
            accuracies.append(_test_accuracy(model, data))
            final_betas.append(_betas(history))
        row = {**{k: v for k, v in method.items() if k != "alpha"},
               "alpha": method.get("alpha"), "lr": best, "val_by_lr": search,
               "lr_at_grid_edge": best in (min(lrs), max(lrs)) and len(lrs) > 1,
               "test": accuracies, "mean": float(np.mean(accuracies)),
               "std": float(np.std(accuracies)), "final_beta": final_betas,
               "trainable": footprint.trainable, "seconds": time.perf_counter() - began}
        results["methods"].append(row)
        print(f"{method['name']:<45} lr={best:g} test {row['mean']:.4f} ± {row['std']:.4f} "
              f"({footprint.trainable:,} trainable, {row['seconds']:.0f} s)", flush=True)
    if ablations:
        results["ablations"] = run_ablations(data, epochs, seeds, results)
    return results


def run_ablations(data: dict, epochs: int, seeds, results: dict) -> list[dict]:
    """The paper's ablations at r ∈ {2, 4, 8}, α = r, each at the static scaffold's best lr."""
    best_lr = {m["r"]: m["lr"] for m in results["methods"]
               if m["kind"] == "lora" and m["alpha"] is None}
    rows = []
    for r in (2, 4, 8):
        if r not in best_lr:
            continue
        lr = best_lr[r]
        settings = {
            "W_seed = 0 (adapters alone)": ({"family": None}, None, False),
            "scaffold removed after training": ({}, None, True),
            "resampled every epoch": ({}, "epoch", False),
            "resampled every batch": ({}, "batch", False),
        }
        for label, (extra, resample, remove) in settings.items():
            accuracies, betas = [], []
            for seed in seeds:
                method = {"kind": "lora", "r": r, "alpha": None, **extra}
                model, history = train(method, data, lr, seed, epochs, resample=resample)
                betas.extend(_betas(history))
                if remove:
                    model.remove_scaffold()
                accuracies.append(_test_accuracy(model, data))
            row = {"setting": label, "r": r, "lr": lr, "test": accuracies,
                   "mean": float(np.mean(accuracies)), "std": float(np.std(accuracies)),
                   "median_abs_beta": float(np.median(np.abs(betas))) if betas else None}
            rows.append(row)
            print(f"ablation r={r} {label:<35} {row['mean']:.4f} ± {row['std']:.4f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["mnist1d", "digits"], default="mnist1d")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--ranks", type=int, nargs="*", default=list(RANKS))
    parser.add_argument("--lrs", type=float, nargs="*", default=list(LRS))
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    parser.add_argument("--ablations", action="store_true")
    parser.add_argument("--ablations-only", action="store_true",
                        help="run only the ablations, at the lrs of --from")
    parser.add_argument("--from", dest="source", type=Path, default=None)
    parser.add_argument("--alphas", nargs="*", choices=list(ALPHAS), default=["r"])
    parser.add_argument("--no-full", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    if args.ablations_only:
        previous = json.loads(args.source.read_text())
        data = load_mnist1d() if args.dataset == "mnist1d" else load_digits()
        results = {"dataset": args.dataset, "epochs": args.epochs,
                   "ablations": run_ablations(data, args.epochs, args.seeds, previous)}
    else:
        results = run(args.dataset, args.epochs, args.ranks, args.lrs, args.seeds,
                      args.ablations, args.alphas, not args.no_full)
    results["torch"] = torch.__version__
    results["threads"] = args.threads
    results["seconds"] = time.perf_counter() - began
    print(f"total {results['seconds']:.0f} s", flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
