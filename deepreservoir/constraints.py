"""One table of hyperparameter constraints per class, checked in one place.

A class declares ``_constraints = {"sr": Interval(float, 0, None, closed="neither"), ...}``
and calls :func:`validate_params` from ``__init__``. A failure raises
:class:`~deepreservoir.errors.ParameterError` with the message
``The 'sr' parameter of Reservoir must be a float in (0, inf). Got -1.``
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepreservoir.errors import ParameterError, format_value

__all__ = [
    "AnyOf",
    "Constraint",
    "Interval",
    "OneOf",
    "Predicate",
    "Seed",
    "resolve_dtype",
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
    import torch

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
            f"Got {format_value(value)}."
        )
    return getattr(torch, resolved)
