"""The node contract shared by every layer of a deepreservoir graph."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from deepreservoir.composition import model_class
from deepreservoir.constraints import (
    AnyOf,
    Constraint,
    Interval,
    Predicate,
    Seed,
    all_finite,
    check_supported_dtype,
    resolve_dtype,
    validate_params,
)
from deepreservoir.errors import GraphError, NotFittedError, ParameterError, format_value
from deepreservoir.seeding import SeedKey

__all__ = ["Node"]

_NODE_CLASSES: dict[str, type] = {}


def _valid_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and "." not in value and "/" not in value


class Node(torch.nn.Module):
    """Base class of graph nodes: hyperparameters at ``__init__``, tensors built lazily.

    Subclasses declare ``_constraints`` (one table per class), their kinds
    (:mod:`deepreservoir.kinds`) as extra bases, and implement :meth:`_build` and
    :meth:`forward_sequence`; stateful nodes also implement ``initial_state`` and
    ``forward_step``.

    Frozen tensors are non-persistent buffers (regenerated from the seed);
    gradient-trained tensors are ``nn.Parameter``; closed-form fitted tensors are
    persistent buffers. ``parameters()`` is therefore exactly what gradients train.

    **Names.** A node built without ``name`` is named by its place in the model
    that holds it: ``"<Class>-<k>"`` for the k-th unnamed node of that class, in
    the order the model's nodes were composed. Names therefore do not depend on
    what else the process built, and rebuilding a model gives the same names.

    Parameters
    ----------
    input_dim : int, optional
        Number of input features; inferred from the first data if omitted.
    name : str, optional
        Unique name in a model; also the node's seeding label.
    seed : int, optional
        Root seed of this node's frozen tensors. Without it the node draws
        from its first parent's seed and its path in the graph.
    dtype : torch.dtype, numpy dtype or str
        Floating dtype of the node's tensors: ``torch.float64``, ``np.float64``
        and ``"float64"`` are the same. float32 or float64, on every device
        (:data:`~deepreservoir.constraints.SUPPORTED_DTYPES`): float16 and
        bfloat16 are refused here, and a node converted to them (``.half()``,
        ``.to(torch.bfloat16)``) is refused at its first run.
    """

    _constraints: ClassVar[dict[str, Constraint]] = {}
    _base_constraints: ClassVar[dict[str, Constraint]] = {
        "input_dim": AnyOf((None, Interval(int, 1, None))),
        "name": AnyOf((None, Predicate(_valid_name, "a non-empty str without '.' or '/'"))),
        "seed": AnyOf((None, Seed())),
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _NODE_CLASSES.setdefault(cls.__name__, cls)

    @staticmethod
    def registered_classes() -> dict[str, type]:
        """Every node class defined so far, by name (the first of a name wins)."""
        return dict(_NODE_CLASSES)

    def __init__(self, *, input_dim: int | None = None, name: str | None = None,
                 seed: int | None = None, dtype: Any = torch.float32) -> None:
        super().__init__()
        owner = type(self).__name__
        validate_params(owner, {"input_dim": input_dim, "name": name, "seed": seed},
                        self._base_constraints)
        dtype = resolve_dtype(dtype, owner)
        check_supported_dtype(dtype, owner)
        self.user_name = name
        self._graph_name: str | None = None
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
    def name(self) -> str:
        """The user's name, else the name given by the model that holds the node."""
        if self.user_name is not None:
            return self.user_name
        return self._graph_name or f"{type(self).__name__}-0"

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

    def _new_tensor(self, array: Any, label: str | None = None, hint: str = "") -> Tensor:
        """A tensor of the node's dtype on its device from a float64 array.

        Raises
        ------
        ParameterError
            When the tensor holds NaN or inf (in the node's dtype, so a value
            that overflows it counts), naming the node, ``label`` (what the tensor
            is, e.g. ``"recurrent matrix W"``), the number of bad entries, and
            ``hint`` (what to change).
        """
        tensor = torch.as_tensor(array, dtype=torch.float64).to(device=self.device,
                                                                dtype=self.dtype)
        if not all_finite(tensor):
            bad = int((~torch.isfinite(tensor)).sum())
            what = label or f"tensor of shape {tuple(tensor.shape)}"
            raise ParameterError(
                f"{type(self).__name__} '{self.name}' cannot be built: its {what} has {bad} "
                f"non-finite entries (NaN or inf) of {tensor.numel()} in {self.dtype} (largest "
                f"finite value {torch.finfo(self.dtype).max:.3g}).{hint}")
        return tensor

    def nonfinite_hint(self) -> str:
        """What to change when the node's output turns NaN or inf (ends with a space)."""
        return (f"Its values grew past the largest {self.dtype} "
                f"({torch.finfo(self.dtype).max:.3g}), or came from NaN or inf weights. ")

    def _require_built(self) -> None:
        if not self.built:
            raise NotFittedError(
                f"Node '{self.name}' has no tensors yet: run or fit it on data first."
            )

    # ---------------------------------------------------------------- execution
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

    def forward(self, x: Any) -> Any:
        """Apply the node alone to data from a zero state (torch-style call, ``node(x)``).

        ``x`` may be ``(B, T, F)``, ``(T, F)``, a ragged list, or one step ``(F,)``;
        numpy in gives numpy out, torch in gives torch out (differentiable). No
        state is kept: :meth:`step` is reservoirpy's stateful ``node(x)``.
        """
        return self._as_model().forward(x)

    # ------------------------------------------------- single-node conveniences
    def _as_model(self):
        if self._implicit_model is None:
            object.__setattr__(self, "_implicit_model", model_class().from_node(self))
        return self._implicit_model

    def run(self, X: Any, *, reset: bool = False):
        """Run this node alone on data; see :meth:`deepreservoir.Model.run`."""
        return self._as_model().run(X, reset=reset)

    def step(self, x: Any):
        """Advance this node alone by one step, keeping its state; see :meth:`Model.step`."""
        return self._as_model().step(x)

    def fit(self, X: Any, Y: Any = None, **kwargs: Any):
        """Fit this node alone on data; see :meth:`deepreservoir.Model.fit`. Returns the node."""
        self._as_model().fit(X, Y, **kwargs)
        return self

    def partial_fit(self, X: Any, Y: Any, **kwargs: Any):
        """Online learning on one more chunk, for this node alone; see
        :meth:`deepreservoir.Model.partial_fit`. Returns the outputs while learning."""
        return self._as_model().partial_fit(X, Y, **kwargs)

    def reset(self) -> Any:
        """Forget the state kept between calls to :meth:`run` and :meth:`step`.

        Returns the previous state (numpy, ``(N,)`` or ``(B, N)``), or ``None`` when
        the node kept none, as reservoirpy's ``reset`` does.
        """
        if self._implicit_model is None:
            return None
        return self._implicit_model.reset().get(self._implicit_model.name_of(self))

    #: Incremented whenever any node's tensors are converted (``.to``, ``.double()``...),
    #: so that caches of dtype and device (``Model.step``) know to look again.
    conversions: ClassVar[int] = 0

    def _apply(self, fn, recurse: bool = True):
        Node.conversions += 1
        result = super()._apply(fn, recurse)
        implicit = self.__dict__.get("_implicit_model")
        if implicit is not None:
            implicit._convert_kept_state(fn)
        return result

    # -------------------------------------------------------------- composition
    def __rshift__(self, other: Any):
        return model_class().connect(self, other)

    def __rrshift__(self, other: Any):
        return model_class().connect(other, self)

    def __lshift__(self, other: Any):
        return model_class().feedback(self, other)

    def __rlshift__(self, other: Any):
        return model_class().feedback(other, self)

    def __and__(self, other: Any):
        return model_class().merge(self, other)

    def __rand__(self, other: Any):
        return model_class().merge(other, self)

    # ----------------------------------------------------------------- metadata
    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments, as stored (JSON-able where possible)."""
        return {}

    def artifact_state(self) -> dict[str, Any]:
        """JSON-able state beyond hyperparameters and tensors that a saved model needs."""
        return {}

    def restore_artifact_state(self, state: dict[str, Any]) -> None:
        """Set the state :meth:`artifact_state` returned; called before the node is rebuilt."""

    def extra_repr(self) -> str:
        parts = [f"name={self.name!r}"]
        for key, value in self.hyperparameters().items():
            parts.append(f"{key}={format_value(value, 30)}")
        return ", ".join(parts)
