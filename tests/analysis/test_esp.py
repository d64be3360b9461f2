"""Echo-state-property report: exact answers, the Yildiz–Jaeger–Kiebel counterexample, verdicts."""

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir.analysis import (
    CONTRACTING,
    GUARANTEED,
    NOT_CONTRACTING,
    VIOLATED,
    check_esp,
    diagonal_scaling_bound,
)

# A 2x2 tanh network with ρ(W) = 0.7 (a double eigenvalue: a Jordan block) but
# σ_max(W) = 3.63. Found by a search over matrices with one-decimal entries in
# [-3, 3]; with zero input it has three attracting fixed points: 0 and ±x*.
YJK = np.array([[-0.7, -2.8], [0.7, 2.1]])


def test_counterexample_has_two_attracting_fixed_points():
    assert np.abs(np.linalg.eigvals(YJK)).max() == pytest.approx(0.7, abs=1e-6)
    assert np.linalg.norm(YJK, 2) > 1
    x = np.array([1.0, -1.0])
    for _ in range(3000):
        x = np.tanh(YJK @ x)
    assert np.linalg.norm(np.tanh(YJK @ x) - x) < 1e-12
    assert np.linalg.norm(x) > 0.5  # not the origin
    jacobian = (1 - np.tanh(YJK @ x) ** 2)[:, None] * YJK
    assert np.abs(np.linalg.eigvals(jacobian)).max() < 1  # x* attracts, and so does -x*
    # the origin attracts too (ρ < 1): three distinct attractors, so no ESP for u = 0


def test_counterexample_verdict_is_not_a_guarantee():
    report = check_esp(YJK, steps=300, n_states=12)
    assert bool(report["necessary"][0])
    assert not bool(report["sufficient"][0])
    assert not bool(report["contracting"][0])
    assert str(report["verdict"][0].item()) == NOT_CONTRACTING
    assert float(report["final_distance"][0]) > 1.0  # trajectories sit at 0 and ±x*
    assert float(report["diagonal_scaling_bound"][0]) >= 1.0
    assert "Yildiz" in str(report["explanation"][0].item())


def test_scaled_orthogonal_linear_contracts_at_log_gain(orthogonal):
    W = 0.9 * orthogonal(6, 0)
    report = check_esp(W, activation="identity", steps=150)
    assert str(report["verdict"][0].item()) == GUARANTEED
    assert float(report["sigma_max"][0]) == pytest.approx(0.9, rel=1e-12)
    # every difference shrinks by exactly 0.9 per step
    assert float(report["contraction_rate"][0]) == pytest.approx(np.log(0.9), rel=1e-9)
    trace = report["distance"][0].values
    np.testing.assert_allclose(trace[1:] / trace[:-1], 0.9, rtol=1e-9)


def test_buehner_young_recovers_hidden_diagonal_scaling(rng):
    n = 6
    d0 = np.exp(rng.standard_normal(n))
    S = rng.standard_normal((n, n))
    S = S + S.T
    S *= 0.9 / np.abs(np.linalg.eigvalsh(S)).max()
    W = S * (1 / d0)[:, None] * d0[None, :]  # D0⁻¹ S D0: similar to a symmetric matrix
    assert np.linalg.norm(W, 2) > 1.0
    bound, d = diagonal_scaling_bound(W)
    assert bound == pytest.approx(0.9, abs=1e-6)  # = ρ(W), the lowest possible value
    expected = d0 / np.exp(np.log(d0).mean())
    np.testing.assert_allclose(d, expected, rtol=1e-3)
    report = check_esp(W, steps=100)
    assert str(report["verdict"][0].item()) == GUARANTEED
    assert "Buehner" in str(report["explanation"][0].item())


def test_diagonal_scaling_bound_is_between_rho_and_min_of_other_conditions(rng):
    for trial in range(6):
        W = rng.standard_normal((15, 15)) / 4
        bound, d = diagonal_scaling_bound(W)
        rho = np.abs(np.linalg.eigvals(W)).max()
        rho_abs = np.abs(np.linalg.eigvals(np.abs(W))).max()
        assert rho - 1e-9 <= bound <= min(np.linalg.norm(W, 2), rho_abs) + 1e-9, trial
        # the bound is a certificate: recompute it from the reported D
        assert np.linalg.norm(d[:, None] * W / d[None, :], 2) == pytest.approx(bound, rel=1e-10)


def test_rho_above_one_without_input_is_violated(orthogonal):
    W = 1.2 * orthogonal(8, 1)
    report = check_esp(W, steps=300)
    assert str(report["verdict"][0].item()) == VIOLATED
    assert "ρ(W) = 1.2 ≥ 1" in str(report["explanation"][0].item())
    assert not bool(report["necessary"][0])


def test_rho_above_one_with_strong_input_contracts_but_is_not_guaranteed(orthogonal, rng):
    W = 1.2 * orthogonal(8, 1)
    drive = 4.0 * rng.standard_normal((400, 8))  # saturating input
    report = check_esp(W, inputs=drive)
    assert str(report["verdict"][0].item()) == CONTRACTING
    text = str(report["explanation"][0].item())
    assert "not a guarantee" in text
    assert "ρ(W) = 1.2 ≥ 1" in text


def test_verdict_never_guaranteed_without_a_sufficient_condition(rng):
    for trial in range(8):
        W = rng.standard_normal((5, 5)) * rng.uniform(0.1, 0.6)
        report = check_esp(W, steps=200, maxiter=30)
        sufficient = min(float(report["sigma_max"][0]), float(report["rho_abs"][0]),
                         float(report["diagonal_scaling_bound"][0])) < 1
        assert (str(report["verdict"][0].item()) == GUARANTEED) == sufficient, trial
        if sufficient:
            assert bool(report["contracting"][0])


def test_reservoir_node_and_deep_chain():
    deep = (dr.Reservoir(40, sr=0.8, lr=0.5, seed=1, name="low", dtype=torch.float64)
            >> dr.Reservoir(30, sr=1.3, lr=0.2, seed=2, name="high", dtype=torch.float64))
    report = check_esp(deep, inputs=np.sin(0.2 * np.arange(400)), maxiter=20)
    assert list(report["layer"].values) == ["low", "high"]
    W_high = deep.nodes["high"].W_.numpy()
    leaky_high = np.abs(0.2 * np.linalg.eigvals(W_high) + 0.8).max()
    assert float(report["leaky_rho"].sel(layer="high")) == pytest.approx(leaky_high, rel=1e-9)
    assert report.attrs["deep_esn_radius"] == pytest.approx(
        max(leaky_high, float(report["leaky_rho"].sel(layer="low"))), rel=1e-12)
    assert report.attrs["verdict"] in (VIOLATED, CONTRACTING)
    assert report.attrs["kind"] == "esp"
    assert report.sizes["unit"] == 40


def test_reservoir_default_input_runs(reservoir):
    report = check_esp(reservoir, steps=400, maxiter=20)
    assert report.sizes["layer"] == 1
    assert float(report["contraction_rate"][0]) < 0
    assert str(report["verdict"][0].item()) in (GUARANTEED, CONTRACTING)


def test_time_to_tolerance_of_an_exact_geometric_contraction(orthogonal):
    W = 0.9 * orthogonal(5, 1)
    tol = 1e-4
    report = check_esp(W, activation="identity", steps=200, tol=tol)
    trace = report["distance"][0].values
    initial = trace[0] / 0.9  # the largest initial distance, kept by the orthogonal part
    expected = np.ceil(np.log(tol / initial) / np.log(0.9))
    assert float(report["time_to_tolerance"][0]) == expected
    assert bool(report["contracting"][0])


def test_deep_layer_is_driven_by_what_it_receives_in_the_model():
    low = dr.Reservoir(30, sr=0.8, lr=0.5, seed=1, name="low", dtype=torch.float64)
    high = dr.Reservoir(20, sr=1.1, lr=0.3, seed=2, name="high", dtype=torch.float64)
    deep = low >> high
    u = np.sin(0.2 * np.arange(300))[:, None]
    received = deep.states(u, reset=True)["low"]
    chain = check_esp(deep, inputs=u, maxiter=5)
    alone = check_esp(high, inputs=received, maxiter=5)
    np.testing.assert_array_equal(chain["distance"].sel(layer="high").values,
                                  alone["distance"][0].values)
