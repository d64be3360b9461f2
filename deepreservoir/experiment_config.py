"""An experiment's configuration: a model, a data set, a metric, and axes or ranges.

One TOML file describes both a grid sweep and a hyperparameter search::

    [experiment]
    model = "esn"             # "esn", "lottalora", "package.module:function", "spec:PATH"
    dataset = "mackey_glass"  # a built-in set, "reservoirpy:NAME", or a .npz file
    metric = "nrmse"          # nrmse, rmse, mse, r2 (series); accuracy, loss (classes)
    seeds = [0, 1, 2]         # every cell or trial runs once per seed

    [data]                    # options of the data set (optional)
    steps = 2510

    [params]                  # fixed hyperparameters (optional)
    units = 500

    [axes]                    # a sweep: every combination of these lists
    sr = [0.5, 0.9, 1.2]

    [search]                  # a search: trials drawn from these ranges
    trials = 100
    [search.space]
    sr = { low = 0.01, high = 10.0, log = true }
    units = { choices = [100, 300, 500] }

A hyperparameter key is one of the model's own names (``sr``, ``ridge``, ``rank``
... see :data:`deepreservoir.experiment.MODEL_PARAMETERS`), a node's
constructor argument addressed as ``"node.argument"`` (``"Reservoir-0.rc_connectivity"``,
any node of any model), or a fit option ``"fit.option"`` (``"fit.lr"``).
Every bad key, type or value is a :class:`~deepreservoir.errors.DataError`
naming the file and the key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepreservoir.errors import DataError

__all__ = ["METRICS", "SAMPLERS", "ExperimentConfig", "Range", "is_experiment",
           "load_experiment", "parse_experiment"]

#: Metric → direction ("minimize" or "maximize").
METRICS = {"nrmse": "minimize", "nrmse_train": "minimize", "rmse": "minimize",
           "mse": "minimize", "r2": "maximize", "accuracy": "maximize", "loss": "minimize"}
#: Optuna samplers a search may name.
SAMPLERS = ("tpe", "random")

_TABLES = {"experiment", "data", "params", "axes", "search"}
_SCALAR = (bool, int, float, str)


@dataclass(frozen=True)
class Range:
    """A search range: ``low``..``high`` (``log``: log-spaced; ints when both ends are ints),
    or a list of ``choices``."""

    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    @property
    def is_int(self) -> bool:
        """Whether the range draws integers (both ends are ints)."""
        return self.choices is None and isinstance(self.low, int) and isinstance(self.high, int)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment (see the module docstring for the TOML form).

    Attributes
    ----------
    model : str
        ``"esn"``, ``"lottalora"``, ``"module:function"`` (a factory
        ``function(seed=..., **params) -> Model``) or ``"spec:PATH"`` (the
        graph of a saved model, rebuilt untrained; ``PATH`` absolute).
    dataset : str
        A built-in data set (:data:`deepreservoir.experiment.DATASETS`),
        ``"reservoirpy:NAME"`` or the absolute path of a ``.npz`` file.
    metric : str
        A key of :data:`METRICS`; the search optimises its mean over ``seeds``.
    seeds : tuple of int
    data : dict
        Options of the data set.
    params : dict
        Fixed hyperparameters.
    axes : dict of str to tuple
        A sweep's axes (the Dataset's dimensions, with ``seed``), in file order.
    space : dict of str to Range
        A search's ranges.
    trials : int
        Trials of a search.
    sampler : {"tpe", "random"}
    search_seed : int
        Seeds the search's sampler.
    source : str
        Where the configuration came from, for messages.
    """

    model: str = "esn"
    dataset: str = "mackey_glass"
    metric: str = "nrmse"
    seeds: tuple[int, ...] = (0,)
    data: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    space: dict[str, Range] = field(default_factory=dict)
    trials: int = 20
    sampler: str = "tpe"
    search_seed: int = 0
    source: str = "config"

    @property
    def direction(self) -> str:
        """``"minimize"`` or ``"maximize"``, from the metric."""
        return METRICS[self.metric]

    def fingerprint(self) -> str:
        """Hash of what changes a cell's result besides its own axes' values and seed.

        The model, the data set (and a data file's SHA-256), its options, the
        fixed parameters and the names of the axes; not the axes' values, so a
        sweep may grow an axis and keep its finished cells.
        """
        from deepreservoir.data_files import file_digest, is_data_file

        payload: dict[str, Any] = {"model": self.model, "dataset": self.dataset,
                                   "data": self.data, "params": self.params,
                                   "axes": list(self.axes), "metric": self.metric}
        if is_data_file(self.dataset) and Path(self.dataset).is_file():
            payload["data_sha256"] = file_digest(self.dataset)
        spec = Path(self.model[5:]) / "spec.json" if self.model.startswith("spec:") else None
        if spec is not None and spec.is_file():
            payload["spec_sha256"] = file_digest(spec)
        text = json.dumps(payload, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def cells(self) -> list[dict[str, Any]]:
        """Every combination of the axes' values, with ``seed``, in a fixed order."""
        names = list(self.axes)
        grid = itertools.product(*(self.axes[n] for n in names), self.seeds)
        return [{**dict(zip(names, values[:-1], strict=True)), "seed": values[-1]}
                for values in grid]


def is_experiment(document: Mapping[str, Any]) -> bool:
    """Whether a parsed TOML document is an experiment (it has an ``[experiment]`` table)."""
    return "experiment" in document


def _bad(where: str, key: str, value: Any, expected: str) -> DataError:
    return DataError(f"{where}: '{key}' must be {expected}. Got {value!r}.")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_value(where: str, key: str, value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(where, key, value, "a finite number")
    if isinstance(value, list):
        return [_check_value(where, key, v) for v in value]
    if not isinstance(value, _SCALAR):
        raise _bad(where, key, value, "a number, a string, true/false or a list of them")
    return value


def _table(document: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise _bad(where, name, table, "a table")
    return dict(table)


def _range(where: str, key: str, value: Any) -> Range:
    if not isinstance(value, dict):
        raise _bad(where, key, value, "a table {low = ..., high = ..., log = ...} or "
                   "{choices = [...]}")
    unknown = sorted(set(value) - {"low", "high", "log", "choices"})
    if unknown:
        raise DataError(f"{where}: unknown key(s) {', '.join(unknown)} in '{key}'; expected "
                        f"low, high, log or choices.")
    if "choices" in value:
        choices = value["choices"]
        if set(value) != {"choices"} or not isinstance(choices, list) or not choices:
            raise _bad(where, key, value, "{choices = [a non-empty list]} alone")
        if not all(isinstance(c, _SCALAR) for c in choices):
            raise _bad(where, key, value, "choices that are numbers, strings or true/false")
        return Range(choices=tuple(_check_value(where, key, c) for c in choices))
    low, high, log = value.get("low"), value.get("high"), value.get("log", False)
    if not (_number(low) and _number(high)) or not low < high:
        raise _bad(where, key, value, "numbers low < high")
    if not isinstance(log, bool):
        raise _bad(where, f"{key}.log", log, "true or false")
    if log and low <= 0:
        raise _bad(where, f"{key}.low", low, "> 0 on a log scale")
    _check_value(where, key, low)
    _check_value(where, key, high)
    return Range(low=low, high=high, log=log)


def _model(where: str, model: Any, base: Path | None) -> str:
    from deepreservoir.experiment import MODEL_PARAMETERS

    if isinstance(model, str) and model.startswith("spec:"):
        path = Path(model[5:]).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        if not (path / "spec.json").is_file():
            raise _bad(where, "experiment.model", model,
                       f"'spec:PATH' with PATH a saved model's folder holding spec.json "
                       f"(looked in {str(path)!r})")
        return f"spec:{path}"
    if not isinstance(model, str) or not (model in MODEL_PARAMETERS or (
            model.count(":") == 1 and all(model.split(":")))):
        raise _bad(where, "experiment.model", model,
                   f"one of {', '.join(MODEL_PARAMETERS)}, 'package.module:function' or "
                   f"'spec:PATH' (a saved model)")
    return model


def _dataset(where: str, dataset: Any, base: Path | None) -> str:
    from deepreservoir.data_files import is_data_file
    from deepreservoir.experiment import DATASETS

    if not isinstance(dataset, str):
        raise _bad(where, "experiment.dataset", dataset, "a string")
    if is_data_file(dataset):
        path = Path(dataset).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise _bad(where, "experiment.dataset", dataset,
                       f"an existing .npz file (looked for {str(path)!r})")
        return str(path)
    if dataset.startswith("reservoirpy:"):
        import reservoirpy.datasets as rpy

        name = dataset.split(":", 1)[1]
        if not callable(getattr(rpy, name, None)) or name.startswith("_"):
            raise _bad(where, "experiment.dataset", dataset,
                       "'reservoirpy:NAME' with NAME a function of reservoirpy.datasets")
        return dataset
    if dataset not in DATASETS:
        raise _bad(where, "experiment.dataset", dataset,
                   f"one of {', '.join(DATASETS)}, 'reservoirpy:NAME' or a path to a .npz file")
    return dataset


def parse_experiment(document: Mapping[str, Any], where: str = "config",
                     base: Path | None = None) -> ExperimentConfig:
    """Validate a parsed TOML document (see the module docstring).

    ``base``: the folder relative data-file paths are resolved against (the TOML's folder).

    Raises
    ------
    DataError
        An unknown table or key, a bad value, a key set both as a fixed
        parameter and as an axis or range, or a metric that does not fit the data.
    """
    from deepreservoir.experiment import check_parameter_key, data_kind

    unknown = sorted(set(document) - _TABLES)
    if unknown:
        raise DataError(f"{where}: unknown table(s) {', '.join(unknown)}; expected "
                        f"[experiment] and optionally [data], [params], [axes], [search].")
    head = _table(document, "experiment", where)
    known = {"model", "dataset", "metric", "seeds"}
    extra = sorted(set(head) - known)
    if extra:
        raise DataError(f"{where}: unknown key(s) in [experiment]: {', '.join(extra)}. "
                        f"Known: {', '.join(sorted(known))}.")
    values: dict[str, Any] = {"source": where}
    values["model"] = _model(where, head.get("model", "esn"), base)
    values["dataset"] = _dataset(where, head.get("dataset", "mackey_glass"), base)
    metric = head.get("metric", "nrmse")
    if metric not in METRICS:
        raise _bad(where, "experiment.metric", metric, f"one of {', '.join(METRICS)}")
    values["metric"] = metric
    seeds = head.get("seeds", [0])
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                       for s in seeds)):
        raise _bad(where, "experiment.seeds", seeds, "a non-empty list of distinct ints >= 0")
    values["seeds"] = tuple(seeds)
    values["data"] = {k: _check_value(where, f"data.{k}", v)
                      for k, v in _table(document, "data", where).items()}
    params = {k: _check_value(where, f"params.{k}", v)
              for k, v in _table(document, "params", where).items()}
    axes = {}
    for key, value in _table(document, "axes", where).items():
        if not isinstance(value, list) or not value:
            raise _bad(where, f"axes.{key}", value, "a non-empty list of values")
        checked = [_check_value(where, f"axes.{key}", v) for v in value]
        if any(a == b or json.dumps(a) == json.dumps(b)
               for i, a in enumerate(checked) for b in checked[i + 1:]):
            raise _bad(where, f"axes.{key}", value,
                       "a list without repeats (1 and 1.0, or true and 1, are one value)")
        axes[key] = tuple(checked)
    search = _table(document, "search", where)
    extra = sorted(set(search) - {"trials", "sampler", "seed", "space"})
    if extra:
        raise DataError(f"{where}: unknown key(s) in [search]: {', '.join(extra)}. "
                        f"Known: seed, sampler, space, trials.")
    trials = search.get("trials", 20)
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise _bad(where, "search.trials", trials, "an int >= 1")
    sampler = search.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise _bad(where, "search.sampler", sampler, f"one of {', '.join(SAMPLERS)}")
    search_seed = search.get("seed", 0)
    if not isinstance(search_seed, int) or isinstance(search_seed, bool) or search_seed < 0:
        raise _bad(where, "search.seed", search_seed, "an int >= 0")
    space_table = search.get("space", {})
    if not isinstance(space_table, dict):
        raise _bad(where, "search.space", space_table, "a table of ranges")
    space = {k: _range(where, f"search.space.{k}", v) for k, v in space_table.items()}
    for key in (*params, *axes, *space):
        check_parameter_key(values["model"], key, where)
    for table, keys in (("axes", axes), ("search.space", space)):
        twice = sorted(set(keys) & set(params))
        if twice:
            raise DataError(f"{where}: {', '.join(twice)} set both in [params] and in "
                            f"[{table}]; give each hyperparameter one place.")
    if "seed" in (*params, *axes, *space):
        raise DataError(f"{where}: 'seed' is not a hyperparameter here; list the seeds in "
                        f"[experiment] seeds = [...].")
    kind = data_kind(values["dataset"], values["data"], where)
    fitting = {"series": ("nrmse", "nrmse_train", "rmse", "mse", "r2"),
               "classes": ("accuracy", "loss")}[kind]
    if metric not in fitting:
        raise _bad(where, "experiment.metric", metric,
                   f"one of {', '.join(fitting)} for the {kind} data set "
                   f"{values['dataset']!r}")
    return ExperimentConfig(params=params, axes=axes, space=space, trials=trials,
                            sampler=sampler, search_seed=search_seed, **values)


def load_experiment(path: str | os.PathLike) -> ExperimentConfig:
    """Read and validate an experiment's TOML file.

    Raises
    ------
    DataError
        The file is missing or not TOML, has no ``[experiment]`` table, or has a
        bad key (see :func:`parse_experiment`).
    """
    from deepreservoir.sweep_config import read_toml

    document = read_toml(path, "experiment config")
    if not is_experiment(document):
        raise DataError(f"The experiment config {str(path)!r} has no [experiment] table.")
    return parse_experiment(document, where=str(path), base=Path(path).parent)
