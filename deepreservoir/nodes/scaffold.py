"""Scaffold: a frozen seeded feedforward layer with a LoRA adapter and a scalar gate.

A scaffold is a reservoir unrolled along depth: its weight ``W_seed`` is drawn
from the seed and never trained. What trains is a low-rank adapter ``B·A`` and a
scalar gate ``β`` (the LottaLoRA recipe, see docs/lottalora.md).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from deepreservoir import functional as F
from deepreservoir.constraints import AnyOf, Interval, OneOf, Seed, validate_params
from deepreservoir.errors import ParameterError, format_value
from deepreservoir.families import get_family
from deepreservoir.frozen_weight import WEIGHT_MODES
from deepreservoir.nodes.low_rank import LowRankNode

__all__ = ["PRESETS", "SCAFFOLD_SCALES", "Scaffold", "scaffold_family", "scaffold_mlp"]

#: Hidden widths of the LottaLoRA paper's MLP presets.
PRESETS: dict[str, tuple[int, ...]] = {
    "tiny": (128, 64),
    "small": (256, 128, 64),
    "medium": (512, 256, 128, 64),
    "large": (1024, 512, 256, 128, 64),
}


#: The scaffold scales :func:`scaffold_mlp` names: the paper's two readings and He's.
SCAFFOLD_SCALES: dict[str, str] = {
    "fan_in": "N(0, 1/d_in): the 'normal' family's default (one reading of the paper)",
    "sigma0.1": "N(0, 0.1²): σ = 0.1 absolute, the paper's Sec. 5.1 read literally",
    "he": "N(0, 2/d_in): He/Kaiming scaling for ReLU",
}


def scaffold_family(scale: str | float, family: Any = "normal") -> Any:
    """The family a named scaffold scale stands for.

    Parameters
    ----------
    scale : {"fan_in", "sigma0.1", "he"} or float > 0
        A key of :data:`SCAFFOLD_SCALES`, or an absolute σ (``Normal(scale=σ)``).
    family : family spec
        The family asked for beside it; a scale other than ``"fan_in"`` applies to
        the ``"normal"`` family only (other families carry their own scale).

    Returns
    -------
    str or Family
        ``family`` itself for ``"fan_in"``, else a :class:`~deepreservoir.families.Normal`
        or :class:`~deepreservoir.families.KaimingNormal`.
    """
    from deepreservoir.families import KaimingNormal, Normal

    named = isinstance(scale, str) and scale in SCAFFOLD_SCALES
    absolute = (isinstance(scale, (int, float)) and not isinstance(scale, bool)
                and 0 < float(scale) < float("inf"))
    if not (named or absolute):
        raise ParameterError(
            f"The 'scale' parameter of scaffold_mlp must be one of "
            f"{', '.join(map(repr, SCAFFOLD_SCALES))} or a float > 0 (an absolute σ). "
            f"Got {format_value(scale)}.")
    if scale == "fan_in":
        return family
    if family != "normal":
        raise ParameterError(
            f"The 'scale' parameter of scaffold_mlp applies to family='normal' only. Got "
            f"scale={scale!r} with family={family!r}; give that family its own scale "
            f"instead (e.g. {{'name': 'uniform', 'scale': 0.1}}).")
    if scale == "he":
        return KaimingNormal()
    return Normal(scale=0.1 if scale == "sigma0.1" else float(scale))


class Scaffold(LowRankNode):
    r"""A frozen seeded feedforward layer with a LoRA adapter and a trainable gate.

    .. math::

        h = \mathrm{act}\big(\beta\,W_{seed}\,x + \tfrac{\alpha}{r}\,B A\,x + b\big)

    ``W_seed`` (units, F) is drawn from ``family`` (default ``normal`` = N(0, 1/F))
    and never trained. ``A`` (r, F) starts Kaiming-uniform (a = √5), drawn from
    the seed too; ``B`` (units, r) starts at 0 and ``β`` at 1, so a fresh adapter
    changes nothing. With ``r = 0`` the layer is a plain frozen random layer and
    has no parameters. The hidden bias ``b`` is off by default (the paper's MLPs
    do not train hidden biases); ``bias=True`` adds a trained bias starting at 0.

    Shapes: ``(B, T, F)`` → ``(B, T, units)``; stateless.

    Parameters
    ----------
    units : int
        Output width (default 100).
    r : int >= 0
        Adapter rank. A rank above ``min(F, units)`` is built as that limit, with a
        :class:`~deepreservoir.lora.RankCappedWarning` that states it.
    alpha : float > 0, optional
        LoRA α. ``None`` means α = r, i.e. a scale of 1 (√r with rsLoRA).
    rslora : bool
        Scale the adapter by ``α/√r`` instead of ``α/r``.
    family : str, Family, dict or None
        Distribution of ``W_seed``; ``None`` means ``W_seed = 0`` (adapters alone).
    activation : str
        ``"relu"`` (default), ``"tanh"``, ``"sigmoid"``, ``"identity"`` or ``"softmax"``.
    bias : bool or "seeded"
        ``True``: a trained bias starting at 0; ``"seeded"``: a frozen bias drawn
        U(±1/√F) from the seed (torch's ``nn.Linear`` default, never trained).
    beta : bool
        Train the gate ``β`` (only when r > 0); otherwise β = 1.
    b_init : {"zeros", "kaiming"}
        How ``B`` starts: 0 (a fresh adapter changes nothing) or Kaiming-uniform
        from the seed. With ``family=None`` and a ReLU, ``"zeros"`` and no seeded
        bias is a dead start (every gradient 0), which ``fit`` refuses.
    dropout : float in [0, 1)
        Dropout on the layer's output during training.
    weights : {"stored", "virtual"}
        How ``W_seed`` is held: a dense buffer ``W_`` (default), or regenerated
        from the seed by row tiles in the forward and backward passes, never
        stored (:class:`~deepreservoir.frozen_weight.VirtualWeight`; elementwise
        families only, see docs/virtual_weights.md). Outputs agree with
        ``"stored"`` to rounding (bitwise when one tile covers ``W_seed``).
    seed, name, input_dim, dtype
        As for every node.

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> layer = dr.Scaffold(16, r=2, seed=0)
    >>> layer.run(np.ones((5, 8))).shape
    (5, 16)
    >>> sum(p.numel() for p in layer.parameters())  # r·(F + units) + β
    49
    """

    _constraints: ClassVar[dict] = {
        "units": Interval(int, 1, None),
        **LowRankNode._lora_constraints,
        "activation": OneOf(tuple(sorted(F.ACTIVATIONS))),
        "dropout": Interval(float, 0, 1, closed="left"),
    }

    def __init__(self, units: int = 100, *, r: int = 0, alpha: float | None = None,
                 rslora: bool = False, family: Any = "normal", activation: str = "relu",
                 bias: bool = False, beta: bool = True, b_init: str = "zeros",
                 dropout: float = 0.0, weights: str = "stored", seed: int | None = None,
                 name: str | None = None, input_dim: int | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__(input_dim=input_dim, name=name, seed=seed, dtype=dtype)
        if isinstance(family, (str, dict)):
            get_family(family, "family")  # names the known families on a typo
        self._validate(dict(units=units, r=r, alpha=alpha, rslora=rslora, family=family,
                            activation=activation, bias=bias, beta=beta, b_init=b_init,
                            dropout=dropout, weights=weights))
        self.units = int(units)
        self._init_lora(r, alpha, rslora, family, bias, beta, b_init, weights)
        self.activation = activation
        self.dropout = float(dropout)
        self.output_dim = self.units

    def hyperparameters(self) -> dict[str, Any]:
        return {"units": self.units, **self._lora_hyperparameters(),
                "activation": self.activation, "dropout": self.dropout, "seed": self.seed}

    def _build(self, input_dim: int, target_dim: int | None) -> None:
        self._build_lora(input_dim, self.units)
        self._build_bias(input_dim, self.units)

    def forward_sequence(self, x: Tensor, state: None, lengths: Tensor | None = None):
        self._require_built()
        h = F.get_activation(self.activation)(self._linear(x, self.bias_))
        return F.seeded_dropout(h, self.dropout, self.training), None


def scaffold_mlp(preset: str | tuple[int, ...] = "medium", classes: int | None = None, *,
                 r: int = 8, alpha: float | None = None, rslora: bool = False,
                 family: Any = "normal", dropout: float = 0.0, seed: int = 0,
                 head: str = "full", full: bool = False, bias: bool | str = False,
                 scale: str | float = "fan_in", b_init: str = "zeros",
                 weights: str = "stored", dtype: torch.dtype = torch.float32):
    """The paper's MLP as a model: ``Scaffold`` layers and a head.

    Parameters
    ----------
    preset : str or tuple of int
        ``"tiny"``, ``"small"``, ``"medium"``, ``"large"`` (:data:`PRESETS`) or hidden widths.
    classes : int, optional
        Output size; inferred from the targets when omitted.
    r, alpha, rslora, family, dropout
        Passed to every :class:`Scaffold`.
    seed : int
        Root seed of the first layer; the others hang below it.
    head : {"full", "lora"}
        ``"full"``: a fully trained :class:`~deepreservoir.Dense` head (the paper's count);
        ``"lora"``: a :class:`~deepreservoir.LoRAReadout` of rank ``r``.
    full : bool
        Build the fully trained baseline instead: ``Dense`` layers with trained biases.
    bias : bool or "seeded"
        Hidden biases of the Scaffold layers. The default is none, as in the
        paper's MLPs, whose trained parameters are the adapters, β and the head.
        (:func:`deepreservoir.adapt` defaults to ``"seeded"`` instead: it replaces
        layers of an existing architecture, which has biases, and keeps them as
        torch would initialise them.)
    scale : {"fan_in", "sigma0.1", "he"} or float > 0
        The scaffold's scale (see :data:`SCAFFOLD_SCALES` and docs/lottalora.md):
        ``"fan_in"`` N(0, 1/d_in) (default), ``"sigma0.1"`` N(0, 0.1²), ``"he"``
        N(0, 2/d_in), or an absolute σ. Other than ``"fan_in"``, only with
        ``family="normal"``.
    b_init : {"zeros", "kaiming"}
        How the adapters' ``B`` starts (see :class:`Scaffold`).
    weights : {"stored", "virtual"}
        How every scaffold (and a ``"lora"`` head's) is held: stored, or
        regenerated by row tiles (see :class:`Scaffold` and docs/virtual_weights.md).
        ``"virtual"`` with ``full=True`` is refused: a fully trained model has no
        frozen weight.

    Returns
    -------
    Model
    """
    from deepreservoir.nodes.dense import Dense
    from deepreservoir.nodes.input import Input
    from deepreservoir.nodes.lora_readout import LoRAReadout

    widths = _preset_widths(preset)
    validate_params("scaffold_mlp", dict(classes=classes, r=r, seed=seed, head=head, full=full,
                                         b_init=b_init, weights=weights),
                    {"classes": AnyOf((None, Interval(int, 1, None))),
                     "r": Interval(int, 0, None), "seed": Seed(),
                     "head": OneOf(("full", "lora")), "full": OneOf((False, True)),
                     "b_init": OneOf(("zeros", "kaiming")), "weights": OneOf(WEIGHT_MODES)})
    if full and weights == "virtual":
        raise ParameterError(
            "The 'weights' parameter of scaffold_mlp must be 'stored' when full=True (every "
            "weight is trained, none is frozen). Got 'virtual'.")
    family = scaffold_family(scale, family)
    model = Input(name="input")
    for i, width in enumerate(widths):
        if full:
            layer = Dense(width, activation="relu", dropout=dropout, name=f"layer{i}",
                          seed=seed if i == 0 else None, dtype=dtype)
        else:
            layer = Scaffold(width, r=r, alpha=alpha, rslora=rslora, family=family,
                             dropout=dropout, name=f"layer{i}", seed=seed if i == 0 else None,
                             bias=bias, b_init=b_init, weights=weights, dtype=dtype)
        model = model >> layer
    if full or head == "full":
        out = Dense(classes, name="head", dtype=dtype)
    else:
        out = LoRAReadout(classes, r=r, alpha=alpha, rslora=rslora, family=family, name="head",
                          b_init=b_init, weights=weights, dtype=dtype)
    model = model >> out
    model.seed = int(seed)
    return model


def _preset_widths(preset: Any) -> tuple[int, ...]:
    """The hidden widths of ``preset``: a :data:`PRESETS` name or a sequence of ints >= 1."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ParameterError(
                f"The 'preset' parameter of scaffold_mlp must be one of "
                f"{', '.join(map(repr, PRESETS))} or a tuple of widths. Got {preset!r}.")
        return PRESETS[preset]
    try:
        widths = tuple(preset)
    except TypeError:
        widths = None
    width_ok = Interval(int, 1, None)
    if widths is None or not all(width_ok.accepts(w) for w in widths):
        raise ParameterError(
            f"The 'preset' parameter of scaffold_mlp must be one of "
            f"{', '.join(map(repr, PRESETS))} or a tuple of ints >= 1 (hidden widths). "
            f"Got {format_value(preset)}.")
    return tuple(int(w) for w in widths)
