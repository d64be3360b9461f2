"""Data-parallel LottaLoRA training: only the adapters' gradients cross the wire.

Run on two processes (CPU, gloo):

    torchrun --nproc-per-node 2 examples/distributed_lottalora.py

Every process builds the same scaffold from the seed and passes the same data;
each takes rows rank::world of every global batch, and one all-reduce per step
sums the trainable gradients. Run with plain ``python`` it trains in one process,
to the same result (to rounding).
"""

import argparse

import numpy as np
import torch

import deepreservoir as dr


def blobs(n, features=16, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(classes, features))
    labels = rng.integers(0, classes, n)
    return (centres[labels] + rng.normal(size=(n, features))).astype(np.float32), labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y = blobs(2500)
    x, y, x_val, y_val = x[:2000], y[:2000], x[2000:], y[2000:]
    model = dr.scaffold_mlp("small", 4, r=4, seed=7)
    dr.distributed.fit(model, x, y, epochs=args.epochs, batch_size=128, lr=3e-3,
                       loss="cross_entropy", validation_data=(x_val, y_val), verbose=0)
    rank, world = dr.distributed.initialise()
    trainable = sum(p.numel() * p.element_size() for p in model.parameters())
    if rank == 0:
        last = model.history_.isel(epoch=-1)
        print(f"{world} process(es); {trainable / 1024:.1f} KiB of trained parameters "
              f"on the wire per step")
        print(f"validation accuracy = {float(last['val_accuracy']):.3f}")
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
