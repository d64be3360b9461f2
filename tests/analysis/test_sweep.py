"""Rank sweeps on a planted low-rank task, and the saturation rank on synthetic sweeps."""

import numpy as np
import pytest
import xarray as xr

from deepreservoir.analysis import rank_sweep, saturation_rank
from deepreservoir.errors import DataError, ParameterError


def planted_task(k, seed=0, n=1200, d=20, m=12, noise=0.05):
    """Targets depend on x only through a rank-k projection: Y = X·U·V + noise."""
    rng = np.random.default_rng(100 + k)
    U, _ = np.linalg.qr(rng.standard_normal((d, k)))
    V, _ = np.linalg.qr(rng.standard_normal((m, k)))
    X = rng.standard_normal((n, d))
    Y = X @ U @ V.T + noise * rng.standard_normal((n, m))
    return X, Y


def reduced_rank_scorer(X, Y):
    """train_and_score(rank, seed): rank-r least squares on a seeded split, test MSE."""
    def train_and_score(rank, seed):
        order = np.random.default_rng(seed).permutation(len(X))
        train, test = order[: len(X) // 2], order[len(X) // 2:]
        coef = np.linalg.lstsq(X[train], Y[train], rcond=None)[0]
        _, _, vt = np.linalg.svd(X[train] @ coef, full_matrices=False)
        projector = vt[:rank].T @ vt[:rank]  # keep the top-r output directions
        prediction = X[test] @ coef @ projector
        return {"loss": float(np.mean((prediction - Y[test]) ** 2))}
    return train_and_score


@pytest.mark.parametrize("k", [1, 3, 6])
def test_planted_rank_is_recovered(k):
    X, Y = planted_task(k)
    scorer = reduced_rank_scorer(X, Y)
    sweep = rank_sweep(scorer, ranks=[1, 2, 3, 4, 5, 6, 8, 12], seeds=3,
                       full=lambda seed: scorer(12, seed))
    assert sweep["loss"].dims == ("rank", "seed")
    assert sweep.attrs["kind"] == "rank_sweep"
    # each missing direction costs ~1/m = 0.08 of MSE; noise floor 0.0025: ε = 0.01
    result = saturation_rank(sweep, [0.01, 0.02])
    np.testing.assert_array_equal(result["r_star"].values, [k, k])
    np.testing.assert_array_equal(result["r_star_seed"].values, k)
    assert result.attrs["reference"] == "loss_full"


def synthetic_sweep(values, ranks=(1, 2, 4, 8), name="loss"):
    values = np.asarray(values, dtype=float)
    return xr.Dataset({name: (("rank", "seed"), values)},
                      coords={"rank": list(ranks), "seed": np.arange(values.shape[1])},
                      attrs={"kind": "rank_sweep", "metric": name})


def test_saturation_rank_per_seed_spread_and_nan():
    sweep = synthetic_sweep([[1.0, 1.0, 1.0], [0.5, 0.3, 0.6], [0.2, 0.1, 0.25], [0.1, 0.1, 0.1]])
    result = saturation_rank(sweep, [0.0, 0.05, 0.5], full=0.1)
    # threshold 0.15: seed 0 first reaches it at rank 8, seed 1 at 4, seed 2 at 8
    np.testing.assert_array_equal(result["r_star_seed"].sel(epsilon=0.05).values, [8, 4, 8])
    assert float(result["r_star_median"].sel(epsilon=0.05)) == 8
    assert float(result["r_star_low"].sel(epsilon=0.05)) == 4
    assert float(result["r_star_high"].sel(epsilon=0.05)) == 8
    # the seed-mean curve (1, 0.47, 0.18, 0.1) reaches 0.15 at rank 8
    assert float(result["r_star"].sel(epsilon=0.05)) == 8
    np.testing.assert_array_equal(result["r_star_seed"].sel(epsilon=0.5).values, [2, 2, 2])
    # nothing is within 0 of a reference below every value
    lower = saturation_rank(sweep, 0.0, full=0.05)
    assert np.isnan(lower["r_star"].values).all()


def test_saturation_rank_defaults_to_largest_rank_and_scores():
    accuracy = synthetic_sweep([[0.80, 0.82], [0.90, 0.91], [0.95, 0.955], [0.96, 0.96]],
                               name="accuracy")
    result = saturation_rank(accuracy, 0.02, greater_is_better=True)
    assert result.attrs["reference"] == "largest rank"
    np.testing.assert_array_equal(result["r_star_seed"].values[0], [4, 4])
    assert float(result["r_star"][0]) == 4


def test_rank_sweep_rejects_inconsistent_metrics():
    from deepreservoir.errors import DataError

    def flaky(rank, seed):
        return {"loss": 1.0} if rank == 1 else {"error": 1.0}

    with pytest.raises(DataError, match=r"returned metrics \['error'\] at rank=2"):
        rank_sweep(flaky, [1, 2], seeds=1)


def test_rank_sweep_trains_lora_models_and_recovers_the_planted_rank():
    import deepreservoir as dr

    rng = np.random.default_rng(3)
    U, _ = np.linalg.qr(rng.standard_normal((8, 2)))
    V, _ = np.linalg.qr(rng.standard_normal((4, 2)))
    X = rng.standard_normal((384, 8))
    Y = X @ U @ V.T + 0.05 * rng.standard_normal((384, 4))
    data = (X[:256], Y[:256], X[256:], Y[256:])
    sweep = rank_sweep(
        lambda r, s: dr.LoRAReadout(4, r=r, family=None, bias=False, beta=False, seed=s),
        [1, 2, 3], seeds=1, data=data,
        fit={"epochs": 30, "batch_size": 64, "lr": 0.05, "weight_decay": 0.0},
        full=lambda s: dr.LoRAReadout(4, r=0, full=True, bias=False, seed=s))
    assert sweep.attrs["method"] == "model.fit + evaluate"
    # rank 1 misses one unit-gain direction: ~1/m = 0.25 of MSE; the floor is 0.0025
    assert float(sweep["loss"].sel(rank=1).mean()) > 0.1
    np.testing.assert_array_equal(saturation_rank(sweep, [0.01])["r_star"].values, [2])


def test_rank_sweep_data_mode_bad_input():
    import deepreservoir as dr

    with pytest.raises(ParameterError, match="'data'"):
        rank_sweep(lambda r, s: dr.LoRAReadout(2, r=r), [1], data=(np.zeros((3, 2)),))
    with pytest.raises(DataError, match="Model or a node"):
        rank_sweep(lambda r, s: 3, [1], seeds=1, data=(np.zeros((4, 2)), np.zeros((4, 2)),
                                                         np.zeros((4, 2)), np.zeros((4, 2))))
