"""What the online readouts (RLS, LMS) share: weights with a learner axis, and how they run.

An online readout holds ``L`` learners: ``Wout_`` (L, O, F) and ``bias_`` (L, O).
Fitting B series at once advances B independent learners (each series its own
weights), so after such a fit ``L = B``; a single series, or
``learners="shared"``, leaves one learner. Running uses learner ``b`` on series
``b`` when ``L`` equals the batch size, and the one learner on every series when
``L = 1``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from deepreservoir.constraints import AnyOf, Interval, OneOf, validate_params
from deepreservoir.errors import DataError
from deepreservoir.kinds import Online
from deepreservoir.nodes._readout_arrays import agreed_output_dim, explicit_readout
from deepreservoir.nodes._reservoir_specs import spec_to_json
from deepreservoir.nodes.base import Node

__all__ = ["OnlineReadout"]


class OnlineReadout(Node, Online):
    """Base of the online linear readouts ``y = Wout x + b`` (see the module docstring).

    Subclasses define ``_learner_extras`` (extra learner tensors, e.g. RLS's P)
    and :meth:`learning_step`.

    Parameters
    ----------
    Wout : array (input_dim, output_dim), optional
        Initial weights, in reservoirpy's layout; zeros by default.
    bias : array (output_dim,), optional
        Initial bias; zeros by default.
    fit_bias : bool
        Whether the bias learns too.
    output_dim : int, optional
        Number of outputs; inferred from ``Wout``, ``bias`` or the targets.
    """

    _common_constraints: ClassVar[dict] = {
        "fit_bias": OneOf((True, False)),
        "output_dim": AnyOf((None, Interval(int, 1, None))),
    }

    def __init__(self, *, Wout: Any = None, bias: Any = None, fit_bias: bool = True,
                 output_dim: int | None = None, input_dim: int | None = None,
                 name: str | None = None, dtype: Any = torch.float32) -> None:
        owner = type(self).__name__
        Wout, bias = explicit_readout(Wout, bias, owner, input_dim)
        if Wout is not None:
            input_dim = int(Wout.shape[0])
        super().__init__(input_dim=input_dim, name=name, dtype=dtype)
        validate_params(owner, {"fit_bias": fit_bias, "output_dim": output_dim},
                        self._common_constraints)
        self.Wout = Wout
        self.bias = bias
        self.fit_bias = bool(fit_bias)
        self.output_dim = agreed_output_dim(
            owner, output_dim=output_dim, Wout=None if Wout is None else int(Wout.shape[1]),
            bias=None if bias is None else int(bias.shape[0]))
        self.declared_output_dim = output_dim
        self._learner_count = 1

    # ------------------------------------------------------------ metadata
    def _common_hyperparameters(self) -> dict[str, Any]:
        return {"Wout": spec_to_json(self.Wout), "bias": spec_to_json(self.bias),
                "fit_bias": self.fit_bias, "output_dim": self.declared_output_dim}

    def infer_output_dim(self, input_dim: int, target_dim: int | None = None) -> int:
        if self.output_dim is not None:
            if target_dim is not None and target_dim != self.output_dim:
                raise DataError(
                    f"{type(self).__name__} '{self.name}' has {self.output_dim} outputs but "
                    f"the targets have {target_dim} features.")
            return self.output_dim
        return 1 if target_dim is None else int(target_dim)

    @property
    def learners(self) -> int:
        """How many independent learners the node holds (the leading axis of its tensors)."""
        return self._learner_count

    # ------------------------------------------------------------- tensors
    def _initial_tensors(self, learners: int) -> dict[str, Tensor]:
        """The starting learner tensors, each with a leading axis of ``learners``."""
        out, features = self.output_dim, self.input_dim
        W = np.zeros((out, features)) if self.Wout is None else self.Wout.T
        b = np.zeros(out) if self.bias is None else self.bias
        tensors = {"Wout_": self._new_tensor(W), "bias_": self._new_tensor(b)}
        tensors.update(self._learner_extras())
        return {key: value.unsqueeze(0).expand(learners, *value.shape).clone()
                for key, value in tensors.items()}

    def _learner_extras(self) -> dict[str, Tensor]:
        return {}

    def _set_tensors(self, tensors: dict[str, Tensor]) -> None:
        for key, value in tensors.items():
            self.register_buffer(key, value.detach().to(self.dtype).contiguous())
        self._learner_count = int(tensors["Wout_"].shape[0])

    def _build(self, input_dim: int, target_dim: int | None) -> None:
        self._set_tensors(self._initial_tensors(self._learner_count))

    def restart_learning(self) -> None:
        """Start again from the initial weights, with one learner (what ``fit`` does)."""
        self._require_built()
        self._set_tensors(self._initial_tensors(1))

    def fitted_elements(self) -> int | None:
        """``Wout_`` and ``bias_``: the readout, not the learner's working state (RLS's P)."""
        return int(self.Wout_.numel() + self.bias_.numel()) if self.built else None

    # --------------------------------------------------------------- online
    def _learner_keys(self) -> list[str]:
        return ["Wout_", "bias_", *self._learner_extras()]

    def initial_learner_state(self, batch_size: int) -> dict[str, Tensor]:
        """The node's current tensors for ``batch_size`` learners (one learner is copied)."""
        self._require_built()
        held = self._learner_count
        if held not in (1, batch_size):
            raise DataError(
                f"{type(self).__name__} '{self.name}' holds {held} independent learners (it was "
                f"fitted on {held} series at once) and cannot continue on {batch_size} series: "
                f"give {held} series, or fit it again.")
        return {key: getattr(self, key).expand(batch_size, *getattr(self, key).shape[1:]).clone()
                for key in self._learner_keys()}

    def commit(self, learner_state: dict[str, Tensor]) -> None:
        """Keep the learners' tensors as the node's (``L`` becomes their count).

        Keys starting with ``_`` are the learner's scratch space, not kept.
        """
        self._set_tensors({k: v for k, v in learner_state.items() if not k.startswith("_")})

    @staticmethod
    def _predict(W: Tensor, b: Tensor, x: Tensor) -> Tensor:
        """``W x + b`` per learner: ``W`` (B, O, F), ``b`` (B, O), ``x`` (B, F) → (B, O)."""
        return torch.bmm(W, x.unsqueeze(-1)).squeeze(-1) + b

    # ------------------------------------------------------------ execution
    def forward_sequence(self, x: Tensor, state: None, lengths: Tensor | None = None):
        self._require_built()
        held, batch = self._learner_count, x.shape[0]
        if held == 1:
            return torch.nn.functional.linear(x, self.Wout_[0], self.bias_[0]), None
        if held != batch:
            raise DataError(
                f"{type(self).__name__} '{self.name}' holds {held} independent learners (one "
                f"per series it was fitted on); run it on {held} series, not {batch}.")
        return torch.einsum("btf,bof->bto", x, self.Wout_) + self.bias_.unsqueeze(1), None

    def artifact_state(self) -> dict[str, Any]:
        return {"learners": self._learner_count}

    def restore_artifact_state(self, state: dict[str, Any]) -> None:
        self._learner_count = int(state.get("learners", 1))
