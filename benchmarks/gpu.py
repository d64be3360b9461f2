"""The GPU path, measured: reservoir throughput, training steps, regeneration, bit identity.

One command, with a hard time limit (``--budget``, 450 s by default; under 8 minutes in
all). Measurements run in order of importance; before each one the deadline is checked,
and a ``SIGALRM`` at the deadline interrupts one that runs over (Python code only: a
single LAPACK call finishes first). What did not fit is listed under ``skipped``.

1. **Bit identity, CPU = device**, per weight family of :data:`deepreservoir.families.FAMILIES`:
   a :class:`~deepreservoir.Reservoir` and a :class:`~deepreservoir.Scaffold` built on
   each device (``frozen_tensors()`` compared bit for bit), and
   ``deepreservoir.seeding_torch.draw_rows`` on each device when that module exists.
2. **Training step** of the LottaLoRA large preset (784 → 1024-512-256-128-64 → 10),
   batch 128, cross-entropy, ``torch.optim.AdamW(fused=True)`` on both sides: full
   training (plain torch MLP of the same widths) against ``dr.scaffold_mlp("large",
   r=8)`` run through the executor; median step time and ratio. Also one epoch of
   ``Model.fit`` (the Trainer's loop) per step.
3. **Scaffold regeneration** of the large preset's weights (``--quick``: tiny) on the device:
   ``seeding_torch.draw_rows`` against ``torch.randn`` of the same sizes and against
   ``safetensors.torch.load_file(path, device=...)`` of the same bytes; and the node
   path (building the preset on the device).
4. **Reservoir throughput**, steps × series per second, for B in {1, 32, 1024, 8192} and
   N in {1000, 10000} (10 % density, float32), over T steps of random input, and kernel
   launches per step (``torch.profiler``) for one configuration.

Timing: ``torch.cuda.synchronize`` around CUDA events on CUDA, ``perf_counter``
otherwise; the median of ``--reps`` repetitions after a warm-up. On CPU torch uses one
thread (``--threads``).

Run:  python benchmarks/gpu.py [--device cuda|cpu] [--out DIR] [--quick] [--budget S]
Writes ``gpu.json`` and ``gpu.md`` into ``--out`` (default: the current folder).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import deepreservoir as dr

HIDDEN = (1024, 512, 256, 128, 64)
D_IN, CLASSES, BATCH = 784, 10, 128
FULL = {"B": (1, 32, 1024, 8192), "N": (1000, 10000), "T": 100}
QUICK = {"B": (1, 32), "N": (50, 100), "T": 10}


class Deadline(Exception):
    """The overall time limit was reached."""


class Clock:
    """The deadline of the whole run and the list of what was skipped."""

    def __init__(self, budget: float) -> None:
        self.start = time.monotonic()
        self.budget = budget
        self.skipped: list[str] = []

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def allows(self, what: str, needs: float) -> bool:
        """Whether ``needs`` seconds are left for ``what``; records a skip otherwise."""
        if self.left() >= needs:
            return True
        self.skipped.append(f"{what}: skipped, {self.left():.0f} s left of the "
                            f"{self.budget:.0f} s budget (needs ~{needs:.0f} s)")
        return False


def _alarm(signum, frame):
    raise Deadline


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], Any], device: torch.device, reps: int,
                   warmup: int = 2) -> float:
    """Median wall seconds of ``fn()`` (CUDA events on CUDA) after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            began, ended = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                enable_timing=True)
            began.record()
            fn()
            ended.record()
            ended.synchronize()
            times.append(began.elapsed_time(ended) / 1e3)
        else:
            began = time.perf_counter()
            fn()
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def seeding_torch():
    """``deepreservoir.seeding_torch``, or ``None`` while it does not exist."""
    try:
        from deepreservoir import seeding_torch as module
    except ImportError:
        return None
    return module


def _draw(module, family: str, shape: tuple[int, int], device) -> torch.Tensor:
    """``draw_rows`` of one weight of shape (out, in) under a fixed key."""
    from deepreservoir.seeding import SeedKey

    return module.draw_rows(family, SeedKey(7, "bench"), "W", shape, fan_in=shape[1],
                            fan_out=shape[0], device=device, dtype=torch.float32)


# ------------------------------------------------------------------ identity
def _built_on(node, device: torch.device, x: torch.Tensor) -> dict[str, torch.Tensor]:
    node = node.to(device)
    node.run(x.to(device))
    return {k: v.detach().cpu() for k, v in node.frozen_tensors().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def identity(device: torch.device) -> dict[str, dict[str, Any]]:
    """Per family: CPU and device frozen tensors bit-identical (node path, draw_rows)."""
    module = seeding_torch()
    cpu = torch.device("cpu")
    rows = {}
    series = torch.linspace(-1, 1, 10).reshape(2, 5, 1)
    samples = torch.linspace(-1, 1, 32).reshape(2, 16)
    for family in sorted(dr.families.FAMILIES):
        row: dict[str, Any] = {}
        for kind, make, x in (
                ("reservoir", lambda f=family: dr.Reservoir(48, W=f, sr=0.9, seed=11), series),
                ("scaffold", lambda f=family: dr.Scaffold(16, family=f, seed=11), samples)):
            try:
                row[kind] = _same(_built_on(make(), cpu, x), _built_on(make(), device, x))
            except Exception as error:  # recorded, never a silent pass
                row[kind] = f"error: {type(error).__name__}: {error}"[:200]
        if module is None:
            row["draw_rows"] = "not available"
        else:
            try:
                row["draw_rows"] = torch.equal(_draw(module, family, (24, 16), cpu),
                                               _draw(module, family, (24, 16), device).cpu())
            except dr.errors.ParameterError as error:
                row["draw_rows"] = ("n/a (materialised family)" if "elementwise" in str(error)
                                    else f"error: {error}"[:200])
            except Exception as error:
                row["draw_rows"] = f"error: {type(error).__name__}: {error}"[:200]
        rows[family] = row
    return rows


# ------------------------------------------------------------------ training
def torch_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    width = D_IN
    for h in HIDDEN:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, CLASSES))
    return nn.Sequential(*layers)


def training(device: torch.device, reps: int, steps: int) -> dict[str, Any]:
    """Median step seconds: full training vs LottaLoRA r=8, fused AdamW both sides."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, D_IN, generator=generator).to(device)
    y = torch.randint(0, CLASSES, (BATCH,), generator=generator).to(device)
    full = torch_mlp().to(device)
    lotta = dr.scaffold_mlp("large", CLASSES, r=8, seed=0).to(device)
    lotta.run(torch.zeros(2, D_IN, device=device))
    lotta.train()
    sides = {"full": (full, lambda: full(x)),
             "lottalora_r8": (lotta, lambda: lotta(x.unsqueeze(1))[:, 0])}
    result: dict[str, Any] = {"batch": BATCH, "preset": "large", "optimizer": "AdamW(fused=True)"}
    for name, (model, forward) in sides.items():
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2, fused=True)

        def step(optimizer=optimizer, forward=forward):
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(forward(), y).backward()
                optimizer.step()

        result[f"{name}_step_ms"] = 1e3 * median_seconds(step, device, reps) / steps
        result[f"{name}_trainable"] = sum(p.numel() for p in params)
    result["ratio_lottalora_over_full"] = result["lottalora_r8_step_ms"] / result["full_step_ms"]
    # the Trainer's loop (Model.fit): one epoch of `batches` batches, per step
    batches = max(steps, 2)
    xs = torch.randn(BATCH * batches, D_IN, generator=generator)
    ys = torch.randint(0, CLASSES, (BATCH * batches,), generator=generator)
    fit = dr.scaffold_mlp("large", CLASSES, r=8, seed=0)
    options = dict(epochs=1, batch_size=BATCH, loss="cross_entropy", verbose=0, device=device)
    fit.fit(xs[:BATCH], ys[:BATCH], **options)
    began = time.perf_counter()
    fit.fit(xs, ys, **options)
    synchronize(device)
    result["model_fit_epoch_ms_per_step"] = 1e3 * (time.perf_counter() - began) / batches
    result["model_fit_note"] = ("one epoch of Model.fit, per batch: data moved once, losses "
                                "and checks read once per epoch, validation none")
    return result


# -------------------------------------------------------------- regeneration
def regeneration(device: torch.device, reps: int, quick: bool) -> list[dict[str, Any]]:
    """The large preset's scaffold weights (``quick``: the tiny one's) made on the device,
    four ways."""
    from safetensors.torch import load_file, save_file

    preset = "tiny" if quick else "large"
    widths = dr.nodes.scaffold.PRESETS[preset]
    shapes = list(zip(widths, (D_IN, *widths[:-1]), strict=True))
    count = sum(o * i for o, i in shapes)
    rows = []

    def row(method: str, seconds: float | None, note: str = "") -> None:
        entry = {"method": method, "elements": count, "note": note,
                 "ms": None if seconds is None else 1e3 * seconds}
        if seconds:
            entry["GB_per_s"] = 4 * count / seconds / 1e9
        entry["preset"] = preset
        rows.append(entry)

    module = seeding_torch()
    if module is None:
        row("seeding_torch.draw_rows", None, "not available (deepreservoir.seeding_torch "
            "does not exist yet)")
    else:
        try:
            row("seeding_torch.draw_rows", median_seconds(
                lambda: [_draw(module, "normal", s, device) for s in shapes], device, reps),
                "float32, family 'normal'")
        except Exception as error:
            row("seeding_torch.draw_rows", None, f"error: {type(error).__name__}: {error}"[:200])
    row("torch.randn", median_seconds(
        lambda: [torch.randn(s, device=device) for s in shapes], device, reps),
        "float32, not seeded per tensor")
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "scaffold.safetensors")
        save_file({f"W{i}": torch.randn(s) for i, s in enumerate(shapes)}, path)
        target = str(device) if device.type == "cpu" else f"cuda:{device.index or 0}"
        row("safetensors load_file", median_seconds(
            lambda: load_file(path, device=target), device, reps),
            "the same bytes from a file (page cache warm)")

    def node_path():
        model = dr.scaffold_mlp(preset, CLASSES, r=8, seed=0).to(device)
        model.run(torch.zeros(2, D_IN, device=device))

    row(f"node path: scaffold_mlp({preset!r}) built on the device",
        median_seconds(node_path, device, max(1, reps // 2), warmup=1),
        "includes the head and the adapters")
    return rows


# ----------------------------------------------------------------- reservoir
def launches_per_step(run: Callable[[], Any], device: torch.device, steps: int) -> float:
    """Kernels (CUDA) or top-level aten operators (CPU) per time step, by torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA]
                                           if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        run()
        synchronize(device)
    if device.type == "cuda":
        count = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    else:
        count = sum(1 for e in prof.events() if e.name.startswith("aten::")
                    and e.cpu_parent is None)
    return count / steps


def reservoir(device: torch.device, sizes: dict[str, Any], reps: int,
              clock: Clock) -> list[dict[str, Any]]:
    rows = []
    steps = sizes["T"]
    for n in sizes["N"]:
        if not clock.allows(f"reservoir N={n}", 20 if n <= 1000 else 90):
            continue
        began = time.perf_counter()
        node = dr.Reservoir(n, sr=0.9, rc_connectivity=0.1, seed=1, dtype=torch.float32)
        node = node.to(device)
        with torch.no_grad():
            node.run(torch.zeros(1, 2, 1, device=device))
        synchronize(device)
        build = time.perf_counter() - began
        for b in sizes["B"]:
            what = f"reservoir N={n} B={b}"
            if not clock.allows(what, 10):
                continue
            try:
                x = torch.randn(b, steps, 1, generator=torch.Generator().manual_seed(b))
                x = x.to(device)

                def run(node=node, x=x):
                    with torch.no_grad():
                        node.run(x)

                seconds = median_seconds(run, device, reps, warmup=1)
                entry = {"N": n, "B": b, "T": steps, "dtype": "float32", "density": 0.1,
                         "seconds": seconds, "steps_series_per_s": b * steps / seconds,
                         "build_seconds": build}
                if b == sizes["B"][-1]:
                    entry["launches_per_step"] = launches_per_step(run, device, steps)
                rows.append(entry)
            except torch.OutOfMemoryError:
                rows.append({"N": n, "B": b, "T": steps, "error": "out of memory"})
                torch.cuda.empty_cache()
        del node
    return rows


# -------------------------------------------------------------------- report
def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [f"# GPU path: {meta['device_name']}", "",
             f"torch {meta['torch']}, deepreservoir {meta['deepreservoir']}, {meta['date']}, "
             f"device `{meta['device']}`{' (quick)' if meta['quick'] else ''}, "
             f"{meta['elapsed_s']:.0f} s of a {meta['budget_s']:.0f} s budget", ""]
    if report.get("reservoir"):
        lines += ["## Reservoir throughput (float32, 10 % density)", "",
                  "| N | B | T | steps·series/s | ms per run | kernels/step | build s |",
                  "|---|---|---|---|---|---|---|"]
        for r in report["reservoir"]:
            if "error" in r:
                lines.append(f"| {r['N']} | {r['B']} | {r['T']} | {r['error']} | | | |")
                continue
            launches = r.get("launches_per_step")
            lines.append(f"| {r['N']} | {r['B']} | {r['T']} | {r['steps_series_per_s']:.3g} | "
                         f"{1e3 * r['seconds']:.2f} | "
                         f"{'' if launches is None else f'{launches:.1f}'} | "
                         f"{r['build_seconds']:.1f} |")
        lines.append("")
    t = report.get("training")
    if t:
        lines += ["## Large preset training step (batch 128, AdamW fused)", "",
                  "| full (ms) | LottaLoRA r=8 (ms) | ratio | Model.fit per step (ms) |",
                  "|---|---|---|---|",
                  f"| {t['full_step_ms']:.2f} | {t['lottalora_r8_step_ms']:.2f} | "
                  f"{t['ratio_lottalora_over_full']:.2f} | "
                  f"{t['model_fit_epoch_ms_per_step']:.2f} |", ""]
    if report.get("regeneration"):
        lines += [f"## Scaffold regeneration ({report['regeneration'][0]['preset']} preset, "
                  "float32)", "",
                  "| method | ms | GB/s | note |", "|---|---|---|---|"]
        for r in report["regeneration"]:
            ms = "not available" if r["ms"] is None else f"{r['ms']:.2f}"
            gbps = f"{r['GB_per_s']:.3g}" if "GB_per_s" in r else ""
            lines.append(f"| {r['method']} | {ms} | {gbps} | {r['note']} |")
        lines.append("")
    if report.get("identity"):
        lines += ["## CPU = device, bit for bit", "", "| family | Reservoir | Scaffold | "
                  "draw_rows |", "|---|---|---|---|"]
        for family, row in report["identity"].items():
            lines.append(f"| {family} | {row['reservoir']} | {row['scaffold']} | "
                         f"{row['draw_rows']} |")
        lines.append("")
    if report["skipped"]:
        lines += ["## Skipped", ""] + [f"- {s}" for s in report["skipped"]] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="cuda, cuda:N or cpu (default: cuda when available)")
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--budget", type=float, default=450.0,
                        help="seconds for the whole run (default 450)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine")
    torch.set_num_threads(args.threads)
    clock = Clock(args.budget)
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine())
    meta = {"device": str(device), "device_name": name, "torch": torch.__version__,
            "deepreservoir": dr.__version__, "python": sys.version.split()[0],
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "quick": args.quick, "threads": torch.get_num_threads(), "budget_s": args.budget,
            "seeding_torch": seeding_torch() is not None}
    print(f"device {device} ({name}), torch {meta['torch']}, {meta['date']}", flush=True)
    report: dict[str, Any] = {"meta": meta, "identity": {}, "training": {},
                              "regeneration": [], "reservoir": [], "skipped": clock.skipped}
    reps = 2 if args.quick else 7
    plan = [("identity", 10 if args.quick else 30, lambda: identity(device)),
            ("training", 10 if args.quick else 30,
             lambda: training(device, reps, 1 if args.quick else 10)),
            ("regeneration", 10 if args.quick else 30,
             lambda: regeneration(device, reps, args.quick)),
            ("reservoir", 5, lambda: reservoir(device, QUICK if args.quick else FULL, reps,
                                               clock))]
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(max(1, int(clock.left())))
    try:
        for key, needs, measure in plan:
            if not clock.allows(key, needs):
                continue
            try:
                report[key] = measure()
            except Deadline:
                clock.skipped.append(f"{key}: stopped at the deadline ({args.budget:.0f} s)")
                break
            print(f"{key}: done at {time.monotonic() - clock.start:.1f} s", flush=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        meta["elapsed_s"] = time.monotonic() - clock.start
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu.json").write_text(json.dumps(report, indent=1, default=str))
        text = markdown(report)
        (args.out / "gpu.md").write_text(text)
        print(text)
    return report


if __name__ == "__main__":
    main()
