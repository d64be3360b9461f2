"""LottaLoRA against full training on MNIST-1D and scikit-learn's digits.

Protocol (the paper's MNIST recipe, with a per-method learning-rate search):

* medium preset (512-256-128-64), ReLU, dropout 0.1, AdamW (weight decay 1e-2),
  batch 128, 20 epochs, cosine decay; 90/10 train/validation split of the
  training set;
* full training: Dense layers with biases; LottaLoRA: Scaffold layers (frozen
  N(0, 1/d_in), rank-r adapters, β) and a fully trained head;
* for every method (full, and each rank r under each α convention) the
  learning rate is chosen on the validation split with seed 0, from the grid
  below; then 3 seeds (0, 1, 2: scaffold, adapters, shuffling, dropout) are
  trained with that choice and scored on the test set.

Run:  python benchmarks/bench_lottalora_accuracy.py --dataset mnist1d --out results.json
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

RANKS = (1, 2, 4, 8, 16, 32)
LRS = (1e-3, 3e-3, 1e-2, 3e-2)
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
                        seed=seed, verbose=0, resample=resample)
    return model, history


def run(dataset: str, epochs: int, ranks, lrs, seeds, ablations: bool, alphas=("r", "1"),
        full: bool = True) -> dict:
    data = load_mnist1d() if dataset == "mnist1d" else load_digits()
    methods = [{"name": "full training", "kind": "full"}] if full else []
    for r in ranks:
        for key in alphas:
            label, alpha = ALPHAS[key]
            methods.append({"name": f"r={r}, {label}", "kind": "lora", "r": r, "alpha": alpha})
    results = {"dataset": dataset, "epochs": epochs, "lr_grid": list(lrs), "seeds": list(seeds),
               "n_train": len(data["y_train"]), "n_test": len(data["y_test"]), "methods": []}
    for method in methods:
        began = time.perf_counter()
        search = {}
        for lr in lrs:
            _, history = train(method, data, lr, seeds[0], epochs)
            search[lr] = float(history.val_accuracy[-1])
        best = max(search, key=search.get)
        accuracies = []
        for seed in seeds:
            model, _ = train(method, data, best, seed, epochs)
            accuracies.append(dr.training.evaluate(model, data["x_test"], data["y_test"])[
                "accuracy"])
        footprint = model.footprint()
        row = {**{k: v for k, v in method.items() if k != "alpha"},
               "alpha": method.get("alpha"), "lr": best, "val_by_lr": search,
               "test": accuracies, "mean": float(np.mean(accuracies)),
               "std": float(np.std(accuracies)), "trainable": footprint.trainable,
               "seconds": time.perf_counter() - began}
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
            "W_seed = 0, frozen seeded hidden biases": ({"family": None, "bias": "seeded"},
                                                        None, False),
            "scaffold removed after training": ({}, None, True),
            "resampled every epoch": ({}, "epoch", False),
            "resampled every batch": ({}, "batch", False),
        }
        for label, (extra, resample, remove) in settings.items():
            accuracies, betas = [], []
            for seed in seeds:
                method = {"kind": "lora", "r": r, "alpha": None, **extra}
                model, _ = train(method, data, lr, seed, epochs, resample=resample)
                betas.append([float(n.beta_.detach()) for n in model.nodes.values()
                              if getattr(n, "beta_", None) is not None])
                if remove:
                    model.remove_scaffold()
                accuracies.append(dr.training.evaluate(model, data["x_test"],
                                                       data["y_test"])["accuracy"])
            row = {"setting": label, "r": r, "lr": lr, "test": accuracies,
                   "mean": float(np.mean(accuracies)), "std": float(np.std(accuracies)),
                   "median_abs_beta": float(np.median(np.abs(betas)))}
            rows.append(row)
            print(f"ablation r={r} {label:<35} {row['mean']:.4f} ± {row['std']:.4f} "
                  f"median |β| {row['median_abs_beta']:.3g}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["mnist1d", "digits"], default="mnist1d")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--ranks", type=int, nargs="*", default=list(RANKS))
    parser.add_argument("--lrs", type=float, nargs="*", default=list(LRS))
    parser.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS))
    parser.add_argument("--ablations", action="store_true")
    parser.add_argument("--ablations-only", action="store_true",
                        help="run only the ablations, at the lrs of --from")
    parser.add_argument("--from", dest="source", type=Path, default=None)
    parser.add_argument("--alphas", nargs="*", choices=list(ALPHAS), default=list(ALPHAS))
    parser.add_argument("--no-full", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
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
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
