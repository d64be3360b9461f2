"""Optional dependencies: check them up front and name the extra that installs them.

The core library needs torch, numpy, scipy, networkx, xarray, reservoirpy,
safetensors and tqdm. The demo, the studies, figures and netCDF4 files need the
``demo`` extra (``pip install "deepreservoir[demo]"``); sweeps on Dask and
searches with Optuna need the ``distributed`` extra; the architectures study
(PyTorch Geometric, ncps, gymnasium) the ``architectures`` extra. A command that needs an
extra says so in one line before doing any work.
"""

from __future__ import annotations

import importlib.util

from deepreservoir.errors import DeepReservoirError

__all__ = ["ARCHITECTURES_MODULES", "DEMO_MODULES", "DISTRIBUTED_MODULES",
           "MissingDependencyError", "missing_modules", "require_extra"]

#: Import name → distribution name of the ``demo`` extra.
DEMO_MODULES = {"matplotlib": "matplotlib", "mnist1d": "mnist1d", "netCDF4": "netCDF4",
                "sklearn": "scikit-learn"}

#: Import name → distribution name of the ``distributed`` extra (Dask sweeps, Optuna search).
DISTRIBUTED_MODULES = {"dask": "dask", "distributed": "distributed", "optuna": "optuna"}

#: Import name → distribution name of the ``architectures`` extra (the architectures study).
ARCHITECTURES_MODULES = {"torch_geometric": "torch_geometric", "ncps": "ncps",
                         "gymnasium": "gymnasium"}


class MissingDependencyError(DeepReservoirError, ImportError):
    """An optional dependency is not installed (the message names the extra)."""


def missing_modules(modules: dict[str, str]) -> list[str]:
    """The distributions of ``modules`` (import name → distribution) that are not installed."""
    return [dist for name, dist in modules.items() if importlib.util.find_spec(name) is None]


def require_extra(purpose: str, extra: str = "demo",
                  modules: dict[str, str] | None = None) -> None:
    """Raise :class:`MissingDependencyError` unless every module of ``extra`` is importable.

    Examples
    --------
    >>> require_extra("the demo", modules={"numpy": "numpy"})
    """
    missing = missing_modules(DEMO_MODULES if modules is None else modules)
    if missing:
        raise MissingDependencyError(
            f"{purpose[0].upper()}{purpose[1:]} needs the '{extra}' extra, which is not "
            f"installed (missing: {', '.join(missing)}). Install it with: "
            f"pip install \"deepreservoir[{extra}]\".")
