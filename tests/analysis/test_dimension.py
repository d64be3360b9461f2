"""Intrinsic dimension on data of known dimension, and against scikit-dimension."""

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir.analysis import (
    intrinsic_dimension,
    mle_dimension,
    participation_ratio,
    pca_dimension,
    twonn,
)


def embed(points, ambient, noise, rng):
    """Isometric embedding in R^ambient by a random orthonormal frame, plus Gaussian noise."""
    frame, _ = np.linalg.qr(rng.standard_normal((ambient, points.shape[1])))
    return points @ frame.T + noise * rng.standard_normal((points.shape[0], ambient))


def swiss_roll(n, rng):
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    height = 21 * rng.uniform(size=n)
    return np.stack([t * np.cos(t), height, t * np.sin(t)], axis=1)


def sphere(n, d, rng):
    x = rng.standard_normal((n, d + 1))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def subspace5(rng):
    return embed(rng.standard_normal((2000, 5)), 50, 0.01, rng)


def test_linear_subspace(subspace5):
    # isotropic 5-d Gaussian: each direction holds 20 % of the variance
    assert pca_dimension(subspace5, variance=0.9) == 5
    assert pca_dimension(subspace5, variance=0.75) == 4
    assert participation_ratio(subspace5) == pytest.approx(5, abs=0.3)
    assert twonn(subspace5) == pytest.approx(5, abs=0.5)
    assert twonn(subspace5, discard_fraction=0.0) == pytest.approx(5, abs=0.6)
    assert mle_dimension(subspace5, k=20) == pytest.approx(5, abs=0.6)


def test_curved_manifolds(rng):
    roll = embed(swiss_roll(2000, rng), 30, 0.01, rng)
    assert twonn(roll) == pytest.approx(2, abs=0.25)
    assert mle_dimension(roll, k=10) == pytest.approx(2, abs=0.3)
    assert pca_dimension(roll, variance=0.99) == 3  # linear methods see the 3-d embedding
    ball = embed(sphere(3000, 3, rng), 40, 0.001, rng)  # noise << neighbour distance 0.19
    assert twonn(ball) == pytest.approx(3, abs=0.3)
    assert twonn(ball, method="mle") == pytest.approx(3, abs=0.3)
    assert mle_dimension(ball, k=15) == pytest.approx(3, abs=0.4)


def test_participation_ratio_exact_spectrum():
    # columns with variances 4, 1, 1 (exactly, by construction): PR = 36 / 18 = 2
    base = np.array([[1.0, 1, 1], [1, -1, 1], [-1, 1, -1], [-1, -1, -1]])
    X = np.repeat(base, 2, axis=0) * [2.0, 1.0, 0.0] + np.repeat([[0, 0, 1], [0, 0, -1]], 4,
                                                                    axis=0)
    values = np.linalg.eigvalsh(np.cov(X.T))
    assert participation_ratio(X) == pytest.approx(values.sum() ** 2 / (values**2).sum(),
                                                   rel=1e-12)


def test_torch_and_state_batch_layouts(subspace5):
    as_tensor = torch.as_tensor(subspace5)
    batched = as_tensor.reshape(4, 500, 50)
    assert twonn(batched) == pytest.approx(twonn(subspace5), rel=1e-12)
    assert mle_dimension(as_tensor.float(), k=10) == pytest.approx(
        mle_dimension(subspace5, k=10), rel=1e-9)


def test_intrinsic_dimension_dataarray(subspace5):
    result = intrinsic_dimension(subspace5, variance=0.9, k=20)
    assert list(result["estimator"].values) == ["pca", "participation_ratio", "twonn", "mle"]
    assert float(result.sel(estimator="pca")) == 5
    assert result.attrs["kind"] == "intrinsic_dimension"
    assert result.attrs["variance"] == 0.9


def test_intrinsic_dimension_of_reservoir_states(rng, orthogonal):
    # a linear reservoir whose input reaches a 3-d invariant subspace only: its
    # states fill a 3-d linear subspace of R^10 (exact answer 3)
    W = np.zeros((10, 10))
    W[:3, :3] = 0.6 * orthogonal(3, 1)
    W[3:, 3:] = 0.5 * orthogonal(7, 2)
    win = np.zeros((10, 1))
    win[:3, 0] = [1.0, 0.5, -0.3]
    Q = orthogonal(10, 3)
    node = dr.Reservoir(10, W=Q @ W @ Q.T, Win=Q @ win, sr=None, activation="identity",
                        bias_scaling=0.0, dtype=torch.float64)
    u = rng.uniform(-1, 1, 2100)
    result = intrinsic_dimension(node, u, warmup=100, k=10, variance=0.999)
    assert result.dims == ("layer", "estimator")
    assert float(result.sel(estimator="pca")[0]) == 3
    assert float(result.sel(estimator="participation_ratio")[0]) <= 3 + 1e-9
    assert float(result.sel(estimator="twonn")[0]) == pytest.approx(3, abs=0.3)
    assert float(result.sel(estimator="mle")[0]) == pytest.approx(3, abs=0.4)


class TestAgainstScikitDimension:
    skdim = pytest.importorskip("skdim")

    @pytest.fixture
    def data(self, rng):
        return embed(sphere(1500, 4, rng), 20, 0.01, rng)

    def test_pca_threshold_and_participation_ratio(self, data):
        lpca = self.skdim.id.lPCA
        for variance in (0.5, 0.9, 0.95):
            # skdim's "ratio" counts components until alphaRatio of the variance is reached
            expected = lpca(ver="ratio", alphaRatio=variance).fit(data).dimension_
            assert pca_dimension(data, variance=variance) == expected
        expected = lpca(ver="participation_ratio").fit(data).dimension_
        assert participation_ratio(data) == pytest.approx(expected, rel=1e-9)

    @pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # inside skdim
    def test_twonn(self, data):
        cases = (("linear", 0.1), ("linear", 0.25), ("mle", 0.1), ("mle", 0.0))
        for method, fraction in cases:
            expected = self.skdim.id.TwoNN(discard_fraction=fraction,
                                           method=method).fit(data).dimension_
            assert twonn(data, discard_fraction=fraction, method=method) == \
                pytest.approx(expected, rel=1e-9)

    def test_mle(self, data):
        for k in (5, 20):
            expected = self.skdim.id.MLE().fit(data, n_neighbors=k, comb="mean").dimension_
            assert mle_dimension(data, k=k) == pytest.approx(expected, rel=1e-9)
            expected = self.skdim.id.MLE().fit(data, n_neighbors=k, comb="mle").dimension_
            assert mle_dimension(data, k=k, average="harmonic") == pytest.approx(expected,
                                                                                 rel=1e-9)
