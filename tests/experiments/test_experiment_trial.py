"""``run_trial``: one model built from hyperparameters, trained and scored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir.errors import DataError, ParameterError
from deepreservoir.experiment import (
    MODEL_PARAMETERS,
    load_factory,
    run_trial,
    series_metrics,
    train_trial,
)
from deepreservoir.experiment_config import parse_experiment
from deepreservoir.experiment_data import load_task

MG = {"steps": 600}
FACTORIES = """
    import deepreservoir as dr


    def esn(seed=0, units=30, sr=0.9):
        return dr.Reservoir(units, sr=sr, seed=seed) >> dr.Ridge(1e-6)


    def mlp(seed=0, r=2):
        return dr.scaffold_mlp("tiny", 10, r=r, seed=seed)


    def not_a_model(seed=0):
        return "a string"

    NOT_CALLABLE = 3
"""


def _config(model="esn", dataset="mackey_glass", data=None, params=None, metric=None):
    head = {"model": model, "dataset": dataset}
    if metric:
        head["metric"] = metric
    return parse_experiment({"experiment": head, "data": data if data is not None else MG,
                             "params": params or {}})


def _strip(metrics):
    return {k: v for k, v in metrics.items() if k != "seconds"}


def test_esn_equals_a_hand_built_reservoir_and_ridge():
    config = _config(params={"units": 50})
    metrics = run_trial(config, {"sr": 1.1, "ridge": 1e-5, "lr": 0.7}, 3)
    assert set(metrics) == {"mse", "rmse", "nrmse", "nrmse_train", "r2", "seconds"}
    assert metrics["seconds"] > 0
    task = load_task("mackey_glass", MG)
    esn = (dr.Reservoir(50, sr=1.1, lr=0.7, seed=3) >> dr.Ridge(1e-5)).to(torch.float64)
    esn.fit(task.x_train, task.y_train)
    expected = series_metrics(np.asarray(esn.run(task.x_test)), task.y_test, task.x_train)
    assert _strip(metrics) == expected  # bitwise
    assert 0 < metrics["nrmse"] < 0.1  # a working forecast, not a constant


def test_esn_warmup_and_dtype_are_used():
    config = _config(params={"units": 40, "warmup": 50, "dtype": "float32"})
    metrics = run_trial(config, {}, 0)
    task = load_task("mackey_glass", MG)
    esn = dr.Reservoir(40, seed=0) >> dr.Ridge(1e-6)
    esn.fit(task.x_train, task.y_train, warmup=50)
    expected = series_metrics(np.asarray(esn.run(task.x_test)), task.y_test, task.x_train)
    assert _strip(metrics) == expected


def test_esn_node_keys_and_fit_options():
    config = _config(params={"units": 40, "Reservoir-0.rc_connectivity": 0.3,
                             "fit.warmup": 20})
    model, metrics = train_trial(config, {"Ridge-0.ridge": 1e-3}, 1)
    assert model.nodes["Reservoir-0"].rc_connectivity == 0.3
    assert model.nodes["Ridge-0"].ridge == 1e-3
    task = load_task("mackey_glass", MG)
    esn = (dr.Reservoir(40, rc_connectivity=0.3, seed=1) >> dr.Ridge(1e-3)).to(torch.float64)
    esn.fit(task.x_train, task.y_train, warmup=20)
    expected = series_metrics(np.asarray(esn.run(task.x_test)), task.y_test, task.x_train)
    assert _strip(metrics) == expected


def test_the_seed_matters_and_repeats():
    config = _config(params={"units": 30})
    first, again, other = (run_trial(config, {}, s)["nrmse"] for s in (0, 0, 1))
    assert first == again
    assert first != other


def test_a_search_float_for_units_is_accepted_when_whole():
    config = _config()
    assert _strip(run_trial(config, {"units": 30.0}, 0)) == _strip(
        run_trial(config, {"units": 30}, 0))
    with pytest.raises(ParameterError, match="'units'"):
        run_trial(config, {"units": 30.5}, 0)
    with pytest.raises(ParameterError, match="'dtype'"):
        run_trial(config, {"units": 30, "dtype": "float16"}, 0)


def test_a_bad_esn_value_is_a_parameter_error_naming_it():
    with pytest.raises(ParameterError, match="sr"):
        run_trial(_config(params={"units": 30}), {"sr": -1.0}, 0)
    with pytest.raises(ParameterError, match="Reservoir-0.nope"):
        run_trial(_config(params={"units": 30}), {"Reservoir-0.nope": 1}, 0)


def test_a_factory_on_a_series_with_node_and_fit_keys(factory_module):
    name = factory_module("exp_factories_series", FACTORIES)
    config = _config(model=f"{name}:esn",
                     params={"units": 40, "Reservoir-0.lr": 0.5, "fit.warmup": 10})
    model, metrics = train_trial(config, {"sr": 1.2}, 2)
    assert model.nodes["Reservoir-0"].lr == 0.5 and model.nodes["Reservoir-0"].sr == 1.2
    task = load_task("mackey_glass", MG)
    esn = dr.Reservoir(40, sr=1.2, lr=0.5, seed=2) >> dr.Ridge(1e-6)
    esn.fit(task.x_train, task.y_train, warmup=10)
    expected = series_metrics(np.asarray(esn.run(task.x_test)), task.y_test, task.x_train)
    assert _strip(metrics) == expected


def test_a_factory_on_digits_trains_on_the_gradient_path(factory_module):
    name = factory_module("exp_factories_digits", FACTORIES)
    config = _config(model=f"{name}:mlp", dataset="digits", data={"num_samples": 200},
                     metric="accuracy", params={"layer0.r": 1, "fit.batch_size": 64})
    model, metrics = train_trial(config, {"fit.epochs": 2}, 0)
    assert set(metrics) == {"accuracy", "loss", "seconds"}
    assert 0.0 <= metrics["accuracy"] <= 1.0 and np.isfinite(metrics["loss"])
    assert model.nodes["layer0"].r == 1 and model.nodes["layer1"].r == 2
    again = run_trial(config, {"fit.epochs": 2}, 0)
    assert _strip(again) == _strip(metrics)
    shorter = run_trial(config, {"fit.epochs": 1}, 0)
    assert shorter["loss"] != metrics["loss"]  # the fit option reaches model.fit
    task = load_task("digits", {"num_samples": 200})
    scores = dr.training.evaluate(model, task.x_test, task.y_test, loss="cross_entropy")
    assert float(scores["accuracy"]) == metrics["accuracy"]


def test_lottalora_equals_train_classifier():
    from deepreservoir.sweep import TrainConfig, train_classifier

    config = _config(model="lottalora", dataset="digits", data={"num_samples": 200},
                     metric="accuracy", params={"preset": "tiny", "epochs": 2, "rank": 2})
    metrics = run_trial(config, {"batch_size": 64}, 1)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and np.isfinite(metrics["loss"])
    task = load_task("digits", {"num_samples": 200})
    data = {"x_train": task.x_train, "y_train": task.y_train, "x_test": task.x_test,
            "y_test": task.y_test}
    defaults = MODEL_PARAMETERS["lottalora"]
    model, scores = train_classifier(
        data, preset="tiny", rank=2, family="normal", seed=1, full=False,
        config=TrainConfig(epochs=2, batch_size=64, lr=defaults["lr"],
                           full_lr=defaults["lr"]))
    assert metrics["accuracy"] == scores["test_accuracy"]
    loss = dr.training.evaluate(model, task.x_test, task.y_test, loss="cross_entropy")["loss"]
    assert metrics["loss"] == float(loss)


def test_esn_on_classes_is_a_data_error():
    config = _config(dataset="digits", data={"num_samples": 100}, metric="accuracy")
    with pytest.raises(DataError, match="Model 'esn'"):
        run_trial(config, {}, 0)


def test_lottalora_on_a_series_is_a_data_error():
    config = _config(model="lottalora")
    with pytest.raises(DataError, match="Model 'lottalora'"):
        run_trial(config, {}, 0)


@pytest.mark.parametrize("spec, shown", [
    ("no_such_module_for_experiments:build", "cannot be imported"),
    ("{module}:absent", "has no callable 'absent'"),
    ("{module}:NOT_CALLABLE", "has no callable 'NOT_CALLABLE'"),
])
def test_a_bad_factory_is_a_parameter_error(factory_module, spec, shown):
    name = factory_module("exp_factories_bad", FACTORIES)
    spec = spec.format(module=name)
    with pytest.raises(ParameterError, match=shown) as caught:
        load_factory(spec)
    assert repr(spec) in str(caught.value)
    with pytest.raises(ParameterError, match=shown):
        run_trial(_config(model=spec), {}, 0)


def test_a_factory_returning_something_else_is_a_parameter_error(factory_module):
    name = factory_module("exp_factories_other", FACTORIES)
    with pytest.raises(ParameterError, match="returned str"):
        run_trial(_config(model=f"{name}:not_a_model"), {}, 0)


def test_load_factory_finds_a_callable(factory_module):
    name = factory_module("exp_factories_ok", FACTORIES)
    factory = load_factory(f"{name}:esn")
    assert isinstance(factory(seed=0, units=5), dr.Model)


def test_a_keyword_the_factory_does_not_take_is_a_parameter_error(factory_module):
    name = factory_module("exp_factories_typo", FACTORIES)
    config = _config(model=f"{name}:esn", params={"unitz": 30})
    with pytest.raises(ParameterError, match="unitz"):
        run_trial(config, {}, 0)
