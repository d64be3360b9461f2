"""The data of an experiment: a series to forecast, or classes to tell apart.

:func:`load_task` turns an experiment's ``dataset`` and ``[data]`` options into a
:class:`Task` (train and test arrays, and its kind), cached per process so the
trials of a worker generate it once.

Series
    ``mackey_glass`` and ``reservoirpy:NAME`` (any generator of
    :mod:`reservoirpy.datasets`) are forecast ``forecast`` steps ahead: inputs
    ``s[:-forecast]``, targets ``s[forecast:]``, the last ``test_size`` steps held
    out (as :func:`reservoirpy.datasets.to_forecasting`). ``narma10`` maps its input
    to its output. A user's ``.npz`` with ``[data] kind = "series"`` is read by
    :func:`deepreservoir.data_files.load_series_npz` and split in time.
Classes
    ``mnist1d``, ``digits`` and a user's ``.npz`` (``X``, ``y``, optionally
    ``X_test``, ``y_test``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepreservoir.errors import DataError

__all__ = ["DATASETS", "DATA_OPTIONS", "Task", "data_kind", "load_task"]

#: Built-in data sets an experiment may name (besides ``reservoirpy:NAME`` and ``.npz`` files).
DATASETS = ("mackey_glass", "narma10", "mnist1d", "digits")

_FORECAST = {"steps": 2000, "forecast": 1, "test_size": 0.2, "normalize": False}
#: The ``[data]`` options of each kind of data set, with their defaults.
DATA_OPTIONS = {
    "mackey_glass": {**_FORECAST, "tau": 17, "seed": 0},
    "reservoirpy": dict(_FORECAST),  # other keys go to the generator as keywords
    "narma10": {"steps": 2000, "test_size": 0.2, "seed": 0, "definition": "textbook"},
    "mnist1d": {"num_samples": 5000},
    "digits": {"num_samples": None},
    "npz": {"kind": "classes", "test_fraction": 0.2, "train_fraction": 0.5},
}


@dataclass(frozen=True)
class Task:
    """Train and test arrays of one data set.

    Attributes
    ----------
    kind : {"series", "classes"}
    x_train, y_train, x_test, y_test : numpy.ndarray
        Series: ``(T, F)`` inputs and ``(T, O)`` targets, float64. Classes:
        ``(N, F)`` float32 features and ``(N,)`` int64 labels.
    """

    kind: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _family(dataset: str) -> str:
    from deepreservoir.data_files import is_data_file

    if is_data_file(dataset):
        return "npz"
    return "reservoirpy" if dataset.startswith("reservoirpy:") else dataset


def _option_problem(key: str, value: Any) -> str | None:
    """What is wrong with a known option's value (``None``: nothing)."""
    def integer(low: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    def share() -> bool:
        return isinstance(value, float) and 0 < value < 1

    checks = {
        "steps": (integer(20), "an int >= 20"),
        "forecast": (integer(1), "an int >= 1"),
        "tau": (integer(1), "an int >= 1"),
        "seed": (integer(0), "an int >= 0"),
        "test_size": (integer(1) or share(), "an int >= 1 (steps) or a float in (0, 1)"),
        "normalize": (isinstance(value, bool), "true or false"),
        "definition": (value in ("textbook", "reservoirpy"), "'textbook' or 'reservoirpy'"),
        "num_samples": (value is None or integer(20), "an int >= 20"),
        "kind": (value in ("classes", "series"), "'classes' or 'series'"),
        "test_fraction": (share(), "a float in (0, 1)"),
        "train_fraction": (share(), "a float in (0, 1)"),
    }
    ok, expected = checks.get(key, (True, ""))
    return None if ok else expected


def data_kind(dataset: str, data: dict[str, Any], where: str = "config") -> str:
    """``"series"`` or ``"classes"``: what ``dataset`` with options ``data`` holds.

    Every known option's value is checked here, before any data is generated.

    Raises
    ------
    DataError
        An unknown option for that data set (names the known ones), or a bad value.
    """
    family = _family(dataset)
    known = DATA_OPTIONS[family]
    if family != "reservoirpy":
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise DataError(f"{where}: unknown key(s) in [data] for {dataset!r}: "
                            f"{', '.join(unknown)}. Known: {', '.join(known)}.")
    for key, value in data.items():
        problem = _option_problem(key, value) if key in known else None
        if problem is not None:
            raise DataError(f"{where}: 'data.{key}' must be {problem}. Got {value!r}.")
    if family == "npz":
        return data.get("kind", "classes")
    return "classes" if family in ("mnist1d", "digits") else "series"


def _test_steps(options: dict[str, Any], length: int) -> int:
    size = options["test_size"]
    steps = round(size * length) if isinstance(size, float) else size
    if not 1 <= steps < length - 1:
        raise DataError(f"The 'data.test_size' option ({size!r}) leaves {length - steps} of "
                        f"{length} steps to train on; expected at least 2 on each side.")
    return steps


def _as_series(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    array = array.reshape(len(array), -1) if array.ndim != 2 else array
    if not np.isfinite(array).all():
        raise DataError(f"The data set {name!r} holds NaN or Inf values; expected a finite "
                        f"series (check its [data] options).")
    return array


def _forecasting(series: np.ndarray, options: dict[str, Any]) -> Task:
    if options["normalize"]:
        low, high = series.min(0), series.max(0)
        series = 2 * (series - low) / np.where(high > low, high - low, 1) - 1
    horizon = options["forecast"]
    if horizon >= len(series) // 2:
        raise DataError(f"The 'data.forecast' option ({horizon}) must be below half the "
                        f"series' {len(series)} steps.")
    inputs, targets = series[:-horizon], series[horizon:]
    split = len(inputs) - _test_steps(options, len(inputs))
    return Task("series", inputs[:split], targets[:split], inputs[split:], targets[split:])


def _generated(dataset: str, options: dict[str, Any]) -> Task:
    import reservoirpy.datasets as rpy

    steps = options["steps"]
    if dataset == "mackey_glass":
        series = rpy.mackey_glass(steps, tau=options["tau"], seed=options["seed"])
        return _forecasting(_as_series(series, dataset), options)
    name = dataset.split(":", 1)[1]
    keywords = {k: v for k, v in options.items() if k not in _FORECAST}
    try:
        series = getattr(rpy, name)(steps, **keywords)
    except Exception as error:  # the generator's own complaint, named
        raise DataError(f"reservoirpy.datasets.{name}({steps}, {keywords}) failed: "
                        f"{type(error).__name__}: {error}. Check the [data] options.") from None
    if isinstance(series, tuple):  # (inputs, targets) generators, e.g. narma
        raise DataError(f"reservoirpy.datasets.{name} returns inputs and targets; experiments "
                        f"forecast one series. Save them as X and y in a .npz file and use "
                        f"[data] kind = \"series\".")
    return _forecasting(_as_series(series, dataset), options)


def _narma(options: dict[str, Any]) -> Task:
    from deepreservoir.datasets import narma10

    steps = options["steps"]
    u, y = narma10(steps, options["seed"], definition=options["definition"])
    u, y = _as_series(u, "narma10"), _as_series(y, "narma10")
    split = steps - _test_steps(options, steps)
    return Task("series", u[:split], y[:split], u[split:], y[split:])


def _npz(path: str, options: dict[str, Any]) -> Task:
    from deepreservoir.data_files import load_npz, load_series_npz

    if options["kind"] == "series":
        data = load_series_npz(path, train_fraction=options["train_fraction"])
        split = int(data["split"])
        return Task("series", data["x"][:split], data["y"][:split], data["x"][split:],
                    data["y"][split:])
    data = load_npz(path, test_fraction=options["test_fraction"])
    return Task("classes", data["x_train"], data["y_train"], data["x_test"], data["y_test"])


_CACHE: dict[str, Task] = {}


def load_task(dataset: str, data: dict[str, Any] | None = None) -> Task:
    """The :class:`Task` of ``dataset`` with ``[data]`` options ``data`` (cached per process).

    Raises
    ------
    DataError
        An unknown data set or option, a bad option value, or data that are not finite.
    """
    from deepreservoir.sweep import load_dataset

    data = dict(data or {})
    family = _family(dataset)
    if family not in DATA_OPTIONS:
        raise DataError(f"The data set {dataset!r} is not one of {', '.join(DATASETS)}, "
                        f"'reservoirpy:NAME' or a .npz file.")
    data_kind(dataset, data)
    key = json.dumps([dataset, data], sort_keys=True, default=repr)
    if key in _CACHE:
        return _CACHE[key]
    options = {**DATA_OPTIONS[family], **data}
    if family in ("mackey_glass", "reservoirpy"):
        task = _generated(dataset, options)
    elif family == "narma10":
        task = _narma(options)
    elif family == "npz":
        task = _npz(str(Path(dataset)), options)
    else:
        loaded = load_dataset(dataset, num_samples=options["num_samples"])
        task = Task("classes", loaded["x_train"], loaded["y_train"], loaded["x_test"],
                    loaded["y_test"])
    _CACHE[key] = task
    return task
