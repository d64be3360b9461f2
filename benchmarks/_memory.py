"""What the memory benchmarks share: the live-tensor peak of one training step."""

from __future__ import annotations

import gc
from collections.abc import Callable


def step_tensor_peak(run, live_bytes: Callable[[object], int]) -> dict[str, int]:
    """Live tensor bytes before and at the peak of one step of ``run`` on the CPU.

    ``run`` has ``step()`` and ``optimizer``; two warm-up steps fill the optimizer
    state, then one step is profiled and its CPU allocations and frees are
    replayed in order: the peak is the baseline (``live_bytes(run)``: the
    model, optimizer state and batch) plus the largest running sum.

    Returns
    -------
    dict
        ``{"baseline": bytes, "peak": bytes}``.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    for _ in range(2):
        run.step()
    run.optimizer.zero_grad(set_to_none=True)
    gc.collect()
    baseline = live_bytes(run)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run.step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
              and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())
    running = extra = 0
    for event in events:
        running += event.nbytes()
        extra = max(extra, running)
    return {"baseline": baseline, "peak": baseline + extra}
