"""Lyapunov exponents against known answers: maps, linear and diagonal reservoirs, products."""

import numpy as np
import pytest
import torch
from scipy.special import digamma

from deepreservoir.analysis import benettin, depth_lyapunov, lyapunov_exponents


def test_logistic_map_exponent_is_ln2():
    result = benettin(lambda x, t: 4 * x * (1 - x), lambda x, t: (4 - 8 * x).reshape(1, 1),
                      [0.3], steps=20000, warmup=100)
    # log|f'| has O(1) spread; 20,000 weakly correlated steps: standard error ~ 0.01
    assert float(result["exponents"][0]) == pytest.approx(np.log(2), abs=0.03)
    assert result.attrs["kind"] == "lyapunov"


def test_henon_map_exponents():
    a, b = 1.4, 0.3

    def step(x, t):
        return torch.stack([1 - a * x[0] ** 2 + x[1], b * x[0]])

    def jacobian(x, t):
        return torch.tensor([[-2 * a * float(x[0]), 1.0], [b, 0.0]], dtype=torch.float64)

    result = benettin(step, jacobian, [0.1, 0.1], steps=20000, warmup=1000, n_exponents=2)
    first, second = result["exponents"].values
    assert first == pytest.approx(0.419, abs=0.01)  # published value 0.4189
    # |det J| = b at every step, so λ1 + λ2 = ln b exactly (checks the QR bookkeeping)
    assert first + second == pytest.approx(np.log(b), abs=1e-9)


def test_linear_reservoir_exponents_are_log_eigenvalue_moduli(rng):
    n = 12
    moduli = np.array([0.9, 0.6, 0.45, 0.3, 0.25, 0.2, 0.15, 0.12, 0.1, 0.08, 0.06, 0.05])
    V = rng.standard_normal((n, n))
    W = V @ np.diag(moduli * np.sign(rng.standard_normal(n))) @ np.linalg.inv(V)
    result = lyapunov_exponents(W, activation="identity", lr=1.0, steps=3000, warmup=200,
                                n_exponents=3)
    # constant Jacobian W: the QR iteration converges geometrically to log|λ_i|;
    # the residual error is (log cond V)/T ~ 1e-3
    np.testing.assert_allclose(result["exponents"][0].values, np.log(moduli[:3]), atol=3e-3)
    assert float(result["exponents"][0, 0]) == pytest.approx(
        np.log(np.abs(np.linalg.eigvals(W)).max()), abs=3e-3)


def test_diagonal_leaky_tanh_at_rest_is_exact():
    d = np.array([0.5, -1.5, 0.9, 0.2])
    lr = 0.5
    # zero input from the zero state: pre = 0, tanh'(0) = 1, J = (1 − a)I + a·diag(d);
    # the warmup aligns Q with the axes to (0.75/0.95)^300 ~ 1e-31, then every step is exact
    result = lyapunov_exponents(np.diag(d), lr=lr, steps=50, warmup=300, n_exponents=4)
    expected = np.sort(np.log(np.abs(1 - lr + lr * d)))[::-1]
    np.testing.assert_allclose(result["exponents"][0].values, expected, rtol=1e-12)


def test_reservoir_node_with_input(reservoir):
    result = lyapunov_exponents(reservoir, steps=300, warmup=50, n_exponents=2)
    exponents = result["exponents"].sel(layer=reservoir.name).values
    assert exponents[0] >= exponents[1]
    # a driven contracting reservoir: below the linearisation at rest, log ρ(aW + (1 − a)I)
    W = reservoir.W_.numpy()
    assert exponents[0] < np.log(np.abs(0.4 * np.linalg.eigvals(W) + 0.6).max()) + 1e-9
    assert result.sizes["time"] == 300


def test_depth_scaled_orthogonal_layers_grow_by_log_c(orthogonal):
    layers = [1.5 * orthogonal(10, s) for s in range(5)]
    result = depth_lyapunov(layers, activation="identity", n_samples=16)
    np.testing.assert_allclose(result["growth"].values, np.log(1.5), rtol=1e-12)
    np.testing.assert_allclose(result["sigma_max"].values, 1.5, rtol=1e-12)
    assert result.attrs["mean_growth"] == pytest.approx(np.log(1.5), rel=1e-12)


def test_depth_gaussian_product_matches_closed_form():
    # W_l ~ N(0, 1/d): λ = ½ E log(χ²_d / d) = ½ (ψ(d/2) + log(2/d))  (Cohen & Newman 1984).
    # Tangent vectors align across samples, so the average is over layers: sd ≈ 0.25/√L.
    d, depth = 8, 4000
    rng = np.random.default_rng(1)
    layers = torch.as_tensor(rng.standard_normal((depth, d, d)) / np.sqrt(d))
    result = depth_lyapunov(list(layers), activation="identity", n_samples=8)
    expected = 0.5 * (digamma(d / 2) + np.log(2 / d))
    assert result.attrs["mean_growth"] == pytest.approx(expected, abs=0.02)


def test_depth_uses_effective_weight(orthogonal, rng, lora_class):
    # W_seed is chosen so that β·W_seed + (α/r)·B·A = 1.3·Q exactly: only the
    # effective matrix is orthogonal, so growth = log 1.3 only if it is used.
    A, B = rng.standard_normal((2, 10)), rng.standard_normal((10, 2))
    Q = orthogonal(10, 4)
    W_seed = (1.3 * Q - (3.0 / 2) * B @ A) / 0.5
    layer = lora_class(W_seed, A, B, beta=0.5, alpha=3.0, name="lora")
    result = depth_lyapunov([layer, layer], n_samples=8)
    np.testing.assert_allclose(result["growth"].values, np.log(1.3), rtol=1e-10)
    assert np.linalg.norm(W_seed, 2) > 2  # the frozen matrix alone would grow differently


def test_depth_rectangular_chain(fake_lora):
    first = fake_lora(d_out=8, d_in=12, name="a", activation="tanh")
    second = fake_lora(d_out=5, d_in=8, name="b")
    x = torch.randn(64, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    result = depth_lyapunov([first, second], x)
    assert list(result["layer"].values) == ["a", "b"]
    assert np.isnan(result["rho"].values).all()
    W_b = second.effective_weight().detach()
    assert float(result["sigma_max"].sel(layer="b")) == pytest.approx(
        float(torch.linalg.matrix_norm(W_b, 2)), rel=1e-12)
    # a growth can never exceed log σ₁ of the layer's Jacobian (|tanh'| <= 1)
    assert (result["growth"].values <= np.log(result["sigma_max"].values) + 1e-12).all()
