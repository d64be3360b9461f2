"""The analysis on the library's LoRA nodes, through their effective_weight()."""

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir import analysis

pytestmark = pytest.mark.skipif(not hasattr(dr, "Scaffold"), reason="no LoRA nodes yet")


def test_scaffold_chain_spectra_and_depth_growth():
    deep = (dr.Input() >> dr.Scaffold(48, r=3, seed=7, activation="tanh", name="s1",
                                      dtype=torch.float64)
            >> dr.Scaffold(24, r=3, activation="identity", name="s2", dtype=torch.float64))
    deep.run(np.zeros((2, 16)))
    s1 = deep.nodes["s1"]
    with torch.no_grad():
        s1.B_.copy_(torch.randn(s1.B_.shape, generator=torch.Generator().manual_seed(0)))
        s1.beta_.fill_(0.5)
    effective = (0.5 * s1.W_ + s1.scale * s1.B_ @ s1.A_).detach().numpy()
    data = analysis.spectra(deep)
    assert float(data["spectral_norm"].sel(layer="s1", matrix="effective")) == pytest.approx(
        np.linalg.norm(effective, 2), rel=1e-10)
    assert float(data["spectral_norm"].sel(layer="s1", matrix="frozen")) == pytest.approx(
        np.linalg.norm(s1.W_.numpy(), 2), rel=1e-10)
    assert np.isnan(data["spectral_radius"].values).all()  # rectangular layers
    growth = analysis.depth_lyapunov(deep, n_samples=32)
    assert list(growth["layer"].values) == ["s1", "s2"]
    assert (growth["growth"].values <= np.log(growth["sigma_max"].values) + 1e-12).all()


def test_lora_reservoir_dynamics_use_the_effective_matrix():
    node = dr.Reservoir(30, r=2, sr=0.9, seed=1, input_dim=1, dtype=torch.float64)
    node.run(np.zeros((2, 1)))
    with torch.no_grad():
        node.B_.copy_(torch.randn(node.B_.shape, generator=torch.Generator().manual_seed(1)))
    effective = node.effective_weight().detach().numpy()
    report = analysis.check_esp(node, steps=200, maxiter=10)
    assert float(report["rho"][0]) == pytest.approx(np.abs(np.linalg.eigvals(effective)).max(),
                                                    rel=1e-10)
    radius = analysis.spectral_radius(node)
    assert float(radius.sel(matrix="frozen")[0]) == pytest.approx(0.9, rel=1e-6)


def test_every_lora_node_type_reports_frozen_and_effective_matrices():
    f64 = torch.float64
    model = (dr.Reservoir(20, r=2, sr=0.9, lr=0.3, seed=2, name="res", dtype=f64)
             >> dr.Scaffold(12, r=2, seed=3, name="hidden", dtype=f64)
             >> dr.LoRAReadout(3, r=1, seed=4, name="head", dtype=f64))
    model.run(np.zeros((2, 1)))
    generator = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for index, name in enumerate(("res", "hidden", "head")):
            node = model.nodes[name]
            node.B_.copy_(torch.randn(node.B_.shape, generator=generator, dtype=f64))
            node.beta_.fill_(0.4 + 0.3 * index)
    data = analysis.spectra(model)
    assert list(data["layer"].values) == ["res", "hidden", "head"]
    for index, name in enumerate(("res", "hidden", "head")):
        node = model.nodes[name]
        W, A, B = (t.detach().numpy() for t in (node.W_, node.A_, node.B_))
        effective = (0.4 + 0.3 * index) * W + node.scale * B @ A
        for matrix, values in (("effective", effective), ("frozen", W)):
            got = data.sel(layer=name, matrix=matrix)
            assert float(got["spectral_norm"]) == pytest.approx(np.linalg.norm(values, 2),
                                                                 rel=1e-10)
            sigma = np.linalg.svd(values, compute_uv=False)
            # SVD is backward stable: errors are a few eps·σ_max, also on zero singular values
            np.testing.assert_allclose(got["singular_values"].values[: sigma.size], sigma,
                                       rtol=1e-10, atol=1e-13 * sigma[0])
    eff = 0.4 * model.nodes["res"].W_.numpy() + model.nodes["res"].scale * (
        model.nodes["res"].B_.detach().numpy() @ model.nodes["res"].A_.detach().numpy())
    res = data.sel(layer="res", matrix="effective")
    assert float(res["spectral_radius"]) == pytest.approx(
        np.abs(np.linalg.eigvals(eff)).max(), rel=1e-10)
    assert float(res["leaky_spectral_radius"]) == pytest.approx(
        np.abs(np.linalg.eigvals(0.3 * eff + 0.7 * np.eye(20))).max(), rel=1e-10)
