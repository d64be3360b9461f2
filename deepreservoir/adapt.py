"""Turn any torch module into a seeded scaffold with LoRA adapters: :func:`adapt`, :func:`merge`.

Every targeted ``nn.Linear``, ``nn.Conv1d/2d/3d`` (``groups=1``, zero padding),
``nn.Embedding`` and ``nn.MultiheadAttention`` gets

* a frozen weight drawn from ``(seed, module path)`` by a weight family (a
  non-persistent buffer: regenerated, never stored),
* a LoRA adapter ``scale·B·A`` (A from the seed, B = 0) and a gate ``β = 1``,

so a freshly adapted layer computes exactly ``W_seed·x + b``. The pretrained
values of adapted weights are discarded: the network becomes a random scaffold.
Modules named in ``train`` (heads, norms) keep their values and stay trainable;
every other parameter is frozen in place.

``nn.MultiheadAttention`` keeps its fused ``in_proj_weight`` interface: the
query, key and value projections become three adapted layers whose merged
weights are concatenated on access, so torch's attention kernels (and the
fused fast path of ``nn.TransformerEncoderLayer``) see the current weights.

:func:`merge` returns a plain torch module with dense weights
``β·W_seed + scale·B·A`` and no deepreservoir classes in it.
"""

from __future__ import annotations

import copy
import fnmatch
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from deepreservoir.errors import ParameterError, format_value
from deepreservoir.families import Normal, Uniform, get_family, make_weight
from deepreservoir.frozen_weight import check_weights_mode
from deepreservoir.lora import LowRankAdapter
from deepreservoir.seeding import SeedKey
from deepreservoir.virtual_linear import frozen_lora_linear

__all__ = [
    "AdaptedConv",
    "AdaptedEmbedding",
    "AdaptedLinear",
    "AdaptedMultiheadAttention",
    "adapt",
    "adapted_layers",
    "merge",
    "parameter_groups",
]

_BIAS_MODES = ("seeded", "zero", "train")


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
                 device: Any = None, weights: str = "stored") -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self._setup(key, (out_features, in_features), in_features, out_features,
                    (r, in_features), (out_features, r), r, alpha, rslora, family, bias,
                    dtype, device, weights=weights)

    def effective_weight(self) -> Tensor:
        """``β·W_seed + scale·B·A``, shape (out_features, in_features)."""
        return self.adapted_weight(self.frozen_tensor())

    def forward(self, x: Tensor) -> Tensor:
        return frozen_lora_linear(x, self.frozen_weight(), *self.adapter_terms(), self.scale,
                                  self.bias_)

    def to_dense(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding the merged weight and bias."""
        layer = nn.Linear(self.in_features, self.out_features, bias=self.bias_ is not None,
                          **self._frozen_options())
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
                family, bias: str) -> AdaptedMultiheadAttention:
        e = mha.embed_dim
        has_bias = mha.in_proj_bias is not None
        dims = (e, mha.kdim, mha.vdim)
        projections = {}
        for name, d_in in zip(("q_proj", "k_proj", "v_proj"), dims, strict=True):
            weight = mha.in_proj_weight if mha._qkv_same_embed_dim else getattr(
                mha, f"{name}_weight")
            projections[name] = AdaptedLinear(
                d_in, e, key=key.child(name), r=min(r, d_in, e), alpha=alpha, rslora=rslora,
                family=family, bias=bias if has_bias else None, dtype=weight.dtype,
                device=weight.device)
        out = mha.out_proj
        out_bias = bias if out.bias is not None else None
        out_proj = AdaptedLinear(e, e, key=key.child("out_proj"), r=min(r, e), alpha=alpha,
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


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or name == p or name.startswith(p + ".")
               for p in patterns)


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        if module.groups == 1 and module.padding_mode == "zeros" and not isinstance(
                module.padding, str):
            return "conv"
        return None
    if isinstance(module, nn.Embedding):
        return "embedding" if module.max_norm is None else None
    return None


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise ParameterError(
            f"The '{name}' parameter of adapt must be {expected}. Got {format_value(value)}.")


def _check_module(module: Any, owner: str) -> None:
    if not isinstance(module, nn.Module):
        raise ParameterError(
            f"The 'module' parameter of {owner} must be a torch nn.Module. "
            f"Got {format_value(module)} (a {type(module).__name__}).")


def _patterns(name: str, value: Any) -> list[str]:
    """``value`` as a list of module-path patterns (one string is one pattern)."""
    if isinstance(value, str):
        return [value]
    try:
        patterns = list(value)
    except TypeError:
        patterns = None
    if patterns is None or not all(isinstance(p, str) for p in patterns):
        expected = ('"all", a str or an iterable of str' if name == "targets"
                    else "a str or an iterable of str")
        raise ParameterError(
            f"The '{name}' parameter of adapt must be {expected} (module paths or fnmatch "
            f"patterns). Got {format_value(value)}.")
    return patterns


def _few(names: list[str], limit: int = 8) -> str:
    if not names:
        return "none"
    shown = ", ".join(map(repr, names[:limit]))
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def adapt(module: nn.Module, *, r: int, seed: int, family: Any = "normal",
          alpha: float | None = None, rslora: bool = False,
          targets: str | Iterable[str] = "all", train: Iterable[str] = (),
          bias: str = "seeded", weights: str = "stored") -> nn.Module:
    """Turn a torch module into a seeded scaffold with LoRA adapters, in place.

    Parameters
    ----------
    module : nn.Module
    r : int >= 0
        Adapter rank; capped per layer at ``min(d_in, d_out)`` for attention
        projections, an error elsewhere.
    seed : int
        Root seed. The frozen weight of the module at path ``p`` is drawn from
        ``SeedKey(seed, p)`` (dots become slashes), role ``"W"``.
    family : str, Family or dict
        Distribution of the frozen weights (embeddings default to N(0, 1)).
    alpha : float > 0, optional
        ``None`` means α = r.
    rslora : bool
        Scale by ``α/√r``.
    targets : "all" or iterable of str
        Module paths or fnmatch patterns to adapt (``"layers.*.linear1"``); "all"
        adapts every supported layer not named in ``train``.
    train : str or iterable of str
        Module or parameter paths (or patterns) that keep their values and stay
        trainable: heads and norms.

    Raises
    ------
    ParameterError
        On a bad argument, and on a ``targets`` pattern that matches no adaptable
        layer or a ``train`` pattern that matches no module or parameter (a typo
        would otherwise adapt nothing, or turn the head into a random scaffold).
    bias : {"seeded", "zero", "train"}
        Biases of adapted layers: frozen and drawn from the seed (U(±1/√fan_in),
        torch's default), zero, or trained (starting from the seeded draw). The
        default differs from :func:`~deepreservoir.scaffold_mlp`'s (no hidden bias, as
        in the paper's MLPs) on purpose: the architectures ``adapt`` receives have
        biases, and ``"seeded"`` keeps them as torch would initialise them.
    weights : {"stored", "virtual"}
        "virtual": adapted nn.Linear layers regenerate W_seed by row tiles, never stored.

    Returns
    -------
    nn.Module
        The same module, modified. Its ``parameters()`` are exactly the adapters,
        gates and the ``train`` tensors; its ``state_dict()`` holds no frozen
        scaffold weight.
    """
    _check_module(module, "adapt")
    _check("r", r, isinstance(r, int) and not isinstance(r, bool) and r >= 0, "an int >= 0")
    _check("seed", seed, isinstance(seed, int) and not isinstance(seed, bool)
           and 0 <= seed < 2**63, "a non-negative int below 2**63")
    _check("alpha", alpha, alpha is None or (isinstance(alpha, (int, float))
                                             and not isinstance(alpha, bool) and alpha > 0),
           "a float > 0 or None")
    _check("rslora", rslora, isinstance(rslora, (bool, np.bool_)), "a bool")
    _check("bias", bias, bias in _BIAS_MODES, "one of " + ", ".join(map(repr, _BIAS_MODES)))
    if isinstance(family, (str, dict)):
        get_family(family, "family")
    check_weights_mode(weights, "adapt", family)
    rslora = bool(rslora)
    train = _patterns("train", train)
    if not (isinstance(targets, str) and targets == "all"):
        targets = _patterns("targets", targets)
    modules = [name for name, _ in module.named_modules() if name]
    parameters = [name for name, _ in module.named_parameters()]
    for pattern in train:
        if not (any(_matches(n, [pattern]) for n in modules)
                or any(_matches(n, [pattern]) for n in parameters)):
            raise ParameterError(
                f"The 'train' parameter of adapt has a pattern {pattern!r} that matches no "
                f"module or parameter of the {type(module).__name__}. Modules: "
                f"{_few(modules)}.")
    adaptable = [name for name, child in module.named_modules()
                 if name and _kind(child) is not None and not _matches(name, train)]
    if targets != "all":
        for pattern in targets:
            if not any(_matches(n, [pattern]) for n in adaptable):
                raise ParameterError(
                    f"The 'targets' parameter of adapt has a pattern {pattern!r} that matches "
                    f"no adaptable layer (nn.Linear, nn.Conv1d/2d/3d with groups=1 and zero "
                    f"padding, nn.Embedding, nn.MultiheadAttention) outside 'train' in the "
                    f"{type(module).__name__}. Adaptable layers: {_few(adaptable)}; "
                    f"modules: {_few(modules)}.")
    chosen = []
    for name, child in module.named_modules():
        if not name or _kind(child) is None or _matches(name, train):
            continue
        if targets != "all" and not _matches(name, targets):
            continue
        if any(name.startswith(parent + ".") for parent, _ in chosen):
            continue  # inside an adapted attention block
        chosen.append((name, child))
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    for name, child in chosen:
        key = SeedKey(int(seed), name.replace(".", "/"))
        kind = _kind(child)
        if kind == "attention":
            AdaptedMultiheadAttention.convert(child, key=key, r=r, alpha=alpha, rslora=rslora,
                                              family=family, bias=bias)
            continue
        if kind == "linear":
            if r > min(child.in_features, child.out_features):
                raise ParameterError(
                    f"The 'r' parameter of adapt must be an int in [0, min(d_in, d_out)] = "
                    f"[0, {min(child.in_features, child.out_features)}] for layer '{name}' "
                    f"({child.in_features} -> {child.out_features}). Got {r}.")
            new = AdaptedLinear(child.in_features, child.out_features, key=key, r=r, alpha=alpha,
                                rslora=rslora, family=family,
                                bias=bias if child.bias is not None else None,
                                dtype=child.weight.dtype, device=child.weight.device,
                                weights=weights)
        elif kind == "conv":
            new = AdaptedConv(child, key=key, r=min(r, child.out_channels), alpha=alpha,
                              rslora=rslora, family=family,
                              bias=bias if child.bias is not None else None)
        else:
            new = AdaptedEmbedding(child, key=key, r=min(r, child.embedding_dim), alpha=alpha,
                                   rslora=rslora,
                                   family=None if family == "normal" else family)
        _replace(module, name, new)
    for name, parameter in module.named_parameters():
        if _matches(name, train):
            parameter.requires_grad_(True)
    return module


def _replace(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, new)


def adapted_layers(module: nn.Module) -> dict[str, nn.Module]:
    """The adapted layers of a module by path (attention projections included)."""
    return {name: child for name, child in module.named_modules()
            if isinstance(child, _Adapter)}


def parameter_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer groups for an adapted module: weight decay on all but the gates β.

    ``Model.fit`` never decays β (decay would pull each gate towards 0, i.e.
    towards removing its scaffold); this gives a torch optimizer the same rule:
    ``torch.optim.AdamW(dr.adapt_parameter_groups(model, 1e-2), lr=1e-3)``.

    Returns
    -------
    list of dict
        ``[{"params": [...], "weight_decay": weight_decay},
        {"params": [the β of every adapted layer], "weight_decay": 0.0}]``, trainable
        parameters only.
    """
    _check_module(module, "parameter_groups")
    _check("weight_decay", weight_decay, isinstance(weight_decay, (int, float))
           and not isinstance(weight_decay, bool) and weight_decay >= 0, "a float >= 0")
    gates = {id(layer.gate_value()) for layer in module.modules()
             if isinstance(layer, LowRankAdapter) and isinstance(layer.gate_value(), Tensor)}
    trainable = [p for p in module.parameters() if p.requires_grad]
    return [{"params": [p for p in trainable if id(p) not in gates],
             "weight_decay": float(weight_decay)},
            {"params": [p for p in trainable if id(p) in gates], "weight_decay": 0.0}]


def merge(module: nn.Module) -> nn.Module:
    """A plain torch copy of an adapted module, with dense merged weights.

    Every adapted layer becomes its torch class again (``nn.Linear``, ``nn.Conv*d``,
    ``nn.Embedding``, ``nn.MultiheadAttention``) holding ``β·W_seed + scale·B·A``;
    the outputs match the adapted module's within float rounding. All parameters
    of the copy are trainable, as in a freshly built torch module.
    """
    _check_module(module, "merge")
    dense = copy.deepcopy(module)
    targets = [(name, child) for name, child in dense.named_modules()
               if isinstance(child, (_Adapter, AdaptedMultiheadAttention))]
    done: list[str] = []
    for name, child in targets:
        if any(name.startswith(p + ".") for p in done):
            continue
        with torch.no_grad():
            replacement = child.to_dense()
        if not name:
            return replacement
        _replace(dense, name, replacement)
        done.append(name)
    for parameter in dense.parameters():
        parameter.requires_grad_(True)
    return dense
