"""Ridge's shifted sums: exact over chunks, no cancellation when the mean is large."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import deepreservoir as dr
from deepreservoir import functional as F

F64 = torch.float64


def offset_data(seed=0, n=400, features=5, mean=1e4, spread=1e-2):
    rng = np.random.default_rng(seed)
    x = mean + spread * rng.normal(size=(n, features))
    W = rng.normal(size=(2, features))
    b = rng.normal(size=2)
    return x, x @ W.T + b, W, b


def test_a_large_mean_costs_no_digits():
    x, y, W, _ = offset_data()
    model = dr.Ridge(1e-12, dtype=F64)
    model.fit(x, y)
    np.testing.assert_allclose(model.Wout_.numpy(), W, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.run(x), y, rtol=0, atol=1e-8)
    # the raw-sum route (what Ridge did before) loses most digits on the same data
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    raw_W, _ = F.ridge_solve(xt.T @ xt, xt.T @ yt, xt.sum(0), yt.sum(0), len(x), 1e-12, True)
    assert float((raw_W - torch.as_tensor(W)).abs().max()) > 1e-3


def test_chunks_give_the_one_pass_answer():
    x, _, _, _ = offset_data(seed=1, mean=30.0, spread=0.5)
    y = np.random.default_rng(1).normal(size=(len(x), 2)) + x[:, :2]
    one = dr.Input() >> dr.Ridge(1e-8, dtype=F64)
    one.fit(x, y)
    chunked = dr.Input() >> dr.Ridge(1e-8, dtype=F64)
    chunked.fit(x, y, chunk_size=37)  # 11 chunks, each with its own mean
    np.testing.assert_allclose(chunked.run(x), one.run(x), rtol=0, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(1, 59), seed=st.integers(0, 1000), bias=st.booleans())
def test_combine_is_the_statistics_of_the_union(cut, seed, bias):
    rng = np.random.default_rng(seed)
    x = torch.as_tensor(3 + rng.normal(size=(60, 4)))
    y = torch.as_tensor(rng.normal(size=(60, 2)) - 5)
    node = dr.Ridge(1e-6, fit_bias=bias, dtype=F64).fit(x.numpy(), y.numpy())
    together = node.uncentred(node.statistics(x, y))
    parts = node.uncentred(node.combine(node.statistics(x[:cut], y[:cut]),
                                        node.statistics(x[cut:], y[cut:])))
    for key in ("xtx", "xty", "x_sum", "y_sum", "yty"):
        torch.testing.assert_close(parts.sums[key], together.sums[key], rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(together.sums["xtx"], x.T @ x, rtol=1e-12, atol=1e-9)
    assert parts.count == 60


def test_the_training_loss_is_exact_from_shifted_sums():
    x, _, _, _ = offset_data(seed=2, mean=50.0, spread=1.0)
    y = np.random.default_rng(2).normal(size=(len(x), 1))
    model = dr.Input() >> dr.Ridge(1e-3, dtype=F64)
    model.fit(x, y, chunk_size=101)
    direct = float(np.mean((model.run(x) - y) ** 2))
    node = model.nodes[model.output_names[0]]
    statistics = node.combine(node.statistics(torch.as_tensor(x[:150]), torch.as_tensor(y[:150])),
                              node.statistics(torch.as_tensor(x[150:]), torch.as_tensor(y[150:])))
    assert abs(node.training_loss(statistics) - direct) < 1e-10 * max(direct, 1)
