"""Shared data for the LottaLoRA tests: small, seeded, fast."""

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one thread avoids OpenMP spin-waits on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(n=240, features=12, classes=3, seed=0):
    """Separable Gaussian blobs: (n, features) float32 and integer labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(classes, features))
    labels = rng.integers(0, classes, n)
    x = centres[labels] + rng.normal(size=(n, features))
    return x.astype(np.float32), labels


@pytest.fixture
def data():
    return blobs()
