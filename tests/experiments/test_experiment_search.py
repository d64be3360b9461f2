"""``run_search`` in this process: files, resume, interrupted and failing trials, refusals."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
import xarray as xr
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

import deepreservoir as dr
from deepreservoir._processes import FolderLock
from deepreservoir.errors import DataError, ParameterError, TrainingError
from deepreservoir.experiment import series_metrics
from deepreservoir.experiment_config import parse_experiment
from deepreservoir.experiment_data import load_task
from deepreservoir.search import STUDY_NAME, distributions, run_search

DATA = {"steps": 600}
SPACE = {"sr": {"low": 0.1, "high": 2.0, "log": True},
         "ridge": {"low": 1e-8, "high": 1e-2, "log": True},
         "Reservoir-0.lr": {"choices": [0.3, 1.0]}}


def _config(space=None, model="esn", params=None, trials=6, sampler="tpe", metric="nrmse",
            seeds=(0,)):
    return parse_experiment({
        "experiment": {"model": model, "dataset": "mackey_glass", "metric": metric,
                       "seeds": list(seeds)},
        "data": DATA, "params": {"units": 30} if params is None else params,
        "search": {"trials": trials, "sampler": sampler,
                   "space": SPACE if space is None else space}})


def _search(config, out, **options):
    return run_search(config, out, workers=1, progress=False, **options)


def _study(folder):
    return optuna.load_study(study_name=STUDY_NAME,
                             storage=JournalStorage(JournalFileBackend(str(folder / "study.log"))))


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    folder = tmp_path_factory.mktemp("search") / "esn.search"
    config = _config()
    dataset, best = _search(config, folder)
    return config, folder, dataset, best


def test_a_search_writes_its_files(searched):
    _, folder, _, _ = searched
    assert {"study.log", "config.json", "trials.nc", "best.json", "best"} <= {
        p.name for p in folder.iterdir()}
    assert not (folder / "search.lock").exists()


def test_the_trials_dataset(searched):
    _, folder, dataset, _ = searched
    assert dataset.sizes["trial"] == 6
    assert list(dataset["trial"].values) == list(range(6))
    assert set(dataset["state"].values) == {"COMPLETE"}
    for name in ("value", "param_sr", "param_ridge", "param_Reservoir-0.lr", "mean_nrmse",
                 "mean_rmse", "mean_mse", "mean_r2", "mean_nrmse_train", "mean_seconds"):
        assert dataset[name].dims == ("trial",), name
    sr, ridge = dataset["param_sr"].values, dataset["param_ridge"].values
    assert ((0.1 <= sr) & (sr <= 2.0)).all() and ((1e-8 <= ridge) & (ridge <= 1e-2)).all()
    assert set(dataset["param_Reservoir-0.lr"].values) <= {0.3, 1.0}
    assert len(set(sr)) == 6  # six different points
    np.testing.assert_array_equal(dataset["value"].values, dataset["mean_nrmse"].values)
    assert dataset.attrs["best_trial"] == int(np.argmin(dataset["value"].values))
    on_disk = xr.load_dataset(folder / "trials.nc")
    np.testing.assert_array_equal(on_disk["value"].values, dataset["value"].values)
    np.testing.assert_array_equal(on_disk["param_sr"].values, sr)


def test_the_best_trial_and_its_artifact(searched):
    _, folder, dataset, best = searched
    assert best["number"] == dataset.attrs["best_trial"]
    assert best["value"] == float(dataset["value"].min())
    recorded = json.loads((folder / "best.json").read_text())
    assert recorded["number"] == best["number"] and recorded["value"] == best["value"]
    assert recorded["params"] == best["params"]
    assert recorded["params"]["sr"] == float(dataset["param_sr"][best["number"]])
    # the best model is trained again with the first seed: the same scores as its trial
    assert recorded["artifact_metrics"]["nrmse"] == best["value"]
    model = dr.load(folder / "best")
    assert model.nodes["Reservoir-0"].sr == best["params"]["sr"]
    assert model.nodes["Reservoir-0"].lr == best["params"]["Reservoir-0.lr"]
    task = load_task("mackey_glass", DATA)
    model.run(task.x_train)  # the state the test split starts from, as after fit
    prediction = np.asarray(model.run(task.x_test))
    scores = series_metrics(prediction, task.y_test, task.x_train)
    assert scores["nrmse"] == recorded["artifact_metrics"]["nrmse"]


def test_resume_equals_an_uninterrupted_search(searched, tmp_path):
    config, _, dataset, best = searched
    folder = tmp_path / "resumed"
    first, _ = _search(config, folder, trials=3, save_best=False)
    assert first.sizes["trial"] == 3
    resumed, again = _search(config, folder, save_best=False)
    assert resumed.sizes["trial"] == 6
    for name in ("value", "param_sr", "param_ridge", "param_Reservoir-0.lr", "mean_r2"):
        np.testing.assert_array_equal(resumed[name].values, dataset[name].values)
    assert again["number"] == best["number"] and again["params"] == best["params"]
    assert again["artifact"] is None and not (folder / "best").exists()
    # a budget already spent runs nothing more
    more, _ = _search(config, folder, trials=4, save_best=False)
    assert more.sizes["trial"] == 6


def test_a_trial_left_running_is_failed_and_its_point_asked_again(tmp_path):
    config = _config(space={"sr": {"low": 0.1, "high": 2.0}})
    folder = tmp_path / "killed"
    _search(config, folder, trials=2, save_best=False)
    study = _study(folder)  # a run killed mid-trial: asked, never told
    left = study.ask(distributions(config.space))
    assert left.number == 2
    point = dict(left.params)
    del study
    dataset, _ = _search(config, folder, trials=4, save_best=False)
    trials = _study(folder).get_trials(deepcopy=False)
    # the interrupted trial does not count against the budget of 4
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL] + [
        TrialState.COMPLETE] * 2
    assert trials[2].user_attrs["error"] == "interrupted"
    assert trials[3].params == point  # asked again first
    assert list(dataset["state"].values) == ["COMPLETE"] * 2 + ["FAIL"] + ["COMPLETE"] * 2
    assert np.isnan(float(dataset["value"][2]))
    assert float(dataset["param_sr"][2]) == float(dataset["param_sr"][3]) == point["sr"]


PICKY = """
    import deepreservoir as dr
    from deepreservoir.errors import ParameterError


    def esn(seed=0, sr=0.9):
        if sr > 1.0:
            raise ParameterError(f"picky refuses sr={sr!r}")
        return dr.Reservoir(20, sr=sr, seed=seed) >> dr.Ridge(1e-6)


    def never(seed=0, sr=0.9):
        raise ParameterError(f"never builds sr={sr!r}")
"""


def test_a_failing_trial_is_recorded_and_the_search_goes_on(tmp_path, factory_module):
    name = factory_module("exp_search_picky", PICKY)
    config = _config(model=f"{name}:esn", params={}, space={"sr": {"low": 0.1, "high": 2.0}},
                     sampler="random", trials=8)
    folder = tmp_path / "picky"
    dataset, best = _search(config, folder, save_best=False)
    assert dataset.sizes["trial"] == 8  # failed trials count against the budget
    sr = dataset["param_sr"].values
    failed = dataset["state"].values == "FAIL"
    assert failed.any() and not failed.all(), sr
    np.testing.assert_array_equal(failed, sr > 1.0)
    assert np.isnan(dataset["value"].values[failed]).all()
    assert not np.isnan(dataset["value"].values[~failed]).any()
    for trial in _study(folder).get_trials(deepcopy=False):
        if trial.state == TrialState.FAIL:
            assert trial.user_attrs["error"] == (
                f"ParameterError: picky refuses sr={trial.params['sr']!r}")
    assert best["params"]["sr"] <= 1.0
    assert best["value"] == float(np.nanmin(dataset["value"].values))


def test_every_trial_failing_is_a_training_error_quoting_the_first(tmp_path, factory_module):
    name = factory_module("exp_search_never", PICKY)
    config = _config(model=f"{name}:never", params={}, space={"sr": {"low": 0.1, "high": 2.0}},
                     trials=3)
    folder = tmp_path / "never"
    with pytest.raises(TrainingError, match="Every trial of the search") as caught:
        _search(config, folder)
    first = _study(folder).get_trials(deepcopy=False)[0]
    assert f"the first error: ParameterError: never builds sr={first.params['sr']!r}" in str(
        caught.value)
    assert str(folder) in str(caught.value)
    assert not (folder / "best").exists() and not (folder / "search.lock").exists()


def test_an_empty_space_is_a_parameter_error(tmp_path):
    with pytest.raises(ParameterError, match=r"\[search.space\]"):
        _search(_config(space={}), tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize("trials", [0, -1, 2.0, True])
def test_a_bad_budget_is_a_parameter_error(tmp_path, trials):
    with pytest.raises(ParameterError, match="'trials'"):
        _search(_config(), tmp_path / "budget", trials=trials)


def test_a_file_as_out_is_a_parameter_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError, match="is a file"):
        _search(_config(), tmp_path / "file")


def test_another_config_on_the_same_folder_is_a_data_error(tmp_path):
    folder = tmp_path / "one"
    config = _config(space={"sr": {"low": 0.1, "high": 2.0}}, trials=1)
    _search(config, folder, save_best=False)
    others = [
        _config(space={"sr": {"low": 0.1, "high": 2.0}}, trials=1, params={"units": 31}),
        _config(space={"sr": {"low": 0.2, "high": 2.0}}, trials=1),
        _config(space={"sr": {"low": 0.1, "high": 2.0}}, trials=1, sampler="random"),
        _config(space={"sr": {"low": 0.1, "high": 2.0}}, trials=1, seeds=(0, 1)),
    ]
    for other in others:
        with pytest.raises(DataError, match="different data or training options") as caught:
            _search(other, folder, save_best=False)
        assert str(folder) in str(caught.value)
    assert len(_study(folder).get_trials(deepcopy=False)) == 1


def test_a_held_lock_refuses_a_second_search(tmp_path):
    folder = tmp_path / "locked"
    lock = FolderLock(folder, "search.lock").acquire()
    try:
        with pytest.raises(ParameterError, match="names a folder in use"):
            _search(_config(trials=1), folder)
        assert not (folder / "study.log").exists()
    finally:
        lock.release()


def test_a_random_search_maximising_r2_over_two_seeds(tmp_path):
    space = {"sr": {"low": 0.1, "high": 2.0}, "units": {"low": 10, "high": 40}}
    config = _config(space=space, params={}, sampler="random", metric="r2", trials=4,
                     seeds=(0, 1))
    dataset, best = _search(config, tmp_path / "random", save_best=False)
    assert dataset.attrs["sampler"] == "random" and dataset.attrs["direction"] == "maximize"
    assert set(dataset["state"].values) == {"COMPLETE"}
    units = dataset["param_units"].values
    assert ((10 <= units) & (units <= 40)).all() and (units == np.round(units)).all()
    assert best["value"] == float(dataset["value"].max())
    # the value is the mean over the seeds of each seed's metric
    trial = _study(tmp_path / "random").best_trial
    per_seed = trial.user_attrs["per_seed"]
    assert len(per_seed) == 2 and per_seed[0]["r2"] != per_seed[1]["r2"]
    assert best["value"] == float(np.mean([m["r2"] for m in per_seed]))
    again, _ = _search(config, tmp_path / "random-again", save_best=False)
    np.testing.assert_array_equal(again["value"].values, dataset["value"].values)


def test_a_string_choice_is_written(tmp_path):
    config = _config(space={"activation": {"choices": ["tanh", "relu"]}}, trials=3)
    dataset, _ = _search(config, tmp_path / "strings", save_best=False)
    assert set(dataset["param_activation"].values) <= {"tanh", "relu"}
    on_disk = xr.load_dataset(tmp_path / "strings" / "trials.nc")
    assert list(on_disk["param_activation"].values) == list(dataset["param_activation"].values)


FLAGS = """
    import deepreservoir as dr


    def esn(seed=0, flag=None):
        return dr.Reservoir(20, seed=seed) >> dr.Ridge(1e-6)
"""


@pytest.mark.parametrize("choices", [[True, False], [0.5, "x"]], ids=["bool", "mixed"])
def test_bool_or_mixed_choices_are_written(tmp_path, factory_module, choices):
    name = factory_module("exp_search_flags", FLAGS)
    config = _config(model=f"{name}:esn", params={}, space={"flag": {"choices": choices}},
                     trials=8)  # enough draws to see both choices
    dataset, _ = _search(config, tmp_path / "flags", save_best=False)
    assert set(dataset["state"].values) == {"COMPLETE"}
    assert (tmp_path / "flags" / "trials.nc").is_file()


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_search_killed_mid_trial_resumes_with_the_points_of_one_never_stopped(
        tmp_path, monkeypatch, sampler):
    import deepreservoir.search as search_module

    config = _config(space={"sr": {"low": 0.1, "high": 2.0}}, trials=5, sampler=sampler)
    never, _ = _search(config, tmp_path / "never", save_best=False)
    real, calls = search_module.evaluate_point, []

    def killed_at_the_third(*job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as Ctrl-C mid-trial: the trial stays RUNNING
        return real(*job)

    monkeypatch.setattr(search_module, "evaluate_point", killed_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        _search(config, tmp_path / "killed", save_best=False)
    monkeypatch.setattr(search_module, "evaluate_point", real)
    resumed, _ = _search(config, tmp_path / "killed", save_best=False)
    complete = resumed["state"].values == "COMPLETE"
    assert list(resumed["error"].values[~complete]) == ["interrupted"]
    np.testing.assert_array_equal(resumed["param_sr"].values[complete],
                                  never["param_sr"].values)
    np.testing.assert_array_equal(resumed["value"].values[complete], never["value"].values)


def test_grid_axes_are_choices_of_a_search(tmp_path):
    config = parse_experiment({
        "experiment": {"model": "esn", "dataset": "mackey_glass", "seeds": [0]},
        "data": DATA, "params": {"units": 30}, "axes": {"lr": [0.3, 1.0]},
        "search": {"trials": 4, "space": {"sr": {"low": 0.1, "high": 2.0}}}})
    dataset, _ = _search(config, tmp_path / "s", save_best=False)
    assert set(dataset["param_lr"].values) <= {0.3, 1.0}
    assert list(dataset["error"].values) == [""] * 4


def test_bad_worker_counts_are_refused_before_the_folder_is_made(tmp_path):
    config = _config(trials=2)
    for keyword, value in (("threads_per_worker", 0), ("workers", "2")):
        with pytest.raises(ParameterError, match=f"'{keyword}' parameter of run_search"):
            run_search(config, tmp_path / "s", progress=False, **{keyword: value})
    assert not (tmp_path / "s").exists()
