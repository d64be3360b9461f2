"""Node kinds: what a node *is*, declared by inheritance, so nothing probes attribute names.

The executor, training, io and analysis dispatch on these abstract bases with
``isinstance``. A node class declares its kinds in its bases,
``class Reservoir(Node, Stateful, FrozenWeights, ...)``, and implements their
abstract methods; a new kind of node touches its own file and nothing else.

========================  ==============================================  ==========================
kind                      contract                                        examples
========================  ==============================================  ==========================
:class:`Stateful`         ``initial_state(B)``, ``forward_step(x, s)``    Reservoir
:class:`ClosedForm`       ``statistics(x, y)``, ``combine``, ``solve``     Ridge
:class:`Online`           ``learning_step(x, y, learner_state)``          RLS, LMS
:class:`Unsupervised`     ``adapt(x, lengths, warmup)``: learns without   IPReservoir
                          targets, before anything downstream is fitted
:class:`GradientTrained`  trainable ``parameters()`` after build          Dense, BetaGate, Scaffold
:class:`Gated`            ``gate()``: a trained scalar β                  BetaGate, Scaffold
:class:`FrozenWeights`    ``frozen_tensors()`` regenerated from the seed  Reservoir, Scaffold
:class:`Scaffolded`       ``resample``, ``reseed``, ``remove_scaffold``   Scaffold, LoRAReadout
:class:`WeightedLayer`    ``layer_view()``: the matrices analysis reads   Reservoir, Scaffold, Dense
:class:`TensorFree`       holds no tensor; follows the model's dtype      Input, activations
========================  ==============================================  ==========================

The low-rank adapter kind is :class:`deepreservoir.lora.LowRankAdapter`, which is
also the one implementation of A, B, β, the scale, ``delta``, ``merge`` and
``unmerge`` shared by every adapted layer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "ClosedForm",
    "FrozenWeights",
    "Gated",
    "GradientTrained",
    "LayerView",
    "Online",
    "Scaffolded",
    "Stateful",
    "SufficientStatistics",
    "TensorFree",
    "Unsupervised",
    "WeightedLayer",
]


class Stateful(ABC):
    """A node that carries a state from one time step to the next.

    ``forward_sequence(x, state, lengths)`` processes ``(B, T, F)`` at once;
    ``forward_step(x, state)`` one step ``(B, F)``. Both return ``(y, state)``
    and never mutate their arguments.
    """

    @abstractmethod
    def initial_state(self, batch_size: int) -> Tensor:
        """The state before the first step, shape ``(batch_size, ...)``."""

    @abstractmethod
    def forward_step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One time step: ``x`` (B, F) and ``state`` to ``(y (B, O), new state)``."""

    def step_cost(self) -> int:
        """Multiply-adds of one step for one series (it sizes the time loop's threads)."""
        return 0


@dataclass
class SufficientStatistics:
    """Float64 sums from which a closed-form node solves its weights.

    The statistics of two disjoint parts of the data add up: ``s1 + s2`` is the
    statistics of both, so they can be accumulated over chunks of time, over
    batches, or all-reduced over processes (:meth:`tensors` lists what to sum).

    Attributes
    ----------
    sums : dict of str to Tensor
        Named float64 sums, e.g. ``XᵀX``, ``XᵀY``.
    count : int
        Number of rows summed.
    """

    sums: dict[str, Tensor] = field(default_factory=dict)
    count: int = 0

    def __add__(self, other: SufficientStatistics) -> SufficientStatistics:
        if not self.sums:
            return SufficientStatistics(dict(other.sums), other.count)
        if not other.sums:
            return SufficientStatistics(dict(self.sums), self.count)
        return SufficientStatistics({k: v + other.sums[k] for k, v in self.sums.items()},
                                    self.count + other.count)

    def tensors(self) -> list[Tensor]:
        """The tensors to sum across processes, in a fixed order."""
        return [self.sums[k] for k in sorted(self.sums)]


class ClosedForm(ABC):
    """A node trained by a closed-form solve from :class:`SufficientStatistics`.

    Training streams the node's inputs ``x`` (n, F) and targets ``y`` (n, O) through
    :meth:`statistics`, adds the pieces with :meth:`combine` and calls :meth:`solve`
    once. The fitted tensors are persistent buffers (saved, not trained by gradients).
    """

    @abstractmethod
    def statistics(self, x: Tensor, y: Tensor) -> SufficientStatistics:
        """Statistics of rows ``x`` (n, F) with targets ``y`` (n, O)."""

    @staticmethod
    def combine(first: SufficientStatistics,
                second: SufficientStatistics) -> SufficientStatistics:
        """Statistics of the union of two disjoint pieces of data."""
        return first + second

    @abstractmethod
    def solve(self, statistics: SufficientStatistics) -> None:
        """Set the fitted tensors from the statistics of all the data."""

    @abstractmethod
    def is_fitted(self) -> bool:
        """Whether :meth:`solve` has run (or fitted tensors were loaded)."""

    def training_loss(self, statistics: SufficientStatistics) -> float | None:
        """Mean squared training error from the statistics alone, if the node can tell."""
        return None

    def all_reduce_statistics(self, statistics: SufficientStatistics,
                              group: Any = None) -> SufficientStatistics:
        """The statistics of every process's data, from this process's share.

        The generic way: every process's statistics are gathered
        (``torch.distributed.all_gather_object``) and added with :meth:`combine` in
        rank order, so every process gets the same result. A node whose sums add
        elementwise overrides this with tensor all-reduces (``Ridge`` does).
        Call it on every process of ``group`` (a collective).

        Parameters
        ----------
        statistics : SufficientStatistics
            This process's statistics (empty when it saw no rows).
        group : torch.distributed.ProcessGroup, optional
            The default group when ``None``.

        Returns
        -------
        SufficientStatistics
        """
        import torch.distributed as dist

        gathered: list[Any] = [None] * dist.get_world_size(group)
        dist.all_gather_object(gathered, statistics, group=group)
        total = SufficientStatistics()
        for part in gathered:
            total = self.combine(total, part)
        return total


class Online(ABC):
    """A node that learns step by step while the model runs.

    ``learning_step(x, y_target, learner_state)`` returns the output the rest of
    the model sees at this step and the learner state after the update; each node
    documents which output that is (RLS and LMS give, as reservoirpy does, the
    prediction of the updated weights). ``y_target`` of ``None`` predicts
    without learning. The leading axis of a learner state is the learner: B
    series, B independent learners.
    """

    @abstractmethod
    def initial_learner_state(self, batch_size: int) -> Any:
        """Learner state (weights, P matrices, ...) for ``batch_size`` independent learners."""

    @abstractmethod
    def learning_step(self, x: Tensor, y_target: Tensor | None,
                      learner_state: Any) -> tuple[Tensor, Any]:
        """Learn from ``x`` (B, F) and ``y_target`` (B, O); return ``(output (B, O), state)``."""

    @abstractmethod
    def commit(self, learner_state: Any) -> None:
        """Keep a learner state as the node's fitted weights."""

    @abstractmethod
    def restart_learning(self) -> None:
        """Return to the initial weights (``fit`` restarts; ``partial_fit`` continues)."""

    def fitted_elements(self) -> int | None:
        """Elements of the tensors that define the output once learned (e.g. ``Wout`` and
        the bias, not RLS's P matrix); ``None`` counts every stored tensor."""
        return None


class Unsupervised(ABC):
    """A node that adapts to its inputs without targets (e.g. intrinsic plasticity).

    ``Model.fit`` calls :meth:`adapt` on such nodes first, in dataflow order, with
    what each receives from the (already adapted) nodes upstream; closed-form or
    online nodes downstream are then fitted on the adapted features.
    """

    @abstractmethod
    def adapt(self, x: Tensor, lengths: Tensor | None, warmup: int) -> None:
        """Adapt to input sequences ``x`` (B, T, F), ``lengths`` (B,) for ragged batches.

        The first ``warmup`` steps of each series are not learned from.
        """

    @abstractmethod
    def is_adapted(self) -> bool:
        """Whether :meth:`adapt` has run (or adapted tensors were loaded)."""


class GradientTrained:
    """A node whose ``parameters()`` are trained by gradient descent once built (a marker)."""

    def trains_by_gradient(self) -> bool:
        """Whether this instance, as configured, will have trainable parameters."""
        return True


class Gated(ABC):
    """A node with a trained scalar gate β (reported in training histories)."""

    @abstractmethod
    def gate(self) -> Tensor | None:
        """The gate β as a 0-d parameter, or ``None`` when this instance has none."""


class FrozenWeights(ABC):
    """A node whose frozen tensors are regenerated from its seed key, never stored.

    Artifacts record a fingerprint of each tensor :meth:`frozen_tensors` returns
    and check it on load.
    """

    @abstractmethod
    def frozen_tensors(self) -> dict[str, Tensor]:
        """The materialised frozen tensors, by attribute name (built nodes only)."""

    def frozen_fingerprints(self) -> dict[str, str]:
        """:func:`deepreservoir.seeding.fingerprint` of each frozen tensor, by name.

        What artifacts record and data-parallel processes compare. The default
        hashes :meth:`frozen_tensors`; a node whose weights are regenerated tile
        by tile overrides it to hash them without materialising them.

        Returns
        -------
        dict of str to str
            16 hex digits per tensor.
        """
        from deepreservoir.seeding import fingerprint

        prints = {}
        for name, tensor in self.frozen_tensors().items():
            if tensor is None:
                continue
            if tensor.layout != torch.strided:
                tensor = tensor.to_dense()
            prints[name] = fingerprint(tensor.detach().to("cpu", torch.float64).numpy())
        return prints

    def source_fingerprint(self) -> str | None:
        """Fingerprint of the raw seeded draw before any rescaling, if the node keeps one."""
        return None


class Scaffolded(FrozenWeights):
    """A frozen seeded scaffold that the paper's ablations can redraw or remove."""

    #: How many times the scaffold was resampled (0: the original draw).
    generation_: int

    @abstractmethod
    def resample(self, generation: int | None = None) -> None:
        """Draw scaffold generation ``generation`` (default: the next one)."""

    @abstractmethod
    def reseed(self, seed: int | None) -> None:
        """Regenerate the scaffold from another root seed (``None``: the built one)."""

    @abstractmethod
    def remove_scaffold(self) -> None:
        """Drop ``β·W_seed`` from the output."""

    @abstractmethod
    def restore_scaffold(self) -> None:
        """Undo :meth:`remove_scaffold`."""

    def has_scaffold(self) -> bool:
        """Whether this instance computes ``β·W_seed·h`` (not, e.g., a fully trained head)."""
        return True


@dataclass
class LayerView:
    """The matrices of one layer, as analysis reads them.

    Attributes
    ----------
    weight : Tensor, shape (N_out, N_in)
        The effective matrix the layer applies.
    frozen : Tensor or None
        The frozen scaffold, when it differs from ``weight`` (an adapted layer);
        zeros for an adapted layer without scaffold.
    Win : Tensor (N, F) or None
    bias : Tensor (N,) or None
    lr : float or Tensor (N,)
        Leak rate (1 for feedforward layers).
    activation : str
    recurrent : bool
        Whether ``weight`` is iterated over time.
    """

    weight: Tensor
    frozen: Tensor | None = None
    Win: Tensor | None = None
    bias: Tensor | None = None
    lr: float | Tensor = 1.0
    activation: str = "identity"
    recurrent: bool = False


class WeightedLayer(ABC):
    """A node with a weight matrix that spectral and stability analyses can read."""

    @abstractmethod
    def layer_view(self) -> LayerView:
        """The layer's matrices (built nodes only), detached."""


class TensorFree:
    """A node that holds no tensor and so follows the model's dtype and device (a marker)."""


def dense(tensor: Tensor | None) -> Tensor | None:
    """``tensor`` detached and strided (sparse layouts densified); ``None`` stays ``None``."""
    if tensor is None:
        return None
    tensor = tensor.detach()
    return tensor.to_dense() if tensor.layout != torch.strided else tensor
