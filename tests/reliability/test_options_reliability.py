"""Regression tests: fit/evaluate/predict options and data are refused with clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir.training import evaluate, predict
from deepreservoir.training.options import check_device


def _points(n: int = 12, features: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, features)).astype(np.float32)


def _labels(n: int = 12) -> np.ndarray:
    return np.arange(n) % 3


def _classifier() -> dr.Model:
    return dr.Input() >> dr.LoRAReadout(3, r=1, seed=0)


def _trained() -> dr.Model:
    return _classifier().fit(_points(), _labels(), loss="cross_entropy", epochs=1, verbose=0)


def _regressor() -> dr.Model:
    return dr.Input() >> dr.LoRAReadout(1, r=1, seed=0)


@pytest.mark.parametrize("device", ["tpu", "gpu", 3, 1.5, object()])
def test_fit_refuses_unknown_device(device):
    with pytest.raises(dr.ParameterError, match="'device'") as info:
        _classifier().fit(_points(), _labels(), loss="cross_entropy", epochs=1, verbose=0,
                          device=device)
    assert '"cuda:N"' in str(info.value)
    assert "Got" in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fit_refuses_unavailable_cuda():
    with pytest.raises(dr.ParameterError, match="'device'.*CUDA is not available.*'cuda:0'"):
        _classifier().fit(_points(), _labels(), loss="cross_entropy", epochs=1, verbose=0,
                          device="cuda:0")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_refuses_missing_cuda_index():
    with pytest.raises(dr.ParameterError, match="'device'.*CUDA device 99"):
        check_device("cuda:99")


def test_check_device_accepts_cpu_forms():
    assert check_device(None) is None
    assert check_device("cpu") == torch.device("cpu")
    assert check_device(torch.device("cpu")) == torch.device("cpu")
    model = _classifier().fit(_points(), _labels(), loss="cross_entropy", epochs=1, verbose=0,
                              device="cpu")
    assert next(model.parameters()).device.type == "cpu"


def test_evaluate_refuses_unknown_loss():
    with pytest.raises(dr.ParameterError, match="'loss' parameter of evaluate.*'hinge'"):
        evaluate(_trained(), _points(), _labels(), loss="hinge")


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_evaluate_and_predict_refuse_bad_batch_size(batch_size):
    model = _trained()
    with pytest.raises(dr.ParameterError, match="'batch_size' parameter of evaluate"):
        evaluate(model, _points(), _labels(), batch_size=batch_size)
    with pytest.raises(dr.ParameterError, match="'batch_size' parameter of predict"):
        predict(model, _points(), batch_size=batch_size)


def test_evaluate_small_batches_still_work():
    model = _trained()
    scores = evaluate(model, _points(), _labels(), batch_size=5)
    assert set(scores) == {"loss", "accuracy"}
    assert predict(model, _points(), batch_size=5).shape == (12, 3)


def test_fit_bce_refuses_target_outside_unit_interval():
    y = np.r_[np.zeros(11), 2.0][:, None]
    with pytest.raises(dr.DataError, match=r"'y' of loss='bce'.*\[0, 1\]. Got 2"):
        _regressor().fit(_points(), y, loss="bce", epochs=1, verbose=0)
    with pytest.raises(dr.DataError, match="Got -0.5"):
        _regressor().fit(_points(), -0.5 * np.ones((12, 1)), loss="bce", epochs=1, verbose=0)


def test_evaluate_bce_names_value_and_index():
    model = _regressor().fit(_points(), np.zeros((12, 1)), loss="bce", epochs=1, verbose=0)
    y = np.r_[np.zeros(11), 2.0][:, None]
    with pytest.raises(dr.DataError, match=r"'y' of loss='bce'.*Got 2 at index \(11, 0\)"):
        evaluate(model, _points(), y, loss="bce")


def test_bce_accepts_probabilities():
    y = np.linspace(0, 1, 12)[:, None]
    model = _regressor().fit(_points(), y, loss="bce", epochs=1, verbose=0)
    assert np.isfinite(evaluate(model, _points(), y, loss="bce")["loss"])


def test_refit_with_other_feature_count_is_a_data_error():
    with pytest.raises(dr.DataError, match=r"'X'.*4 features.*Got 7"):
        _trained().fit(_points(12, 7), _labels(), loss="cross_entropy", epochs=1, verbose=0)


def test_refit_with_same_feature_count_works():
    model = _trained().fit(_points(), _labels(), loss="cross_entropy", epochs=1, verbose=0)
    assert predict(model, _points()).shape == (12, 3)
