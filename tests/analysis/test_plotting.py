"""Every result kind plots; a missing matplotlib gives an actionable ImportError."""

import sys

import numpy as np
import pytest
import xarray as xr

import deepreservoir as dr
from deepreservoir import analysis


@pytest.fixture(scope="module")
def results():
    node = dr.Reservoir(30, sr=0.9, lr=0.5, seed=1, input_dim=1)
    W = np.random.default_rng(0).standard_normal((12, 12)) / 4
    points = np.random.default_rng(1).standard_normal((300, 4))
    sweep = xr.Dataset({"loss": (("rank", "seed"), np.array([[1.0, 0.9], [0.3, 0.35],
                                                             [0.1, 0.12]]))},
                       coords={"rank": [1, 2, 4], "seed": [0, 1]},
                       attrs={"kind": "rank_sweep", "metric": "loss"})
    return {
        "spectral_radius": analysis.spectral_radius(node),
        "spectral_radius_matrix": analysis.spectral_radius(W),
        "singular_values": analysis.singular_values(W),
        "spectra": analysis.spectra(node),
        "esp": analysis.check_esp(node, steps=200, maxiter=10),
        "lyapunov": analysis.lyapunov_exponents(node, steps=100, warmup=10),
        "benettin": analysis.benettin(lambda x, t: 0.5 * x, lambda x, t: 0.5 * np.eye(1),
                                      [1.0], 20),
        "depth": analysis.depth_lyapunov([W, W], n_samples=8),
        "memory": analysis.memory_capacity(node, 10, steps=800),
        "dimension": analysis.intrinsic_dimension(points, k=5),
        "sweep": sweep,
        "saturation": analysis.saturation_rank(sweep, [0.01, 0.1, 1.0]),
    }


KINDS = ["spectral_radius", "spectral_radius_matrix", "singular_values", "spectra", "esp",
         "lyapunov", "benettin", "depth", "memory", "dimension", "sweep", "saturation"]


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_plots(results, name):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = analysis.plot(results[name])
    assert figure.axes
    plt.close(figure)


def test_plot_into_given_axes(results):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2)
    assert analysis.plot(results["esp"], ax=axes) is figure
    with pytest.raises(dr.ParameterError, match=r"'ax' parameter of plot must be 2 matplotlib "
                                                r"Axes for this result\. Got 1"):
        analysis.plot(results["esp"], ax=axes[0])
    plt.close(figure)


def test_missing_matplotlib_names_the_extra(results, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install deepreservoir\[plot\]"):
        analysis.plot(results["memory"])


@pytest.mark.parametrize("name", ["spectra", "esp", "memory", "lyapunov", "saturation"])
def test_results_round_trip_through_netcdf(results, name, tmp_path):
    path = tmp_path / f"{name}.nc"
    results[name].to_netcdf(path)
    with xr.open_dataset(path) as loaded:
        assert loaded.attrs["kind"] == results[name].attrs["kind"]
        for variable in results[name].data_vars:
            np.testing.assert_array_equal(loaded[variable].values, results[name][variable].values)
