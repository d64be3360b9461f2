"""Two processes (gloo, CPU) train what one process trains; only adapters cross the wire.

All two-process scenarios run in one launch (a module fixture: each process
pays torch's and xarray's import once); each test reads its scenario's
results. The launch has a hard timeout, so a hang fails instead of blocking.

Tolerance: the models are float64. Two processes compute the same global-batch
gradient as a sum of two weighted half-batch means instead of one mean, so
they differ from one process only by rounding (~1e-16 relative per step),
which a few AdamW steps amplify by at most a few orders of magnitude (its
update divides by sqrt(v) + eps). ``TOLERANCE = 1e-10`` leaves ample room above
that and far below any real difference (one step changes parameters by ~lr).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dist_cases import (
    MIXED_OPTIONS,
    MLP_OPTIONS,
    RESERVOIR_OPTIONS,
    RESUME_OPTIONS,
    blobs,
    esn,
    esn_data,
    launch,
    mixed,
    mlp,
    recurrent,
    series,
    trained,
)

import deepreservoir as dr

TOLERANCE = 1e-10

pytestmark = pytest.mark.filterwarnings("ignore::deepreservoir.RankCappedWarning")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("two_ranks")
    return launch("train,mismatch,nonfinite,resume,refusals", out, timeout=120), out


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _ok(runs, scenario):
    results = [rank[scenario] for rank in runs[0]]
    for rank, result in enumerate(results):
        assert "ok" in result, f"rank {rank}: {result.get('trace')}"
    return [result["ok"] for result in results]


def _close(a: dict, b: dict, tolerance=TOLERANCE):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=tolerance, atol=tolerance,
                                   err_msg=key)


def test_two_ranks_train_the_lottalora_mlp_as_one(runs):
    ranks = _ok(runs, "train")
    x, y = blobs()
    xv, yv = blobs(40, seed=1)
    single = mlp().fit(x, y, validation_data=(xv, yv), **MLP_OPTIONS)
    reference = trained(single)
    assert np.abs(reference["nodes.layer0.B_"]).max() > 1e-3  # it trained (B starts at 0)
    for result in ranks:
        _close(result["mlp"], reference)
        np.testing.assert_allclose(result["history"], single.history_["loss"].values,
                                   rtol=TOLERANCE)
        np.testing.assert_allclose(result["val"], single.history_["val_loss"].values,
                                   rtol=TOLERANCE)
    assert all(np.array_equal(ranks[0]["mlp"][k], ranks[1]["mlp"][k]) for k in reference)


def test_two_ranks_train_a_recurrent_lora_graph_as_one(runs):
    """Per-step targets with NaN gaps and warmup: shares of unequal rows; the last global
    batch of 9 series in batches of 4 is one series, so process 1 joins with zeros."""
    ranks = _ok(runs, "train")
    x, y = series()
    single = recurrent().fit(x, y, **RESERVOIR_OPTIONS)
    for result in ranks:
        _close(result["recurrent"], trained(single))
        np.testing.assert_allclose(result["recurrent_history"], single.history_["loss"].values,
                                   rtol=TOLERANCE)


def test_only_the_trainable_bytes_cross_the_wire_each_step(runs):
    for result in _ok(runs, "train"):
        steps = result["step_bytes"]
        assert len(steps) == 2 * 5  # 2 epochs of ceil(107 / 25) global batches
        assert set(steps) == {result["trainable_bytes"]}
        assert result["trainable_bytes"] < result["scaffold_bytes"]


def test_a_two_rank_ridge_fit_equals_the_single_process_fit(runs):
    """Inputs near 1000 and targets near 500: each process's sums are taken around its
    own shift, so adding them as they are would be wrong (by ~1 here, not ~1e-9). The
    solve itself is ill conditioned (ridge 1e-6), so the two fits are compared to 1e-10
    of each tensor's largest entry (found: ~6e-12 of it, as a one-process fit that
    combines the two halves' statistics in turn)."""
    x, y = esn_data()
    single = trained(esn().fit(x, y, warmup=10))
    for result in _ok(runs, "train"):
        for key, value in single.items():
            np.testing.assert_allclose(result["esn"][key], value, rtol=0,
                                       atol=1e-10 * np.abs(value).max(), err_msg=key)


def test_a_mixed_model_solves_and_trains_across_ranks_as_one(runs):
    """Reservoir adapters by gradient under a Ridge solved before and after, both reduced
    (found: adapters within 1e-14, the readout within 4e-12 of its largest entry)."""
    x, y = esn_data()
    single = mixed().fit(x - 1000.0, y - 500.0, **MIXED_OPTIONS)
    reference = trained(single)
    for result in _ok(runs, "train"):
        for key, value in reference.items():
            np.testing.assert_allclose(result["mixed"][key], value, rtol=0,
                                       atol=TOLERANCE * np.abs(value).max(), err_msg=key)
        np.testing.assert_allclose(result["mixed_history"], single.history_["loss"].values,
                                   rtol=TOLERANCE)


def test_a_scaffold_that_differs_stops_every_rank_with_the_node_named(runs):
    for result in (rank["mismatch"] for rank in runs[0]):
        assert result.get("type") == "ParameterError", result
        message = result["message"]
        assert "refuses to start" in message
        assert "node 'layer0', scaffold tensor" in message and "process 1" in message


def test_a_nonfinite_loss_on_one_rank_fails_both_at_the_same_step(runs):
    ranks = _ok(runs, "nonfinite")
    first, second = ranks
    assert "epoch 2" in first["message"] and "epoch 2" in second["message"]
    assert "another process" in first["message"]
    assert "The loss became nan" in second["message"] and "process 1 of 2" in second["message"]
    for result in ranks:
        assert len(result["seen"]) == 1  # epoch 1 ended; epoch 2 failed
        _close(result["after"], result["seen"][0], 0)  # back to the last good state


def test_a_checkpoint_of_two_ranks_resumes_on_one(runs):
    _ok(runs, "resume")
    directory = runs[1] / "checkpoint"
    assert (directory / "LATEST").read_text().strip() == "epoch-00002"
    x, y = blobs(120)
    resumed = mlp().fit(x, y, checkpoint=directory, resume=True, **RESUME_OPTIONS)
    uninterrupted = mlp().fit(x, y, **RESUME_OPTIONS)
    _close(trained(resumed), trained(uninterrupted))
    np.testing.assert_allclose(resumed.history_["loss"].values,
                               uninterrupted.history_["loss"].values, rtol=TOLERANCE)


def test_what_cannot_be_split_is_refused_on_every_rank(runs):
    for rank in runs[0]:
        found = rank["refusals"]["ok"]
        kind, message = found["one series"]
        assert kind == "DataError" and "'X' parameter" in message and "one series" in message
        assert "shard=False" in message
        kind, message = found["shard=False"]
        assert kind == "ParameterError" and "'shard' parameter" in message and "False" in message
        kind, message = found["online"]
        assert kind == "GraphError" and "learn sequentially" in message


def test_bad_options_name_the_parameter(monkeypatch):
    with pytest.raises(dr.ParameterError, match="'shard' parameter .* bool. Got 'yes'"):
        dr.distributed.fit(mlp(), *blobs(20), shard="yes")
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(dr.ParameterError, match="Missing: RANK, MASTER_ADDR, MASTER_PORT"):
        dr.distributed.fit(mlp(), *blobs(20), epochs=1, verbose=0)
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(dr.ParameterError, match="'WORLD_SIZE' must be a non-negative int"):
        dr.distributed.fit(mlp(), *blobs(20), epochs=1, verbose=0)


def test_one_process_is_model_fit(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    x, y = blobs(40)
    options = {**MLP_OPTIONS, "epochs": 1}
    same = dr.distributed.fit(mlp(), x, y, **options)
    assert all(np.array_equal(a, b) for a, b in zip(trained(same).values(),
                                                    trained(mlp().fit(x, y, **options)).values()))


def test_a_shuffling_data_loader_is_split_not_trained_twice(runs):
    """A DataLoader(shuffle=True) draws from torch's generator: every process draws the
    same global order (seeded per epoch), so each epoch trains every row once."""
    first, second = _ok(runs, "train")
    assert len(first["seen"]) == 3
    for mine, theirs in zip(first["seen"], second["seen"], strict=True):
        assert sorted(mine + theirs) == sorted(first["every_row"])
