"""Every bad input to the analysis gets an error naming the parameter, the value and the rule."""

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir.analysis import (
    benettin,
    check_esp,
    depth_lyapunov,
    diagonal_scaling_bound,
    intrinsic_dimension,
    leaky_spectral_radius,
    lyapunov_exponents,
    memory_capacity,
    mle_dimension,
    participation_ratio,
    pca_dimension,
    plot,
    rank_sweep,
    saturation_rank,
    spectra,
    spectral_radius,
    twonn,
)
from deepreservoir.errors import DataError, GraphError, NotFittedError, ParameterError


@pytest.mark.parametrize("function", [spectral_radius, check_esp, lyapunov_exponents])
def test_radius_of_non_square_matrix(function):
    with pytest.raises(DataError, match=r"must be a square matrix \(N, N\)\. Got shape \(3, 4\)"):
        function(np.ones((3, 4)))


def test_leaky_radius_and_scaling_bound_of_non_square_matrix():
    with pytest.raises(DataError, match=r"square matrix \(N, N\)\. Got shape \(2, 5\)"):
        leaky_spectral_radius(np.ones((2, 5)), lr=0.5)
    with pytest.raises(DataError, match=r"square matrix \(N, N\)\. Got shape \(2, 5\)"):
        diagonal_scaling_bound(np.ones((2, 5)))


def test_leaky_radius_of_matrix_needs_lr():
    with pytest.raises(ParameterError, match=r"'lr' parameter of leaky_spectral_radius must be "
                                             r"a float in \(0, 1\] when the target is a matrix"):
        leaky_spectral_radius(np.eye(3))


def test_twonn_too_few_points():
    with pytest.raises(DataError, match=r"twonn needs at least 4 points .*Got 3 points"):
        twonn(np.random.default_rng(0).standard_normal((3, 5)))


def test_mle_too_few_points():
    with pytest.raises(DataError, match=r"mle_dimension needs at least 3 points .*Got 2 points"):
        mle_dimension(np.ones((2, 4)), k=2)


@pytest.mark.parametrize("k", [10, 11])
def test_mle_k_not_below_number_of_points(k):
    X = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ParameterError, match=rf"'k' parameter of mle_dimension must be < the "
                                             rf"number of points \(10\).*Got {k}\."):
        mle_dimension(X, k=k)


def test_mle_k_too_small():
    with pytest.raises(ParameterError, match=r"'k' parameter of mle_dimension must be an int "
                                             r">= 2\. Got 1\."):
        mle_dimension(np.random.default_rng(0).standard_normal((10, 3)), k=1)


@pytest.mark.parametrize("function", [twonn, mle_dimension, pca_dimension, participation_ratio])
def test_nan_states(function):
    X = np.random.default_rng(0).standard_normal((50, 4))
    X[3, 1] = np.nan
    with pytest.raises(DataError,
                       match=r"'X' argument of \w+ must be finite\. Got 1 NaN and 0 Inf"):
        function(X)


def test_nan_matrix_and_inputs():
    W = np.eye(3)
    W[0, 1] = np.nan
    with pytest.raises(DataError, match="must be finite. Got 1 NaN"):
        spectral_radius(W)
    node = dr.Reservoir(10, seed=0, input_dim=1)
    with pytest.raises(DataError, match=r"'inputs' argument of check_esp must be finite"):
        check_esp(node, inputs=np.array([0.1, np.nan, 0.3]))


def test_pca_variance_out_of_range():
    with pytest.raises(ParameterError, match=r"'variance' parameter of pca_dimension must be a "
                                             r"float in \(0, 1\]\. Got 95"):
        pca_dimension(np.random.default_rng(0).standard_normal((20, 3)), variance=95)


@pytest.mark.parametrize("ranks", [[0, 1, 2], [1, -2], [1, 2.5], [True, 2], [], "124"])
def test_ranks_must_be_positive_ints(ranks):
    with pytest.raises(ParameterError, match="'ranks' parameter of rank_sweep must"):
        rank_sweep(lambda r, s: {"loss": 1.0}, ranks, seeds=1)


def test_saturation_rank_bad_epsilon_and_metric():
    import xarray as xr
    sweep = xr.Dataset({"loss": (("rank", "seed"), np.ones((2, 1)))},
                       coords={"rank": [1, 2], "seed": [0]})
    with pytest.raises(ParameterError, match=r"'epsilon' parameter of saturation_rank must be a "
                                             r"float >= 0.*Got -0\.1"):
        saturation_rank(sweep, -0.1)
    with pytest.raises(ParameterError, match=r"'metric' parameter of saturation_rank must be one "
                                             r"of \['loss'\]\. Got 'accuracy'"):
        saturation_rank(sweep, 0.1, metric="accuracy")
    with pytest.raises(DataError, match=r"'sweep' argument of saturation_rank must be a "
                                        r"rank_sweep Dataset"):
        saturation_rank(xr.Dataset(), 0.1)


def test_model_with_nothing_to_analyse():
    model = dr.Input() >> dr.Tanh()
    with pytest.raises(ParameterError, match=r"'target' parameter of spectra has nothing to "
                                             r"analyse: the model with nodes .* has no matrix"):
        spectra(model)
    with pytest.raises(ParameterError, match=r"has nothing to analyse.*no recurrent matrix"):
        check_esp(model, inputs=np.zeros((10, 2)))


def test_unbuilt_node_without_inputs():
    with pytest.raises(NotFittedError, match="has no tensors yet"):
        spectra(dr.Reservoir(10, seed=0))
    with pytest.raises(ParameterError, match=r"'inputs' parameter of check_esp is needed"):
        check_esp(dr.Reservoir(10, seed=0))


def test_wrong_target_type():
    with pytest.raises(ParameterError, match=r"'target' parameter of spectra must be a Model, a "
                                             r"node, a matrix or a sequence of matrices\. Got 3"):
        spectra(3)


def test_bad_method_and_counts():
    with pytest.raises(ParameterError, match=r"'method' parameter of spectral_radius must be one "
                                             r"of 'auto', 'dense', 'arpack'\. Got 'qr'"):
        spectral_radius(np.eye(3), method="qr")
    with pytest.raises(ParameterError, match=r"'n_states' parameter of check_esp must be an int "
                                             r">= 1\. Got 0"):
        check_esp(np.eye(3) * 0.5, n_states=0)
    with pytest.raises(ParameterError, match=r"'n_exponents' parameter of benettin must be <= "
                                             r"the state size 1\. Got 2"):
        benettin(lambda x, t: x, lambda x, t: torch.eye(1), [0.0], 10, n_exponents=2)


def test_memory_capacity_bad_inputs():
    with pytest.raises(ParameterError, match=r"'Win' parameter of memory_capacity is needed"):
        memory_capacity(np.eye(4) * 0.5, 5)
    with pytest.raises(DataError, match=r"must be one scalar series, shape \(T,\) or \(T, 1\)\. "
                                        r"Got shape \(100, 2\)"):
        memory_capacity(dr.Reservoir(10, seed=0, input_dim=1), 5, inputs=np.zeros((100, 2)))
    with pytest.raises(ParameterError, match=r"'inputs' parameter of memory_capacity is too "
                                             r"short"):
        memory_capacity(np.eye(4) * 0.5, 5, Win=np.ones(4), steps=8, warmup=2)
    with pytest.raises(ParameterError, match=r"'k_max' parameter of memory_capacity must be an "
                                             r"int >= 0\. Got -1"):
        memory_capacity(np.eye(4) * 0.5, -1, Win=np.ones(4))


def test_depth_chain_mismatch():
    with pytest.raises(DataError, match=r"do not chain: 'layer0' outputs 4 features but "
                                        r"'layer1' takes 5"):
        depth_lyapunov([np.ones((4, 3)), np.ones((2, 5))])


def test_feedback_model_is_refused_by_the_empirical_runs():
    reservoir = dr.Reservoir(10, seed=0, name="res")
    readout = dr.Ridge(name="out", units=1)
    model = (reservoir >> readout) & (reservoir << readout)
    with pytest.raises(GraphError, match=r"feed-forward chains; the edge 'out' -> 'res' has "
                                         r"delay 1 \(feedback\)"):
        check_esp(model, inputs=np.zeros((20, 1)))


def test_intrinsic_dimension_bad_estimator():
    with pytest.raises(ParameterError, match=r"'methods' parameter of intrinsic_dimension must "
                                             r"contain only"):
        intrinsic_dimension(np.zeros((10, 2)), methods=["pca", "fractal"])


def test_plot_needs_an_analysis_result():
    with pytest.raises(ParameterError, match=r"'result' parameter of plot must be an analysis "
                                             r"result"):
        plot(np.zeros(3))


# ------------------------------------------------------ regressions from the probe suite
def test_spectral_radius_of_empty_matrix_is_refused():
    with pytest.raises(DataError, match=r"'target' argument of spectral_radius is an empty "
                                        r"matrix: shape \(0, 0\)"):
        spectral_radius(np.zeros((0, 0)))


@pytest.mark.parametrize("matrix", [np.eye(3) * 1j, torch.eye(3, dtype=torch.complex64)])
def test_spectral_radius_refuses_complex_matrix(matrix):
    with pytest.raises(DataError, match=r"'target' argument of spectral_radius must be "
                                        r"real-valued\. Got complex"):
        spectral_radius(matrix)


def test_pca_dimension_refuses_complex_points():
    points = np.random.default_rng(0).standard_normal((20, 4)) * 1j
    with pytest.raises(DataError, match=r"'X' argument of pca_dimension must be real-valued\. "
                                        r"Got complex"):
        pca_dimension(points)


def test_check_esp_refuses_complex_inputs():
    with pytest.raises(DataError, match=r"'inputs' argument of check_esp must be "
                                        r"real-valued\. Got complex"):
        check_esp(dr.Reservoir(8, seed=0, input_dim=1), inputs=np.ones((20, 1)) * 1j)


def test_check_esp_refuses_empty_inputs():
    with pytest.raises(DataError, match=r"'inputs' argument of check_esp is empty: "
                                        r"shape \(0, 1\)"):
        check_esp(dr.Reservoir(8, seed=0, input_dim=1), inputs=np.zeros((0, 1)))


def _fitted_esn():
    rng = np.random.default_rng(0)
    model = dr.Reservoir(8, seed=0, name="res") >> dr.Ridge(1e-6, name="ro")
    model.fit(rng.standard_normal((30, 1)), rng.standard_normal((30, 1)), warmup=2)
    return model


def test_check_esp_wrong_feature_count_names_inputs():
    inputs = np.random.default_rng(1).standard_normal((50, 7))
    with pytest.raises(DataError, match=r"'inputs' argument .*Got 7"):
        check_esp(_fitted_esn(), inputs=inputs)


def test_lyapunov_wrong_feature_count_names_inputs():
    inputs = np.random.default_rng(1).standard_normal((50, 7))
    with pytest.raises(DataError, match=r"'inputs' argument .*Got 7"):
        lyapunov_exponents(_fitted_esn(), inputs=inputs, steps=20, warmup=5)


def test_current_beta_of_unbuilt_scaffold_is_not_fitted():
    from deepreservoir.analysis import current_beta

    model = dr.Input() >> dr.Scaffold(8, r=2, seed=1, name="hidden") >> dr.LoRAReadout(
        3, r=1, seed=0, name="head")
    with pytest.raises(NotFittedError, match=r"'model' argument of current_beta is not built "
                                             r"yet.*'hidden'.*Run or fit"):
        current_beta(model)
