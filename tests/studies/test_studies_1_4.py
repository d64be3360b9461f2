"""Studies 1–4 (analysis/rank_sweep, families, scaffold_resampling, ablations), quick versions.

Each runs with ``quick=True`` into a temporary folder through the same runner as
``deepreservoir reproduce``; the tests check the files, the Dataset's structure
and internal consistency, and the qualitative claims that hold on the quick data.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import deepreservoir as dr
from deepreservoir.families import FAMILIES
from deepreservoir.studies import run_study


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cache = {}

    def get(name):
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            cache[name] = (run_study(name, out, quick=True, progress=False), out)
        return cache[name]

    return get


def check_files(name, result, out):
    for suffix in ("nc", "png", "md"):
        path = out / f"{name}.{suffix}"
        assert path.is_file() and path.stat().st_size > 0
        assert path in result["files"]
    with xr.open_dataset(out / f"{name}.nc") as on_disk:
        on_disk = on_disk.load()
    assert on_disk.attrs["study"] == name
    assert on_disk.attrs["quick"] == 1
    assert on_disk.attrs["run_time_seconds"] > 0
    xr.testing.assert_allclose(on_disk, result["dataset"])
    text = (out / f"{name}.md").read_text()
    assert text.startswith("# ")
    assert "paper" in text.lower() and "Where we differ" in text
    assert "Run time:" in text and "s wall" in text
    for claim, value in result["claims"].items():
        assert f"{claim} = {value}" in text
    return on_disk


def test_rank_sweep(results):
    result, out = results("rank_sweep")
    ds = check_files("rank_sweep", result, out)
    assert list(ds["dataset"].values) == ["mnist1d", "digits"]
    assert dict(ds["accuracy"].sizes) == {"dataset": 2, "rank": 3, "seed": 2}
    assert ds["accuracy_full"].dims == ("dataset", "seed")
    assert np.isfinite(ds["accuracy"]).all() and np.isfinite(ds["accuracy_full"]).all()
    np.testing.assert_allclose(ds["percent_of_full"],
                               100 * ds["accuracy"].mean("seed") / ds["accuracy_full"].mean("seed"))
    features = {"mnist1d": 40, "digits": 64}
    for name, d_in in features.items():
        for r in ds["rank"].values:
            assert int(ds["trainable"].sel(dataset=name, rank=r)) == dr.paper_param_count(
                d_in, dr.PRESETS["tiny"], 10, int(r))
    np.testing.assert_allclose(ds["paper_mnist_percent_of_full"].sel(rank=4),
                               100 * 95.44 / 98.38)
    claims = result["claims"]
    assert claims["accuracy_grows_with_rank"]
    assert claims["rank1_below_full"]
    assert claims["rank4_trains_under_20pct_of_parameters"]


def test_families(results):
    result, out = results("families")
    ds = check_files("families", result, out)
    assert list(ds["family"].values) == list(FAMILIES)
    assert len(FAMILIES) == 22
    assert ds["accuracy"].dims == ("family", "seed")
    assert np.isfinite(ds["accuracy"]).all()
    assert ds.sizes["layer"] == len(dr.PRESETS["tiny"])
    # the seed-noise reference repeats the 'normal' family's run for its first seed
    first = int(ds["seed"].values[0])
    assert float(ds["normal_accuracy_over_seeds"].sel(noise_seed=first)) == float(
        ds["accuracy"].sel(family="normal", seed=first))
    spread = float(100 * (ds["accuracy"].max() - ds["accuracy"].min()))
    assert ds.attrs["spread_points"] == pytest.approx(spread)
    claims = result["claims"]
    assert claims["every_family_trains"]
    assert claims["beta_positive_for_every_family"]


def test_scaffold_resampling(results):
    result, out = results("scaffold_resampling")
    ds = check_files("scaffold_resampling", result, out)
    assert list(ds["mode"].values) == ["static", "epoch", "batch"]
    assert ds["beta"].dims == ("mode", "rank", "seed", "layer")
    assert np.isfinite(ds["beta"]).all() and np.isfinite(ds["accuracy"]).all()
    assert float(ds["paper_accuracy"].sel(mode="batch", rank=2)) == 42.46
    claims = result["claims"]
    assert claims["static_beta_positive"]
    assert claims["resampled_beta_below_static"]
    assert claims["static_beats_batch_resampling_at_low_rank"]


def test_ablations(results):
    result, out = results("ablations")
    ds = check_files("ablations", result, out)
    assert list(ds["variant"].values) == ["static", "removed", "w0_seeded_bias", "w0"]
    # 'removed' scores the very models of 'static' again: the same β
    np.testing.assert_array_equal(ds["beta"].sel(variant="static"),
                                  ds["beta"].sel(variant="removed"))
    # W_seed = 0 without biases cannot leave its start: β stays exactly 1
    assert (ds["beta"].sel(variant="w0").isel(seed=0) == 1.0).all()
    claims = result["claims"]
    assert claims["w0_without_bias_stays_at_chance"]
    assert claims["w0_seeded_bias_learns"]
    assert claims["scaffold_helps_at_rank1"]
