"""``deepreservoir inspect``: footprint, spectra, ESP verdicts and β of a saved model."""

from __future__ import annotations

import numpy as np
import pytest

import deepreservoir as dr
from deepreservoir.cli import main


@pytest.fixture(scope="module")
def scaffold_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = dr.scaffold_mlp((16, 8), 3, r=2, seed=3)
    model.fit(x, y, epochs=2, loss="cross_entropy", verbose=0, lr=0.05)
    path = tmp_path_factory.mktemp("models") / "scaffold"
    model.save(path)
    return path, model


@pytest.fixture(scope="module")
def esn_path(tmp_path_factory):
    u = np.sin(0.3 * np.arange(400))[:, None]
    esn = dr.Reservoir(40, sr=0.9, lr=0.5, seed=1) >> dr.Ridge(1e-6)
    esn.fit(u[:-1], u[1:], warmup=20)
    path = tmp_path_factory.mktemp("models") / "esn"
    esn.save(path)
    return path, esn


def test_inspect_scaffold(scaffold_path, capsys):
    path, model = scaffold_path
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    footprint = model.footprint(path)
    assert f"learned: trained {footprint.trainable:,} of {footprint.dense:,} = " \
           f"{100 * footprint.trainable / footprint.dense:.2f} % of the dense network's " \
           f"parameters" in out
    assert "bytes (on disk)" in out
    # one row per matrix layer, with its β and σ₁ of the frozen and effective matrix
    spectra = dr.analysis.spectra(model)
    for name in ("layer0", "layer1"):
        # the last row of the layer: the footprint table comes first
        row = [line for line in out.splitlines() if line.startswith(name)][-1]
        beta = float(model.nodes[name].beta_.detach())
        sigma = float(spectra["spectral_norm"].sel(layer=name, matrix="frozen"))
        assert f"{beta:.3g}" in row
        assert f"{sigma:.3g}" in row
        assert ("fails" in row) == (sigma >= 1 and float(spectra["spectral_norm"].sel(
            layer=name, matrix="effective")) >= 1)
    assert "Sufficient contraction condition σ₁ < 1 fails at" in out
    assert "α convention: layer0: α/r = 2/2 = 1" in out


def test_inspect_esn(esn_path, capsys):
    path, _ = esn_path
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    report = dr.analysis.check_esp(dr.load(path))
    assert f"ESP verdict: {report.attrs['verdict']}" in out
    row = [line for line in out.splitlines() if line.startswith("Reservoir")][-1]
    assert f"{float(report['rho'][0]):.3g}" in row
    assert f"{float(report['sigma_max'][0]):.3g}" in row
    # the Ridge readout (40 weights and a bias) is fitted, not "nothing learned"
    assert "learned: fitted 41 (Ridge readout) + trained 0 of " in out
    assert "trainable: 0 of" not in out
