"""Training step time, peak training memory and artifact size: LottaLoRA r=8 vs full training.

Model: the paper's large preset (784 → 1024-512-256-128-64 → 10), ReLU, dropout
0.1, AdamW, batch 128, cross-entropy, on random MNIST-shaped data (the step cost
does not depend on the data). Variants, all timed in the same process in
alternating rounds:

* ``full (plain torch)``: ``nn.Sequential`` of ``nn.Linear`` layers, every weight trained;
* ``LottaLoRA r=8 (deepreservoir graph)``: ``dr.scaffold_mlp("large", r=8)`` run
  through the deepreservoir executor, as ``Model.fit`` trains it;
* ``LottaLoRA r=8 (dr.adapt on torch)``: the same ``nn.Sequential`` after
  ``dr.adapt(..., r=8, train=["head"])``.

Peak memory is measured in a fresh subprocess per variant: the resident-set
peak (``VmHWM``, reset through ``/proc/self/clear_refs`` once the model and
optimizer are built) over 20 training steps, minus the resident set before the
model was built (taken after two steps of a throwaway full model, so library
buffers are in the baseline). The model's own tensors count; the transient
buffers of seeded weight generation at build time do not. glibc's malloc runs
with a fixed mmap threshold (64 KiB) so that freed tensors leave the resident
set at once and it tracks live memory. On CUDA the figure is
``torch.cuda.max_memory_allocated`` instead.

Run:  python benchmarks/bench_lottalora_speed.py [--device cuda] [--out speed.json]
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
from pathlib import Path

import torch
from torch import nn

import deepreservoir as dr

HIDDEN = (1024, 512, 256, 128, 64)
D_IN, CLASSES, BATCH = 784, 10, 128
VARIANTS = ("full (plain torch)", "LottaLoRA r=8 (deepreservoir graph)",
            "LottaLoRA r=8 (dr.adapt on torch)")


def torch_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = D_IN
    for h in HIDDEN:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(0.1)]
        width = h
    layers.append(nn.Linear(width, CLASSES))
    return nn.Sequential(*layers)


def make(variant: str, device: str):
    if variant == VARIANTS[0]:
        model = torch_mlp().to(device)
        return model, lambda x: model(x)
    if variant == VARIANTS[1]:
        model = dr.scaffold_mlp("large", CLASSES, r=8, dropout=0.1, seed=0).to(device)
        model.run(torch.zeros(2, D_IN, device=device))
        model.train()
        return model, lambda x: model(x.unsqueeze(1))[:, 0]
    model = dr.adapt(torch_mlp(), r=8, seed=0, train=[str(3 * len(HIDDEN))]).to(device)
    return model, lambda x: model(x)


def step_fn(variant: str, device: str):
    model, forward = make(variant, device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, D_IN, generator=generator).to(device)
    y = torch.randint(0, CLASSES, (BATCH,), generator=generator).to(device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(forward(x), y)
        loss.backward()
        optimizer.step()

    return model, step


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(device: str, rounds: int, steps: int) -> dict[str, float]:
    runners = {v: step_fn(v, device)[1] for v in VARIANTS}
    for run in runners.values():
        for _ in range(5):
            run()
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for variant, run in runners.items():
            _sync(device)
            began = time.perf_counter()
            for _ in range(steps):
                run()
            _sync(device)
            samples[variant].append((time.perf_counter() - began) / steps)
    return {v: statistics.median(s) for v, s in samples.items()}


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_memory(variant: str, device: str) -> int:
    """Peak bytes used by building and training one variant (run in a fresh process)."""
    # Warm the libraries (GEMM packing buffers, autograd, AdamW kernels) with a throwaway
    # model of the same shapes, so the baseline holds everything that is not the variant's.
    _, warm = step_fn(VARIANTS[0], device)
    for _ in range(2):
        warm()
    del warm
    gc.collect()
    base = torch.cuda.memory_allocated() if device.startswith("cuda") else _status("VmRSS")
    _model, step = step_fn(variant, device)
    gc.collect()
    # The peak counts from here: the model's resident tensors plus everything training
    # adds (gradients, optimizer state, activations), but not the transient host buffers
    # of seeded weight generation at build time.
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")
    for _ in range(20):
        step()
    _sync(device)
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() - base
    return _status("VmHWM") - base


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--memory", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory:
        print(measure_memory(args.memory, args.device))
        return
    times = time_steps(args.device, args.rounds, args.steps)
    memory = {}
    for variant in VARIANTS:
        command = [sys.executable, __file__, "--device", args.device, "--memory", variant]
        if args.threads:
            command += ["--threads", str(args.threads)]
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536",
               "MALLOC_TRIM_THRESHOLD_": "131072"}
        out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        memory[variant] = int(out.stdout.strip().splitlines()[-1])
    sizes = artifact_sizes()
    full = VARIANTS[0]
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print("| variant | step time (ms) | × full | peak training memory (MiB) | × full |")
    print("|---|---|---|---|---|")
    for variant in VARIANTS:
        print(f"| {variant} | {1e3 * times[variant]:.2f} | {times[variant] / times[full]:.2f} | "
              f"{memory[variant] / 2**20:.1f} | {memory[variant] / memory[full]:.2f} |")
    ratio = sizes["lottalora_artifact_bytes"] / sizes["dense_checkpoint_bytes"]
    print(f"artifact: {sizes['lottalora_artifact_bytes']:,} bytes vs dense checkpoint "
          f"{sizes['dense_checkpoint_bytes']:,} bytes ({100 * ratio:.2f} %); trainable "
          f"{sizes['trainable']:,} of {sizes['dense_params']:,}")
    if args.out is not None:
        args.out.write_text(json.dumps({"device": args.device, "threads": torch.get_num_threads(),
                                        "torch": torch.__version__, "step_seconds": times,
                                        "peak_bytes": memory, **sizes}, indent=1))


if __name__ == "__main__":
    main()
