"""The layers :func:`deepreservoir.adapt` puts in place of a module's own.

* :class:`AdaptedLinear` for ``nn.Linear`` and for the linear layers of other
  libraries listed in :data:`FOREIGN_LINEAR` (PyTorch Geometric's ``Linear``,
  inside ``GCNConv`` and friends);
* :class:`AdaptedConv` for ``nn.Conv1d/2d/3d`` (``groups=1``, zero padding);
* :class:`AdaptedEmbedding` for ``nn.Embedding`` (no ``max_norm``);
* :class:`AdaptedMultiheadAttention` for ``nn.MultiheadAttention``.

Each holds a frozen weight drawn from its seed key, a LoRA adapter
``scale·B·A`` (A from the seed, B = 0) and a gate β, and turns back into its
original class with the merged weights by ``to_dense()``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from deepreservoir.families import Normal, Uniform, make_weight
from deepreservoir.lora import LowRankAdapter, capped_rank
from deepreservoir.seeding import SeedKey
from deepreservoir.virtual_linear import frozen_lora_linear

__all__ = [
    "FOREIGN_LINEAR",
    "AdaptedConv",
    "AdaptedEmbedding",
    "AdaptedLinear",
    "AdaptedMultiheadAttention",
    "foreign_linear_name",
]


def _geometric_linear(in_features: int, out_features: int, bias: bool) -> nn.Module:
    from torch_geometric.nn.dense.linear import Linear

    return Linear(in_features, out_features, bias=bias)


#: Linear layers of other libraries that compute ``x·Wᵀ + b`` from a ``weight`` of
#: shape (out, in) and an optional ``bias``, by ``"module.QualifiedName"`` of their
#: class: how to build an empty one again (``to_dense``). :func:`adapt` adapts them
#: as it adapts ``nn.Linear``.
FOREIGN_LINEAR: dict[str, Callable[[int, int, bool], nn.Module]] = {
    "torch_geometric.nn.dense.linear.Linear": _geometric_linear,
}


def foreign_linear_name(module: nn.Module) -> str | None:
    """The :data:`FOREIGN_LINEAR` name of ``module``'s class, or ``None``."""
    name = f"{type(module).__module__}.{type(module).__qualname__}"
    return name if name in FOREIGN_LINEAR else None


class _Adapter(nn.Module, LowRankAdapter):
    """Shared state of the adapted layers: frozen ``W_``, the LoRA component, a bias."""

    def _setup(self, key: SeedKey, shape: tuple[int, ...], fan_in: int, fan_out: int,
               a_shape: tuple[int, ...], b_shape: tuple[int, ...], r: int,
               alpha: float | None, rslora: bool, family: Any, bias: str | None,
               dtype: torch.dtype, device: Any, family_default: Any = None,
               a_fan_in: int | None = None, weights: str = "stored") -> None:
        self.key = key
        self._init_adapter(r, alpha, rslora, gate=True)
        self.family = family if family is not None else family_default
        self._frozen_spec = (tuple(shape), int(fan_in), int(fan_out))
        new = dict(dtype=dtype, device=device)
        self._hold_frozen(weights, lambda: self._regenerate_frozen(**new), self.family, key,
                          shape, fan_in, fan_out, owner="adapt", **new)
        self._build_adapter(key, a_shape[1], b_shape[0], dtype=dtype, device=device,
                            a_tail=tuple(a_shape[2:]), b_tail=tuple(b_shape[2:]),
                            a_fan_in=a_fan_in or fan_in)
        self.bias_mode = bias
        if bias is None:
            self.bias_ = None
        else:
            values = (np.zeros(fan_out) if bias == "zero" else
                      make_weight(Uniform(a=1.0 / math.sqrt(max(fan_in, 1))), key, "bias",
                                  (fan_out,), fan_in=fan_in, fan_out=fan_out))
            tensor = torch.as_tensor(values).to(**new)
            if bias == "train":
                self.bias_ = nn.Parameter(tensor)
            else:
                self.register_buffer("bias_", tensor, persistent=False)

    def _regenerate_frozen(self, dtype=None, device=None) -> Tensor:
        shape, fan_in, fan_out = self._frozen_spec
        W = make_weight(self.family, self.key, "W", shape, fan_in=fan_in, fan_out=fan_out)
        reference = getattr(self, "W_", None)
        if reference is not None:
            dtype, device = reference.dtype, reference.device
        return self._zero_padding(torch.as_tensor(W).to(dtype=dtype, device=device))

    def _zero_padding(self, weight: Tensor) -> Tensor:
        return weight

    def _filled(self, layer: nn.Module) -> nn.Module:
        """``layer`` with the merged weight and this adapter's bias copied in."""
        with torch.no_grad():
            layer.weight.copy_(self.effective_weight())
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        return layer

    @property
    def weight(self) -> Tensor:
        """The merged weight, as code that reads ``module.weight`` expects."""
        return self.effective_weight()

    @property
    def bias(self) -> Tensor | None:
        return getattr(self, "bias_", None)

    def extra_repr(self) -> str:
        return (f"key=({self.key.root}, {self.key.path!r}), r={self.r}, scale={self.scale:g}, "
                f"family={self.family!r}, bias={self.bias_mode!r}")



class AdaptedLinear(_Adapter):
    """``y = β·x·W_seedᵀ + scale·(x·Aᵀ)·Bᵀ + b`` in place of an ``nn.Linear``.

    ``weight`` and ``bias`` read the merged dense values, so code that uses
    ``layer.weight`` directly (attention kernels, fused paths) keeps working.
    """

    def __init__(self, in_features: int, out_features: int, *, key: SeedKey, r: int,
                 alpha: float | None = None, rslora: bool = False, family: Any = "normal",
                 bias: str | None = "seeded", dtype: torch.dtype = torch.float32,
                 device: Any = None, weights: str = "stored",
                 dense_class: str | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        #: the :data:`FOREIGN_LINEAR` class ``to_dense`` builds, or None for nn.Linear
        self.dense_class = dense_class
        self._setup(key, (out_features, in_features), in_features, out_features,
                    (r, in_features), (out_features, r), r, alpha, rslora, family, bias,
                    dtype, device, weights=weights)

    def effective_weight(self) -> Tensor:
        """``β·W_seed + scale·B·A``, shape (out_features, in_features)."""
        return self.adapted_weight(self.frozen_tensor())

    def forward(self, x: Tensor) -> Tensor:
        return frozen_lora_linear(x, self.frozen_weight(), *self.adapter_terms(), self.scale,
                                  self.bias_)

    def to_dense(self) -> nn.Module:
        """A plain ``nn.Linear`` (or the foreign class it replaced) with the merged values."""
        has_bias = self.bias_ is not None
        if self.dense_class is None:
            layer = nn.Linear(self.in_features, self.out_features, bias=has_bias,
                              **self._frozen_options())
        else:
            layer = FOREIGN_LINEAR[self.dense_class](self.in_features, self.out_features,
                                                     has_bias).to(**self._frozen_options())
        return self._filled(layer)


class AdaptedConv(_Adapter):
    """A seeded convolution with a LoRA adapter.

    ``y = β·conv(x, W_seed) + scale·conv(conv(x, A), B) + b``.

    ``A`` is a convolution with ``r`` output channels and the layer's kernel,
    stride, padding and dilation; ``B`` a 1×…×1 convolution from ``r`` channels.
    """

    def __init__(self, conv: nn.modules.conv._ConvNd, *, key: SeedKey, r: int,
                 alpha: float | None = None, rslora: bool = False, family: Any = "normal",
                 bias: str | None = "seeded") -> None:
        super().__init__()
        self.dims = len(conv.kernel_size)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation
        k = int(np.prod(conv.kernel_size))
        shape = tuple(conv.weight.shape)
        fan_in = conv.in_channels * k
        ones = (1,) * self.dims
        self._setup(key, shape, fan_in, conv.out_channels,
                    (r, conv.in_channels, *conv.kernel_size), (conv.out_channels, r, *ones),
                    r, alpha, rslora, family, bias, conv.weight.dtype, conv.weight.device)

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None = None, *,
              pointwise: bool = False) -> Tensor:
        fn = (torch.nn.functional.conv1d, torch.nn.functional.conv2d,
              torch.nn.functional.conv3d)[self.dims - 1]
        if pointwise:
            return fn(x, weight, bias)
        return fn(x, weight, bias, self.stride, self.padding, self.dilation)

    def effective_weight(self) -> Tensor:
        """``β·W_seed + scale·B·A`` as a dense kernel, shape of the original weight."""
        return self.adapted_weight(self.W_)

    def forward(self, x: Tensor) -> Tensor:
        out = self._conv(x, self.W_)
        A, B, gate = self.adapter_terms()
        if A is not None:
            low = self._conv(self._conv(x, A), B, pointwise=True)
            out = gate * out + self.scale * low
        if self.bias_ is not None:
            out = out + self.bias_.reshape(1, -1, *(1,) * self.dims)
        return out

    def to_dense(self) -> nn.Module:
        """A plain ``nn.ConvNd`` holding the merged kernel and bias."""
        cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[self.dims - 1]
        layer = cls(self.in_channels, self.out_channels, self.kernel_size, stride=self.stride,
                    padding=self.padding, dilation=self.dilation, bias=self.bias_ is not None,
                    dtype=self.W_.dtype, device=self.W_.device)
        return self._filled(layer)


class AdaptedEmbedding(_Adapter):
    """A seeded embedding table with a LoRA adapter: rows of ``β·W_seed + scale·(B·A)ᵀ``.

    ``W_seed`` (num, dim) defaults to N(0, 1), torch's embedding initialisation;
    ``A`` is (r, num) and ``B`` (dim, r).
    """

    def __init__(self, embedding: nn.Embedding, *, key: SeedKey, r: int,
                 alpha: float | None = None, rslora: bool = False, family: Any = None) -> None:
        super().__init__()
        num, dim = embedding.num_embeddings, embedding.embedding_dim
        self.num_embeddings, self.embedding_dim = num, dim
        self.padding_idx = embedding.padding_idx
        self._setup(key, (num, dim), num, dim, (r, num), (dim, r), r, alpha, rslora, family,
                    None, embedding.weight.dtype, embedding.weight.device,
                    family_default=Normal(scale=1.0))

    def _zero_padding(self, weight: Tensor) -> Tensor:
        if getattr(self, "padding_idx", None) is not None:
            weight[self.padding_idx] = 0.0
        return weight

    def _delta_as_weight(self, delta: Tensor) -> Tensor:
        return delta.T  # B·A is (dim, num); the table is (num, dim)

    def effective_weight(self) -> Tensor:
        """The merged table (num, dim)."""
        return self.adapted_weight(self.W_)

    def forward(self, index: Tensor) -> Tensor:
        out = torch.nn.functional.embedding(index, self.W_, self.padding_idx)
        A, B, gate = self.adapter_terms()
        if A is None:
            return out
        low = torch.nn.functional.embedding(index, A.T) @ B.T
        return gate * out + self.scale * low

    def to_dense(self) -> nn.Embedding:
        """A plain ``nn.Embedding`` holding the merged table."""
        layer = nn.Embedding(self.num_embeddings, self.embedding_dim,
                             padding_idx=self.padding_idx, dtype=self.W_.dtype,
                             device=self.W_.device)
        with torch.no_grad():
            layer.weight.copy_(self.effective_weight())
        return layer


class AdaptedMultiheadAttention(nn.MultiheadAttention):
    """An ``nn.MultiheadAttention`` whose projections are :class:`AdaptedLinear` layers.

    ``in_proj_weight`` / ``in_proj_bias`` (or ``q_proj_weight``, ... when the key
    and value sizes differ) are read-only views that concatenate the merged
    query, key and value weights, so ``nn.MultiheadAttention.forward`` runs as is.
    Created by :func:`adapt` by converting an existing module in place.
    """

    @classmethod
    def convert(cls, mha: nn.MultiheadAttention, *, key: SeedKey, r: int, alpha, rslora,
                family, bias: str, path: str = "") -> AdaptedMultiheadAttention:
        """Turn ``mha`` into this class in place (``path`` names it in rank warnings)."""
        e = mha.embed_dim
        has_bias = mha.in_proj_bias is not None
        dims = (e, mha.kdim, mha.vdim)
        projections = {}
        for name, d_in in zip(("q_proj", "k_proj", "v_proj"), dims, strict=True):
            weight = mha.in_proj_weight if mha._qkv_same_embed_dim else getattr(
                mha, f"{name}_weight")
            rank = capped_rank(f"adapt, layer '{path}.{name}' (attention {d_in} -> {e})", r,
                               d_in, e, stacklevel=5)
            projections[name] = AdaptedLinear(
                d_in, e, key=key.child(name), r=rank, alpha=alpha, rslora=rslora,
                family=family, bias=bias if has_bias else None, dtype=weight.dtype,
                device=weight.device)
        out = mha.out_proj
        out_bias = bias if out.bias is not None else None
        rank = capped_rank(f"adapt, layer '{path}.out_proj' (attention {e} -> {e})", r, e, e,
                           stacklevel=5)
        out_proj = AdaptedLinear(e, e, key=key.child("out_proj"), r=rank, alpha=alpha,
                                 rslora=rslora, family=family, bias=out_bias,
                                 dtype=out.weight.dtype, device=out.weight.device)
        for name in ("in_proj_weight", "in_proj_bias", "q_proj_weight", "k_proj_weight",
                     "v_proj_weight"):
            mha._parameters.pop(name, None)
        mha.__class__ = cls
        for name, layer in projections.items():
            mha.add_module(name, layer)
        mha.out_proj = out_proj
        return mha

    def _proj(self, name: str) -> Tensor:
        return self._modules[name].effective_weight()

    @property
    def in_proj_weight(self) -> Tensor | None:
        """The merged query, key and value weights stacked (3·E, E), or None."""
        if not self._qkv_same_embed_dim:
            return None
        return torch.cat([self._proj(n) for n in ("q_proj", "k_proj", "v_proj")])

    @property
    def in_proj_bias(self) -> Tensor | None:
        """The query, key and value biases stacked (3·E,), or None."""
        biases = [self._modules[n].bias_ for n in ("q_proj", "k_proj", "v_proj")]
        return None if biases[0] is None else torch.cat(biases)

    @property
    def q_proj_weight(self) -> Tensor | None:
        """The merged query weight (E, E_q) when the sizes differ, else None."""
        return None if self._qkv_same_embed_dim else self._proj("q_proj")

    @property
    def k_proj_weight(self) -> Tensor | None:
        """The merged key weight (E, kdim) when the sizes differ, else None."""
        return None if self._qkv_same_embed_dim else self._proj("k_proj")

    @property
    def v_proj_weight(self) -> Tensor | None:
        """The merged value weight (E, vdim) when the sizes differ, else None."""
        return None if self._qkv_same_embed_dim else self._proj("v_proj")

    def to_dense(self) -> nn.MultiheadAttention:
        """A plain ``nn.MultiheadAttention`` holding the merged projections."""
        dense = copy.deepcopy(self)
        weights = {n: self._proj(n).detach().clone() for n in ("q_proj", "k_proj", "v_proj")}
        bias = self.in_proj_bias
        out = self._modules["out_proj"]
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            del dense._modules[name]
        dense.__class__ = nn.MultiheadAttention
        if self._qkv_same_embed_dim:
            dense.in_proj_weight = nn.Parameter(torch.cat(list(weights.values())))
        else:
            for name, value in weights.items():
                setattr(dense, f"{name}_weight", nn.Parameter(value))
        dense.in_proj_bias = None if bias is None else nn.Parameter(bias.detach().clone())
        linear = nn.modules.linear.NonDynamicallyQuantizableLinear(
            self.embed_dim, self.embed_dim, bias=out.bias_ is not None, dtype=out.W_.dtype,
            device=out.W_.device)
        with torch.no_grad():
            linear.weight.copy_(out.effective_weight())
            if out.bias_ is not None:
                linear.bias.copy_(out.bias_)
        dense.out_proj = linear
        return dense

