"""What the side-by-side benchmarks against reservoirpy share: one thread, and the record
of the machine and its load next to each result."""

from __future__ import annotations

import datetime
import os
import platform

import numpy as np
import reservoirpy
import torch

import deepreservoir as dr
from deepreservoir.threads import set_num_threads


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def machine_info() -> dict:
    """Date, CPU model, library versions, thread count, malloc settings and load."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    malloc = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")}
    return {"date": datetime.date.today().isoformat(), "cpu": cpu, "nproc": os.cpu_count(),
            "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "reservoirpy": reservoirpy.__version__,
            "deepreservoir": dr.__version__, "threads": 1, "malloc_env": malloc or "(unset)",
            "load": load_average()}


def one_thread():
    """torch, deepreservoir's loops and BLAS on one thread (threadpoolctl if installed)."""
    torch.set_num_threads(1)
    set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - the environment variables still apply
        return None
    return threadpool_limits(limits=1)
