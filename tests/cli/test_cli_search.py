"""``deepreservoir search``, and ``deepreservoir sweep`` on an [experiment] file, run by users."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import deepreservoir as dr
from deepreservoir.cli import main
from deepreservoir.experiment import series_metrics
from deepreservoir.experiment_config import load_experiment
from deepreservoir.experiment_data import load_task
from deepreservoir.step_kernels import step_kernel

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

TINY = """
[experiment]
model = "esn"
dataset = "mackey_glass"
metric = "nrmse"
seeds = [0, 1]

[data]
steps = 600
test_size = 200
normalize = true

[params]
units = 30
warmup = 50
"""

SEARCH = TINY + """
[search]
trials = 4
seed = 3
[search.space]
sr = { low = 0.1, high = 2.0, log = true }
ridge = { low = 1e-8, high = 1e-2, log = true }
"""

GRID = TINY + """
[axes]
sr = [0.5, 1.0]
"Reservoir-0.rc_connectivity" = [0.1, 0.3]
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_search_command_writes_trials_and_a_best_model_that_scores_as_reported(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = _write(tmp_path, "tiny.toml", SEARCH)
    assert main(["search", str(config), "--no-progress"]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "tiny.search"  # the default: ./NAME.search
    assert "4 trials" in out and "(4 complete, 0 failed)" in out
    best = json.loads((folder / "best.json").read_text())
    trials = xr.open_dataset(folder / "trials.nc")
    assert float(trials["value"].min()) == pytest.approx(best["value"], rel=0, abs=0)
    assert f"best trial {best['number']}" in out
    reported = float(re.search(r"nrmse = ([0-9.e+-]+)", out).group(1))
    assert reported == pytest.approx(best["value"], rel=1e-3)
    model = dr.load(folder / "best")
    experiment = load_experiment(config)
    task = load_task(experiment.dataset, experiment.data)
    model.run(task.x_train)
    scores = series_metrics(model.run(task.x_test), task.y_test, task.x_train)
    assert scores["nrmse"] == best["artifact_metrics"]["nrmse"]


def test_search_command_resumes_to_a_larger_budget(tmp_path, capsys):
    config = _write(tmp_path, "tiny.toml", SEARCH)
    out = tmp_path / "s"
    assert main(["search", str(config), "--out", str(out), "--trials", "2",
                 "--no-progress"]) == 0
    assert main(["search", str(config), "--out", str(out), "--trials", "5",
                 "--no-progress"]) == 0
    assert "5 trials" in capsys.readouterr().out.splitlines()[-3]
    assert xr.open_dataset(out / "trials.nc").sizes["trial"] == 5


def test_search_command_refuses_a_grid_only_file_in_one_line(tmp_path, capsys):
    config = _write(tmp_path, "grid.toml", GRID)
    assert main(["search", str(config), "--out", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[search.space]" in err[0]


def test_sweep_command_runs_an_experiment_grid(tmp_path, capsys):
    config = _write(tmp_path, "grid.toml", GRID)
    out = tmp_path / "grid.nc"
    assert main(["sweep", str(config), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "8 cells: 0 already done, 8 trained now" in text
    merged = xr.open_dataset(out)
    assert list(merged["nrmse"].dims) == ["sr", "Reservoir-0.rc_connectivity", "seed"]
    best = float(merged["nrmse"].mean("seed").min())
    assert f"{best:.4g}" in text.splitlines()[2]  # the best cell is listed first


@pytest.mark.slow
def test_search_on_a_local_cluster_of_two_workers(tmp_path, capsys):
    pytest.importorskip("distributed")
    config = _write(tmp_path, "tiny.toml", SEARCH)
    out = tmp_path / "s"
    assert main(["search", str(config), "--out", str(out), "--workers", "2",
                 "--no-progress"]) == 0
    trials = xr.open_dataset(out / "trials.nc")
    assert trials.sizes["trial"] == 4 and set(trials["state"].values) == {"COMPLETE"}
    assert (out / "best" / "spec.json").is_file()
    assert not (out / "search.lock").exists()


def test_search_mackey_glass_example_runs_and_reloads_its_best_model(tmp_path):
    script = EXAMPLES / "search_mackey_glass.py"
    command = [sys.executable, str(script), "--trials", "1", "--out", str(tmp_path / "s")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    best = float(re.search(r"best mean NRMSE over 5 seeds = ([0-9.e+-]+)",
                           result.stdout).group(1))
    reloaded = float(re.search(r"reloaded best model \(seed 1234\): NRMSE = ([0-9.e+-]+)",
                               result.stdout).group(1))
    assert best > 0 and reloaded > 0
    assert "1 trials finished" in result.stdout
    assert reloaded == pytest.approx(best, rel=0.5)  # one seed of the five, same point


def test_sweep_command_on_an_experiment_without_axes_reports_the_seeds(tmp_path, capsys):
    config = _write(tmp_path, "seeds.toml", TINY)
    assert main(["sweep", str(config), "--out", str(tmp_path / "s.nc"), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "2 cells: 0 already done, 2 trained now" in text
    assert "nrmse over 2 seeds: mean" in text


def test_a_spent_budget_starts_no_cluster(tmp_path, capsys, monkeypatch):
    config = _write(tmp_path, "tiny.toml", SEARCH)
    out = tmp_path / "s"
    assert main(["search", str(config), "--out", str(out), "--trials", "2",
                 "--no-progress"]) == 0
    import deepreservoir.cluster as cluster

    def no_pool(*args, **kwargs):
        raise AssertionError("a cluster was started for no trial")

    monkeypatch.setattr(cluster, "DaskPool", no_pool)
    assert main(["search", str(config), "--out", str(out), "--trials", "1", "--workers", "2",
                 "--no-progress"]) == 0
    assert "2 trials" in capsys.readouterr().out.splitlines()[-3]


@pytest.mark.slow
def test_an_experiment_grid_on_two_workers_equals_one_in_this_process(tmp_path):
    pytest.importorskip("distributed")
    config = _write(tmp_path, "grid.toml", GRID)
    here, there = tmp_path / "here.nc", tmp_path / "there.nc"
    # "auto" measures the product kernel in each process, and kernels differ in
    # rounding; a pinned kernel is carried to the workers, so the sums are equal.
    with step_kernel("csr"):
        assert main(["sweep", str(config), "--out", str(here), "--no-progress"]) == 0
        assert main(["sweep", str(config), "--out", str(there), "--workers", "2",
                     "--no-progress"]) == 0
    one, two = xr.open_dataset(here), xr.open_dataset(there)
    for name in ("nrmse", "rmse", "r2"):
        np.testing.assert_array_equal(one[name].values, two[name].values)
