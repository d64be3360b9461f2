"""The shared base of feedforward layers computing ``β·W_seed + scale·B·A`` (not public).

:class:`LowRankNode` joins three kinds: a seeded frozen scaffold that the
ablations can redraw or remove (:class:`~deepreservoir.kinds.Scaffolded`), the
one LoRA component (:class:`~deepreservoir.lora.LowRankAdapter`), and gradient
training of the adapter, gate and bias (:class:`~deepreservoir.kinds.GradientTrained`).
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
from deepreservoir.kinds import (
    Gated,
    GradientTrained,
    LayerView,
    Scaffolded,
    WeightedLayer,
)
from deepreservoir.lora import B_INITS, LowRankAdapter
from deepreservoir.nodes.base import Node
from deepreservoir.seeding import SeedKey, fingerprint

__all__ = ["LowRankNode", "family_to_json"]


def _family_spec(value: Any) -> bool:
    if value is None or isinstance(value, Family):
        return True
    if isinstance(value, (str, dict)):
        get_family(value, "family")
        return True
    return False


def _flat_at_zero(activation: str) -> bool:
    """Whether the activation's Jacobian at a zero pre-activation is 0 (ReLU in torch)."""
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    weights = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    (F.get_activation(activation)(x) * weights).sum().backward()
    return bool((x.grad == 0).all())


def family_to_json(value: Any) -> Any:
    """A family argument in JSON-able form."""
    return value.spec() if isinstance(value, Family) else value


class LowRankNode(Node, LowRankAdapter, Scaffolded, GradientTrained, Gated, WeightedLayer):
    """Shared machinery of nodes computing ``β·W_seed + scale·B·A`` (not public)."""

    _lora_constraints: ClassVar[dict] = {
        "r": Interval(int, 0, None),
        "alpha": AnyOf((None, Interval(float, 0, None, closed="neither"))),
        "rslora": OneOf((True, False)),
        "family": Predicate(_family_spec, "a family name, a Family, a spec dict, or None "
                                          "(W_seed = 0)"),
        "bias": OneOf((True, False, "seeded")),
        "beta": OneOf((True, False)),
        "b_init": OneOf(B_INITS),
    }

    def _init_lora(self, r: int, alpha: float | None, rslora: bool, family: Any,
                   bias: bool, beta: bool, b_init: str = "zeros") -> None:
        self._init_adapter(r, alpha, rslora, gate=beta, b_init=b_init)
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

    def _lora_hyperparameters(self) -> dict[str, Any]:
        return {"r": self.r, "alpha": self.alpha, "rslora": self.rslora,
                "family": family_to_json(self.family), "bias": self.use_bias,
                "beta": self.beta, "b_init": self.b_init}

    def trains_by_gradient(self) -> bool:
        """Whether the node will have parameters trained by gradients once built."""
        return self.r > 0 or self.use_bias is True or bool(getattr(self, "full", False))

    def dead_start_reason(self) -> str | None:
        """Why gradient training cannot move this layer from its start, or ``None``.

        With ``W_seed = 0`` (``family=None``), ``B = 0`` and no non-zero bias, the
        pre-activation is exactly 0 for every input. When the activation's slope at
        0 is 0 (ReLU), every gradient reaching ``A``, ``B``, ``β`` and a zero-started
        bias is 0 as well, so training leaves the layer dead and the model at chance.
        """
        if self.r == 0 or self.family is not None or self.b_init != "zeros":
            return None
        if self.use_bias == "seeded":
            return None
        if not _flat_at_zero(str(getattr(self, "activation", "identity"))):
            return None
        return (f"{type(self).__name__} '{self.name}' has W_seed = 0 (family=None), B = 0 "
                f"(b_init='zeros'), bias={self.use_bias!r} and activation "
                f"{getattr(self, 'activation', 'identity')!r} (slope 0 at 0): every gradient "
                f"is 0, so training cannot move it. Use b_init='kaiming', bias='seeded', or "
                f"a scaffold family")

    def gate(self) -> Tensor | None:
        """The trained gate β, or ``None``."""
        return self.beta_ if self.built else None

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

    def _scaffold_tensor(self, W: np.ndarray) -> Tensor:
        """The drawn scaffold in the node's dtype, refused when not finite."""
        return self._new_tensor(W, "frozen scaffold W_seed",
                                f" Its family {family_to_json(self.family)!r} drew values too "
                                f"large for {self.dtype}: lower its scale, or use "
                                f"dtype=torch.float64.")

    def _regenerate_frozen(self) -> Tensor:
        return self._scaffold_tensor(self._draw_scaffold(int(self.input_dim),
                                                         int(self.output_dim)))

    def frozen_tensors(self) -> dict[str, Tensor]:
        """The scaffold ``W_`` (and a seeded bias), as regenerated from the seed."""
        tensors = {}
        if getattr(self, "W_", None) is not None:
            tensors["W_"] = self.W_
        if self.use_bias == "seeded" and self.built:
            tensors["bias_"] = self.bias_
        return tensors

    def _build_lora(self, d_in: int, d_out: int) -> None:
        W = self._draw_scaffold(d_in, d_out)
        self.register_buffer("W_", None if W is None else self._scaffold_tensor(W),
                             persistent=False)
        self._build_adapter(self.seed_key_, d_in, d_out, dtype=self.dtype, device=self.device,
                            owner=f"{type(self).__name__} '{self.name}'")

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

    def _frozen_weight(self) -> Tensor | None:
        return self.W_ if self.scaffold_active else None

    def effective_weight(self) -> Tensor:
        """The dense weight the layer applies: ``β·W_seed + scale·B·A``, shape (d_out, d_in).

        A removed scaffold (:meth:`remove_scaffold`) or ``family=None`` counts as
        ``W_seed = 0``.
        """
        self._require_built()
        frozen = self._frozen_weight()
        if frozen is None and not self.has_adapter():
            return torch.zeros(int(self.output_dim), int(self.input_dim), dtype=self.dtype,
                               device=self.device)
        return self.adapted_weight(frozen)

    def layer_view(self) -> LayerView:
        """The effective weight, the scaffold (zeros without one) and the bias."""
        with torch.no_grad():
            weight = self.effective_weight().detach()
        frozen = self._frozen_weight()
        if frozen is None:
            frozen = torch.zeros_like(weight)
        elif not self.has_adapter() or self.merged_:
            frozen = None
        bias = self.bias_.detach() if isinstance(self.bias_, Tensor) else None
        return LayerView(weight=weight, frozen=None if frozen is None else frozen.detach(),
                         bias=bias, activation=str(getattr(self, "activation", "identity")))

    def _linear(self, x: Tensor, bias: Tensor | None) -> Tensor:
        A, B, gate = self.adapter_terms()
        return F.lora_linear(x, self._frozen_weight(), A, B, gate, self.scale, bias)

    # -------------------------------------------------------------- ablations
    def remove_scaffold(self) -> None:
        """Drop ``β·W_seed`` from the output: only the adapter (and bias) remain."""
        self.check_unmerged("remove the scaffold of")
        self.scaffold_active = False

    def restore_scaffold(self) -> None:
        """Undo :meth:`remove_scaffold`."""
        self.scaffold_active = True

    def _redraw(self) -> None:
        if not self.built:
            return
        self.check_unmerged("redraw the scaffold of")
        W = self._draw_scaffold(int(self.input_dim), int(self.output_dim))
        if W is not None:
            with torch.no_grad():
                self.W_.copy_(self._scaffold_tensor(W))

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
                f"None. Got {format_value(seed)}.")
        self.reseed_root_ = seed
        self._redraw()

    # ---------------------------------------------------------------- artifacts
    def artifact_state(self) -> dict[str, Any]:
        return {"W_fingerprint_": self.W_fingerprint_, "generation_": self.generation_,
                "reseed_root_": self.reseed_root_, "scaffold_active": self.scaffold_active}

    def restore_artifact_state(self, state: dict[str, Any]) -> None:
        self.generation_ = int(state.get("generation_", 0))
        self.reseed_root_ = state.get("reseed_root_")
        self.scaffold_active = bool(state.get("scaffold_active", True))

    def source_fingerprint(self) -> str | None:
        """The fingerprint of the scaffold as drawn, for artifacts."""
        return self.W_fingerprint_
