r"""The one LoRA component: A, B, a gate β and the scale, shared by every adapted layer.

An adapted layer applies

.. math::

    W_{\mathrm{eff}} = \beta\,W_{seed} + s\,B A,\qquad s = \alpha / r
    \;(\text{or } \alpha/\sqrt{r} \text{ with rsLoRA}),

with ``W_seed`` frozen (regenerated from a seed key, never trained), ``A`` drawn
Kaiming-uniform from the same key (role ``"lora_A"``), ``B = 0`` and ``β = 1`` at
the start, so a fresh adapter changes nothing. ``b_init="kaiming"`` draws ``B``
Kaiming-uniform too (role ``"lora_B"``, fan-in = rank): the start then differs
from the scaffold alone, but an adapter on a zero scaffold (``W_seed = 0``)
gets non-zero gradients from the first step (see :func:`dead_start_reason`
in :mod:`deepreservoir.nodes.low_rank`).

:class:`LowRankAdapter` is both the declared *kind* (``isinstance(node,
LowRankAdapter)``) and the shared implementation used by
:class:`~deepreservoir.Scaffold`, :class:`~deepreservoir.LoRAReadout`,
``Reservoir(r=k)`` and the layers made by :func:`deepreservoir.adapt`. Its
tensors keep the names ``A_``, ``B_`` and ``beta_`` on the layer itself, so
artifacts and ``state_dict`` keys are those of every earlier release.

**Rank cap.** A rank larger than ``min(d_in, d_out)`` cannot add anything: the
layer is built with the *effective* rank ``min(r, d_in, d_out)`` and a
:class:`RankCappedWarning` says so in one line. The effective rank replaces
``r`` everywhere, including the scale ``α/r``.

**Merge.** :meth:`LowRankAdapter.merge` folds the adapter into the frozen
weight in place (``W ← β·W + s·B·A``) so inference costs one product;
:meth:`LowRankAdapter.unmerge` restores ``W`` exactly by regenerating it from
the seed.

**Stored or virtual.** The frozen weight is held as the buffer ``W_`` (stored,
the default) or, with ``weights="virtual"``, as a
:class:`~deepreservoir.frozen_weight.VirtualWeight` submodule ``W_virtual_`` whose
row tiles are regenerated in every product (``W_`` is then ``None``, or the
merged matrix while merged). :meth:`LowRankAdapter.frozen_weight` gives either
as a :class:`~deepreservoir.frozen_weight.FrozenWeight`, and
:meth:`LowRankAdapter.frozen_tensor` the dense matrix (materialised for a
virtual weight), so nothing outside needs to know which (docs/virtual_weights.md).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from deepreservoir.errors import DeepReservoirError
from deepreservoir.families import make_weight
from deepreservoir.frozen_weight import FrozenWeight, StoredWeight, VirtualWeight
from deepreservoir.seeding import SeedKey

__all__ = ["B_INITS", "LowRankAdapter", "MergedAdapterError", "RankCappedWarning",
           "lora_convention", "lora_scale"]

#: How ``B`` starts: ``"zeros"`` (LoRA's default) or ``"kaiming"`` (Kaiming-uniform, a = √5).
B_INITS = ("zeros", "kaiming")


class RankCappedWarning(UserWarning):
    """A LoRA rank above ``min(d_in, d_out)`` was lowered to that limit."""


class MergedAdapterError(DeepReservoirError, RuntimeError):
    """An operation needs the adapter separate from the frozen weight: call ``unmerge()``."""


def lora_scale(r: int, alpha: float | None = None, rslora: bool = False) -> float:
    """The factor in front of ``B·A``: ``α/r``, or ``α/√r`` with rsLoRA.

    ``alpha=None`` means ``α = r`` (so ``α/r = 1`` and ``α/√r = √r``). ``r = 0`` gives 0.

    Examples
    --------
    >>> lora_scale(8), lora_scale(8, alpha=1.0), lora_scale(4, alpha=4.0, rslora=True)
    (1.0, 0.125, 2.0)
    """
    if r == 0:
        return 0.0
    a = float(r) if alpha is None else float(alpha)
    return a / math.sqrt(r) if rslora else a / r


def lora_convention(r: int, alpha: float | None = None, rslora: bool = False) -> str:
    """A one-line statement of the α convention in use.

    Examples
    --------
    >>> lora_convention(8)
    'α/r = 8/8 = 1 (alpha=None: α = r)'
    >>> lora_convention(4, alpha=4.0, rslora=True)
    'α/√r = 4/√4 = 2'
    """
    if r == 0:
        return "r = 0: no adapter"
    value = float(r) if alpha is None else float(alpha)
    rule, root = ("α/√r", f"√{r}") if rslora else ("α/r", f"{r}")
    default = " (alpha=None: α = r)" if alpha is None else ""
    return f"{rule} = {value:g}/{root} = {lora_scale(r, alpha, rslora):g}{default}"


def capped_rank(owner: str, r: int, d_in: int, d_out: int, *, stacklevel: int = 4) -> int:
    """``min(r, d_in, d_out)``, with a :class:`RankCappedWarning` when that lowers ``r``.

    ``stacklevel`` is passed to :func:`warnings.warn` (counted from this function),
    so the warning points at the user's call.
    """
    limit = min(int(d_in), int(d_out))
    if r <= limit:
        return int(r)
    warnings.warn(
        f"{owner}: r={r} exceeds min(d_in={d_in}, d_out={d_out}) = {limit}; "
        f"using the effective rank {limit}.", RankCappedWarning, stacklevel=stacklevel)
    return limit


class LowRankAdapter:
    """Mixin and kind of layers computing ``β·W_seed + scale·B·A``.

    A class using it sets the hyperparameters with :meth:`_init_adapter`, creates
    the tensors with :meth:`_build_adapter` and implements
    :meth:`_regenerate_frozen` (the exact frozen weight, drawn again from the seed).
    The frozen weight lives in the buffer ``W_`` (``None`` for a zero scaffold), or
    in the :class:`~deepreservoir.frozen_weight.VirtualWeight` ``W_virtual_`` (see
    :meth:`_install_virtual`); read it through :meth:`frozen_weight`.

    Attributes
    ----------
    r : int
        The requested rank (a hyperparameter).
    rank_ : int
        The rank built, ``min(r, d_in, d_out)``.
    A_ : Parameter, shape (rank_, d_in, ...)
    B_ : Parameter, shape (d_out, rank_, ...)
    beta_ : Parameter of shape () or None
    """

    r: int
    alpha: float | None
    rslora: bool

    def _init_adapter(self, r: int, alpha: float | None, rslora: bool, gate: bool = True,
                      b_init: str = "zeros") -> None:
        self.r = int(r)
        self.b_init = b_init
        self.rank_ = int(r)
        self.alpha = None if alpha is None else float(alpha)
        self.rslora = bool(rslora)
        self.gated = bool(gate)
        self.merged_ = False

    def _build_adapter(self, key: SeedKey, d_in: int, d_out: int, *, dtype: torch.dtype,
                       device: Any, a_tail: tuple[int, ...] = (),
                       b_tail: tuple[int, ...] = (), a_fan_in: int | None = None,
                       owner: str | None = None) -> None:
        """Create ``A_`` (rank, d_in, *a_tail), ``B_`` (d_out, rank, *b_tail) and ``beta_``.

        ``A`` is Kaiming-uniform (a = √5) with fan-in ``a_fan_in`` (default ``d_in``
        times the kernel size), drawn from ``key`` with role ``"lora_A"``. ``B`` is 0,
        or Kaiming-uniform with fan-in ``rank`` (role ``"lora_B"``) when
        ``b_init == "kaiming"``.
        """
        owner = owner or type(self).__name__
        fan_in = a_fan_in if a_fan_in is not None else d_in * int(np.prod(a_tail, dtype=int))
        width = d_in * int(np.prod(a_tail, dtype=int))
        self.rank_ = capped_rank(owner, self.r, width, d_out) if self.r > 0 else 0
        self.merged_ = False
        if self.rank_ == 0:
            self.A_ = self.B_ = None
            self.beta_ = None
            return
        A = make_weight("kaiming_uniform", key, "lora_A", (self.rank_, d_in, *a_tail),
                        fan_in=fan_in, fan_out=self.rank_)
        options = {"dtype": dtype, "device": device}
        self.A_ = torch.nn.Parameter(torch.as_tensor(A, dtype=torch.float64).to(**options))
        b_shape = (d_out, self.rank_, *b_tail)
        if getattr(self, "b_init", "zeros") == "kaiming":
            B = make_weight("kaiming_uniform", key, "lora_B", b_shape,
                            fan_in=self.rank_ * int(np.prod(b_tail, dtype=int)), fan_out=d_out)
            self.B_ = torch.nn.Parameter(torch.as_tensor(B, dtype=torch.float64).to(**options))
        else:
            self.B_ = torch.nn.Parameter(torch.zeros(b_shape, **options))
        self.beta_ = (torch.nn.Parameter(torch.ones((), **options)) if self.gated else None)

    # ------------------------------------------------------------- the maths
    @property
    def scale(self) -> float:
        """The factor ``α/r`` (``α/√r`` with rsLoRA) at the built rank; α = r by default."""
        return lora_scale(self.rank_, self.alpha, self.rslora)

    def alpha_convention(self) -> str:
        """A one-line statement of the α convention in use, e.g. ``α/r = 8/8 = 1``."""
        return lora_convention(self.rank_, self.alpha, self.rslora)

    def gate_value(self) -> Tensor | float:
        """β, or 1.0 when the layer has no trained gate."""
        beta = getattr(self, "beta_", None)
        return 1.0 if beta is None else beta

    def dead_start_reason(self) -> str | None:
        """Why gradient training cannot move this layer from its start, or ``None``.

        Layers that can start dead (a zero scaffold, ``B = 0``, a ReLU) override it.
        """
        return None

    def has_adapter(self) -> bool:
        """Whether the layer was built with a rank above 0."""
        return getattr(self, "A_", None) is not None

    def adapter_tensors(self) -> list[Tensor]:
        """``A_``, ``B_`` and ``beta_`` (those built): what a dense checkpoint merges away."""
        return [t for t in (getattr(self, "A_", None), getattr(self, "B_", None),
                            getattr(self, "beta_", None)) if t is not None]

    def delta(self) -> Tensor:
        """The dense update ``scale·B·A`` in the frozen weight's layout."""
        A, B = self.A_, self.B_
        flat = B.reshape(B.shape[0], self.rank_) @ A.reshape(self.rank_, -1)
        return self._delta_as_weight(self.scale * flat.reshape(B.shape[0], *A.shape[1:]))

    def _delta_as_weight(self, delta: Tensor) -> Tensor:
        """Map ``scale·B·A`` (d_out, d_in, ...) onto the frozen weight's layout."""
        return delta

    def adapted_weight(self, frozen: Tensor | None) -> Tensor:
        """``β·frozen + scale·B·A`` (``frozen=None`` counts as zero)."""
        if not self.has_adapter():
            if frozen is None:
                raise MergedAdapterError(f"{type(self).__name__} has neither a frozen weight "
                                         f"nor an adapter.")
            return frozen
        if self.merged_:
            return frozen
        delta = self.delta()
        return delta if frozen is None else self.gate_value() * frozen + delta

    def adapter_terms(self) -> tuple[Tensor | None, Tensor | None, Tensor | float]:
        """``(A, B, β)`` to apply beside the frozen weight; no adapter once merged."""
        if self.merged_ or not self.has_adapter():
            return None, None, 1.0
        return self.A_, self.B_, self.gate_value()

    # --------------------------------------------------------- merge/unmerge
    def _regenerate_frozen(self) -> Tensor:
        """The frozen weight drawn again from the seed, in the layer's dtype and device."""
        raise NotImplementedError

    def merge(self) -> None:
        """Fold the adapter into the frozen weight, in place: ``W ← β·W + scale·B·A``.

        Afterwards the layer applies one dense product and its adapter is inert
        until :meth:`unmerge`. Training a merged layer is refused. A virtual
        weight is materialised: the merged matrix is stored in ``W_`` until
        :meth:`unmerge`, which drops it again.
        """
        if self.merged_ or not self.has_adapter():
            return
        frozen = self.frozen_tensor()
        if frozen is None:
            raise MergedAdapterError(
                f"{type(self).__name__} has no frozen weight to merge into (family=None); "
                f"its output is the adapter alone.")
        with torch.no_grad():
            frozen.mul_(self.gate_value()).add_(self.delta().to(frozen.dtype))
        if self.virtual_weight() is not None:
            self.W_ = frozen
        self.merged_ = True

    def unmerge(self) -> None:
        """Undo :meth:`merge` exactly: the frozen weight is regenerated from the seed."""
        if not self.merged_:
            return
        if self.virtual_weight() is not None:
            self.W_ = None
        else:
            with torch.no_grad():
                self.W_.copy_(self._regenerate_frozen())
        self.merged_ = False

    # ------------------------------------------------------- stored or virtual
    def _install_virtual(self, weight: VirtualWeight | None) -> None:
        """Hold the frozen weight as ``weight`` (``W_`` becomes ``None``); ``None``: drop it."""
        self.register_buffer("W_", None, persistent=False)
        if weight is None:
            self._modules.pop("W_virtual_", None)
        else:
            self.W_virtual_ = weight

    def _hold_frozen(self, weights: str, regenerate: Any, family: Any, key: SeedKey,
                     shape: tuple[int, ...], fan_in: int, fan_out: int, *, owner: str,
                     dtype: torch.dtype, device: Any) -> None:
        """Hold the frozen weight: ``W_ = regenerate()`` (stored) or a virtual weight.

        ``weights="virtual"`` builds a :class:`~deepreservoir.frozen_weight.VirtualWeight`
        of role ``"W"`` for a 2-D ``shape``; other shapes (convolution kernels,
        embedding tables) stay stored.
        """
        if weights == "virtual" and len(shape) == 2 and family is not None:
            self._install_virtual(VirtualWeight(family, key, "W", shape, fan_in=fan_in,
                                                fan_out=fan_out, dtype=dtype, device=device,
                                                owner=owner))
        else:
            self.register_buffer("W_", regenerate(), persistent=False)

    def virtual_weight(self) -> VirtualWeight | None:
        """The virtual frozen weight, or ``None`` when the weight is stored (or absent)."""
        return self._modules.get("W_virtual_")

    def frozen_weight(self) -> FrozenWeight | None:
        """The frozen weight now applied: stored ``W_`` (merged or not) or the virtual one.

        Returns
        -------
        FrozenWeight or None
            A :class:`~deepreservoir.frozen_weight.StoredWeight` on ``W_``, the
            :class:`~deepreservoir.frozen_weight.VirtualWeight`, or ``None`` for
            a zero scaffold.
        """
        stored = getattr(self, "W_", None)
        if stored is not None:
            return StoredWeight(stored)
        return self.virtual_weight()

    def frozen_tensor(self) -> Tensor | None:
        """The frozen weight as a dense tensor (a virtual one is materialised), or None."""
        weight = self.frozen_weight()
        return None if weight is None else weight.materialize()

    def _frozen_options(self) -> dict[str, Any]:
        """The frozen weight's ``dtype`` and ``device`` (for building dense copies)."""
        weight = self.frozen_weight()
        return {"dtype": weight.dtype, "device": weight.device}

    def check_unmerged(self, action: str) -> None:
        """Raise :class:`MergedAdapterError` if the adapter is merged."""
        if self.merged_:
            raise MergedAdapterError(
                f"Cannot {action} {type(self).__name__} '{getattr(self, 'name', '')}' while "
                f"its adapter is merged into the frozen weight; call unmerge() first.")
