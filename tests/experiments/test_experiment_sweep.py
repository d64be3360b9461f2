"""``run_experiment_sweep`` in this process: the Dataset, reruns, the stamp and the lock."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from deepreservoir._processes import FolderLock
from deepreservoir.cell_engine import sidecar_folder
from deepreservoir.errors import DataError, ParameterError
from deepreservoir.experiment import run_trial
from deepreservoir.experiment_config import parse_experiment
from deepreservoir.experiment_sweep import cell_file, merge_experiment, run_experiment_sweep

METRICS = ("mse", "rmse", "nrmse", "nrmse_train", "r2")


def _config(axes=None, params=None, seeds=(0, 1), data=None):
    return parse_experiment({
        "experiment": {"model": "esn", "dataset": "mackey_glass", "seeds": list(seeds)},
        "data": data or {"steps": 400}, "params": params or {"units": 20},
        "axes": axes if axes is not None else {"sr": [1.1, 0.5], "Ridge-0.ridge": [1e-3, 1e-6]},
    })


def _sweep(config, out):
    return run_experiment_sweep(config, out, workers=1, progress=False)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A finished 2 × 2 × 2 grid and the stats of its first run."""
    out = tmp_path_factory.mktemp("grid") / "grid.nc"
    config = _config()
    dataset, stats = _sweep(config, out)
    return config, out, dataset, stats


def test_the_dataset_has_the_axes_in_file_order_then_seed(grid):
    config, out, dataset, stats = grid
    assert stats == {"done_before": 0, "trained": 8, "total": 8}
    for name in (*METRICS, "seconds"):
        assert dataset[name].dims == ("sr", "Ridge-0.ridge", "seed")
        assert dataset[name].shape == (2, 2, 2)
        assert not np.isnan(dataset[name].values).any()
    assert list(dataset["sr"].values) == [1.1, 0.5]  # the file's order, not sorted
    assert list(dataset["Ridge-0.ridge"].values) == [1e-3, 1e-6]
    assert list(dataset["seed"].values) == [0, 1]
    assert dataset.attrs["cells_done"] == 8 and dataset.attrs["cells_total"] == 8
    assert dataset.attrs["metric"] == "nrmse" and dataset.attrs["direction"] == "minimize"
    assert dataset.attrs["config_fingerprint"] == config.fingerprint()
    assert json.loads(dataset.attrs["params"]) == {"units": 20}
    on_disk = xr.load_dataset(out)
    for name in METRICS:
        np.testing.assert_array_equal(on_disk[name].values, dataset[name].values)


def test_every_value_is_run_trial_of_its_cell(grid):
    config, _, dataset, _ = grid
    for cell in config.cells():
        expected = run_trial(config, {k: v for k, v in cell.items() if k != "seed"},
                             cell["seed"])
        where = dataset.sel(cell)
        for name in METRICS:
            assert float(where[name]) == expected[name], (cell, name)
    # the cells differ: the axes and the seeds reach the model
    assert len({float(v) for v in dataset["nrmse"].values.ravel()}) == 8


def test_cells_are_json_files_named_by_their_cell(grid):
    config, out, _, _ = grid
    folder = sidecar_folder(out)
    names = sorted(p.name for p in folder.glob("cell-*.json"))
    assert names == sorted(cell_file(c) for c in config.cells())
    assert len(set(names)) == 8
    record = json.loads((folder / cell_file(config.cells()[0])).read_text())
    assert record["cell"] == config.cells()[0]
    assert record["fingerprint"] == config.fingerprint()
    assert json.loads((folder / "config.json").read_text())["fingerprint"] == config.fingerprint()
    assert not (folder / "sweep.lock").exists()


def test_cell_file_ignores_key_order_but_not_values():
    assert cell_file({"a": 1, "seed": 0}) == cell_file({"seed": 0, "a": 1})
    assert cell_file({"a": 1, "seed": 0}) != cell_file({"a": 2, "seed": 0})
    assert cell_file({"a": 1, "seed": 0}) != cell_file({"a": 1, "seed": 1})


def test_a_rerun_trains_nothing_and_a_deleted_cell_alone_is_recomputed(tmp_path):
    config = _config(axes={"sr": [1.1, 0.5]}, seeds=(0, 1))
    out = tmp_path / "re.nc"
    first, stats = _sweep(config, out)
    assert stats["trained"] == 4
    again, stats = _sweep(config, out)
    assert stats == {"done_before": 4, "trained": 0, "total": 4}
    xr.testing.assert_identical(again, first)
    folder = sidecar_folder(out)
    victim = folder / cell_file({"sr": 0.5, "seed": 1})
    others = {p.name: p.read_bytes() for p in folder.glob("cell-*.json") if p != victim}
    victim.unlink()
    trained = []
    third, stats = run_experiment_sweep(config, out, progress=False, on_cell=trained.append)
    assert stats == {"done_before": 3, "trained": 1, "total": 4}
    assert trained == [{"sr": 0.5, "seed": 1}]
    assert {p.name: p.read_bytes() for p in folder.glob("cell-*.json") if p != victim} == others
    for name in METRICS:
        np.testing.assert_array_equal(third[name].values, first[name].values)


def test_merge_leaves_missing_cells_nan(tmp_path):
    config = _config(axes={"sr": [1.1, 0.5]}, seeds=(0,))
    out = tmp_path / "m.nc"
    _sweep(config, out)
    (sidecar_folder(out) / cell_file({"sr": 1.1, "seed": 0})).unlink()
    merged = merge_experiment(config, sidecar_folder(out))
    assert merged.attrs["cells_done"] == 1
    assert np.isnan(float(merged["nrmse"].sel(sr=1.1, seed=0)))
    assert not np.isnan(float(merged["nrmse"].sel(sr=0.5, seed=0)))


def test_other_params_on_the_same_out_are_refused(tmp_path):
    out = tmp_path / "fp.nc"
    _sweep(_config(axes={"sr": [0.5]}, seeds=(0,)), out)
    before = sorted(p.name for p in sidecar_folder(out).iterdir())
    for other in (_config(axes={"sr": [0.5]}, seeds=(0,), params={"units": 21}),
                  _config(axes={"sr": [0.5]}, seeds=(0,), data={"steps": 401}),
                  _config(axes={"lr": [0.5]}, seeds=(0,))):
        with pytest.raises(DataError, match="different data or training options") as caught:
            _sweep(other, out)
        assert str(sidecar_folder(out)) in str(caught.value)
    assert sorted(p.name for p in sidecar_folder(out).iterdir()) == before


def test_growing_an_axis_and_the_seeds_keeps_the_old_cells(tmp_path):
    out = tmp_path / "grow.nc"
    small = _config(axes={"sr": [1.1, 0.5]}, seeds=(0,))
    first, _ = _sweep(small, out)
    grown = _config(axes={"sr": [0.8, 1.1, 0.5]}, seeds=(0, 1))
    trained = []
    dataset, stats = run_experiment_sweep(grown, out, progress=False, on_cell=trained.append)
    assert stats == {"done_before": 2, "trained": 4, "total": 6}
    assert {(c["sr"], c["seed"]) for c in trained} == {(0.8, 0), (0.8, 1), (1.1, 1), (0.5, 1)}
    assert list(dataset["sr"].values) == [0.8, 1.1, 0.5]
    for sr in (1.1, 0.5):
        assert float(dataset["nrmse"].sel(sr=sr, seed=0)) == float(
            first["nrmse"].sel(sr=sr, seed=0))
    assert not np.isnan(dataset["nrmse"].values).any()


def test_a_held_lock_refuses_a_second_sweep(tmp_path):
    out = tmp_path / "locked.nc"
    config = _config(axes={"sr": [0.5]}, seeds=(0,))
    lock = FolderLock(sidecar_folder(out)).acquire()  # held by this live process
    try:
        with pytest.raises(ParameterError, match="names a folder in use") as caught:
            _sweep(config, out)
        assert str(sidecar_folder(out)) in str(caught.value)
        assert not list(sidecar_folder(out).glob("cell-*.json"))
        assert not out.exists()
    finally:
        lock.release()
    _, stats = _sweep(config, out)  # free again
    assert stats["trained"] == 1


@pytest.mark.parametrize("name", ["grid.h5", "grid", "grid.nc.tmp"])
def test_out_must_end_in_nc(tmp_path, name):
    with pytest.raises(ParameterError, match=r"must end in \.nc"):
        _sweep(_config(axes={"sr": [0.5]}, seeds=(0,)), tmp_path / name)


def test_bad_workers_are_refused(tmp_path):
    for workers in (0, 1.0, True):
        with pytest.raises(ParameterError, match="'workers'"):
            run_experiment_sweep(_config(axes={"sr": [0.5]}), tmp_path / "w.nc",
                                 workers=workers, progress=False)


def test_a_cells_error_propagates_and_its_neighbours_are_kept(tmp_path):
    out = tmp_path / "err.nc"
    config = _config(axes={"sr": [0.5, -1.0]}, seeds=(0,))
    with pytest.raises(ParameterError, match="sr"):
        _sweep(config, out)
    assert (sidecar_folder(out) / cell_file({"sr": 0.5, "seed": 0})).is_file()
    assert not (sidecar_folder(out) / "sweep.lock").exists()


def test_string_and_node_key_axes(tmp_path):
    config = _config(axes={"activation": ["tanh", "relu"], "Reservoir-0.lr": [1.0, 0.5]},
                     seeds=(0,))
    dataset, _ = _sweep(config, tmp_path / "kinds.nc")
    assert list(dataset["activation"].values) == ["tanh", "relu"]
    assert dataset["nrmse"].dims == ("activation", "Reservoir-0.lr", "seed")
    assert not np.isnan(dataset["nrmse"].values).any()
    on_disk = xr.load_dataset(tmp_path / "kinds.nc")
    assert list(on_disk["activation"].values) == ["tanh", "relu"]


FLAG_FACTORY = """
    import deepreservoir as dr


    def esn(seed=0, flag=None):
        return dr.Reservoir(20, seed=seed) >> dr.Ridge(1e-6)
"""


def _flag_config(factory_module, values):
    name = factory_module("exp_sweep_flags", FLAG_FACTORY)
    return parse_experiment({"experiment": {"model": f"{name}:esn", "seeds": [0]},
                             "data": {"steps": 400}, "axes": {"flag": values}})


def test_bool_and_list_axis_values_become_text_coordinates(tmp_path, factory_module):
    config = _flag_config(factory_module, [True, False, [1, 2]])
    dataset, stats = _sweep(config, tmp_path / "flags.nc")
    assert stats["trained"] == 3
    assert list(dataset["flag"].values) == ["true", "false", "[1, 2]"]
    assert not np.isnan(dataset["nrmse"].values).any()


@pytest.mark.parametrize("values", [[1, 1.0], [True, 1]], ids=["int-float", "bool-int"])
def test_axis_values_equal_under_equality_are_refused_or_kept_apart(tmp_path, factory_module,
                                                                    values):
    try:
        config = _flag_config(factory_module, values)
    except DataError as error:  # refusing them as repeats is a fix too
        assert "axes.flag" in str(error)
        return
    dataset, stats = _sweep(config, tmp_path / "eq.nc")
    assert stats["trained"] == 2
    assert not np.isnan(dataset["nrmse"].values).any()
    assert len(set(dataset["flag"].values.tolist())) == 2


def test_seeds_alone_make_a_grid(tmp_path):
    config = _config(axes={}, seeds=(2, 0))
    dataset, stats = _sweep(config, tmp_path / "seeds.nc")
    assert stats["total"] == 2
    assert dataset["nrmse"].dims == ("seed",) and list(dataset["seed"].values) == [2, 0]
    assert float(dataset["nrmse"].sel(seed=2)) == run_trial(config, {}, 2)["nrmse"]


def test_an_out_or_sidecar_of_the_wrong_kind_is_refused(tmp_path):
    config = _config(axes={"sr": [0.5]}, seeds=(0,))
    (tmp_path / "dir.nc").mkdir()
    with pytest.raises(ParameterError, match="is a directory"):
        _sweep(config, tmp_path / "dir.nc")
    (tmp_path / "file.nc.cells").write_text("x")
    with pytest.raises(ParameterError, match="is a file"):
        _sweep(config, tmp_path / "file.nc")
