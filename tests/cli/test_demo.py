"""``deepreservoir demo``: the quick configuration in detail, the real one end to end."""

from __future__ import annotations

import io
import subprocess
import sys
from contextlib import redirect_stdout

import numpy as np
import pytest
import xarray as xr

import deepreservoir as dr
from deepreservoir.cli import main
from deepreservoir.demo import DemoConfig

FILES = ["esn_mackey_glass.nc", "esn_mackey_glass.png", "lottalora_mnist1d.nc",
         "lottalora_mnist1d.png", "esp_esn.nc", "esp_esn.png", "spectra_esn.nc",
         "spectra_lottalora.nc", "spectra_lottalora.png", "depth_lyapunov_lottalora.nc"]


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main(["demo", "--quick", "--out", str(out), "--no-progress"])
    return code, buffer.getvalue(), out


def test_quick_demo_writes_every_file(quick_demo):
    code, printed, out = quick_demo
    assert code == 0
    for name in FILES:
        assert (out / name).is_file(), name
    config = DemoConfig.quick()
    assert (out / f"lottalora_r{max(config.ranks)}_model" / "spec.json").is_file()
    assert (out / "esn_model" / "spec.json").is_file()
    assert f"Wrote {len(list(out.iterdir()))} files to {out.resolve()}" in printed


def test_quick_demo_prints_nrmse_that_matches_its_data(quick_demo):
    _, printed, out = quick_demo
    with xr.open_dataset(out / "esn_mackey_glass.nc") as esn:
        truth, prediction = esn["target"].values, esn["prediction"].values
        nrmse = np.sqrt(np.mean((prediction - truth) ** 2)) / np.ptp(truth)
        assert esn.attrs["nrmse"] == pytest.approx(nrmse, rel=1e-12)
    assert f"NRMSE = {nrmse:.2e}" in printed
    assert nrmse < 0.05


def test_quick_demo_table_matches_its_data(quick_demo):
    _, printed, out = quick_demo
    config = DemoConfig.quick()
    with xr.open_dataset(out / "lottalora_mnist1d.nc") as runs:
        runs = runs.load()
    assert list(runs["rank"].values) == list(config.ranks)
    full = runs.attrs["full_test_accuracy"]
    np.testing.assert_allclose(runs["percent_of_full"], 100 * runs["test_accuracy"] / full)
    for r in config.ranks:
        expected = dr.paper_param_count(40, dr.PRESETS[config.preset], 10, r)
        assert int(runs["trainable"].sel(rank=r)) == expected
    # % trained: of the dense network's parameters, as `inspect` counts them (the model's
    # footprint), not of the fully trained model's, which has hidden biases besides
    np.testing.assert_allclose(runs["percent_trained"], 100 * runs["trainable"] / runs["dense"])
    assert runs.attrs["full_percent_trained"] == 100.0
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip().startswith("rank"))
    assert "accuracy" in lines[header] and "% of full" in lines[header]
    assert "% trained" in lines[header] and "β layer0" in lines[header]
    for i, r in enumerate(config.ranks):
        cells = lines[header + 3 + i].split()
        assert int(cells[0]) == r
        assert float(cells[1]) == pytest.approx(float(runs["test_accuracy"][i]), abs=5e-4)
        assert float(cells[2]) == pytest.approx(float(runs["percent_of_full"][i]), abs=0.05)
        assert float(cells[3]) == pytest.approx(float(runs["percent_trained"][i]), abs=0.005)
        betas = [float(c) for c in cells[4:]]
        np.testing.assert_allclose(betas, runs["beta"].values[i], atol=5e-4)


def test_quick_demo_reports_both_models(quick_demo):
    _, printed, out = quick_demo
    assert "ESP verdict:" in printed
    assert "σ₁(W_seed)" in printed
    with xr.open_dataset(out / "esp_esn.nc") as esp:
        assert f"ESP verdict: {esp.attrs['verdict']}" in printed


def test_quick_demo_model_can_be_inspected(quick_demo, capsys):
    _, _, out = quick_demo
    path = out / f"lottalora_r{max(DemoConfig.quick().ranks)}_model"
    assert main(["inspect", str(path)]) == 0
    assert "σ₁(W_seed)" in capsys.readouterr().out


def test_real_demo_end_to_end(tmp_path):
    """The real demo, as a user runs it: about a minute (48–55 s wall, 45 s of CPU on one core)."""
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "deepreservoir.cli", "demo", "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    for name in FILES:
        assert (out / name).is_file(), name
    with xr.open_dataset(out / "lottalora_mnist1d.nc") as runs:
        assert list(runs["rank"].values) == list(DemoConfig().ranks)
        # more rank, more accuracy: the r = 16 run beats the r = 1 run
        assert float(runs["test_accuracy"].sel(rank=16)) > float(runs["test_accuracy"].sel(rank=1))
    with xr.open_dataset(out / "esn_mackey_glass.nc") as esn:
        assert esn.attrs["nrmse"] < 0.01
