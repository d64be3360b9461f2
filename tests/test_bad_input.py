"""Every bad input gets an error that names the parameter, the value and what was expected."""

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir.errors import DataError, GraphError, NotFittedError, ParameterError


@pytest.fixture
def series():
    return np.sin(np.linspace(0, 10, 60))[:, None]


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        (np.nan, "NaN"),
        (np.inf, "Inf"),
    ],
)
def test_non_finite_data(series, bad, where):
    data = series.copy()
    data[7, 0] = bad
    with pytest.raises(DataError, match=r"'X' argument must be finite.*\(7, 0\)"):
        dr.Reservoir(10, seed=0).run(data)


def test_infinite_targets_are_refused(series):
    targets = series.copy()
    targets[3, 0] = np.inf
    with pytest.raises(DataError, match=r"targets 'Y' must be finite or NaN \(NaN steps are left "
                       r"out\). Got 1 Inf values \(the first at index \(0, 3, 0\)\)"):
        (dr.Reservoir(10, seed=0) >> dr.Ridge()).fit(series, targets)


def test_all_nan_targets_are_refused(series):
    with pytest.raises(DataError, match="'Y' hold no usable entry: every one is NaN"):
        (dr.Reservoir(10, seed=0) >> dr.Ridge()).fit(series, np.full_like(series, np.nan))


def test_float64_overflow_to_float32_is_reported(series):
    data = series.copy()
    data[0, 0] = 1e300
    with pytest.raises(DataError, match="after conversion to torch.float32"):
        dr.Reservoir(10, seed=0).run(data)


def test_wrong_number_of_features(series):
    reservoir = dr.Reservoir(10, seed=0)
    reservoir.run(series)
    with pytest.raises(DataError, match="must have 1 features.*Got 3"):
        reservoir.run(np.ones((5, 3)))


def test_declared_input_dim_mismatch(series):
    with pytest.raises(DataError, match="must have 4 features.*Got 1"):
        dr.Reservoir(10, input_dim=4, seed=0).run(series)


@pytest.mark.parametrize("shape", [(10,), (2, 3, 4, 5)])
def test_wrong_number_of_dimensions(shape):
    with pytest.raises(DataError, match=rf"2-D \(T, F\), 3-D \(B, T, F\).*{len(shape)} dimension"):
        dr.Reservoir(10, seed=0).run(np.ones(shape))


@pytest.mark.parametrize("data", [np.ones((0, 2)), np.ones((3, 0, 2)), [np.ones((0, 2))], []])
def test_empty_series(data):
    with pytest.raises(DataError, match="empty"):
        dr.Reservoir(10, seed=0).run(data)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.complex128, bool])
def test_non_float_dtype(dtype):
    data = np.ones((5, 1), dtype=dtype)
    with pytest.raises(DataError, match="floating-point dtype"):
        dr.Reservoir(10, seed=0).run(data)


def test_non_float_torch_dtype():
    with pytest.raises(DataError, match=r"floating-point dtype. Got torch.int64"):
        dr.Reservoir(10, seed=0).run(torch.ones(5, 1, dtype=torch.int64))


def test_not_an_array():
    with pytest.raises(DataError, match="numpy array, a torch tensor, or a list"):
        dr.Reservoir(10, seed=0).run("abc")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"units": 0}, r"The 'units' parameter of Reservoir must be an int >= 1. Got 0."),
        ({"units": -3}, r"The 'units' parameter of Reservoir must be an int >= 1. Got -3."),
        ({"units": 2.5}, r"The 'units' parameter of Reservoir must be an int >= 1. Got 2.5."),
        ({"sr": 0.0}, r"The 'sr' parameter of Reservoir must be None or a float > 0. Got 0.0."),
        ({"sr": -1}, r"The 'sr' parameter of Reservoir must be None or a float > 0. Got -1."),
        ({"lr": 0.0}, r"The 'lr' parameter of Reservoir must be a float in \(0, 1\]. Got 0.0."),
        ({"lr": 1.5}, r"The 'lr' parameter of Reservoir must be a float in \(0, 1\]. Got 1.5."),
        ({"rc_connectivity": 0}, r"'rc_connectivity' .* must be a float in \(0, 1\]. Got 0."),
        ({"rc_connectivity": 1.2}, r"'rc_connectivity' .* in \(0, 1\]. Got 1.2."),
        ({"input_connectivity": -0.1}, r"'input_connectivity' .* in \(0, 1\]. Got -0.1."),
        ({"W": "gaussianish"}, r"'W' parameter must be a known weight family.*Got 'gaussianish'"),
        ({"Win": "nope"}, r"'Win' parameter must be a known weight family.*Got 'nope'"),
        ({"seed": -1}, r"The 'seed' parameter of Reservoir must be None or a non-negative int"),
        ({"seed": 1.5}, r"The 'seed' parameter of Reservoir .* Got 1.5."),
        ({"seed": "1"}, r"The 'seed' parameter of Reservoir .* Got '1'."),
        ({"activation": "swish"}, r"'activation' parameter of Reservoir must be one of"),
        ({"dtype": torch.int32}, r"'dtype' parameter of Reservoir must be a floating dtype: a "
                                 r"torch dtype \(torch.float32\), a numpy dtype \(np.float64\) "
                                 r"or its name \('float64'\). Got torch.int32"),
        ({"W": np.ones((3, 3))}, r"'W' parameter of Reservoir must have shape \(10, 10\)"),
    ],
)
def test_reservoir_hyperparameters(kwargs, message):
    arguments = {"units": 10, **kwargs}
    with pytest.raises(ParameterError, match=message):
        dr.Reservoir(**arguments)


def test_ridge_hyperparameters():
    with pytest.raises(ParameterError, match=r"'ridge' parameter of Ridge must be a float >= 0"):
        dr.Ridge(ridge=-1.0)
    with pytest.raises(ParameterError, match=r"'fit_bias' parameter of Ridge must be one of"):
        dr.Ridge(fit_bias="yes")


def test_run_before_fit(series):
    model = dr.Reservoir(10, seed=0) >> dr.Ridge()
    with pytest.raises(NotFittedError, match="fit"):
        model.run(series)


def test_fit_without_targets(series):
    with pytest.raises(NotFittedError, match="needs targets Y"):
        (dr.Reservoir(10, seed=0) >> dr.Ridge()).fit(series, None)


def test_fit_model_without_trainable_node(series):
    with pytest.raises(NotFittedError, match="This model has nothing to train: no closed-form "
                       "node"):
        dr.Reservoir(10, seed=0).fit(series, series)


def test_warmup_longer_than_series(series):
    with pytest.raises(DataError, match=r"'warmup' parameter \(60\) leaves no training step"):
        (dr.Reservoir(10, seed=0) >> dr.Ridge()).fit(series, series, warmup=60)


def test_bad_warmup_value(series):
    with pytest.raises(ParameterError, match=r"'warmup' parameter of fit must be an int >= 0"):
        (dr.Reservoir(10, seed=0) >> dr.Ridge()).fit(series, series, warmup=-2)


def test_targets_not_matching_inputs(series):
    with pytest.raises(DataError, match=r"targets 'Y' must have one entry per step of the input "
                       r"series: shape \(60, O\).*Got shape \(59, 1\)"):
        (dr.Reservoir(10, seed=0) >> dr.Ridge()).fit(series, series[:-1])


def test_a_new_batch_size_starts_from_zero_states(series):
    reservoir = dr.Reservoir(10, seed=0)
    reservoir.run(series)
    pair = np.stack([series, series])
    assert np.array_equal(reservoir.run(pair), reservoir.run(pair, reset=True))


def test_non_node_operand():
    with pytest.raises(GraphError, match="must be a Node, a Model or a list of them. Got 3.5"):
        dr.Reservoir(10) >> 3.5
    with pytest.raises(GraphError, match="Got 'abc'"):
        "abc" >> dr.Ridge()


def test_delay_zero_cycle_names_the_cycle():
    first = dr.Reservoir(5, name="first")
    second = dr.Reservoir(5, name="second")
    with pytest.raises(GraphError, match="cycle with no delay: (first -> second -> first|"
                                         "second -> first -> second)"):
        (first >> second) & (second >> first)


def test_dimension_mismatch_names_both_nodes():
    source = dr.Reservoir(7, rc_connectivity=1.0, name="source", seed=0)
    target = dr.Reservoir(5, input_dim=3, name="target")
    with pytest.raises(GraphError, match=r"node 'target' expects 3 input features but receives 7 "
                                         r"\('source': 7\)"):
        (source >> target).run(np.ones((4, 2)))


def test_duplicate_names():
    with pytest.raises(GraphError, match="Two different nodes are named 'twin'"):
        dr.Reservoir(5, name="twin") >> dr.Reservoir(5, name="twin")


def test_family_object_parameters():
    with pytest.raises(ParameterError, match=r"'scale' parameter of the cauchy family must be"):
        dr.families.Cauchy(scale=-1.0)


# ------------------------------------------------- the new entry points
def _gradient_model():
    return dr.Input() >> dr.Scaffold(8, r=2, seed=1) >> dr.LoRAReadout(2, r=1, seed=0)


@pytest.mark.parametrize(("item", "match"), [
    (3, r"sampler batch must be a pair \(x, y\). Got int"),
    ((np.zeros((2, 3, 4, 5), dtype=np.float32), np.zeros(2)),
     r"sampler batch's x must be \(b, F\) or \(b, T, F\). Got shape \(2, 3, 4, 5\)"),
    ((np.zeros((4, 3), dtype=np.int64), np.zeros(4)),
     r"sampler batch's x must be floating point. Got torch.int64"),
    ((np.full((4, 3), np.nan, dtype=np.float32), np.zeros(4)),
     r"'x' argument must be finite. Got 12 NaN"),
    ((np.zeros((4, 3), dtype=np.float32), np.zeros(5)),
     r"targets 'y' .* one entry per input series \(4\)"),
])
def test_sampler_batches_are_checked(item, match):
    with pytest.raises(DataError, match=match):
        _gradient_model().fit(None, sampler=[item], epochs=1, loss="cross_entropy", verbose=0)


def test_fit_without_data_or_sampler():
    with pytest.raises(DataError, match="X is None and no sampler was given"):
        _gradient_model().fit(None, np.zeros(4), verbose=0)


def test_per_sequence_targets_of_the_wrong_length(series):
    batch = np.stack([series, series, series])
    with pytest.raises(DataError, match=r"one entry per input series \(3\).*Got shape \(2,\)"):
        (dr.Reservoir(10, seed=0) >> dr.LoRAReadout(2, r=1)).fit(
            batch, np.array([0, 1]), loss="cross_entropy", verbose=0)


def test_negative_and_fractional_labels(series):
    batch = np.stack([series, series])
    model = dr.Reservoir(10, seed=0) >> dr.LoRAReadout(2, r=1)
    with pytest.raises(DataError, match=r"Class labels in 'y' must be >= 0. Got -1 at "
                                        r"index \(1,\)"):
        model.fit(batch, np.array([0, -1]), loss="cross_entropy", verbose=0)
    with pytest.raises(DataError, match="must be integer class labels. Got non-integer values"):
        model.fit(batch, np.array([0.5, 1.0]), loss="cross_entropy", verbose=0)


@pytest.mark.parametrize(("make", "match"), [
    (lambda: dr.training.EarlyStopping(patience=0), r"'patience' parameter of EarlyStopping"
                                                    r" must be an int >= 1. Got 0"),
    (lambda: dr.training.EarlyStopping(mode="up"), r"'mode' parameter of EarlyStopping.*"
                                                   r"Got 'up'"),
    (lambda: dr.training.EarlyStopping(min_delta=-1.0), r"'min_delta'.*Got -1.0"),
    (lambda: dr.training.ScaffoldResampling("sometimes"), r"'mode' parameter of "
                                                          r"ScaffoldResampling.*Got 'sometimes'"),
])
def test_callback_parameters_are_checked(make, match):
    with pytest.raises(ParameterError, match=match):
        make()


def test_early_stopping_on_a_metric_the_logs_lack():
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    with pytest.raises(ParameterError, match=r"'monitor' parameter of EarlyStopping names "
                                             r"'val_loss', which the epoch logs do not have"):
        _gradient_model().fit(x, np.zeros(16, dtype=int), loss="cross_entropy", epochs=2,
                              verbose=0, callbacks=[dr.training.EarlyStopping()])


def test_callbacks_must_be_callbacks():
    x = np.zeros((8, 3), dtype=np.float32)
    with pytest.raises(ParameterError, match=r"'callbacks' parameter of fit must hold Callback "
                                             r"objects or functions.*Got 3"):
        _gradient_model().fit(x, np.zeros(8, dtype=int), loss="cross_entropy", verbose=0,
                              callbacks=[3])
