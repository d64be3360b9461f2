"""Memory capacity against linear reservoirs whose capacity is the Krylov rank."""

import numpy as np
import pytest

import deepreservoir as dr
from deepreservoir.analysis import memory_capacity


def krylov_rank(W, win):
    n = W.shape[0]
    K = np.stack([np.linalg.matrix_power(W, k) @ win for k in range(n)], axis=1)
    return np.linalg.matrix_rank(K)


# Tolerance: with T_train = T_test ≈ 4,900 and k_max = 60, the held-out sum is
# low by about Σ_k (1 − MC_k)·N/T_train = (61 − N)·N/T_train ≈ 0.1 and high by
# about (k_max + 1)/T_test ≈ 0.012 (chance correlation): |MC − rank| < 0.25.
TOL = 0.25


@pytest.mark.parametrize("seed", [0, 1])
def test_full_rank_linear_reservoir_has_capacity_n(seed):
    rng = np.random.default_rng(seed)
    n = 10
    W = rng.standard_normal((n, n))
    W *= 0.8 / np.abs(np.linalg.eigvals(W)).max()
    win = rng.standard_normal(n)
    assert krylov_rank(W, win) == n
    result = memory_capacity(W, 60, Win=win, activation="identity", steps=10000, seed=seed)
    assert float(result["total"][0]) == pytest.approx(n, abs=TOL)
    assert result.attrs["kind"] == "memory_capacity"
    assert "biased upwards" in result.attrs["bias"]


def test_krylov_rank_three_gives_capacity_three(rng, orthogonal):
    # input reaches only a 3-dimensional invariant subspace (block triangular W)
    A = rng.standard_normal((3, 3))
    A *= 0.8 / np.abs(np.linalg.eigvals(A)).max()
    B = rng.standard_normal((7, 7))
    B *= 0.7 / np.abs(np.linalg.eigvals(B)).max()
    W = np.zeros((10, 10))
    W[:3, :3], W[3:, 3:], W[:3, 3:] = A, B, rng.standard_normal((3, 7))
    win = np.concatenate([rng.standard_normal(3), np.zeros(7)])
    Q = orthogonal(10, 5)  # hide the structure
    W, win = Q @ W @ Q.T, Q @ win
    assert krylov_rank(W, win) == 3
    result = memory_capacity(W, 60, Win=win, activation="identity", steps=10000)
    assert float(result["total"][0]) == pytest.approx(3, abs=0.1)


def test_delay_line_remembers_exactly_n_steps():
    n = 5
    W = np.eye(n, k=-1)  # shift: x_i(t) = u(t − i)
    win = np.eye(n)[0]
    result = memory_capacity(W, 12, Win=win, activation="identity", steps=4000)
    mc = result["memory_capacity"][0].values
    np.testing.assert_allclose(mc[:n], 1.0, atol=1e-9)
    assert (mc[n:] < 0.01).all()


def test_reservoir_node_capacity_is_bounded_by_units():
    node = dr.Reservoir(50, sr=0.9, input_scaling=0.1, seed=2, input_dim=1)
    result = memory_capacity(node, 80, steps=5000)
    total = float(result["total"].sel(layer=node.name))
    assert 5 < total <= 50 + result.attrs["null_level"] + 0.5
    assert result.sizes["k"] == 81
