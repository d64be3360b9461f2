"""The :class:`Family` base class and the parameter checks its subclasses share."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np

from deepreservoir import exactmath, seeding
from deepreservoir.errors import ParameterError, format_value
from deepreservoir.seeding import TensorKey

__all__ = ["Family", "NumpyDraws"]


class NumpyDraws:
    """The seeded draws of one tensor at a set of flat positions, with numpy math.

    An elementwise family computes its values from this object only (its
    ``_values``), so the same formula runs on numpy here and on torch in
    :class:`deepreservoir.seeding_torch.TorchDraws`, with the same bits. Every
    operation is correctly rounded and elementwise.

    Parameters
    ----------
    key : TensorKey
    index : ndarray of int, shape (m,), optional
        Flat positions to draw; all ``key.size`` positions when None.
    """

    def __init__(self, key: TensorKey, index: np.ndarray | None = None) -> None:
        self.key = key
        self.index = None if index is None else np.asarray(index, dtype=np.int64).reshape(-1)
        self.size = key.size if index is None else int(self.index.shape[0])

    def uniform(self, stream: int = 0) -> np.ndarray:
        """Uniforms of ``stream`` at the positions, shape (m,)."""
        if self.index is None:
            return seeding.uniform(self.key, stream)
        return seeding.uniform_at(self.key, self.index, stream)

    def normal(self, stream: int = 0) -> np.ndarray:
        """Standard normals of ``stream`` at the positions, shape (m,)."""
        return exactmath.ndtri(self.uniform(stream))

    def zeros(self) -> np.ndarray:
        return np.zeros(self.size)

    def constant(self, value: float) -> float:
        """``value`` in a form that divides exactly (see :meth:`div`)."""
        return float(value)

    @staticmethod
    def div(x: np.ndarray, scalar: float) -> np.ndarray:
        """``x / scalar``, a true division (never a multiplication by 1/scalar)."""
        return x / scalar

    log = staticmethod(exactmath.log)
    ndtri = staticmethod(exactmath.ndtri)
    sqrt = staticmethod(np.sqrt)
    abs = staticmethod(np.abs)
    sign = staticmethod(np.sign)
    floor = staticmethod(np.floor)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)

    @staticmethod
    def where(condition: np.ndarray, a, b) -> np.ndarray:
        return np.where(condition, a, b)

    @staticmethod
    def clip(x: np.ndarray, low: float, high: float) -> np.ndarray:
        return np.clip(x, low, high)


@dataclass(frozen=True)
class Family:
    """Base class of weight families.

    Subclasses are frozen dataclasses whose fields are the family's parameters.
    An *elementwise* family (``elementwise = True``, the default), whose element
    ``i`` depends on its own seeded draws only, implements :meth:`_values` on a
    draws object (:class:`NumpyDraws` or the torch ``TorchDraws``), so any subset
    or tile of its values can be drawn alone, on any device, with the same bits.
    A family that needs the whole matrix (QR, eigenvalues) sets
    ``elementwise = False`` and implements :meth:`_draw` on the whole key instead.
    """

    name: ClassVar[str] = ""
    #: Whether element ``i`` depends only on the draws at position ``i``.
    elementwise: ClassVar[bool] = True

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
        if self.elementwise:
            values = self._values(NumpyDraws(key), int(fan_in), int(fan_out))
        else:
            values = self._draw(key, int(fan_in), int(fan_out))
        return np.asarray(values, dtype=np.float64).reshape(key.shape)

    def sample_at(self, key: TensorKey, index: np.ndarray, fan_in: int,
                  fan_out: int) -> np.ndarray:
        """The values of :meth:`sample` at the flat positions ``index`` only.

        Parameters
        ----------
        key : TensorKey
        index : ndarray of int, shape (m,)
            Flat positions in ``[0, key.size)``.
        fan_in, fan_out : int

        Returns
        -------
        ndarray of float64, shape (m,)
            Equal bitwise to ``sample(key, fan_in, fan_out).ravel()[index]``.

        Raises
        ------
        ParameterError
            If the family is not elementwise.
        """
        self.require_elementwise("sample_at")
        values = self._values(NumpyDraws(key, index), int(fan_in), int(fan_out))
        return np.asarray(values, dtype=np.float64).reshape(-1)

    def require_elementwise(self, owner: str) -> None:
        """Raise :class:`ParameterError` unless the family is elementwise."""
        if not self.elementwise:
            raise ParameterError(
                f"The 'family' parameter of {owner} must be an elementwise family, whose "
                f"entries can be drawn one tile at a time. Got {self.name!r}: the {self.name} "
                f"family is materialised only (its values need the whole matrix).")

    def _values(self, draws: Any, fan_in: int, fan_out: int) -> Any:
        """The values at the draws' positions (elementwise families)."""
        raise NotImplementedError

    def _draw(self, key: TensorKey, fan_in: int, fan_out: int) -> np.ndarray:
        """All ``key.size`` values (families that are not elementwise)."""
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
