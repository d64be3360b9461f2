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
