"""One trial of an experiment: build a model from hyperparameters, train it, score it.

:func:`run_trial` is what a sweep's cell and a search's trial both run, in a
worker process: it takes the experiment's configuration
(:class:`~deepreservoir.experiment_config.ExperimentConfig`), the hyperparameters
of this cell or trial, and a seed, and returns every metric of the data's kind.

Models
------
``"esn"``
    ``Reservoir(units, sr, lr, input_scaling, ...) >> Ridge(ridge)``, fitted in
    closed form on the training series (``warmup`` steps left out) and run on
    the test series from the training's final state, as reservoirpy's
    ``model.fit(x_train, y_train).run(x_test)``.
``"lottalora"``
    :func:`deepreservoir.sweep.train_classifier`: a scaffold MLP (``preset``,
    ``rank``, ``family``...) trained on the classes (``full = true``: fully trained).
``"module:function"``
    A factory ``function(seed=seed, **params) -> Model``; the model is fitted with
    ``model.fit(x_train, y_train, **fit)`` where ``fit`` holds the ``"fit.option"``
    keys (classes on the gradient path train with ``loss="cross_entropy"``).
``"spec:PATH"``
    The graph of the model saved at ``PATH`` (:func:`deepreservoir.save`), rebuilt
    untrained from its spec with the trial's seed as the root seed (each node's
    key derives from it and the node's place; the saved node seeds are
    replaced), and fitted as a factory's model. Its keys are node arguments.

Keys ``"node.argument"`` change a node's constructor argument in any model
(:func:`deepreservoir.hyperparameters.with_hyperparameters`), e.g.
``"Reservoir-0.rc_connectivity"``.

Metrics
-------
Series: ``mse``, ``rmse``, ``nrmse`` (RMSE over the peak-to-peak range of the
test targets, reservoirpy's default ``nrmse``), ``nrmse_train`` (over the range
of the training inputs, the normalisation of reservoirpy's hyperparameter
tutorial) and ``r2`` (``1 − Σd²/Σ(y − ȳ)²``, reservoirpy's ``rsquare``). Classes:
``accuracy`` and ``loss`` (cross-entropy) on the test split. Both: ``seconds``.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from deepreservoir.errors import DataError, ParameterError
from deepreservoir.experiment_data import DATASETS, Task, data_kind, load_task

__all__ = ["DATASETS", "MODEL_PARAMETERS", "check_parameter_key", "data_kind", "load_factory",
           "run_trial", "series_metrics", "train_trial"]

#: The hyperparameters of the built-in models, with their defaults.
MODEL_PARAMETERS: dict[str, dict[str, Any]] = {
    "esn": {"units": 500, "sr": 0.9, "lr": 1.0, "input_scaling": 1.0, "bias_scaling": 0.0,
            "rc_connectivity": 0.1, "input_connectivity": 0.1, "W": "normal",
            "activation": "tanh", "ridge": 1e-6, "warmup": 0, "dtype": "float64"},
    "lottalora": {"preset": "medium", "rank": 8, "alpha": None, "rslora": False,
                  "family": "normal", "scale": "fan_in", "b_init": "zeros", "full": False,
                  "epochs": 20, "batch_size": 128, "lr": 1e-2, "weight_decay": 1e-2,
                  "dropout": 0.1, "validation_split": 0.1},
}
_DTYPES = ("float32", "float64")


def check_parameter_key(model: str, key: str, where: str = "config") -> None:
    """Refuse a hyperparameter key the model cannot take (node keys are checked at build).

    Raises
    ------
    DataError
        Names the key and the model's known hyperparameters.
    """
    if model.startswith("spec:") and "." not in key:
        raise DataError(f"{where}: the key {key!r} does not apply to a model built from a "
                        f"spec; expected a node argument 'node.argument' (e.g. "
                        f"'Reservoir-0.sr') or a fit option 'fit.option'.")
    if model not in MODEL_PARAMETERS or key.startswith("fit.") or "." in key:
        if model == "lottalora" and "." in key:
            raise DataError(f"{where}: the key {key!r} does not apply to model 'lottalora'; "
                            f"expected one of {', '.join(MODEL_PARAMETERS['lottalora'])}. "
                            f"Use a factory model ('module:function') to set node arguments.")
        return
    if key not in MODEL_PARAMETERS[model]:
        raise DataError(f"{where}: {key!r} is not a hyperparameter of model {model!r}; "
                        f"expected one of {', '.join(MODEL_PARAMETERS[model])}, a node "
                        f"argument 'node.argument' or a fit option 'fit.option'.")


def load_factory(spec: str):
    """The function named by ``"package.module:function"``.

    Raises
    ------
    ParameterError
        The module cannot be imported (or fails while importing) or has no such callable.
    """
    module_name, _, function = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or the module's own failure at import
        raise ParameterError(f"The model factory {spec!r}: module {module_name!r} cannot be "
                             f"imported ({error}); expected an importable 'module:function' "
                             f"(the module on sys.path, e.g. next to where the sweep runs).")\
            from None
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ParameterError(f"The model factory {spec!r}: {module_name!r} has no callable "
                             f"{function!r}.")
    return factory


def series_metrics(prediction: np.ndarray, truth: np.ndarray, train_inputs: np.ndarray
                   ) -> dict[str, float]:
    """``mse``, ``rmse``, ``nrmse``, ``nrmse_train`` and ``r2`` of a forecast (see the module).

    Parameters
    ----------
    prediction, truth : numpy.ndarray, shape (T, O)
    train_inputs : numpy.ndarray, shape (T_train, F)
        For ``nrmse_train``.

    Examples
    --------
    >>> truth = np.array([[0.0], [1.0], [2.0]])
    >>> scores = series_metrics(truth + 0.1, truth, truth)
    >>> round(scores["rmse"], 12), round(scores["nrmse"], 12)
    (0.1, 0.05)
    """
    prediction, truth = np.asarray(prediction, np.float64), np.asarray(truth, np.float64)
    if prediction.shape != truth.shape:
        raise DataError(f"series_metrics: the prediction's shape {prediction.shape} differs from "
                        f"the truth's {truth.shape}; expected equal shapes (T, O).")
    error = prediction - truth
    mse = float(np.mean(error ** 2)) if np.isfinite(error).all() else float("inf")
    rmse = float(np.sqrt(mse))
    spread = float(np.sum((truth - np.mean(truth)) ** 2))
    return {"mse": mse, "rmse": rmse,
            "nrmse": rmse / float(np.ptp(truth)) if np.ptp(truth) > 0 else float("inf"),
            "nrmse_train": rmse / float(np.ptp(train_inputs)) if np.ptp(train_inputs) > 0
            else float("inf"),
            "r2": 1 - float(np.sum(error ** 2)) / spread if spread > 0 else float("nan")}


def _split(params: Mapping[str, Any], model: str) -> tuple[dict, dict, dict]:
    """``(model's own, node overrides, fit options)`` of the merged hyperparameters."""
    own, nodes, fit = {}, {}, {}
    for key, value in params.items():
        if key.startswith("fit."):
            fit[key[4:]] = value
        elif "." in key:
            nodes[key] = value
        else:
            own[key] = value
    if model in MODEL_PARAMETERS:
        own = {**MODEL_PARAMETERS[model], **own}
    return own, nodes, fit


def _esn(own: dict[str, Any], seed: int):
    import torch

    import deepreservoir as dr

    if own["dtype"] not in _DTYPES:
        raise ParameterError(f"The 'dtype' hyperparameter of model 'esn' must be one of "
                             f"{', '.join(_DTYPES)}. Got {own['dtype']!r}.")
    units = own["units"]
    if not isinstance(units, int) or isinstance(units, bool):  # a search may give 300.0
        if float(units) != int(units):
            raise ParameterError(f"The 'units' hyperparameter of model 'esn' must be an int. "
                                 f"Got {units!r}.")
        units = int(units)
    reservoir = dr.Reservoir(
        units, sr=own["sr"], lr=own["lr"], input_scaling=own["input_scaling"],
        bias_scaling=own["bias_scaling"], rc_connectivity=own["rc_connectivity"],
        input_connectivity=own["input_connectivity"], W=own["W"],
        activation=own["activation"], seed=seed)
    return (reservoir >> dr.Ridge(ridge=own["ridge"])).to(getattr(torch, own["dtype"]))


def _fit_and_score(model, task: Task, fit: dict[str, Any], seed: int) -> dict[str, float]:
    import deepreservoir as dr
    from deepreservoir.training.fitting import training_path

    path, _ = training_path(model)
    if path in ("gradient", "mixed"):  # the trial's seed shuffles; workers stay quiet
        fit = {"seed": seed, "verbose": 0, **fit}
    if task.kind == "series":
        model.fit(task.x_train, task.y_train, **fit)
        prediction = np.asarray(model.run(task.x_test))
        return series_metrics(prediction, task.y_test, task.x_train)
    if path in ("gradient", "mixed"):
        fit = {"loss": "cross_entropy", **fit}
    model.fit(task.x_train, task.y_train, **fit)
    scores = dr.training.evaluate(model, task.x_test, task.y_test, loss="cross_entropy")
    return {"accuracy": float(scores["accuracy"]), "loss": float(scores["loss"])}


_TEMPLATES: dict[str, Any] = {}


def _spec_template(path: str):
    """The saved model at ``path``, loaded once per process (its graph is the template)."""
    import deepreservoir as dr

    if path not in _TEMPLATES:
        _TEMPLATES[path] = dr.load(path)
    return _TEMPLATES[path]


def train_trial(config, params: Mapping[str, Any], seed: int):
    """Build, train and score one model; return ``(model, metrics)``.

    Parameters
    ----------
    config : ExperimentConfig
    params : mapping
        This cell's or trial's hyperparameters, on top of ``config.params``.
    seed : int
        Seeds the model (reservoir, scaffold, adapters, shuffling).

    Returns
    -------
    model : Model
    metrics : dict of str to float
        See the module docstring; always ``seconds``.

    Raises
    ------
    ParameterError
        A hyperparameter the model refuses (its message names it).
    DataError
        Data the model cannot take (e.g. an ESN on classes).
    TrainingError
        Training diverged.
    """
    import deepreservoir as dr
    from deepreservoir.hyperparameters import with_hyperparameters

    began = time.perf_counter()
    task = load_task(config.dataset, config.data)
    own, nodes, fit = _split({**config.params, **params}, config.model)
    if config.model == "lottalora":
        from deepreservoir.sweep import TrainConfig, train_classifier

        if task.kind != "classes":
            raise DataError(f"Model 'lottalora' classifies; the data set {config.dataset!r} is "
                            f"a series. Use model 'esn' or a factory.")
        train = TrainConfig(**{k: own[k] for k in ("epochs", "batch_size", "weight_decay",
                                                  "dropout", "validation_split", "alpha",
                                                  "rslora", "scale", "b_init")},
                            lr=own["lr"], full_lr=own["lr"])
        data = {"x_train": task.x_train, "y_train": task.y_train, "x_test": task.x_test,
                "y_test": task.y_test}
        model, scores = train_classifier(data, preset=own["preset"], rank=int(own["rank"]),
                                         family=own["family"], seed=seed, full=own["full"],
                                         config=train)
        loss = dr.training.evaluate(model, task.x_test, task.y_test, loss="cross_entropy")
        return model, {"accuracy": scores["test_accuracy"], "loss": float(loss["loss"]),
                       "seconds": time.perf_counter() - began}
    if config.model == "esn":
        if task.kind != "series":
            raise DataError(f"Model 'esn' forecasts a series; the data set {config.dataset!r} "
                            f"holds classes. Use model 'lottalora' or a factory.")
        model = _esn(own, seed)
        fit = {"warmup": int(own["warmup"]), **fit}
    elif config.model.startswith("spec:"):
        model = with_hyperparameters(_spec_template(config.model[5:]), nodes,
                                     parameter="hyperparameter", seed=seed)
        nodes = {}
    else:
        factory = load_factory(config.model)
        try:
            inspect.signature(factory).bind(seed=seed, **own)
        except TypeError as error:
            raise ParameterError(
                f"The model factory {config.model!r} does not take the hyperparameters "
                f"{sorted(own)} and seed ({error}); expected a function "
                f"'{config.model.split(':')[1]}(seed, **params)' accepting every key of "
                f"[params], [axes] and [search.space] that is not 'node.argument' or "
                f"'fit.option'.") from None
        model = factory(seed=seed, **own)
        if not isinstance(model, dr.Model):
            raise ParameterError(f"The model factory {config.model!r} returned "
                                 f"{type(model).__name__}; expected a deepreservoir Model.")
    if nodes:
        model = with_hyperparameters(model, nodes, parameter="hyperparameter")
    metrics = _fit_and_score(model, task, fit, seed)
    metrics["seconds"] = time.perf_counter() - began
    return model, metrics


def run_trial(config, params: Mapping[str, Any], seed: int) -> dict[str, float]:
    """The metrics of :func:`train_trial` (the model is dropped)."""
    return train_trial(config, params, seed)[1]
