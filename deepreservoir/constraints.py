"""One table of hyperparameter constraints per class, checked in one place.

A class declares ``_constraints = {"sr": Interval(float, 0, None, closed="neither"), ...}``
and calls :func:`validate_params` from ``__init__``. A failure raises
:class:`~deepreservoir.errors.ParameterError` with the message
``The 'sr' parameter of Reservoir must be a float in (0, inf). Got -1.``

The dtypes deepreservoir computes in (:data:`SUPPORTED_DTYPES`) and the one
switch of the check for non-finite values (:func:`finite_check`) live here too.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from deepreservoir.errors import NonFiniteError, ParameterError, format_value

__all__ = [
    "SUPPORTED_DTYPES",
    "AnyOf",
    "Constraint",
    "Interval",
    "OneOf",
    "Predicate",
    "Seed",
    "all_finite",
    "check_finite",
    "check_supported_dtype",
    "finite_check",
    "finite_check_enabled",
    "nonfinite_error",
    "resolve_dtype",
    "set_finite_check",
    "validate_params",
]

_DTYPE_NAMES = {
    "float16": "float16", "half": "float16", "bfloat16": "bfloat16",
    "float32": "float32", "float": "float32", "single": "float32",
    "float64": "float64", "double": "float64",
}


class Constraint:
    """A rule a hyperparameter value must satisfy."""

    def accepts(self, value: Any) -> bool:  # pragma: no cover - interface
        """Whether ``value`` satisfies the rule."""
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        """The rule in words, as error messages quote it (e.g. ``"a real in (0, 1]"``)."""
        raise NotImplementedError


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Interval(Constraint):
    """A number in an interval.

    Parameters
    ----------
    kind : {int, float}
        ``int`` accepts integers only; ``float`` accepts any real number.
    low, high : float or None
        Bounds; ``None`` means unbounded.
    closed : {"both", "left", "right", "neither"}
        Which bounds are included.
    """

    kind: type
    low: float | None
    high: float | None
    closed: str = "both"

    def accepts(self, value: Any) -> bool:
        if self.kind is int and not _is_int(value):
            return False
        if not _is_real(value) or not math.isfinite(float(value)):
            return False
        value = float(value)
        if self.low is not None:
            if self.closed in ("both", "left"):
                if value < self.low:
                    return False
            elif value <= self.low:
                return False
        if self.high is not None:
            if self.closed in ("both", "right"):
                if value > self.high:
                    return False
            elif value >= self.high:
                return False
        return True

    def describe(self) -> str:
        noun = "an int" if self.kind is int else "a float"
        if self.low is not None and self.high is None:
            op = ">=" if self.closed in ("both", "left") else ">"
            return f"{noun} {op} {self.low:g}"
        if self.high is not None and self.low is None:
            op = "<=" if self.closed in ("both", "right") else "<"
            return f"{noun} {op} {self.high:g}"
        if self.low is None and self.high is None:
            return f"a finite {noun[2:] if noun.startswith('a ') else noun[3:]}"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        return f"{noun} in {left}{self.low:g}, {self.high:g}{right}"


@dataclass(frozen=True)
class OneOf(Constraint):
    """One of a fixed set of values (compared with ``==``)."""

    options: tuple

    def accepts(self, value: Any) -> bool:
        try:
            return value in self.options
        except TypeError:
            return False

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


@dataclass(frozen=True)
class Predicate(Constraint):
    """A value accepted by a function, with a human description of what it accepts."""

    check: Callable[[Any], bool]
    description: str

    def accepts(self, value: Any) -> bool:
        try:
            return bool(self.check(value))
        except Exception:
            return False

    def describe(self) -> str:
        return self.description


@dataclass(frozen=True)
class AnyOf(Constraint):
    """A value accepted by at least one of several constraints (``None`` is written as None)."""

    options: tuple

    def accepts(self, value: Any) -> bool:
        for option in self.options:
            if option is None:
                if value is None:
                    return True
            elif option.accepts(value):
                return True
        return False

    def describe(self) -> str:
        parts = ["None" if o is None else o.describe() for o in self.options]
        return " or ".join(parts)


class Seed(Constraint):
    """A seed: a non-negative integer below 2**63."""

    def accepts(self, value: Any) -> bool:
        return _is_int(value) and 0 <= int(value) < 2**63

    def describe(self) -> str:
        return "a non-negative int below 2**63"


def is_array_like(value: Any) -> bool:
    """Whether ``value`` is a numpy array or a torch tensor."""
    if isinstance(value, np.ndarray):
        return True
    return type(value).__module__.startswith("torch") and hasattr(value, "shape")


def validate_params(owner: str, params: Mapping[str, Any], table: Mapping[str, Constraint],
                    skip: Iterable[str] = ()) -> None:
    """Check each named value against its constraint.

    Parameters
    ----------
    owner : str
        Class name used in the message.
    params : mapping
        Parameter name to value.
    table : mapping
        Parameter name to :class:`Constraint`.
    skip : iterable of str
        Names not checked here (validated elsewhere).

    Raises
    ------
    ParameterError
        ``The 'NAME' parameter of OWNER must be DESCRIPTION. Got VALUE.``
    """
    skipped = set(skip)
    for name, constraint in table.items():
        if name in skipped or name not in params:
            continue
        value = params[name]
        if not constraint.accepts(value):
            raise ParameterError(
                f"The '{name}' parameter of {owner} must be {constraint.describe()}. "
                f"Got {format_value(value)}."
            )


def resolve_dtype(value: Any, owner: str, parameter: str = "dtype") -> Any:
    """A floating torch dtype from a torch dtype, a numpy dtype or its name.

    ``torch.float64``, ``np.float64``, ``np.dtype("float64")``, ``"float64"``,
    ``"double"`` and ``"torch.float64"`` all give ``torch.float64``.

    Raises
    ------
    ParameterError
        For anything that is not a floating dtype, naming the accepted forms.
    """
    if isinstance(value, torch.dtype):
        name = str(value).replace("torch.", "")
    elif isinstance(value, str):
        name = value.replace("torch.", "").replace("numpy.", "").lower()
    else:
        try:
            name = np.dtype(value).name
        except TypeError:
            name = None
    resolved = _DTYPE_NAMES.get(name) if name is not None else None
    if resolved is None:
        raise ParameterError(
            f"The '{parameter}' parameter of {owner} must be a floating dtype: a torch dtype "
            f"(torch.float32), a numpy dtype (np.float64) or its name ('float64'). "
            f"Got {repr(value) if isinstance(value, type) else format_value(value)}."
        )
    return getattr(torch, resolved)


# --------------------------------------------------------------------- dtypes
#: The dtypes every node computes in, on every device (CPU and CUDA alike).
#: float16 and bfloat16 are refused: the CPU kernels of the sparse recurrent
#: product do not exist for them, numpy has no bfloat16, the ridge solve needs
#: LAPACK (single or double precision only), and a recurrence at 3 significant
#: digits loses its echo-state behaviour within a few steps.
SUPPORTED_DTYPES = (torch.float32, torch.float64)


def check_supported_dtype(dtype: torch.dtype, owner: str, *, node: str | None = None) -> None:
    """Refuse a dtype outside :data:`SUPPORTED_DTYPES`.

    Parameters
    ----------
    dtype : torch.dtype
    owner : str
        The class named in the message (at construction).
    node : str, optional
        The node's name when the dtype was reached by a conversion
        (``.half()``, ``.to(torch.bfloat16)``), found at the first run.

    Raises
    ------
    ParameterError
        Naming the dtype received and the supported ones.
    """
    if dtype in SUPPORTED_DTYPES:
        return
    why = ("deepreservoir computes in torch.float32 or torch.float64 only, on the CPU and on "
           "CUDA alike: half-precision sparse products have no CPU kernel, numpy has no "
           "bfloat16, and the ridge solve needs single or double precision")
    if node is None:
        raise ParameterError(
            f"The 'dtype' parameter of {owner} must be torch.float32 or torch.float64. "
            f"Got {dtype}: {why}.")
    raise ParameterError(
        f"Node '{node}' ({owner}) has dtype {dtype}, after a conversion such as .half() or "
        f".to({dtype}); {why}. Convert the model back with model.to(torch.float32) (or "
        f"torch.float64) before running it.")


# ------------------------------------------------------------ finite values
_finite_check = True


def finite_check_enabled() -> bool:
    """Whether running a model checks its outputs for NaN and inf (see :func:`finite_check`)."""
    return _finite_check


def set_finite_check(enabled: bool) -> bool:
    """Turn the check of non-finite node outputs on or off, for the whole process.

    While it is on (the default), every run, ``states``, ``step``, forward pass,
    fit pass, generation and online-learning pass raises a
    :class:`~deepreservoir.errors.DataError` naming the node, the first time step
    and the series whose output holds NaN or inf, instead of returning it.
    Turn it off to get the non-finite values (e.g. to study a diverging
    reservoir); the check costs one reduction per node per call.

    Parameters
    ----------
    enabled : bool

    Returns
    -------
    bool
        The previous setting.

    Examples
    --------
    >>> from deepreservoir.constraints import set_finite_check
    >>> previous = set_finite_check(False)
    >>> _ = set_finite_check(previous)
    """
    global _finite_check
    if not isinstance(enabled, bool):
        raise ParameterError(
            f"The 'enabled' parameter of set_finite_check must be True or False. "
            f"Got {format_value(enabled)}.")
    previous, _finite_check = _finite_check, enabled
    return previous


@contextmanager
def finite_check(enabled: bool) -> Iterator[None]:
    """Turn the check of non-finite outputs on or off inside a ``with`` block.

    The setting is process-wide (:func:`set_finite_check`); the previous one is
    put back when the block ends.

    Examples
    --------
    >>> import numpy as np
    >>> import deepreservoir as dr
    >>> from deepreservoir.constraints import finite_check
    >>> unstable = dr.Reservoir(20, sr=5, activation="identity", seed=0)
    >>> with finite_check(False):
    ...     states = unstable.run(np.ones((400, 1)))
    >>> bool(np.isfinite(states).all())
    False
    """
    previous = set_finite_check(enabled)
    try:
        yield
    finally:
        set_finite_check(previous)


def all_finite(values: torch.Tensor) -> bool:
    """Whether every entry of a floating tensor is finite, at the cost of one sum.

    A finite sum means finite entries (a NaN or an inf makes the sum NaN or
    inf); only when the sum is not finite, which finite entries near the
    dtype's largest value can also cause, are the entries tested one by one.
    One host synchronisation; no graph is recorded.
    """
    if values.requires_grad:
        values = values.detach()
    if values.numel() == 1:  # one step of a one-output model: no reduction needed
        return math.isfinite(values.item())
    if math.isfinite(values.sum().item()):
        return True
    return bool(torch.isfinite(values).all())


def nonfinite_error(outputs: Mapping[str, torch.Tensor], hints: Mapping[str, str],
                    offset: int | None) -> NonFiniteError:
    """The error for node outputs of which some hold NaN or inf.

    Parameters
    ----------
    outputs : mapping of str to Tensor (B, T, O)
        The non-finite outputs by node name, in execution order.
    hints : mapping of str to str
        What each node suggests (:meth:`~deepreservoir.nodes.base.Node.nonfinite_hint`).
    offset : int or None
        Time step of the outputs' first step; ``None`` for a single ``step()``.

    Returns
    -------
    DataError
        Naming the node whose output turned non-finite first (the earliest step;
        among nodes at that step, the first to run), the step, the series (for a
        batch), the value and how many of the node's outputs are not finite there.
    """
    first: tuple[int, str] | None = None
    for name, values in outputs.items():
        steps = (~torch.isfinite(values.detach())).any(-1).any(0).nonzero()
        if len(steps) and (first is None or int(steps[0, 0]) < first[0]):
            first = (int(steps[0, 0]), name)
    if first is None:  # pragma: no cover - callers pass non-finite outputs only
        return NonFiniteError("A node output is not finite.")
    step, name = first
    values = outputs[name].detach()[:, step]
    bad = ~torch.isfinite(values)
    series = int(bad.any(-1).nonzero()[0, 0])
    value = float(values[series][bad[series]][0])
    where = ("at the step just computed" if offset is None
             else f"at time step {offset + step} (counting from 0)")
    if values.shape[0] > 1:
        where += f", series {series} (of {values.shape[0]})"
    return NonFiniteError(
        f"Node '{name}' produced a non-finite value ({value}) {where}: "
        f"{int(bad[series].sum())} of its {values.shape[-1]} outputs are NaN or inf there. "
        f"{hints.get(name, '')}To get the non-finite values anyway, run inside "
        f"`with deepreservoir.finite_check(False):` (or call "
        f"deepreservoir.set_finite_check(False)).")


def check_finite(nodes: Mapping[str, Any], outputs: Mapping[str, torch.Tensor],
                 offset: int | None = 0, skip: Iterable[str] = ()) -> None:
    """Refuse node outputs holding NaN or inf, at the cost of one sum per node.

    The executor calls it once per stretch of time it runs (and once per
    ``step()``); a loop over steps calls it once on what it collected.

    Parameters
    ----------
    nodes : mapping of str to Node
        The model's nodes by name (for their :meth:`nonfinite_hint`).
    outputs : mapping of str to Tensor (B, T, O), or (B, O) with ``offset=None``
        Node outputs in execution order.
    offset : int or None
        Time step of their first step; ``None``: outputs (B, O) of the one step
        just computed.
    skip : iterable of str
        Nodes not to check (outputs imposed by teacher forcing).

    Raises
    ------
    DataError
        See :func:`nonfinite_error`; nothing while the check is off
        (:func:`finite_check`).
    """
    if not _finite_check:
        return
    bad = {name: values for name, values in outputs.items()
           if name not in skip and not all_finite(values)}
    if bad:
        if offset is None:
            bad = {name: values.unsqueeze(1) for name, values in bad.items()}
        raise nonfinite_error(bad, {name: nodes[name].nonfinite_hint() for name in bad}, offset)
