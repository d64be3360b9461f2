"""Explicit weights and signals shared by the reservoirpy parity tests, and a one-thread
fixture: both libraries get the same arrays, so no random generator is involved."""

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One torch thread: at N = 100 every step's kernels are tiny, and OpenMP's thread
    hand-offs on a small shared machine cost more than they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def explicit_weights(n: int, features: int, density: float, seed: int):
    """Float64 ``W`` (spectral radius 0.9), ``Win`` and ``bias`` from a numpy generator."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, n)) * (rng.random((n, n)) < density)
    W *= 0.9 / np.max(np.abs(np.linalg.eigvals(W)))
    Win = rng.uniform(-0.5, 0.5, size=(n, features))
    bias = rng.uniform(-0.2, 0.2, size=n)
    return W, Win, bias


def signal(steps: int, features: int, seed: int) -> np.ndarray:
    """A deterministic multi-sine input with a little noise, shape (steps, features)."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    freqs = 0.01 + 0.02 * np.arange(1, features + 1)[None, :]
    return np.sin(freqs * t) + 0.1 * rng.standard_normal((steps, features))
