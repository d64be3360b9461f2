"""Training step time, peak training memory and artifact size: LottaLoRA r=8 vs full training.

Model: the paper's large preset (784 → 1024-512-256-128-64 → 10), ReLU, dropout
0.1 (``--dropout``), AdamW (torch's fused kernel on both sides; ``--no-fused`` for the
for-each one), batch 128, cross-entropy, on random MNIST-shaped data (the step cost
does not depend on the data). Variants, all measured in the same run:

* ``full (plain torch)``: ``nn.Sequential`` of ``nn.Linear`` layers, every weight trained;
* ``LottaLoRA r=8 (deepreservoir graph)``: ``dr.scaffold_mlp("large", r=8)`` run
  through the deepreservoir executor, as ``Model.fit`` trains it;
* ``LottaLoRA r=8 (dr.adapt on torch)``: the same ``nn.Sequential`` after
  ``dr.adapt(..., r=8, train=["head"])``.

Step time
    The variants take turns: each round runs ``--steps`` steps of every variant
    in a row, and a variant's figure is the median over ``--rounds`` rounds of
    its mean step time. Two clocks are read: wall time (``perf_counter``) and
    the process's CPU time (``process_time``). On a shared, loaded CPU the wall
    clock also counts the time the process waits for a core; with one torch
    thread the CPU time counts only the work, so its ratio is the steadier one.

Peak training memory, two independent measurements, each variant in a fresh process
    1. *Tensor peak* (exact, torch allocations only): after two warm-up steps
       (so the optimizer state exists) the gradients are released, the bytes of
       every live tensor the step can touch are summed (parameters, buffers,
       optimizer state, the batch; each storage once), and one training step
       runs under ``torch.profiler`` with ``profile_memory=True``. The running
       sum of its allocation and free events (in time order) gives the extra
       bytes at every moment; the peak is the baseline plus its maximum. This
       counts the frozen scaffold, parameters, gradients, optimizer state,
       activations saved for backward and temporaries, and nothing else.
    2. *Resident-set peak* (whole process): the peak resident set (``VmHWM``,
       reset through ``/proc/self/clear_refs`` once the model and optimizer are
       built) over 20 training steps, minus the resident set before the model was
       built (taken after two steps of a throwaway full model, so library
       buffers are in the baseline). glibc's malloc runs with a fixed mmap
       threshold (64 KiB) so that freed tensors leave the resident set at once.
       This includes allocator and library overheads that (1) does not see.
    On CUDA, ``torch.cuda.max_memory_allocated`` replaces both.

Artifact size
    The LottaLoRA artifact directory (``spec.json`` + ``tensors.safetensors``)
    against a safetensors file of the fully trained model's ``state_dict``.

Run:  python benchmarks/bench_lottalora_speed.py --threads 1 [--device cuda] [--out speed.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from _memory import step_tensor_peak
from torch import nn

import deepreservoir as dr

HIDDEN = (1024, 512, 256, 128, 64)
D_IN, CLASSES, BATCH = 784, 10, 128
#: Dropout after every hidden layer (the paper's 0.1; ``--dropout`` changes it).
DROPOUT = [0.1]
#: ``torch.optim.AdamW(fused=...)`` for every variant (``--no-fused`` turns it off).
FUSED = [True]
VARIANTS = ("full (plain torch)", "LottaLoRA r=8 (deepreservoir graph)",
            "LottaLoRA r=8 (dr.adapt on torch)")
TARGETS = {"step time": 0.8, "peak memory": 0.6, "artifact": 0.05}


def torch_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = D_IN
    for h in HIDDEN:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(DROPOUT[0])]
        width = h
    layers.append(nn.Linear(width, CLASSES))
    return nn.Sequential(*layers)


def make(variant: str, device: str):
    if variant == VARIANTS[0]:
        model = torch_mlp().to(device)
        return model, lambda x: model(x)
    if variant == VARIANTS[1]:
        model = dr.scaffold_mlp("large", CLASSES, r=8, dropout=DROPOUT[0], seed=0).to(device)
        model.run(torch.zeros(2, D_IN, device=device))
        model.train()
        return model, lambda x: model(x.unsqueeze(1))[:, 0]
    model = dr.adapt(torch_mlp(), r=8, seed=0, train=[str(3 * len(HIDDEN))]).to(device)
    return model, lambda x: model(x)


@dataclass
class Trainer:
    model: nn.Module
    optimizer: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor
    forward: object

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(self.forward(self.x), self.y)
        loss.backward()
        self.optimizer.step()


def trainer(variant: str, device: str) -> Trainer:
    model, forward = make(variant, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2, fused=FUSED[0])
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, D_IN, generator=generator).to(device)
    y = torch.randint(0, CLASSES, (BATCH,), generator=generator).to(device)
    return Trainer(model, optimizer, x, y, forward)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(device: str, rounds: int, steps: int) -> dict[str, dict[str, float]]:
    """Median per-step wall and CPU seconds of every variant, in alternating rounds."""
    runners = {v: trainer(v, device) for v in VARIANTS}
    for run in runners.values():
        for _ in range(5):
            run.step()
    wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for variant, run in runners.items():
            _sync(device)
            began, began_cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                run.step()
            _sync(device)
            wall[variant].append((time.perf_counter() - began) / steps)
            cpu[variant].append((time.process_time() - began_cpu) / steps)
    return {v: {"wall": statistics.median(wall[v]), "cpu": statistics.median(cpu[v])}
            for v in VARIANTS}


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _live_bytes(run: Trainer) -> int:
    """Bytes of the distinct storages of parameters, buffers, optimizer state and batch."""
    tensors = [*run.model.parameters(), *run.model.buffers(), run.x, run.y]
    for state in run.optimizer.state.values():
        tensors.extend(v for v in state.values() if isinstance(v, torch.Tensor))
    storages = {}
    for tensor in tensors:
        if tensor is None or tensor.device.type == "meta":
            continue
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def tensor_peak(variant: str, device: str) -> dict[str, int]:
    """Peak bytes of live torch tensors during one training step (see the module doc)."""
    return step_tensor_peak(trainer(variant, device), _live_bytes)


def resident_peak(variant: str, device: str) -> int:
    """Peak bytes used by building and training one variant (run in a fresh process)."""
    # Warm the libraries (GEMM packing buffers, autograd, AdamW kernels) with a throwaway
    # model of the same shapes, so the baseline holds everything that is not the variant's.
    warm = trainer(VARIANTS[0], device)
    for _ in range(2):
        warm.step()
    del warm
    gc.collect()
    base = torch.cuda.memory_allocated() if device.startswith("cuda") else _status("VmRSS")
    run = trainer(variant, device)
    gc.collect()
    # The peak counts from here: the model's resident tensors plus everything training
    # adds (gradients, optimizer state, activations), but not the transient host buffers
    # of seeded weight generation at build time.
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")
    for _ in range(20):
        run.step()
    _sync(device)
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() - base
    return _status("VmHWM") - base


def analytic_bytes(variant: str) -> dict[str, int]:
    """Bytes of parameters, frozen buffers, gradients and AdamW state (4 bytes each)."""
    run = trainer(variant, "cpu")
    trained = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
    frozen = sum(b.numel() for b in run.model.buffers()) + sum(
        p.numel() for p in run.model.parameters() if not p.requires_grad)
    return {"parameters": 4 * trained, "frozen": 4 * frozen, "gradients": 4 * trained,
            "adamw_state": 8 * trained, "total": 4 * (4 * trained + frozen)}


def artifact_sizes() -> dict[str, int]:
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as folder:
        lotta = dr.scaffold_mlp("large", CLASSES, r=8, seed=0)
        lotta.run(torch.zeros(2, D_IN))
        path = lotta.save(Path(folder) / "lotta.dr")
        stored = sum(p.stat().st_size for p in path.iterdir())
        dense_path = Path(folder) / "dense.safetensors"
        save_file({k: v.contiguous() for k, v in torch_mlp().state_dict().items()},
                  str(dense_path))
        report = lotta.footprint()
        return {"lottalora_artifact_bytes": stored, "dense_checkpoint_bytes":
                dense_path.stat().st_size, "trainable": report.trainable,
                "dense_params": sum(p.numel() for p in torch_mlp().parameters())}


def _child(args: argparse.Namespace, flag: str, variant: str) -> str:
    command = [sys.executable, __file__, "--device", args.device, "--dropout",
               str(args.dropout), flag, variant, "--fused" if FUSED[0] else "--no-fused"]
    if args.threads:
        command += ["--threads", str(args.threads)]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072"}
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return out.stdout.strip().splitlines()[-1]


def _verdict(ratio: float, target: float) -> str:
    return f"met (≤ {target:g})" if ratio <= target else f"missed (> {target:g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--fused", action=argparse.BooleanOptionalAction, default=True,
                        help="AdamW(fused=True) on every variant (default)")
    parser.add_argument("--memory", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--tensors", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    DROPOUT[0] = args.dropout
    FUSED[0] = args.fused
    if args.memory:
        print(resident_peak(args.memory, args.device))
        return
    if args.tensors:
        print(json.dumps(tensor_peak(args.tensors, args.device)))
        return
    times = time_steps(args.device, args.rounds, args.steps)
    resident = {v: int(_child(args, "--memory", v)) for v in VARIANTS}
    tensors = ({v: json.loads(_child(args, "--tensors", v)) for v in VARIANTS}
               if args.device == "cpu" else {})
    analytic = {v: analytic_bytes(v) for v in VARIANTS}
    sizes = artifact_sizes()
    full = VARIANTS[0]
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{args.rounds} rounds × {args.steps} steps, batch {BATCH}, dropout {args.dropout:g}, "
          f"AdamW fused={args.fused}")
    print("| variant | step wall (ms) | × full | step CPU (ms) | × full | tensor peak (MiB) "
          "| × full | resident peak (MiB) | × full | analytic params+grads+AdamW+frozen (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for v in VARIANTS:
        t, f = times[v], times[full]
        tensor = tensors.get(v, {}).get("peak")
        tensor_cells = (f"{tensor / 2**20:.1f} | {tensor / tensors[full]['peak']:.2f}"
                        if tensor else "n/a | n/a")
        print(f"| {v} | {1e3 * t['wall']:.2f} | {t['wall'] / f['wall']:.2f} | "
              f"{1e3 * t['cpu']:.2f} | {t['cpu'] / f['cpu']:.2f} | {tensor_cells} | "
              f"{resident[v] / 2**20:.1f} | {resident[v] / resident[full]:.2f} | "
              f"{analytic[v]['total'] / 2**20:.1f} |")
    ratio = sizes["lottalora_artifact_bytes"] / sizes["dense_checkpoint_bytes"]
    print(f"artifact: {sizes['lottalora_artifact_bytes']:,} bytes vs dense checkpoint "
          f"{sizes['dense_checkpoint_bytes']:,} bytes ({100 * ratio:.2f} %); trainable "
          f"{sizes['trainable']:,} of {sizes['dense_params']:,}")
    graph = VARIANTS[1]
    print("targets (deepreservoir graph vs full):")
    print(f"  step time (CPU clock) {times[graph]['cpu'] / times[full]['cpu']:.2f}: "
          f"{_verdict(times[graph]['cpu'] / times[full]['cpu'], TARGETS['step time'])}")
    if tensors:
        memory_ratio = tensors[graph]["peak"] / tensors[full]["peak"]
        print(f"  peak memory (tensor peak) {memory_ratio:.2f}: "
              f"{_verdict(memory_ratio, TARGETS['peak memory'])}")
    print(f"  artifact {ratio:.4f}: {_verdict(ratio, TARGETS['artifact'])}")
    if args.out is not None:
        args.out.write_text(json.dumps({
            "device": args.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "dropout": args.dropout, "fused": args.fused,
            "rounds": args.rounds, "steps": args.steps, "step_seconds": times,
            "resident_peak_bytes": resident, "tensor_peak_bytes": tensors,
            "analytic_bytes": analytic, **sizes}, indent=1))


if __name__ == "__main__":
    main()
