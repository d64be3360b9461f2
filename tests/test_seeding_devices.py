"""Frozen weights are the same bits on every device (runs only where CUDA is available)."""

import numpy as np
import pytest
import torch

import deepreservoir as dr

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("family", sorted(dr.families.FAMILIES))
def test_frozen_weights_bit_identical_on_cuda(family):
    data = np.random.default_rng(0).uniform(-1, 1, (5, 3))
    on_cpu = dr.Reservoir(64, W=family, sr=0.9, seed=11)
    on_gpu = dr.Reservoir(64, W=family, sr=0.9, seed=11).to("cuda")
    on_cpu.run(data)
    on_gpu.run(data)
    for name in ("W_", "Win_", "bias_"):
        assert torch.equal(getattr(on_cpu, name), getattr(on_gpu, name).cpu()), name


@cuda
def test_states_on_cuda_match_cpu_within_tolerance():
    data = np.random.default_rng(1).uniform(-1, 1, (4, 200, 2))
    cpu = dr.Reservoir(300, lr=0.3, seed=3).double()
    gpu = dr.Reservoir(300, lr=0.3, seed=3).double().to("cuda")
    np.testing.assert_allclose(gpu.run(data), cpu.run(data), rtol=0, atol=1e-10)


def test_weights_do_not_depend_on_global_random_state():
    data = np.ones((2, 1))
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - the point is to perturb the legacy global state
    first = dr.Reservoir(30, seed=5)
    first.run(data)
    torch.manual_seed(123)
    np.random.seed(123)  # noqa: NPY002
    second = dr.Reservoir(30, seed=5)
    second.run(data)
    assert torch.equal(first.W_, second.W_) and torch.equal(first.Win_, second.Win_)
