"""The node contract shared by every layer of a deepreservoir graph."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import torch
from torch import Tensor

from deepreservoir.constraints import (
    AnyOf,
    Constraint,
    Interval,
    Predicate,
    Seed,
    validate_params,
)
from deepreservoir.errors import GraphError, NotFittedError, format_value
from deepreservoir.seeding import SeedKey

__all__ = ["Node"]

_NAME_COUNTER = itertools.count()
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _valid_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and "." not in value and "/" not in value


class Node(torch.nn.Module):
    """Base class of graph nodes: hyperparameters at ``__init__``, tensors built lazily.

    Subclasses declare ``_constraints`` (one table per class) and implement
    :meth:`_build`, :meth:`forward_sequence` and, if they keep a state over time,
    :meth:`initial_state` and :meth:`forward_step`.

    Frozen tensors are non-persistent buffers (regenerated from the seed);
    gradient-trained tensors are ``nn.Parameter``; closed-form fitted tensors are
    persistent buffers. ``parameters()`` is therefore exactly what gradients train.

    Parameters
    ----------
    input_dim : int, optional
        Number of input features; inferred from the first data if omitted.
    name : str, optional
        Unique name in a model; also the node's seeding label.
    seed : int, optional
        Root seed of this node's frozen tensors. Without it the node draws
        from its first parent's seed and its path in the graph.
    dtype : torch.dtype
        Floating dtype of the node's tensors.
    """

    _constraints: ClassVar[dict[str, Constraint]] = {}
    _base_constraints: ClassVar[dict[str, Constraint]] = {
        "input_dim": AnyOf((None, Interval(int, 1, None))),
        "name": AnyOf((None, Predicate(_valid_name, "a non-empty str without '.' or '/'"))),
        "seed": AnyOf((None, Seed())),
        "dtype": Predicate(lambda d: d in _FLOAT_DTYPES, "a floating torch dtype"),
    }
    #: Whether the node carries a state from one time step to the next.
    recurrent: ClassVar[bool] = False
    #: Whether the node is trained in closed form by ``fit`` (e.g. Ridge).
    closed_form: ClassVar[bool] = False
    #: Whether the node holds no tensors and so adapts to the model's dtype and device.
    tensorless: ClassVar[bool] = False

    def __init__(self, *, input_dim: int | None = None, name: str | None = None,
                 seed: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        validate_params(type(self).__name__,
                        {"input_dim": input_dim, "name": name, "seed": seed, "dtype": dtype},
                        self._base_constraints)
        self.user_name = name
        self.name = name if name is not None else f"{type(self).__name__}-{next(_NAME_COUNTER)}"
        self.seed = seed
        self.input_dim = input_dim
        self.output_dim: int | None = None
        self.seed_key_: SeedKey | None = None
        self.built = False
        self.register_buffer("_probe", torch.empty(0, dtype=dtype), persistent=False)
        self._implicit_model = None

    # ------------------------------------------------------------------ checks
    def _validate(self, params: dict[str, Any]) -> None:
        validate_params(type(self).__name__, params, self._constraints)

    # --------------------------------------------------------------- properties
    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the node's tensors (follows ``.to()``)."""
        return self._probe.dtype

    @property
    def device(self) -> torch.device:
        """Device of the node's tensors (follows ``.to()``)."""
        return self._probe.device

    def static_output_dim(self) -> int | None:
        """Output size known before seeing data, or ``None``."""
        return self.output_dim

    def infer_output_dim(self, input_dim: int, target_dim: int | None = None) -> int:
        """Output size for a given input size (and target size, for trained nodes)."""
        static = self.static_output_dim()
        return input_dim if static is None else static

    # -------------------------------------------------------------------- build
    def build(self, input_dim: int, seed_key: SeedKey, target_dim: int | None = None) -> None:
        """Create the node's tensors for ``input_dim`` input features.

        Does nothing if the node is already built for this size.

        Raises
        ------
        GraphError
            If the node was built, or declared, for another input size.
        """
        if self.input_dim is not None and self.input_dim != input_dim:
            raise GraphError(
                f"Dimension mismatch: node '{self.name}' expects {self.input_dim} input "
                f"features but receives {input_dim}."
            )
        if self.built:
            return
        self.input_dim = int(input_dim)
        self.seed_key_ = seed_key
        self.output_dim = self.infer_output_dim(self.input_dim, target_dim)
        self._build(self.input_dim, target_dim)
        self.built = True

    def _build(self, input_dim: int, target_dim: int | None) -> None:
        """Create tensors; subclasses override."""

    def _new_tensor(self, array: Any) -> Tensor:
        """A tensor of the node's dtype on its device from a float64 array."""
        return torch.as_tensor(array, dtype=torch.float64).to(device=self.device,
                                                              dtype=self.dtype)

    def _require_built(self) -> None:
        if not self.built:
            raise NotFittedError(
                f"Node '{self.name}' has no tensors yet: run or fit it on data first."
            )

    # ---------------------------------------------------------------- execution
    def initial_state(self, batch_size: int) -> Tensor | None:
        """Zero state for a batch, or ``None`` for a node without state."""
        return None

    def forward_sequence(self, x: Tensor, state: Tensor | None,
                         lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Process a whole batch of sequences.

        Parameters
        ----------
        x : Tensor, shape (B, T, input_dim)
        state : Tensor, shape (B, N), or None
        lengths : Tensor of int, shape (B,), optional

        Returns
        -------
        y : Tensor, shape (B, T, output_dim)
        state : Tensor or None
            State after each sequence's last valid step.
        """
        raise NotImplementedError

    def forward_step(self, x: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Process one time step: ``x`` of shape (B, input_dim) to (B, output_dim)."""
        y, state = self.forward_sequence(x.unsqueeze(1), state)
        return y[:, 0], state

    def forward(self, x: Tensor) -> Tensor:
        """Apply the node to a batch ``(B, T, F)`` from a zero state (torch-style call)."""
        if not self.built:
            from deepreservoir.graph import Model
            Model.from_node(self)._build_for({self.name: int(x.shape[-1])}, {})
        state = self.initial_state(x.shape[0])
        return self.forward_sequence(x, state)[0]

    # ------------------------------------------------- single-node conveniences
    def _as_model(self):
        from deepreservoir.graph import Model
        if self._implicit_model is None:
            object.__setattr__(self, "_implicit_model", Model.from_node(self))
        return self._implicit_model

    def run(self, X: Any, *, reset: bool = False):
        """Run this node alone on data; see :meth:`deepreservoir.Model.run`."""
        return self._as_model().run(X, reset=reset)

    def fit(self, X: Any, Y: Any = None, **kwargs: Any):
        """Fit this node alone on data; see :meth:`deepreservoir.Model.fit`."""
        self._as_model().fit(X, Y, **kwargs)
        return self

    def reset(self) -> None:
        """Forget the state kept between calls to :meth:`run`."""
        if self._implicit_model is not None:
            self._implicit_model.reset()

    # -------------------------------------------------------------- composition
    def __rshift__(self, other: Any):
        from deepreservoir.graph import connect
        return connect(self, other)

    def __rrshift__(self, other: Any):
        from deepreservoir.graph import connect
        return connect(other, self)

    def __lshift__(self, other: Any):
        from deepreservoir.graph import feedback
        return feedback(self, other)

    def __rlshift__(self, other: Any):
        from deepreservoir.graph import feedback
        return feedback(other, self)

    def __and__(self, other: Any):
        from deepreservoir.graph import merge
        return merge(self, other)

    def __rand__(self, other: Any):
        from deepreservoir.graph import merge
        return merge(other, self)

    # ----------------------------------------------------------------- metadata
    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments, as stored (JSON-able where possible)."""
        return {}

    def extra_repr(self) -> str:
        parts = [f"name={self.name!r}"]
        for key, value in self.hyperparameters().items():
            parts.append(f"{key}={format_value(value, 30)}")
        return ", ".join(parts)
