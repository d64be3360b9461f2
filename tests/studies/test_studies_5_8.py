"""Studies 5–8 (analysis/multitask, esp_beta, intrinsic_dimension, time_axis), quick versions.

Each study is loaded from its file, as ``deepreservoir reproduce`` does, run
with ``quick=True`` into a temporary folder, and checked for the contract
(files, Dataset structure, summary) and for the qualitative claims that hold
on the quick data.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

ANALYSIS = Path(__file__).resolve().parents[2] / "analysis"


def load_study(name):
    spec = importlib.util.spec_from_file_location(f"study_{name}", ANALYSIS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every quick study, run once for the module (about a minute on one core)."""
    out = {}
    for name in ("multitask", "esp_beta", "intrinsic_dimension", "time_axis"):
        folder = tmp_path_factory.mktemp(name)
        out[name] = (load_study(name), folder,
                     load_study(name).run(folder, quick=True, seed=0, progress=False))
    return out


@pytest.mark.parametrize("name", ["multitask", "esp_beta", "intrinsic_dimension", "time_axis"])
def test_contract(results, name):
    module, folder, result = results[name]
    assert isinstance(module.TITLE, str) and module.TITLE
    assert isinstance(module.PAPER, str) and "\n" not in module.PAPER
    assert set(result) == {"dataset", "summary", "claims", "files"}
    expected = {folder / f"{name}{suffix}" for suffix in (".nc", ".png", ".md")}
    assert {Path(p) for p in result["files"]} == expected
    assert all(path.stat().st_size > 0 for path in expected)
    with xr.open_dataset(folder / f"{name}.nc") as saved:
        assert set(saved.data_vars) == set(result["dataset"].data_vars)
        assert saved.attrs["study"] == name
        assert saved.attrs["run_seconds"] > 0
        assert "config" in saved.attrs
    summary = (folder / f"{name}.md").read_text(encoding="utf-8")
    assert summary.strip() == result["summary"].strip()
    assert "Run time:" in summary and "{seconds}" not in summary
    assert all(isinstance(v, bool) for v in result["claims"].values())
    assert (folder / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_multitask(results):
    module, _, result = results["multitask"]
    ds = result["dataset"]
    assert ds["accuracy"].dims == ("repetition", "eval_seed", "task")
    assert list(ds["eval_seed"].values) == [*module.OWNERS, module.UNSEEN_SEED]
    assert float(ds["accuracy"].min()) >= 0 and float(ds["accuracy"].max()) <= 1
    # the unseen seed owns no labels, so "inside its own labels" is undefined
    assert np.isnan(ds["in_own_set"].sel(eval_seed=module.UNSEEN_SEED)).all()
    assert result["claims"] == {"specialises_by_seed": True,
                                "rejects_other_seeds_classes": True,
                                "unseen_seed_does_not_unlock_tasks": True}


def test_esp_beta(results):
    _, _, result = results["esp_beta"]
    ds = result["dataset"]
    assert ds["sigma1"].dims == ("seed", "layer", "matrix")
    assert list(ds["matrix"].values) == ["effective", "frozen"]
    # the first layer maps 64 digits pixels to 128 units: rectangular, no radius
    assert np.isnan(ds["rho"].sel(layer="layer0")).all()
    assert np.isfinite(ds["rho"].sel(layer="layer1")).all()
    # before training β is exactly 1 (the adapters start as a no-op)
    np.testing.assert_array_equal(ds["beta_history"].isel(epoch=0).values, 1.0)
    np.testing.assert_array_equal(ds["beta_history"].isel(epoch=-1).values, ds["beta"].values)
    assert all(result["claims"].values()), result["claims"]


def test_intrinsic_dimension(results):
    module, _, result = results["intrinsic_dimension"]
    ds = result["dataset"]
    assert ds["planted_loss"].dims == ("k", "planted_rank", "planted_seed")
    assert list(ds["estimator"].values) == module.ESTIMATORS
    claims = result["claims"]
    assert claims["planted_k_recovered"]
    np.testing.assert_array_equal(ds["planted_r_star"].values[:, 0], ds["k"].values)
    assert claims["targets_pca_matches_k"]
    assert claims["accuracy_grows_with_rank"]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_planted_task_has_rank_k(k):
    module = load_study("intrinsic_dimension")
    x, y = module.planted_task(k, seed=0, noise=0.0)
    assert x.shape == (1200, 20) and y.shape == (1200, 12)
    assert np.linalg.matrix_rank(y.astype(np.float64), tol=1e-3) == k


def test_time_axis(results):
    module, _, result = results["time_axis"]
    ds = result["dataset"]
    assert list(ds["contender"].values) == module.CONTENDERS
    assert ds["score"].dims == ("task", "contender", "seed")
    assert np.isfinite(ds["score"]).all()
    # the closed-form ridge fit has no training loss
    assert np.isnan(ds["train_loss"].sel(contender="esn_ridge")).all()
    assert "0.107" in result["summary"]
    assert result["claims"]["esn_ridge_best_on_narma10"]
    assert result["claims"]["esn_ridge_best_on_mackey_glass"]
    assert result["claims"]["lora_on_W_improves_on_gradient_readout"]


def test_narma10_follows_the_recurrence():
    from deepreservoir.datasets import narma10

    u, y = narma10(300, np.random.default_rng(3))
    assert u.shape == y.shape == (300, 1)
    assert u.min() >= 0 and u.max() <= 0.5
    # y holds y(t+1) for the input u(t): check the recurrence inside the window
    for t in range(20, 299):
        expected = (0.3 * y[t - 1, 0] + 0.05 * y[t - 1, 0] * y[t - 10: t, 0].sum()
                    + 1.5 * u[t - 9, 0] * u[t, 0] + 0.1)
        assert y[t, 0] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kwargs, name", [({"steps": 0}, "steps"), ({"steps": 2.5}, "steps"),
                                          ({"seed": -1}, "seed"), ({"transient": 3}, "transient")])
def test_narma10_rejects_bad_arguments(kwargs, name):
    from deepreservoir.datasets import narma10
    from deepreservoir.errors import ParameterError

    arguments = {"steps": 10, **kwargs}
    with pytest.raises(ParameterError, match=f"'{name}' parameter of narma10"):
        narma10(**arguments)


def test_narma10_same_seed_same_series():
    from deepreservoir.datasets import narma10

    first, second = narma10(50, 7), narma10(50, np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not np.array_equal(first[0], narma10(50, 8)[0])

