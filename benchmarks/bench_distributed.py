"""Data-parallel training: bytes on the wire per step and step time on 1 and 2 processes.

Two variants of the same network (the paper's ``--preset`` MLP on MNIST-shaped
random data, 784 → widths → 10, AdamW, cross-entropy, global batch ``--batch``):

* ``LottaLoRA r=8, adapters only``: ``dr.scaffold_mlp(preset, 10, r=8)`` trained
  with ``dr.distributed.fit``: one all-reduce of the trainable gradients per step;
  the scaffold is regenerated from the seed on every process, never sent;
* ``full, DistributedDataParallel``: a plain torch ``nn.Sequential`` of the same
  shape, every weight trained, wrapped in ``torch.nn.parallel.DistributedDataParallel``.

Bytes on the wire per step
    Counted, not computed: for LottaLoRA every ``torch.distributed`` collective
    called between a step's start and end (the functions are wrapped); for DDP a
    communication hook that adds up the bytes of each gradient bucket it
    all-reduces. (Bytes each process contributes to the all-reduce; a ring
    all-reduce moves about twice that over the links.)

Step time
    The median wall time of a step (forward, backward, all-reduce, optimizer)
    over ``--steps`` steps after ``--warmup`` steps, on process 0, with one torch
    thread per process (gloo on the CPU). Each (variant, processes) pair runs in
    fresh processes launched with torchrun's environment variables. On a
    two-core machine, two processes have a core each; the global batch is the
    same, so ideal scaling halves the step time.

Run:  python benchmarks/bench_distributed.py [--preset medium] [--steps 40] [--out dist.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

import deepreservoir as dr

FEATURES, CLASSES = 784, 10


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, FEATURES)).astype(np.float32), rng.integers(0, CLASSES, n)


class _Counter:
    """Bytes of every torch.distributed collective called while ``active``."""

    def __init__(self):
        self.bytes, self.active = 0, False
        for name in ("all_reduce", "broadcast", "all_gather", "all_gather_into_tensor",
                     "reduce_scatter_tensor", "all_gather_object", "broadcast_object_list"):
            setattr(dist, name, self._wrap(getattr(dist, name)))

    def _wrap(self, original):
        def counted(*args, **kwargs):
            if self.active:
                payload = args[0]
                self.bytes += (payload.numel() * payload.element_size()
                               if isinstance(payload, torch.Tensor) else len(pickle.dumps(payload)))
            return original(*args, **kwargs)
        return counted


class _Steps(dr.training.Callback):
    def __init__(self, counter):
        self.counter, self.times, self.bytes, self._t, self._b = counter, [], [], 0.0, 0

    def on_batch_begin(self, trainer, batch):
        self.counter.active = True
        self._b, self._t = self.counter.bytes, time.perf_counter()

    def on_batch_end(self, trainer, batch, loss):
        self.times.append(time.perf_counter() - self._t)
        self.bytes.append(self.counter.bytes - self._b)
        self.counter.active = False


def _lottalora(args, rank, world) -> dict:
    counter = _Counter()
    steps = _Steps(counter)
    model = dr.scaffold_mlp(args.preset, CLASSES, r=8, seed=0)
    x, y = _data(args.batch * (args.steps + args.warmup))
    dr.distributed.fit(model, x, y, epochs=1, batch_size=args.batch, lr=1e-3,
                       loss="cross_entropy", verbose=0, callbacks=[steps])
    trained = sum(p.numel() for p in model.parameters())
    scaffold = sum(t.numel() * t.element_size() for n in model.nodes.values()
                   if isinstance(n, dr.kinds.FrozenWeights)
                   for t in n.frozen_tensors().values() if t is not None)
    return {"times": steps.times[args.warmup:], "bytes": steps.bytes[args.warmup:],
            "trained": trained, "scaffold_bytes": scaffold}


def _full_ddp(args, rank, world) -> dict:
    torch.manual_seed(0)
    widths = (FEATURES, *dr.PRESETS[args.preset])
    layers = []
    for a, b in itertools.pairwise(widths):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers, torch.nn.Linear(widths[-1], CLASSES))
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    sent = [0]

    def counting(state, bucket):
        sent[0] += bucket.buffer().numel() * bucket.buffer().element_size()
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        return allreduce_hook(state, bucket)

    ddp.register_comm_hook(None, counting)
    optimizer = torch.optim.AdamW(ddp.parameters(), lr=1e-3)
    x, y = _data(args.batch * (args.steps + args.warmup))
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    times, sizes = [], []
    for step in range(args.steps + args.warmup):
        rows = torch.arange(step * args.batch + rank, (step + 1) * args.batch, world)
        before, start = sent[0], time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(ddp(x[rows]), y[rows]).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
        sizes.append(sent[0] - before)
    return {"times": times[args.warmup:], "bytes": sizes[args.warmup:],
            "trained": sum(p.numel() for p in net.parameters())}


def worker(args) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    result = {"lottalora": _lottalora, "full": _full_ddp}[args.variant](args, rank, world)
    if rank == 0:
        Path(args.result).write_text(json.dumps(result))
    dist.destroy_process_group()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(variant: str, world: int, args) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.json"
        port, procs = _port(), []
        for rank in range(world):
            env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
                   "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
                   "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
            command = [sys.executable, __file__, "--worker", "--variant", variant,
                       "--result", str(result), "--preset", args.preset, "--steps",
                       str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch)]
            procs.append(subprocess.Popen(command, env=env))
        for proc in procs:
            if proc.wait(timeout=900) != 0:
                raise SystemExit(f"{variant} on {world} process(es) failed")
        return json.loads(result.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="medium", choices=sorted(dr.PRESETS))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    load = os.getloadavg()[0]
    results = {f"{v}/{w}": run(v, w, args) for v in ("lottalora", "full") for w in (1, 2)}
    wire = {v: statistics.median(results[f"{v}/2"]["bytes"]) for v in ("lottalora", "full")}
    print(f"preset {args.preset} (784 → {'-'.join(map(str, dr.PRESETS[args.preset]))} → 10), "
          f"global batch {args.batch}, median of {args.steps} steps, gloo, 1 thread per "
          f"process, {os.cpu_count()} CPUs (load average {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after); LottaLoRA scaffold (never sent): "
          f"{results['lottalora/2']['scaffold_bytes'] / 1024:.0f} KiB\n")
    print("| variant | trained parameters | bytes on the wire per step | vs DDP full "
          "| step, 1 process (ms) | step, 2 processes (ms) | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    names = {"lottalora": "LottaLoRA r=8, adapters only (dr.distributed)",
             "full": "full training, DistributedDataParallel"}
    for variant, name in names.items():
        one = statistics.median(results[f"{variant}/1"]["times"]) * 1e3
        two = statistics.median(results[f"{variant}/2"]["times"]) * 1e3
        print(f"| {name} | {results[f'{variant}/2']['trained']:,} | {wire[variant]:,.0f} | "
              f"{wire[variant] / wire['full']:.4f} | {one:.2f} | {two:.2f} | {one / two:.2f}× |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
