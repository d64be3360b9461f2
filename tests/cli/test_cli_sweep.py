"""``deepreservoir sweep``: the grid, persistence of every cell, resuming.

Sweeps on Dask (``--workers``, ``--scheduler``) are tested in tests/test_dask_sweep.py,
Ctrl-C and kill -9 of a sweep in tests/reliability/test_process_reliability.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import deepreservoir as dr
from deepreservoir.cli import main
from deepreservoir.errors import DataError
from deepreservoir.sweep import load_config, merge_cells, run_sweep, sidecar_folder

CONFIG = """
[sweep]
dataset = "digits"
num_samples = 150
ranks = [1, 2]
seeds = [0, 1]
families = ["normal", "binary"]
presets = ["tiny"]
full = true

[train]
epochs = 1
batch_size = 64
"""

RESULT_VARIABLES = ["test_accuracy", "val_accuracy", "train_loss", "trainable", "beta",
                    "full_test_accuracy", "full_trainable"]


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(CONFIG)
    return path


def results(ds: xr.Dataset) -> xr.Dataset:
    """The deterministic part of a merged sweep (run times excluded)."""
    return ds[RESULT_VARIABLES]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted serial run of the grid."""
    folder = tmp_path_factory.mktemp("reference")
    path = folder / "grid.toml"
    path.write_text(CONFIG)
    merged, stats = run_sweep(load_config(path), folder / "grid.nc", progress=False)
    return merged, stats


def test_grid_structure(reference):
    merged, stats = reference
    assert stats == {"done_before": 0, "trained": 10, "total": 10}
    assert dict(merged["test_accuracy"].sizes) == {"preset": 1, "family": 2, "rank": 2, "seed": 2}
    assert list(merged["family"].values) == ["normal", "binary"]
    assert list(merged["rank"].values) == [1, 2]
    assert merged.attrs["cells_done"] == merged.attrs["cells_total"] == 10
    assert not np.isnan(merged["test_accuracy"]).any()
    assert not np.isnan(merged["full_test_accuracy"]).any()
    # trainable counts follow the paper's formula (digits: 64 inputs, 10 classes)
    for r in (1, 2):
        expected = dr.paper_param_count(64, dr.PRESETS["tiny"], 10, r)
        assert (merged["trainable"].sel(rank=r) == expected).all()
    np.testing.assert_allclose(
        merged["percent_of_full"],
        100 * merged["test_accuracy"] / merged["full_test_accuracy"].broadcast_like(
            merged["test_accuracy"]))
    # the tiny preset has 2 hidden layers: β of layer2..4 is NaN, of layer0..1 finite
    assert np.isfinite(merged["beta"].sel(layer=["layer0", "layer1"])).all()
    assert np.isnan(merged["beta"].sel(layer=["layer2", "layer3", "layer4"])).all()


def test_every_cell_is_a_file_and_merged_file_matches(reference, tmp_path):
    merged, _ = reference
    out = tmp_path / "again.nc"
    path = tmp_path / "grid.toml"
    path.write_text(CONFIG)
    run_sweep(load_config(path), out, progress=False)
    cells = sorted(p.name for p in sidecar_folder(out).glob("*.nc"))
    assert len(cells) == 10
    assert not list(sidecar_folder(out).glob(".*.tmp"))
    with xr.open_dataset(out) as on_disk:
        xr.testing.assert_identical(results(on_disk.load()), results(merged))


def test_interrupted_sweep_resumes_and_loses_nothing(reference, config_path, tmp_path):
    config = load_config(config_path)
    out = tmp_path / "grid.nc"
    finished = []

    def crash_after_three(cell):
        finished.append(cell)
        if len(finished) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, out, progress=False, on_cell=crash_after_three)
    assert len(list(sidecar_folder(out).glob("*.nc"))) == 3
    assert not out.exists()
    partial = merge_cells(config, sidecar_folder(out))
    assert partial.attrs["cells_done"] == 3

    merged, stats = run_sweep(config, out, progress=False)
    assert stats == {"done_before": 3, "trained": 7, "total": 10}
    xr.testing.assert_identical(results(merged), results(reference[0]))


def test_deleted_cell_is_the_only_one_retrained(reference, config_path, tmp_path):
    config = load_config(config_path)
    out = tmp_path / "grid.nc"
    run_sweep(config, out, progress=False)
    victim = sorted(sidecar_folder(out).glob("*binary__r2__s1.nc"))
    assert len(victim) == 1
    victim[0].unlink()
    merged, stats = run_sweep(config, out, progress=False)
    assert stats["trained"] == 1
    xr.testing.assert_identical(results(merged), results(reference[0]))


def test_grown_grid_reuses_finished_cells(config_path, tmp_path):
    out = tmp_path / "grid.nc"
    run_sweep(load_config(config_path), out, progress=False)
    bigger = tmp_path / "bigger.toml"
    bigger.write_text(CONFIG.replace("ranks = [1, 2]", "ranks = [1, 2, 4]"))
    merged, stats = run_sweep(load_config(bigger), out, progress=False)
    assert stats == {"done_before": 10, "trained": 4, "total": 14}
    assert list(merged["rank"].values) == [1, 2, 4]


def test_changed_training_options_are_refused(config_path, tmp_path):
    out = tmp_path / "grid.nc"
    run_sweep(load_config(config_path), out, progress=False)
    other = tmp_path / "other.toml"
    other.write_text(CONFIG.replace("epochs = 1", "epochs = 2"))
    with pytest.raises(DataError, match="different data or training options"):
        run_sweep(load_config(other), out, progress=False)


def test_command_line(config_path, tmp_path, capsys):
    out = tmp_path / "cli.nc"
    assert main(["sweep", str(config_path), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "10 cells: 0 already done, 10 trained now" in printed
    assert "normal" in printed and "binary" in printed
    assert out.is_file()
    assert main(["sweep", str(config_path), "--out", str(out), "--no-progress"]) == 0
    assert "10 already done, 0 trained now" in capsys.readouterr().out


def test_default_output_is_in_the_current_folder(config_path, tmp_path, monkeypatch):
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["sweep", str(config_path), "--no-progress"]) == 0
    assert (work / config_path.with_suffix(".nc").name).is_file()
    assert not config_path.with_suffix(".nc").exists()  # never beside the config


def test_example_config_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "sweep.toml"
    config = load_config(example)
    assert len(config.cells()) == (len(config.presets) * len(config.families)
                                   * len(config.ranks) + len(config.presets)) * len(config.seeds)
