"""Reservoir(r=k): a LoRA adapter and a gate on the recurrent matrix, trained through time."""

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir import functional as F
from deepreservoir.step_kernels import step_kernel


def sequences(n=48, steps=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, 2)).astype(np.float32)
    return x, (x[:, :, 0].sum(1) > 0).astype(np.int64)


def test_zero_rank_is_unchanged():
    plain = dr.Reservoir(30, seed=0)
    assert "r" not in plain.hyperparameters()
    plain.run(np.ones((5, 2)))
    assert list(plain.parameters()) == []


def test_fresh_adapter_is_a_no_op():
    x, _ = sequences(n=3)
    plain = dr.Reservoir(30, seed=0, lr=0.4)
    adapted = dr.Reservoir(30, seed=0, lr=0.4, r=3)
    # The plain reservoir runs the fused loop (drive added inside the product, sigmoid
    # form of tanh, lerp leak), the adapted one the reference operations: equal to
    # float32 rounding (a few ulp of states bounded by 1; 8e-8 measured).
    for form in ("sigmoid", "exact"):
        with step_kernel(tanh=form):
            difference = plain.run(x, reset=True) - adapted.run(x, reset=True)
        assert np.max(np.abs(difference)) < 1e-6
    assert torch.equal(adapted.effective_weight().detach(), plain.W_)


def test_step_equals_sequence_with_adapter():
    x, _ = sequences(n=2, steps=12)
    reservoir = dr.Reservoir(20, seed=1, r=2, lr=0.5, rc_connectivity=0.3)
    reservoir.run(x[0])
    with torch.no_grad():
        reservoir.B_.normal_(generator=torch.Generator().manual_seed(0))
        reservoir.beta_.fill_(0.8)
    whole = reservoir.run(x[0], reset=True)
    state, steps = None, []
    with torch.no_grad():
        for t in range(12):
            out, state = reservoir.forward_step(torch.as_tensor(x[0, t:t + 1]), state)
            steps.append(out)
    np.testing.assert_allclose(whole, torch.cat(steps).numpy(), atol=1e-6)


def test_gradients_through_time_are_exact():
    torch.manual_seed(0)
    n = 6
    W = torch.randn(n, n, dtype=torch.float64) * 0.3
    A = torch.randn(2, n, dtype=torch.float64, requires_grad=True)
    B = torch.randn(n, 2, dtype=torch.float64, requires_grad=True)
    beta = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    drive = torch.randn(3, 5, n, dtype=torch.float64)

    def run(A, B, beta):
        return F.run_lora_reservoir(torch.zeros(3, n, dtype=torch.float64), drive, W, A, B,
                                    beta, 0.5, 0.7, torch.tanh)[0]

    assert torch.autograd.gradcheck(run, (A, B, beta))
    sparse = W.to_sparse_csr()
    dense_out = run(A, B, beta)
    sparse_out = F.run_lora_reservoir(torch.zeros(3, n, dtype=torch.float64), drive, sparse, A,
                                      B, beta, 0.5, 0.7, torch.tanh)[0]
    torch.testing.assert_close(dense_out, sparse_out)


def test_bptt_training_learns_a_sequence_task():
    x, y = sequences()
    reservoir = dr.Reservoir(30, seed=0, r=4, lr=0.5)
    model = reservoir >> dr.LoRAReadout(2, r=2)
    history = model.fit(x, y, epochs=6, batch_size=16, lr=1e-2, loss="cross_entropy",
                        verbose=0).history_
    assert float(history.loss[-1]) < float(history.loss[0])
    assert float(reservoir.B_.detach().abs().sum()) > 0
    assert reservoir.alpha_convention() == "α/r = 4/4 = 1 (alpha=None: α = r)"


def test_per_step_targets_and_ragged_batches():
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(t, 1)).astype(np.float32) for t in (8, 12, 10)]
    y = [np.cumsum(s, axis=0) * 0.1 for s in x]
    model = dr.Reservoir(16, seed=0, r=2) >> dr.Dense(1)
    history = model.fit(x, y, epochs=3, lr=1e-2, verbose=0).history_
    assert np.isfinite(history.loss.values).all()


def test_rank_above_units_is_capped_at_build():
    node = dr.Reservoir(10, r=11, seed=0)
    with pytest.warns(dr.RankCappedWarning, match=r"r=11 exceeds min\(d_in=10, d_out=10\) = 10"):
        node.run(np.zeros((3, 2), dtype=np.float32))
    assert node.rank_ == 10 and node.A_.shape == (10, 10)


def test_round_trip(tmp_path):
    x, y = sequences(n=16, steps=10)
    model = dr.Reservoir(20, seed=2, r=2) >> dr.LoRAReadout(2, r=1)
    model.fit(x, y, epochs=1, loss="cross_entropy", verbose=0)
    loaded = dr.load(model.save(tmp_path / "r.dr"))
    assert np.array_equal(model.run(x, reset=True), loaded.run(x, reset=True))
