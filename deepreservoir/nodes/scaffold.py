"""Scaffold: a frozen seeded feedforward layer with a LoRA adapter and a scalar gate.

A scaffold is a reservoir unrolled along depth: its weight ``W_seed`` is drawn
from the seed and never trained. What trains is a low-rank adapter ``B·A`` and a
scalar gate ``β`` (the LottaLoRA recipe, see docs/lottalora.md).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from deepreservoir import functional as F
from deepreservoir.constraints import AnyOf, Interval, OneOf, Predicate
from deepreservoir.errors import ParameterError, format_value
from deepreservoir.families import Family, Uniform, get_family, make_weight
from deepreservoir.nodes.base import Node
from deepreservoir.seeding import SeedKey, fingerprint

__all__ = ["PRESETS", "Scaffold", "scaffold_mlp"]

#: Hidden widths of the LottaLoRA paper's MLP presets.
PRESETS: dict[str, tuple[int, ...]] = {
    "tiny": (128, 64),
    "small": (256, 128, 64),
    "medium": (512, 256, 128, 64),
    "large": (1024, 512, 256, 128, 64),
}


def _family_spec(value: Any) -> bool:
    if value is None or isinstance(value, Family):
        return True
    if isinstance(value, (str, dict)):
        get_family(value, "family")
        return True
    return False


def family_to_json(value: Any) -> Any:
    """A family argument in JSON-able form."""
    return value.spec() if isinstance(value, Family) else value


def check_rank(owner: str, r: int, d_in: int | None, d_out: int | None) -> None:
    """Raise unless ``0 <= r <= min(d_in, d_out)`` (sizes that are still unknown are skipped)."""
    sizes = [d for d in (d_in, d_out) if d is not None]
    if not sizes:
        return
    limit = min(sizes)
    if r > limit:
        dims = f"d_in={d_in}, d_out={d_out}"
        raise ParameterError(
            f"The 'r' parameter of {owner} must be an int in [0, min(d_in, d_out)] = "
            f"[0, {limit}] ({dims}). Got {format_value(r)}."
        )


class LowRankNode(Node):
    """Shared machinery of nodes computing ``β·W_seed + scale·B·A`` (not public)."""

    _lora_constraints: ClassVar[dict] = {
        "r": Interval(int, 0, None),
        "alpha": AnyOf((None, Interval(float, 0, None, closed="neither"))),
        "rslora": OneOf((True, False)),
        "family": Predicate(_family_spec, "a family name, a Family, a spec dict, or None "
                                          "(W_seed = 0)"),
        "bias": OneOf((True, False, "seeded")),
        "beta": OneOf((True, False)),
    }

    def _init_lora(self, r: int, alpha: float | None, rslora: bool, family: Any,
                   bias: bool, beta: bool) -> None:
        self.r = int(r)
        self.alpha = None if alpha is None else float(alpha)
        self.rslora = bool(rslora)
        self.family = family
        self.use_bias = bias if bias == "seeded" else bool(bias)
        self.beta = bool(beta)
        #: Whether ``β·W_seed`` enters the output (see :meth:`remove_scaffold`).
        self.scaffold_active = True
        #: How many times the scaffold was resampled (0: the original draw).
        self.generation_ = 0
        #: Root seed set by :meth:`reseed`, or None for the built seed.
        self.reseed_root_: int | None = None
        self.W_fingerprint_: str | None = None

    # ------------------------------------------------------------- properties
    @property
    def scale(self) -> float:
        """The adapter's factor: ``α/r`` (``α/√r`` with rsLoRA); ``alpha=None`` means α = r."""
        return F.lora_scale(self.r, self.alpha, self.rslora)

    def alpha_convention(self) -> str:
        """A one-line statement of the α convention in use, e.g. ``α/r = 8/8 = 1``."""
        return F.lora_convention(self.r, self.alpha, self.rslora)

    def _lora_hyperparameters(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": self.alpha, "rslora": self.rslora,
                "family": family_to_json(self.family), "bias": self.use_bias,
                "beta": self.beta}

    def has_gradient_parameters(self) -> bool:
        """Whether the node will have parameters trained by gradients once built."""
        return self.r > 0 or self.use_bias is True or bool(getattr(self, "full", False))

    # ------------------------------------------------------------------ seeds
    def frozen_key(self) -> SeedKey:
        """The seed key the scaffold is drawn from now (after :meth:`reseed`)."""
        key = self.seed_key_
        if self.reseed_root_ is None:
            return key
        path = f"{key.root}/{key.path}" if key.path else f"{key.root}"
        return SeedKey(int(self.reseed_root_), path)

    def _frozen_role(self) -> str:
        return "W" if self.generation_ == 0 else f"W@{self.generation_}"

    def _draw_scaffold(self, d_in: int, d_out: int) -> np.ndarray | None:
        if self.family is None:
            self.W_fingerprint_ = None
            return None
        raw = make_weight(self.family, self.frozen_key(), self._frozen_role(), (d_out, d_in),
                          fan_in=d_in, fan_out=d_out)
        self.W_fingerprint_ = fingerprint(raw)
        return raw

    def _build_lora(self, d_in: int, d_out: int) -> None:
        check_rank(type(self).__name__, self.r, d_in, d_out)
        W = self._draw_scaffold(d_in, d_out)
        self.register_buffer("W_", None if W is None else self._new_tensor(W), persistent=False)
        if self.r > 0:
            A = make_weight("kaiming_uniform", self.seed_key_, "lora_A", (self.r, d_in),
                            fan_in=d_in, fan_out=self.r)
            self.A_ = torch.nn.Parameter(self._new_tensor(A))
            self.B_ = torch.nn.Parameter(self._new_tensor(np.zeros((d_out, self.r))))
            if self.beta:
                self.beta_ = torch.nn.Parameter(self._new_tensor(np.ones(())))
        if not hasattr(self, "beta_"):
            self.beta_ = None

    def _build_bias(self, d_in: int, d_out: int) -> None:
        """``bias=True``: trained, from 0; ``"seeded"``: frozen U(±1/√d_in) from the seed."""
        if self.use_bias == "seeded":
            values = make_weight(Uniform(a=1.0 / math.sqrt(d_in)), self.seed_key_, "bias",
                                 (d_out,), fan_in=d_in, fan_out=d_out)
            self.register_buffer("bias_", self._new_tensor(values), persistent=False)
        elif self.use_bias:
            self.bias_ = torch.nn.Parameter(self._new_tensor(np.zeros(d_out)))
        else:
            self.bias_ = None

    def _gate(self) -> Tensor | float:
        return 1.0 if self.beta_ is None else self.beta_

    def _frozen_weight(self) -> Tensor | None:
        return self.W_ if self.scaffold_active else None

    def effective_weight(self) -> Tensor:
        """The dense weight the layer applies: ``β·W_seed + scale·B·A``, shape (d_out, d_in).

        A removed scaffold (:meth:`remove_scaffold`) or ``family=None`` counts as
        ``W_seed = 0``.
        """
        self._require_built()
        W = self._frozen_weight()
        out_dim, in_dim = int(self.output_dim), int(self.input_dim)
        if W is None:
            weight = torch.zeros(out_dim, in_dim, dtype=self.dtype, device=self.device)
        else:
            weight = self._gate() * W
        if self.r > 0:
            weight = weight + F.lora_delta(self.A_, self.B_, self.scale)
        return weight

    def _linear(self, x: Tensor, bias: Tensor | None) -> Tensor:
        A = self.A_ if self.r > 0 else None
        B = self.B_ if self.r > 0 else None
        return F.lora_linear(x, self._frozen_weight(), A, B, self._gate(), self.scale, bias)

    # -------------------------------------------------------------- ablations
    def remove_scaffold(self) -> None:
        """Drop ``β·W_seed`` from the output: only the adapter (and bias) remain."""
        self.scaffold_active = False

    def restore_scaffold(self) -> None:
        """Undo :meth:`remove_scaffold`."""
        self.scaffold_active = True

    def _redraw(self) -> None:
        if not self.built:
            return
        W = self._draw_scaffold(int(self.input_dim), int(self.output_dim))
        if W is not None:
            with torch.no_grad():
                self.W_.copy_(self._new_tensor(W))

    def resample(self, generation: int | None = None) -> None:
        """Draw a new frozen scaffold (role ``W@g``); adapters and β are kept.

        Parameters
        ----------
        generation : int, optional
            The draw to use; default the next one. Generation 0 is the original.
        """
        self.generation_ = self.generation_ + 1 if generation is None else int(generation)
        self._redraw()

    def reseed(self, seed: int | None) -> None:
        """Regenerate the scaffold from another root seed (``None``: the built seed).

        The node's frozen key becomes ``SeedKey(seed, "<built root>/<built path>")``,
        so distinct nodes stay distinct. Adapters, β and heads are kept.
        """
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or not 0 <= seed < 2**63):
            raise ParameterError(
                f"The 'seed' parameter of reseed must be a non-negative int below 2**63 or "
                f"None. Got {format_value(seed)}."
            )
        self.reseed_root_ = seed
        self._redraw()


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
        Output width.
    r : int >= 0
        Adapter rank; at most ``min(F, units)``.
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
    dropout : float in [0, 1)
        Dropout on the layer's output during training.
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

    def __init__(self, units: int, *, r: int = 0, alpha: float | None = None,
                 rslora: bool = False, family: Any = "normal", activation: str = "relu",
                 bias: bool = False, beta: bool = True, dropout: float = 0.0,
                 seed: int | None = None, name: str | None = None,
                 input_dim: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        super().__init__(input_dim=input_dim, name=name, seed=seed, dtype=dtype)
        if isinstance(family, (str, dict)):
            get_family(family, "family")  # names the known families on a typo
        self._validate(dict(units=units, r=r, alpha=alpha, rslora=rslora, family=family,
                            activation=activation, bias=bias, beta=beta, dropout=dropout))
        check_rank("Scaffold", int(r), input_dim, units)
        self.units = int(units)
        self._init_lora(r, alpha, rslora, family, bias, beta)
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
                 dtype: torch.dtype = torch.float32):
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
        Hidden biases of the Scaffold layers (default none; see :class:`Scaffold`).

    Returns
    -------
    Model
    """
    from deepreservoir.nodes.dense import Dense
    from deepreservoir.nodes.input import Input
    from deepreservoir.nodes.lora_readout import LoRAReadout

    widths = PRESETS[preset] if isinstance(preset, str) else tuple(preset)
    if isinstance(preset, str) and preset not in PRESETS:
        raise ParameterError(
            f"The 'preset' parameter of scaffold_mlp must be one of {', '.join(PRESETS)} or a "
            f"tuple of widths. Got {preset!r}.")
    model = Input(name="input")
    for i, width in enumerate(widths):
        if full:
            layer = Dense(width, activation="relu", dropout=dropout, name=f"layer{i}",
                          seed=seed if i == 0 else None, dtype=dtype)
        else:
            layer = Scaffold(width, r=r, alpha=alpha, rslora=rslora, family=family,
                             dropout=dropout, name=f"layer{i}", seed=seed if i == 0 else None,
                             bias=bias, dtype=dtype)
        model = model >> layer
    if full or head == "full":
        out = Dense(classes, name="head", dtype=dtype)
    elif head == "lora":
        out = LoRAReadout(classes, r=r, alpha=alpha, rslora=rslora, family=family, name="head",
                          dtype=dtype)
    else:
        raise ParameterError(
            f"The 'head' parameter of scaffold_mlp must be one of 'full', 'lora'. Got {head!r}.")
    model = model >> out
    model.seed = int(seed)
    return model
