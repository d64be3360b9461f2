"""Shared helpers of studies 1–4 (rank_sweep, families, scaffold_resampling, ablations).

Not a study (the leading underscore): a study loads it with
``deepreservoir.studies.load_helper("_common", Path(__file__).parent)``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from deepreservoir.sweep import TrainConfig, load_dataset, train_classifier

__all__ = [
    "PAPER_MNIST_MEDIUM",
    "PAPER_MNIST_MEDIUM_FULL",
    "Timer",
    "bar",
    "config_attrs",
    "data",
    "figure",
    "finish",
    "md_table",
    "netcdf_attrs",
    "progress_bar",
    "train",
    "write_outputs",
]

#: The paper's MNIST test accuracy (%), medium preset, α = 1 (REFERENCE.md).
PAPER_MNIST_MEDIUM = {1: 89.33, 2: 92.73, 4: 95.44, 8: 96.80, 16: 97.53, 32: 97.80}
PAPER_MNIST_MEDIUM_FULL = 98.38

_DATA: dict[tuple[str, int | None], dict[str, np.ndarray]] = {}


def data(name: str, num_samples: int | None = None) -> dict[str, np.ndarray]:
    """A data set by name (cached in this process: mnist1d takes seconds to generate)."""
    key = (name, num_samples)
    if key not in _DATA:
        _DATA[key] = load_dataset(name, num_samples=num_samples)
    return _DATA[key]


def train(dataset: dict[str, np.ndarray], config: TrainConfig, *, progress_bar=None,
          **options: Any) -> tuple[Any, dict[str, Any]]:
    """:func:`deepreservoir.sweep.train_classifier`, ticking ``progress_bar`` once per epoch."""
    callbacks = []
    if progress_bar is not None:
        def tick(epoch, logs, model):
            progress_bar.update(1)
            if "val_accuracy" in logs:
                progress_bar.set_postfix(val_acc=f"{logs['val_accuracy']:.3f}")
        callbacks.append(tick)
    return train_classifier(dataset, config=config, callbacks=callbacks, **options)


def bar(total: int, desc: str, progress: bool):
    """A tqdm bar counting epochs (disabled when ``progress`` is false)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", disable=not progress)


class Timer:
    """Wall and CPU time since construction, in seconds."""

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.cpu_began = time.process_time()

    @property
    def seconds(self) -> float:
        """Wall time."""
        return time.perf_counter() - self.began

    @property
    def cpu_seconds(self) -> float:
        """CPU time of this process (all threads)."""
        return time.process_time() - self.cpu_began

    def text(self) -> str:
        """``"615 s wall, 65 s CPU (load average 14.3 on 2 cores)"``."""
        import os

        try:
            load = f", load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        except OSError:  # pragma: no cover - platforms without getloadavg
            load = ""
        return f"{self.seconds:.0f} s wall, {self.cpu_seconds:.0f} s CPU{load}"


def config_attrs(name: str, quick: bool, seed: int, timer: Timer, **config: Any
                 ) -> dict[str, Any]:
    """netCDF-safe attrs recording a study's configuration and run time."""
    import deepreservoir as dr

    attrs: dict[str, Any] = {"study": name, "quick": int(quick), "seed": int(seed),
                             "run_time_seconds": float(timer.seconds),
                             "cpu_time_seconds": float(timer.cpu_seconds),
                             "run_time": timer.text(),
                             "deepreservoir_version": dr.__version__}
    for key, value in config.items():
        if isinstance(value, TrainConfig):
            value = asdict(value)
        if isinstance(value, (dict, list, tuple)) or value is None:
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = int(value)
        attrs[key] = value
    return attrs


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def figure(ncols: int, width: float = 5.0, height: float = 4.0):
    """A matplotlib figure with ``ncols`` axes (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def write_outputs(out_dir: Path, name: str, ds: xr.Dataset, fig, summary: str) -> list[Path]:
    """Write ``<name>.nc``, ``<name>.png`` and ``<name>.md``; return their paths."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.{suffix}" for suffix in ("nc", "png", "md")]
    ds.to_netcdf(paths[0])
    fig.tight_layout()
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    paths[2].write_text(summary if summary.endswith("\n") else summary + "\n")
    return paths


def netcdf_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes netCDF can store: bools as ints, None as "none", containers as JSON."""
    safe: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, bool | np.bool_):
            safe[key] = int(value)
        elif value is None:
            safe[key] = "none"
        elif isinstance(value, dict | list | tuple):
            safe[key] = json.dumps(value, default=str)
        elif isinstance(value, np.generic):
            safe[key] = value.item()
        else:
            safe[key] = value
    return safe


def progress_bar(items: Iterable[Any], enabled: bool, description: str, total: int | None = None):
    """A tqdm bar over ``items`` when ``enabled``, else the items themselves."""
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=description, total=total, leave=False)


def finish(name: str, out_dir: Path, dataset: xr.Dataset, summary: str, fig,
           claims: Mapping[str, bool], config: Mapping[str, Any], timer: Timer) -> dict:
    """Write the three files of a study and return its result dict (the study contract).

    ``summary`` may contain ``{seconds}``, replaced by the run time; the run
    time and ``config`` are also stored in the Dataset's attributes.
    """
    seconds = timer.seconds
    claims = {key: bool(value) for key, value in claims.items()}
    dataset.attrs.update(netcdf_attrs({"study": name, "config": dict(config),
                                       "run_seconds": round(seconds, 2), "claims": claims}))
    text = summary.replace("{seconds}", f"{seconds:.1f}")
    paths = write_outputs(out_dir, name, dataset, fig, text)
    return {"dataset": dataset, "summary": text, "claims": claims,
            "files": [str(path) for path in paths]}

