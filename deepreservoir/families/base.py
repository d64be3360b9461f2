"""The :class:`Family` base class and the parameter checks its subclasses share."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np

from deepreservoir.errors import ParameterError, format_value
from deepreservoir.seeding import TensorKey

__all__ = ["Family"]


@dataclass(frozen=True)
class Family:
    """Base class of weight families.

    Subclasses are frozen dataclasses whose fields are the family's parameters.
    They implement :meth:`_draw`, which returns ``key.size`` float64 values.
    """

    name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            object.__setattr__(self, field.name, _canonical_number(value, str(field.type)))
        self._validate()

    def _validate(self) -> None:
        """Raise :class:`ParameterError` for an invalid parameter (subclasses)."""

    def spec(self) -> dict[str, Any]:
        """The JSON-able spec: ``{"name": ..., **parameters}``."""
        return {"name": self.name, **asdict(self)}

    def sample(self, key: TensorKey, fan_in: int, fan_out: int) -> np.ndarray:
        """Draw the tensor described by ``key``.

        Parameters
        ----------
        key : TensorKey
            Carries the shape; the values are a pure function of it.
        fan_in, fan_out : int
            Sizes used by the family's default scale.

        Returns
        -------
        ndarray of float64, shape ``key.shape``
        """
        values = self._draw(key, int(fan_in), int(fan_out))
        return np.asarray(values, dtype=np.float64).reshape(key.shape)

    def _draw(self, key: TensorKey, fan_in: int, fan_out: int) -> np.ndarray:
        raise NotImplementedError

    def _sigma(self, scale: float | None, fan_in: int) -> float:
        return 1.0 / math.sqrt(max(fan_in, 1)) if scale is None else float(scale)


def _canonical_number(value: Any, annotation: str) -> Any:
    """One Python type per parameter, so equal families have equal specs and keys.

    ``Normal(scale=1)`` and ``Normal(scale=1.0)`` compare equal, so they must
    give the same JSON spec (which keys the tensor): real numbers in a field
    annotated ``float`` become ``float``, integers in a field annotated ``int``
    (``bits``, ``nu``) become ``int``. Bools and other types are left for
    validation to reject.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    if annotation.startswith("float"):
        return float(value)
    if annotation.startswith("int") and isinstance(value, numbers.Integral):
        return int(value)
    return value


def _is_finite_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_positive(family: str, name: str, value: float | None, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if not _is_finite_real(value) or not value > 0:
        raise ParameterError(
            f"The '{name}' parameter of the {family} family must be a finite float > 0"
            f"{' or None' if allow_none else ''}. Got {format_value(value)}."
        )


def _check_probability(family: str, name: str, value: float) -> None:
    if not _is_finite_real(value) or not 0 < value < 1:
        raise ParameterError(
            f"The '{name}' parameter of the {family} family must be a float in (0, 1). "
            f"Got {format_value(value)}."
        )
