"""LottaLoRA on MNIST-1D: a frozen random MLP plus rank-8 adapters against full training.

Every hidden weight is drawn from a seed and frozen; only low-rank adapters
(B·A), one gate β per layer and the head are trained. The saved model holds
just those, and reloads bit for bit.

Run:  python examples/lottalora_mnist1d.py   (needs `pip install mnist1d`; under a minute)
"""

import argparse
import tempfile
import time
from pathlib import Path

import deepreservoir as dr
from deepreservoir.datasets import load_mnist1d
from deepreservoir.threads import use_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rank", type=int, default=8)
    args = parser.parse_args()
    use_threads()  # the shared policy: one thread unless DEEPRESERVOIR_NUM_THREADS says otherwise

    data = load_mnist1d()  # generated locally from the package's templates, no download
    x, y = data["x_train"], data["y_train"]
    recipe = dict(epochs=args.epochs, batch_size=128, weight_decay=1e-2, loss="cross_entropy",
                  validation_split=0.1, seed=0, verbose=0)

    began = time.perf_counter()
    lotta = dr.scaffold_mlp("medium", 10, r=args.rank, dropout=0.1, seed=0)
    history = lotta.fit(x, y, lr=1e-2, **recipe).history_
    lotta_acc = dr.training.evaluate(lotta, data["x_test"], data["y_test"])["accuracy"]
    seconds = time.perf_counter() - began
    print(f"LottaLoRA r={args.rank}: test accuracy {lotta_acc:.3f} "
          f"(validation {float(history.val_accuracy[-1]):.3f}, {seconds:.0f} s)")
    print("alpha convention:", lotta.alpha_convention()["layer0"])

    began = time.perf_counter()
    full = dr.scaffold_mlp("medium", 10, full=True, dropout=0.1, seed=0)
    full.fit(x, y, lr=3e-3, **recipe)
    full_acc = dr.training.evaluate(full, data["x_test"], data["y_test"])["accuracy"]
    print(f"full training: test accuracy {full_acc:.3f} ({time.perf_counter() - began:.0f} s)")

    report = lotta.footprint()
    print(f"trainable parameters: {report.trainable:,} vs {full.footprint().trainable:,} "
          f"({100 * report.trainable / full.footprint().trainable:.1f} %)")
    final = history.beta.isel(epoch=-1)  # the history holds β per layer and epoch
    print("β per layer after training:",
          {str(layer): round(float(value), 3) for layer, value in zip(final.layer.values,
                                                                      final.values)})

    with tempfile.TemporaryDirectory() as folder:
        path = lotta.save(Path(folder) / "mnist1d.dr")
        size = sum(p.stat().st_size for p in path.iterdir())
        same = dr.load(path)
        identical = (same.run(data["x_test"]) == lotta.run(data["x_test"])).all()
        print(f"artifact: {size:,} bytes (dense network: {report.dense_bytes:,} bytes); "
              f"reloaded outputs bit-identical: {bool(identical)}")


if __name__ == "__main__":
    main()
