"""Shared plumbing of the studies multitask, esp_beta, intrinsic_dimension and time_axis.

Not a study itself (the leading underscore keeps it out of ``deepreservoir
reproduce``). The studies load it by file path, so ``analysis/`` need not be a
package::

    common = _load_common()   # see any of the four studies
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["Timer", "finish", "netcdf_attrs", "progress_bar", "table"]


class Timer:
    """Wall-clock seconds since construction (``time.perf_counter``)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


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
    """A tqdm bar over ``items`` when ``enabled`` (and tqdm is installed), else the items."""
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=description, total=total, leave=False)


def table(header: list[str], rows: list[list[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def finish(name: str, out_dir: Path, dataset: xr.Dataset, summary: str, figure,
           claims: Mapping[str, bool], config: Mapping[str, Any], timer: Timer) -> dict:
    """Write ``<name>.nc``, ``<name>.png`` and ``<name>.md``; return the study's result dict.

    ``summary`` may contain ``{seconds}``, replaced by the run time; the run
    time and ``config`` are also stored in the Dataset's attributes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = timer.seconds
    dataset.attrs.update(netcdf_attrs({"study": name, "config": dict(config),
                                       "run_seconds": round(seconds, 2),
                                       "claims": {k: bool(v) for k, v in claims.items()}}))
    paths = [out_dir / f"{name}.nc", out_dir / f"{name}.png", out_dir / f"{name}.md"]
    dataset.to_netcdf(paths[0])
    figure.savefig(paths[1], dpi=110)
    import matplotlib.pyplot as plt

    plt.close(figure)
    text = summary.replace("{seconds}", f"{seconds:.1f}")
    paths[2].write_text(text + "\n", encoding="utf-8")
    return {"dataset": dataset, "summary": text, "claims": {k: bool(v) for k, v in claims.items()},
            "files": [str(p) for p in paths]}
