"""Spectra against dense LAPACK eigvals/svdvals (exact answers), for matrices, nodes and models."""

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse
import torch

import deepreservoir as dr
from deepreservoir.analysis import (
    leaky_spectral_radius,
    singular_values,
    spectra,
    spectral_norm,
    spectral_radius,
)


@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_dense_radius_and_norm_match_lapack(rng, n):
    W = rng.standard_normal((n, n))
    radius = spectral_radius(W)
    assert radius.ndim == 0
    assert float(radius) == pytest.approx(np.abs(np.linalg.eigvals(W)).max(), rel=1e-12)
    assert float(spectral_norm(W)) == pytest.approx(np.linalg.norm(W, 2), rel=1e-12)
    assert radius.attrs["kind"] == "spectral_radius"
    assert radius.attrs["method"] == "dense"


def test_rectangular_norm_and_singular_values(rng):
    W = rng.standard_normal((9, 4))
    np.testing.assert_allclose(singular_values(W).values, np.linalg.svd(W, compute_uv=False),
                               rtol=1e-12)
    assert float(spectral_norm(W)) == pytest.approx(np.linalg.norm(W, 2), rel=1e-12)


@pytest.mark.parametrize("density", [1.0, 0.05])
def test_arpack_matches_dense_within_reported_error(density):
    n = 400
    W = scipy.sparse.random(n, n, density=density, random_state=7,
                            data_rvs=np.random.default_rng(7).standard_normal).toarray()
    exact = np.abs(scipy.linalg.eigvals(W)).max()
    radius = spectral_radius(W, method="arpack")
    assert radius.attrs["method"] == "arpack"
    error = abs(float(radius) - exact)
    assert error <= max(float(radius["error"]), 1e-12)
    assert float(radius["error"]) < 1e-6 * exact  # the bound itself is tight
    norm = spectral_norm(W, method="arpack")
    exact_norm = np.linalg.norm(W, 2)
    assert abs(float(norm) - exact_norm) <= max(float(norm["error"]), 1e-12)
    top = singular_values(W, k=5, method="arpack")
    np.testing.assert_allclose(top.values, np.linalg.svd(W, compute_uv=False)[:5], rtol=1e-8)


def test_auto_switches_to_arpack_above_dense_limit(rng):
    W = rng.standard_normal((120, 120))
    radius = spectral_radius(W, dense_limit=100)
    assert radius.attrs["method"] == "arpack"
    assert float(radius) == pytest.approx(np.abs(np.linalg.eigvals(W)).max(), rel=1e-9)


def test_torch_input_and_leaky_radius(rng):
    W = torch.as_tensor(rng.standard_normal((30, 30)) / np.sqrt(30))
    eigenvalues = np.linalg.eigvals(W.numpy())
    expected = np.abs(0.3 * eigenvalues + 0.7).max()
    assert float(leaky_spectral_radius(W, lr=0.3)) == pytest.approx(expected, rel=1e-12)


def test_reservoir_node_per_layer(reservoir):
    W = reservoir.W_.numpy()
    radius = spectral_radius(reservoir)
    assert radius.dims == ("layer", "matrix")
    assert list(radius["layer"].values) == [reservoir.name]
    assert float(radius.sel(matrix="effective")[0]) == pytest.approx(0.9, rel=1e-9)
    assert float(radius.sel(matrix="frozen")[0]) == pytest.approx(0.9, rel=1e-9)
    leaky = leaky_spectral_radius(reservoir)
    expected = np.abs(0.4 * np.linalg.eigvals(W) + 0.6).max()
    assert float(leaky.sel(matrix="effective")[0]) == pytest.approx(expected, rel=1e-12)


def test_model_layers_in_topological_order():
    model = (dr.Reservoir(20, sr=0.5, seed=1, name="first")
             >> dr.Reservoir(15, sr=1.1, seed=2, name="second") >> dr.Ridge(name="readout"))
    model.fit(np.zeros((30, 2)), np.zeros((30, 1)))  # builds every node; Ridge is skipped
    data = spectra(model)
    assert list(data["layer"].values) == ["first", "second"]
    np.testing.assert_allclose(data["spectral_radius"].sel(matrix="effective").values,
                               [0.5, 1.1], rtol=1e-5)
    for name in ("first", "second"):
        W = model.nodes[name].W_.double().numpy()
        assert float(data["spectral_norm"].sel(layer=name, matrix="effective")) == \
            pytest.approx(np.linalg.norm(W, 2), rel=1e-12)
        values = data["singular_values"].sel(layer=name, matrix="frozen").values
        values = values[np.isfinite(values)]
        np.testing.assert_allclose(values, np.linalg.svd(W, compute_uv=False), rtol=1e-10,
                                   atol=1e-12)
    assert data.attrs["kind"] == "spectra"


def test_lora_layer_uses_effective_weight(fake_lora):
    layer = fake_lora(name="lora")
    effective = (0.7 * layer.W_ + (2.0 / 2) * layer.B @ layer.A).detach().numpy()
    frozen = layer.W_.numpy()
    data = spectra(layer)
    got = data["spectral_radius"].sel(layer="lora")
    assert float(got.sel(matrix="effective")) == pytest.approx(
        np.abs(np.linalg.eigvals(effective)).max(), rel=1e-12)
    assert float(got.sel(matrix="frozen")) == pytest.approx(
        np.abs(np.linalg.eigvals(frozen)).max(), rel=1e-12)
    assert float(data["spectral_norm"].sel(layer="lora", matrix="effective")) == pytest.approx(
        np.linalg.norm(effective, 2), rel=1e-12)


def test_rectangular_layer_has_no_radius(fake_lora):
    data = spectra([fake_lora(d_out=5, d_in=8)])
    assert np.isnan(data["spectral_radius"].values).all()
    assert np.isfinite(data["spectral_norm"].values).all()


def test_results_come_from_the_package_engine(rng):
    from deepreservoir import spectral as engine

    W = rng.standard_normal((60, 60))
    for method, dense_limit in (("auto", 3000), ("auto", 50), ("arpack", 3000)):
        value, error, used = engine.radius(W, method=method, dense_limit=dense_limit)
        got = spectral_radius(torch.as_tensor(W), method=method, dense_limit=dense_limit)
        assert (float(got), float(got["error"]), got.attrs["method"]) == (value, error, used)
    top = singular_values(W, method="arpack")
    assert top.sizes["index"] == engine.ARPACK_K  # the ARPACK block when k is None
    np.testing.assert_array_equal(top.values, engine.singular_values(W, method="arpack")[0])
