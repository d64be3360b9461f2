"""Fixtures shared by the analysis tests."""

import numpy as np
import pytest
import torch

import deepreservoir as dr
from deepreservoir.kinds import LayerView, WeightedLayer
from deepreservoir.nodes.base import Node


class FakeLoRA(Node, WeightedLayer):
    """A stand-in for a LoRA layer: ``effective_weight() = β·W_seed + (α/r)·B·A``."""

    def __init__(self, W, A, B, beta, alpha, *, activation="identity", name=None):
        super().__init__(name=name, dtype=torch.float64)
        self.register_buffer("W_", torch.as_tensor(W, dtype=torch.float64), persistent=False)
        self.A = torch.nn.Parameter(torch.as_tensor(A, dtype=torch.float64))
        self.B = torch.nn.Parameter(torch.as_tensor(B, dtype=torch.float64))
        self.beta = torch.nn.Parameter(torch.tensor(float(beta), dtype=torch.float64))
        self.alpha = float(alpha)
        self.activation = activation
        self.input_dim = self.W_.shape[1]
        self.output_dim = self.W_.shape[0]
        self.built = True

    def effective_weight(self):
        rank = self.A.shape[0]
        return self.beta * self.W_ + (self.alpha / rank) * self.B @ self.A

    def layer_view(self):
        return LayerView(weight=self.effective_weight().detach(), frozen=self.W_,
                         activation=self.activation)

    def forward_sequence(self, x, state, lengths=None):
        return x @ self.effective_weight().T, None


@pytest.fixture
def lora_class():
    return FakeLoRA


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def fake_lora(rng):
    def make(d_out=12, d_in=12, r=2, beta=0.7, alpha=2.0, name=None, activation="identity"):
        return FakeLoRA(rng.standard_normal((d_out, d_in)) / np.sqrt(d_in),
                        rng.standard_normal((r, d_in)), rng.standard_normal((d_out, r)),
                        beta, alpha, name=name, activation=activation)
    return make


@pytest.fixture
def reservoir():
    node = dr.Reservoir(60, sr=0.9, lr=0.4, seed=3, input_dim=1, dtype=torch.float64)
    node.run(np.zeros((2, 1)))
    return node


@pytest.fixture
def orthogonal():
    def make(n, seed):
        q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
        return q
    return make
