"""Experiments on a saved model's graph: ``model = "spec:PATH"``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import deepreservoir as dr
from deepreservoir.errors import DataError
from deepreservoir.experiment import run_trial
from deepreservoir.experiment_config import parse_experiment
from deepreservoir.hyperparameters import with_hyperparameters

DATA = {"steps": 700, "test_size": 200, "normalize": True}


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("spec")
    model = (dr.Reservoir(40, sr=0.9, lr=0.5, seed=11) >> dr.Ridge(1e-6)).double()
    x = np.sin(np.arange(300) / 7.0)[:, None]
    model.fit(x[:-1], x[1:])
    dr.save(model, folder / "esn")
    return folder / "esn"


def _config(saved: Path, **extra):
    document = {"experiment": {"model": "spec:esn", "dataset": "mackey_glass",
                               "seeds": [0, 1]},
                "data": DATA, "params": {"fit.warmup": 50}, **extra}
    return parse_experiment(document, where="t.toml", base=saved.parent)


def test_a_spec_model_is_rebuilt_untrained_with_the_trial_seed_as_root(saved):
    config = _config(saved)
    assert config.model == f"spec:{saved}"
    first, again, other = (run_trial(config, {"Reservoir-0.sr": 1.1}, seed)
                           for seed in (3, 3, 4))
    assert first["nrmse"] == again["nrmse"]  # one seed, one result
    assert first["nrmse"] != other["nrmse"]  # the trial's seed reseeds the graph
    by_hand = with_hyperparameters(dr.load(saved), {"Reservoir-0.sr": 1.1}, seed=3)
    assert by_hand.seed == 3
    assert by_hand.nodes["Reservoir-0"].sr == 1.1
    assert by_hand.nodes["Reservoir-0"].seed is None  # the saved seed 11 is replaced
    assert not by_hand.nodes["Ridge-0"].is_fitted()


def test_a_changed_value_changes_the_result(saved):
    config = _config(saved)
    low = run_trial(config, {"Reservoir-0.sr": 0.3}, 0)
    high = run_trial(config, {"Reservoir-0.sr": 1.2}, 0)
    assert low["nrmse"] != high["nrmse"]


def test_the_spec_file_enters_the_fingerprint(saved, tmp_path):
    import shutil

    copy = tmp_path / "esn"
    shutil.copytree(saved, copy)
    first = _config(copy).fingerprint()
    spec = copy / "spec.json"
    spec.write_text(spec.read_text().replace('"sr": 0.9', '"sr": 0.8'))
    assert _config(copy).fingerprint() != first


def test_a_spec_model_refuses_model_level_keys_and_missing_folders(saved, tmp_path):
    with pytest.raises(DataError, match="'units' does not apply to a model built from a spec"):
        _config(saved, axes={"units": [10, 20]})
    with pytest.raises(DataError, match=r"t\.toml: 'experiment\.model'.*spec\.json"):
        parse_experiment({"experiment": {"model": "spec:nowhere"}}, where="t.toml",
                         base=tmp_path)
