"""Turn any torch module into a seeded scaffold with LoRA adapters: :func:`adapt`, :func:`merge`.

Every targeted ``nn.Linear`` (and PyTorch Geometric's ``Linear``, see
:data:`~deepreservoir.adapt_layers.FOREIGN_LINEAR`), ``nn.Conv1d/2d/3d``
(``groups=1``, zero padding), ``nn.Embedding`` and ``nn.MultiheadAttention`` gets

* a frozen weight drawn from ``(seed, module path)`` by a weight family (a
  non-persistent buffer: regenerated, never stored),
* a LoRA adapter ``scale·B·A`` (A from the seed, B = 0) and a gate ``β = 1``,

so a freshly adapted layer computes exactly ``W_seed·x + b``. The pretrained
values of adapted weights are discarded: the network becomes a random scaffold.
Modules named in ``train`` (heads, norms) keep their values and stay trainable;
every other parameter is frozen in place. A weight matrix that ``adapt`` cannot
adapt (a grouped convolution, a parametrised weight, another library's layer)
is refused by name unless it is named in ``train`` or ``unsupported="freeze"``.
The layers themselves are in :mod:`deepreservoir.adapt_layers`.

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
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from deepreservoir.adapt_layers import (
    AdaptedConv,
    AdaptedEmbedding,
    AdaptedLinear,
    AdaptedMultiheadAttention,
    _Adapter,
    foreign_linear_name,
)
from deepreservoir.errors import ParameterError, format_value
from deepreservoir.families import get_family
from deepreservoir.frozen_weight import check_weights_mode
from deepreservoir.lora import LowRankAdapter, capped_rank
from deepreservoir.seeding import SeedKey

__all__ = [
    "AdaptedConv",
    "AdaptedEmbedding",
    "AdaptedLinear",
    "AdaptedMultiheadAttention",
    "adapt",
    "adapt_config",
    "adapted_layers",
    "merge",
    "parameter_groups",
]

_BIAS_MODES = ("seeded", "zero", "train")
_UNSUPPORTED_MODES = ("error", "freeze")

#: The attribute under which :func:`adapt` records its arguments on the module.
CONFIG_ATTRIBUTE = "_deepreservoir_adapt"



def _matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether ``name`` or one of its dotted ancestors matches a path or fnmatch pattern.

    So ``"*.self_attn"`` names the attention modules and every parameter in them.
    """
    parts = name.split(".")
    prefixes = [".".join(parts[:end]) for end in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(prefix, p) for p in patterns for prefix in prefixes)


def _kind(module: nn.Module) -> str | None:
    if parametrize.is_parametrized(module):
        return None  # its weight is computed (weight norm, spectral norm, ...): not a matrix
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    if isinstance(module, nn.Linear) or foreign_linear_name(module) is not None:
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
          bias: str = "seeded", weights: str = "stored",
          unsupported: str = "error") -> nn.Module:
    """Turn a torch module into a seeded scaffold with LoRA adapters, in place.

    Parameters
    ----------
    module : nn.Module
    r : int >= 0
        Adapter rank; capped per layer at ``min(d_in, d_out)`` (with a
        :class:`~deepreservoir.RankCappedWarning` naming the layer), so a small
        layer, such as a Decision Transformer's return embedding (1 -> d), does
        not bound the rank of the others.
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
        On a bad argument, on a ``targets`` pattern that matches no adaptable
        layer or a ``train`` pattern that matches no module or parameter (a typo
        would otherwise adapt nothing, or turn the head into a random scaffold),
        and on a weight it cannot adapt (see ``unsupported``).
    bias : {"seeded", "zero", "train"}
        Biases of adapted layers: frozen and drawn from the seed (U(±1/√fan_in),
        torch's default), zero, or trained (starting from the seeded draw). The
        default differs from :func:`~deepreservoir.scaffold_mlp`'s (no hidden bias, as
        in the paper's MLPs) on purpose: the architectures ``adapt`` receives have
        biases, and ``"seeded"`` keeps them as torch would initialise them.
    weights : {"stored", "virtual"}
        "virtual": adapted nn.Linear layers regenerate W_seed by row tiles, never stored.
    unsupported : {"error", "freeze"}
        What to do with a module outside ``train`` that holds a weight of two or
        more dimensions ``adapt`` cannot adapt (a grouped or circular-padded
        convolution, an embedding with ``max_norm``, a parametrised weight, a
        layer type of another library) when ``targets="all"``: refuse it by
        name (the default), or freeze its current values, which the state dict
        then stores.

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
    _check("unsupported", unsupported, unsupported in _UNSUPPORTED_MODES,
           "one of " + ", ".join(map(repr, _UNSUPPORTED_MODES)))
    if isinstance(family, (str, dict)):
        get_family(family, "family")
    check_weights_mode(weights, "adapt", family)
    rslora = bool(rslora)
    train = _patterns("train", train)
    if not (isinstance(targets, str) and targets == "all"):
        targets = _patterns("targets", targets)
    _refuse_adapted_or_lazy(module)
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
                 if name and _kind(child) is not None and not _named_in(name, child, train)]
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
        if not name or _kind(child) is None or _named_in(name, child, train):
            continue
        if targets != "all" and not _matches(name, targets):
            continue
        if any(name.startswith(parent + ".") for parent, _ in chosen):
            continue  # inside an adapted attention block
        chosen.append((name, child))
    if targets == "all" and unsupported == "error":
        _refuse_unadaptable(module, [name for name, _ in chosen], train)
    config = {"r": r, "seed": int(seed), "family": _family_record(family), "alpha": alpha,
              "rslora": rslora, "targets": targets, "train": train, "bias": bias,
              "weights": weights, "unsupported": unsupported}
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    for name, child in chosen:
        key = SeedKey(int(seed), name.replace(".", "/"))
        kind = _kind(child)
        if kind == "attention":
            AdaptedMultiheadAttention.convert(child, key=key, r=r, alpha=alpha, rslora=rslora,
                                              family=family, bias=bias, path=name)
            continue
        if kind == "linear":
            d_out, d_in = child.weight.shape
            rank = capped_rank(f"adapt, layer '{name}' ({type(child).__name__} {d_in} -> "
                               f"{d_out})", r, d_in, d_out, stacklevel=3)
            new = AdaptedLinear(d_in, d_out, key=key, r=rank, alpha=alpha,
                                rslora=rslora, family=family,
                                bias=bias if child.bias is not None else None,
                                dtype=child.weight.dtype, device=child.weight.device,
                                weights=weights, dense_class=foreign_linear_name(child))
        elif kind == "conv":
            width = child.in_channels * int(np.prod(child.kernel_size))
            rank = capped_rank(f"adapt, layer '{name}' ({type(child).__name__} {width} -> "
                               f"{child.out_channels})", r, width, child.out_channels,
                               stacklevel=3)
            new = AdaptedConv(child, key=key, r=rank, alpha=alpha, rslora=rslora, family=family,
                              bias=bias if child.bias is not None else None)
        else:
            rank = capped_rank(f"adapt, layer '{name}' (Embedding {child.num_embeddings} x "
                               f"{child.embedding_dim})", r, child.num_embeddings,
                               child.embedding_dim, stacklevel=3)
            new = AdaptedEmbedding(child, key=key, r=rank, alpha=alpha, rslora=rslora,
                                   family=None if family == "normal" else family)
        _replace(module, name, new)
    for name, parameter in module.named_parameters():
        if _matches(name, train):
            parameter.requires_grad_(True)
    setattr(module, CONFIG_ATTRIBUTE, config)
    return module


def _family_record(family: Any) -> Any:
    """``family`` as JSON: a name, or a family's spec."""
    if isinstance(family, str):
        return family
    return get_family(family, "family").spec()


def _named_in(name: str, child: nn.Module, train: list[str]) -> bool:
    """Whether ``train`` names the layer, or any of its parameters (it then keeps them)."""
    return _matches(name, train) or any(_matches(f"{name}.{p}", train)
                                        for p, _ in child.named_parameters())


def _refuse_adapted_or_lazy(module: nn.Module) -> None:
    """Refuse a module adapt has already changed, and a lazy (uninitialised) parameter."""
    if getattr(module, CONFIG_ATTRIBUTE, None) is not None or any(
            isinstance(m, (_Adapter, AdaptedMultiheadAttention)) for m in module.modules()):
        raise ParameterError(
            f"The 'module' parameter of adapt must be a module adapt has not changed yet. "
            f"Got a {type(module).__name__} that is already adapted; build a fresh one (or "
            f"use dr.merge(module) to get plain torch layers first).")
    for name, parameter in module.named_parameters():
        if isinstance(parameter, nn.parameter.UninitializedParameter):
            raise ParameterError(
                f"The 'module' parameter of adapt has a parameter '{name}' that is not "
                f"initialised yet (a lazy layer such as nn.LazyLinear, or in_channels=-1). "
                f"Run one forward pass, or give the input sizes, before adapt.")


def _why_not_adaptable(child: nn.Module) -> str:
    if _kind(child) is not None:
        return ("'train' names some of its parameters, so adapt keeps the layer whole; name "
                "the whole layer in train, or none of it")
    if parametrize.is_parametrized(child):
        return ("its weight is parametrised (" + ", ".join(child.parametrizations.keys())
                + "); remove the parametrisation (torch.nn.utils.parametrize."
                "remove_parametrizations) to adapt it")
    if isinstance(child, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return (f"a convolution with groups={child.groups}, padding={child.padding!r} and "
                f"padding_mode={child.padding_mode!r} (adapt needs groups=1, numeric zero "
                f"padding)")
    if isinstance(child, nn.Embedding):
        return f"an embedding with max_norm={child.max_norm}"
    return ("not a layer type adapt knows (nn.Linear, nn.Conv1d/2d/3d, nn.Embedding, "
            "nn.MultiheadAttention, torch_geometric's Linear)")


def _refuse_unadaptable(module: nn.Module, chosen: list[str], train: list[str]) -> None:
    """Raise if a module outside ``train`` and outside the adapted layers owns a matrix."""
    refused = []
    for name, child in module.named_modules():
        inside = any(name == c or name.startswith(c + ".") for c in chosen)
        if inside or (name and _matches(name, train)):
            continue
        if name.endswith(".parametrizations") or ".parametrizations." in name:
            continue  # reported through the parametrised module that owns them
        if parametrize.is_parametrized(child):
            matrices = [(p, tuple(getattr(child, p).shape))
                        for p in child.parametrizations.keys()]
        else:
            matrices = [(p, tuple(t.shape)) for p, t in child._parameters.items()
                        if t is not None and t.dim() >= 2]
        matrices = [(p, shape) for p, shape in matrices
                    if not _matches(f"{name}.{p}" if name else p, train)]
        if matrices and not name and _kind(child) is not None:
            raise ParameterError(
                f"The 'module' parameter of adapt is itself a single "
                f"{type(child).__name__}; adapt changes the layers inside a module. Wrap it "
                f"(nn.Sequential(layer)) or adapt the module that holds it.")
        if matrices:
            label = name or "(the module itself)"
            tensors = ", ".join(f"'{p}' {shape}" for p, shape in matrices)
            refused.append(f"'{label}' ({type(child).__module__}.{type(child).__qualname__}: "
                           f"{tensors}; {_why_not_adaptable(child)})")
    if refused:
        raise ParameterError(
            f"The 'module' parameter of adapt holds weights it cannot adapt: "
            f"{'; '.join(refused[:8])}{' ...' if len(refused) > 8 else ''}. Expected every "
            f"weight matrix to be adaptable or named in 'train'. Name them in train=[...] to "
            f"train them with their values, or pass unsupported='freeze' to freeze their "
            f"current values (the state dict then stores them).")


def adapt_config(module: nn.Module) -> dict[str, Any]:
    """The arguments :func:`adapt` was called with on ``module`` (JSON-able).

    Raises
    ------
    ParameterError
        When ``module`` was not adapted by :func:`adapt`.
    """
    _check_module(module, "adapt_config")
    config = getattr(module, CONFIG_ATTRIBUTE, None)
    if config is None:
        raise ParameterError(
            f"The 'module' parameter of adapt_config must be a module returned by "
            f"dr.adapt. Got a {type(module).__name__} that was not adapted.")
    return copy.deepcopy(config)


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
    dense.__dict__.pop(CONFIG_ATTRIBUTE, None)  # a plain module: not an adapted one
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
