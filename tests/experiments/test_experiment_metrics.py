"""``series_metrics``: hand computations and reservoirpy's observables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reservoirpy import observables as rpo

from deepreservoir.experiment import series_metrics


def test_hand_computed_values():
    truth = np.array([[0.0], [2.0], [4.0], [6.0]])
    prediction = np.array([[1.0], [2.0], [3.0], [6.0]])  # errors 1, 0, -1, 0
    train = np.array([[-5.0], [5.0], [0.0]])  # range 10
    scores = series_metrics(prediction, truth, train)
    assert scores["mse"] == 0.5
    assert scores["rmse"] == math.sqrt(0.5)
    assert scores["nrmse"] == math.sqrt(0.5) / 6.0
    assert scores["nrmse_train"] == math.sqrt(0.5) / 10.0
    # Σd² = 2, Σ(y − ȳ)² = 9 + 1 + 1 + 9 = 20
    assert scores["r2"] == pytest.approx(1 - 2 / 20, abs=1e-15)
    assert set(scores) == {"mse", "rmse", "nrmse", "nrmse_train", "r2"}


def test_a_perfect_forecast():
    truth = np.linspace(0, 1, 10).reshape(-1, 1)
    scores = series_metrics(truth.copy(), truth, truth)
    assert scores == {"mse": 0.0, "rmse": 0.0, "nrmse": 0.0, "nrmse_train": 0.0, "r2": 1.0}


def test_several_outputs_are_pooled():
    truth = np.array([[0.0, 10.0], [1.0, 20.0]])
    prediction = truth + np.array([[1.0, -1.0], [0.0, 0.0]])
    scores = series_metrics(prediction, truth, truth)
    assert scores["mse"] == 0.5  # (1 + 1 + 0 + 0) / 4
    assert scores["nrmse"] == math.sqrt(0.5) / 20.0  # peak to peak over every output


def test_degenerate_cases():
    flat = np.ones((5, 1))
    scores = series_metrics(flat + 0.1, flat, flat)
    assert scores["nrmse"] == math.inf and scores["nrmse_train"] == math.inf
    assert math.isnan(scores["r2"])
    diverged = series_metrics(np.array([[np.inf], [0.0]]), np.array([[0.0], [1.0]]),
                              np.array([[0.0], [1.0]]))
    assert diverged["mse"] == math.inf and diverged["rmse"] == math.inf
    assert diverged["nrmse"] == math.inf


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(3, 60), outputs=st.integers(1, 3),
       noise=st.floats(1e-3, 10.0))
def test_metrics_equal_reservoirpys_observables(seed, steps, outputs, noise):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(steps, outputs))
    prediction = truth + noise * rng.normal(size=(steps, outputs))
    train = rng.normal(size=(steps + 5, 2)) * 3
    scores = series_metrics(prediction, truth, train)
    assert scores["mse"] == pytest.approx(rpo.mse(truth, prediction), rel=1e-12)
    assert scores["rmse"] == pytest.approx(rpo.rmse(truth, prediction), rel=1e-12)
    assert scores["nrmse"] == pytest.approx(rpo.nrmse(truth, prediction), rel=1e-12)
    assert scores["nrmse_train"] == pytest.approx(
        rpo.nrmse(truth, prediction, norm_value=np.ptp(train)), rel=1e-12)
    assert scores["r2"] == pytest.approx(rpo.rsquare(truth, prediction), rel=1e-12, abs=1e-12)
