"""An experiment's TOML: every bad key, type or value is a DataError naming the file and the key."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deepreservoir.errors import DataError
from deepreservoir.experiment_config import (
    METRICS,
    ExperimentConfig,
    Range,
    load_experiment,
    parse_experiment,
)

HEAD = "[experiment]\n"
DIGITS = '[experiment]\nmodel = "lottalora"\ndataset = "digits"\nmetric = "accuracy"\n'
FACTORY = '[experiment]\nmodel = "somewhere:build"\n'

# (id, document, the key the message must name)
BAD = [
    ("unknown table", HEAD + "[extras]\na = 1\n", "extras"),
    ("experiment not a table", "experiment = 3\n", "experiment"),
    ("unknown key in [experiment]", HEAD + 'modle = "esn"\n', "modle"),
    ("model without a colon", HEAD + 'model = "nomodule"\n', "experiment.model"),
    ("model with two colons", HEAD + 'model = "a:b:c"\n', "experiment.model"),
    ("model without a function", HEAD + 'model = "a:"\n', "experiment.model"),
    ("model not a string", HEAD + "model = 3\n", "experiment.model"),
    ("unknown dataset", HEAD + 'dataset = "lorenz"\n', "experiment.dataset"),
    ("unknown reservoirpy generator", HEAD + 'dataset = "reservoirpy:nothing_here"\n',
     "experiment.dataset"),
    ("private reservoirpy name", HEAD + 'dataset = "reservoirpy:_private"\n',
     "experiment.dataset"),
    ("missing .npz file", HEAD + 'dataset = "absent.npz"\n', "experiment.dataset"),
    ("dataset not a string", HEAD + "dataset = 1\n", "experiment.dataset"),
    ("unknown metric", HEAD + 'metric = "mae"\n', "experiment.metric"),
    ("accuracy on mackey_glass", HEAD + 'metric = "accuracy"\n', "experiment.metric"),
    ("nrmse on digits", DIGITS.replace("accuracy", "nrmse"), "experiment.metric"),
    ("seeds with a float", HEAD + "seeds = [0, 1.5]\n", "experiment.seeds"),
    ("seeds repeated", HEAD + "seeds = [1, 1]\n", "experiment.seeds"),
    ("seeds empty", HEAD + "seeds = []\n", "experiment.seeds"),
    ("seeds negative", HEAD + "seeds = [-1]\n", "experiment.seeds"),
    ("seeds bool", HEAD + "seeds = [true]\n", "experiment.seeds"),
    ("seeds not a list", HEAD + "seeds = 3\n", "experiment.seeds"),
    ("empty axis", HEAD + "[axes]\nsr = []\n", "axes.sr"),
    ("axis not a list", HEAD + "[axes]\nsr = 0.5\n", "axes.sr"),
    ("repeated axis value", HEAD + "[axes]\nsr = [0.5, 0.5]\n", "axes.sr"),
    ("NaN axis value", HEAD + "[axes]\nsr = [0.5, nan]\n", "axes.sr"),
    ("infinite parameter", HEAD + "[params]\nsr = inf\n", "params.sr"),
    ("table parameter", HEAD + "[params]\nsr = {a = 1}\n", "params.sr"),
    ("date parameter", HEAD + "[params]\nsr = 1979-05-27\n", "params.sr"),
    ("NaN in a list parameter", HEAD + "[params]\nsr = [1.0, nan]\n", "params.sr"),
    ("range low > high", HEAD + "[search.space]\nsr = {low = 2.0, high = 1.0}\n",
     "search.space.sr"),
    ("range low == high", HEAD + "[search.space]\nsr = {low = 1.0, high = 1.0}\n",
     "search.space.sr"),
    ("log range from 0", HEAD + "[search.space]\nsr = {low = 0.0, high = 1.0, log = true}\n",
     "search.space.sr"),
    ("log range below 0", HEAD + "[search.space]\nsr = {low = -1.0, high = 1.0, log = true}\n",
     "search.space.sr"),
    ("unknown range key", HEAD + "[search.space]\nsr = {low = 0.1, high = 1.0, step = 0.1}\n",
     "search.space.sr"),
    ("log not a bool", HEAD + '[search.space]\nsr = {low = 0.1, high = 1.0, log = "yes"}\n',
     "search.space.sr"),
    ("empty choices", HEAD + "[search.space]\nsr = {choices = []}\n", "search.space.sr"),
    ("choices and low", HEAD + "[search.space]\nsr = {choices = [1], low = 0}\n",
     "search.space.sr"),
    ("range not a table", HEAD + "[search.space]\nsr = [0.1, 1.0]\n", "search.space.sr"),
    ("range of strings", HEAD + '[search.space]\nsr = {low = "a", high = "b"}\n',
     "search.space.sr"),
    ("range of bools", HEAD + "[search.space]\nsr = {low = false, high = true}\n",
     "search.space.sr"),
    ("range to NaN", HEAD + "[search.space]\nsr = {low = 0.1, high = nan}\n",
     "search.space.sr"),
    ("range to inf", HEAD + "[search.space]\nsr = {low = 0.1, high = inf}\n",
     "search.space.sr"),
    ("range without high", HEAD + "[search.space]\nsr = {low = 0.1}\n", "search.space.sr"),
    ("key in [params] and [axes]", HEAD + "[params]\nsr = 0.5\n[axes]\nsr = [0.1, 0.2]\n",
     "sr"),
    ("key in [params] and [search.space]",
     HEAD + "[params]\nsr = 0.5\n[search.space]\nsr = {low = 0.1, high = 1.0}\n", "sr"),
    ("seed as a factory parameter", FACTORY + "[params]\nseed = 1\n", "seed"),
    ("seed as an axis", FACTORY + "[axes]\nseed = [1, 2]\n", "seed"),
    ("seed as a range", FACTORY + "[search.space]\nseed = {low = 0, high = 9}\n", "seed"),
    ("seed as an esn parameter", HEAD + "[params]\nseed = 1\n", "seed"),
    ("unknown esn hyperparameter", HEAD + "[params]\nspectral = 1\n", "spectral"),
    ("unknown esn axis", HEAD + "[axes]\nspectral = [1, 2]\n", "spectral"),
    ("unknown lottalora hyperparameter", DIGITS + "[params]\nunits = 3\n", "units"),
    ("unknown [data] option", HEAD + "[data]\nlength = 100\n", "length"),
    ("unknown digits option", DIGITS + "[data]\nsteps = 100\n", "steps"),
    ("[data] not a table", "data = 3\n" + HEAD, "data"),
    ("search.trials 0", HEAD + "[search]\ntrials = 0\n", "search.trials"),
    ("search.trials float", HEAD + "[search]\ntrials = 2.0\n", "search.trials"),
    ("search.trials bool", HEAD + "[search]\ntrials = true\n", "search.trials"),
    ("sampler grid", HEAD + '[search]\nsampler = "grid"\n', "search.sampler"),
    ("search seed negative", HEAD + "[search]\nseed = -1\n", "search.seed"),
    ("unknown [search] key", HEAD + "[search]\nn_trials = 3\n", "n_trials"),
    ("space not a table", HEAD + "[search]\nspace = 3\n", "search.space"),
    ("lottalora with a node key", DIGITS + '[params]\n"layer0.r" = 2\n', "layer0.r"),
    ("lottalora with a node axis", DIGITS + '[axes]\n"layer0.r" = [1, 2]\n', "layer0.r"),
    ("lottalora with a fit key", DIGITS + '[params]\n"fit.lr" = 0.1\n', "fit.lr"),
    ("bad npz kind", HEAD.replace("]\n", ']\ndataset = "toy.npz"\n') + '[data]\nkind = "x"\n',
     "data.kind"),
]


@pytest.fixture
def toy_npz(tmp_path):
    np.savez(tmp_path / "toy.npz", X=np.zeros((10, 2)), y=np.arange(10) % 2)
    return tmp_path / "toy.npz"


@pytest.mark.parametrize("document, key", [(d, k) for _, d, k in BAD],
                         ids=[name for name, _, _ in BAD])
def test_a_bad_document_is_a_data_error_naming_the_file_and_the_key(write_toml, toy_npz,
                                                                    document, key):
    path = write_toml(document)
    with pytest.raises(DataError) as caught:
        load_experiment(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") or str(path) in message, message
    assert key in message, message


def test_parse_names_the_where_given():
    with pytest.raises(DataError, match=r"^my-config: 'experiment.metric'"):
        parse_experiment({"experiment": {"metric": "mae"}}, where="my-config")


def test_defaults():
    config = parse_experiment({"experiment": {}})
    assert (config.model, config.dataset, config.metric, config.seeds) == (
        "esn", "mackey_glass", "nrmse", (0,))
    assert config.direction == "minimize" and config.trials == 20 and config.sampler == "tpe"
    assert config.cells() == [{"seed": 0}]


def test_a_full_document_is_parsed(write_toml):
    path = write_toml("""
        [experiment]
        model = "esn"
        dataset = "reservoirpy:doublescroll"
        metric = "r2"
        seeds = [3, 1]
        [data]
        steps = 300
        method = "RK23"
        [params]
        units = 40
        "Reservoir-0.rc_connectivity" = 0.2
        [axes]
        sr = [0.5, 1.5]
        "fit.warmup" = [0, 10]
        [search]
        trials = 7
        sampler = "random"
        seed = 5
        [search.space]
        ridge = {low = 1e-8, high = 1e-2, log = true}
        activation = {choices = ["a", "b"]}
        lr = {low = 1, high = 3}
    """)
    config = load_experiment(path)
    assert config.source == str(path)
    assert config.metric == "r2" and config.direction == "maximize"
    assert config.seeds == (3, 1)
    assert config.data == {"steps": 300, "method": "RK23"}
    assert config.params == {"units": 40, "Reservoir-0.rc_connectivity": 0.2}
    assert config.axes == {"sr": (0.5, 1.5), "fit.warmup": (0, 10)}
    assert (config.trials, config.sampler, config.search_seed) == (7, "random", 5)
    assert config.space["ridge"] == Range(low=1e-8, high=1e-2, log=True)
    assert config.space["activation"] == Range(choices=("a", "b"))
    assert config.space["lr"].is_int and not config.space["ridge"].is_int
    assert config.space["activation"].as_dict() == {"choices": ["a", "b"]}
    assert config.space["ridge"].as_dict() == {"low": 1e-8, "high": 1e-2, "log": True}


def test_a_relative_npz_path_is_resolved_against_base(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "set.npz", X=np.zeros((10, 2)), y=np.arange(10) % 2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    document = {"experiment": {"model": "lottalora", "dataset": "data/set.npz",
                               "metric": "accuracy"}}
    config = parse_experiment(document, base=tmp_path)
    assert config.dataset == str(tmp_path / "data" / "set.npz")
    with pytest.raises(DataError, match="experiment.dataset"):
        parse_experiment(document)  # no base: relative to the working folder, not there


def test_load_experiment_resolves_against_the_tomls_folder(tmp_path, write_toml, monkeypatch):
    np.savez(tmp_path / "set.npz", X=np.zeros((10, 2)), y=np.arange(10) % 2)
    path = write_toml('[experiment]\nmodel = "lottalora"\ndataset = "set.npz"\n'
                      'metric = "loss"\n')
    monkeypatch.chdir("/")
    assert load_experiment(path).dataset == str(tmp_path / "set.npz")


def test_load_experiment_on_a_missing_file(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(DataError, match="does not exist") as caught:
        load_experiment(path)
    assert str(path) in str(caught.value)


def test_load_experiment_without_an_experiment_table(write_toml):
    path = write_toml("[sweep]\nranks = [1]\n")
    with pytest.raises(DataError, match=r"has no \[experiment\] table") as caught:
        load_experiment(path)
    assert str(path) in str(caught.value)


def test_load_experiment_on_invalid_toml(write_toml):
    path = write_toml("[experiment\n")
    with pytest.raises(DataError, match="not valid TOML"):
        load_experiment(path)


def test_every_metric_has_a_direction():
    assert set(METRICS.values()) == {"minimize", "maximize"}
    assert METRICS["r2"] == "maximize" and METRICS["accuracy"] == "maximize"
    assert all(METRICS[m] == "minimize" for m in ("nrmse", "nrmse_train", "rmse", "mse", "loss"))


def test_cells_are_the_product_of_the_axes_and_seeds_in_file_order():
    config = parse_experiment({"experiment": {"seeds": [5, 2]},
                               "axes": {"units": [30, 10, 20], "activation": ["tanh", "relu"]}})
    cells = config.cells()
    assert len(cells) == 3 * 2 * 2
    assert cells[:3] == [{"units": 30, "activation": "tanh", "seed": 5},
                         {"units": 30, "activation": "tanh", "seed": 2},
                         {"units": 30, "activation": "relu", "seed": 5}]
    assert cells[-1] == {"units": 20, "activation": "relu", "seed": 2}
    assert [tuple(c.values()) for c in cells] == list(
        itertools.product((30, 10, 20), ("tanh", "relu"), (5, 2)))
    assert all(list(c) == ["units", "activation", "seed"] for c in cells)


def test_cells_without_axes_are_the_seeds():
    config = parse_experiment({"experiment": {"seeds": [4, 0, 9]}})
    assert config.cells() == [{"seed": 4}, {"seed": 0}, {"seed": 9}]


BASE = {"experiment": {"seeds": [0]}, "data": {"steps": 400}, "params": {"units": 30},
        "axes": {"sr": [0.5, 1.0]}}


def _with(**changes):
    document = {k: dict(v) for k, v in BASE.items()}
    for table, value in changes.items():
        document[table] = value
    return parse_experiment(document)


def test_the_fingerprint_follows_what_changes_a_cells_result():
    base = _with().fingerprint()
    assert len(base) == 16 and base == _with().fingerprint()
    changed = {
        "data": _with(data={"steps": 500}),
        "params": _with(params={"units": 31}),
        "model": _with(experiment={"seeds": [0], "model": "pkg:build"}),
        "metric": _with(experiment={"seeds": [0], "metric": "rmse"}),
        "axis names": _with(axes={"lr": [0.5, 1.0]}),
        "another axis": _with(axes={"sr": [0.5, 1.0], "lr": [1.0]}),
        "dataset": _with(experiment={"seeds": [0], "dataset": "narma10"}, data={}),
    }
    for what, config in changed.items():
        assert config.fingerprint() != base, what


def test_the_fingerprint_ignores_axis_values_and_seeds():
    base = _with().fingerprint()
    assert _with(axes={"sr": [0.5, 1.0, 1.5]}).fingerprint() == base
    assert _with(axes={"sr": [2.0]}).fingerprint() == base
    assert _with(experiment={"seeds": [0, 1, 2]}).fingerprint() == base


def test_the_fingerprint_follows_a_data_files_bytes(tmp_path):
    path = tmp_path / "set.npz"
    np.savez(path, X=np.zeros((10, 2)), y=np.arange(10) % 2)
    document = {"experiment": {"model": "lottalora", "dataset": str(path),
                               "metric": "accuracy"}}
    before = parse_experiment(document).fingerprint()
    np.savez(path, X=np.ones((10, 2)), y=np.arange(10) % 2)
    assert parse_experiment(document).fingerprint() != before


def test_experiment_config_is_frozen():
    config = ExperimentConfig()
    with pytest.raises(AttributeError):
        config.metric = "rmse"


@pytest.mark.parametrize("option", ["test_size = 0", "normalize = 1"])
def test_a_bad_data_value_is_refused_when_the_file_is_read(write_toml, option):
    path = write_toml(f"[experiment]\n[data]\n{option}\n")
    with pytest.raises(DataError) as caught:
        load_experiment(path)
    assert str(path) in str(caught.value)
    assert f"data.{option.split()[0]}" in str(caught.value)
