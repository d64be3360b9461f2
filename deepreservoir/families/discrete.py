"""Discrete-valued families: uniformly quantised normals and signs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from deepreservoir.errors import ParameterError, format_value
from deepreservoir.families.base import Family, _check_positive

__all__ = ["Binary", "Quantized"]


@dataclass(frozen=True)
class Quantized(Family):
    """N(0, 1) clipped to ±``clip`` and quantised to 2^bits uniform levels, times σ.

    Level ``i`` is the midpoint ``−clip + (i + ½)·Δ`` with ``Δ = 2·clip / 2^bits``.
    """

    name: ClassVar[str] = "quantized"
    bits: int = 8
    clip: float = 3.0
    scale: float | None = None

    def _validate(self) -> None:
        bits_ok = isinstance(self.bits, int) and not isinstance(self.bits, bool)
        if not bits_ok or not 1 <= self.bits <= 24:
            raise ParameterError(
                f"The 'bits' parameter of the quantized family must be an int in [1, 24]. "
                f"Got {format_value(self.bits)}."
            )
        _check_positive(self.name, "clip", self.clip, allow_none=False)
        _check_positive(self.name, "scale", self.scale)

    def _values(self, draws, fan_in, fan_out):
        levels = 2**self.bits
        step = 2.0 * self.clip / levels
        index = draws.floor(draws.div(draws.normal() + self.clip, step))
        index = draws.clip(index, 0, levels - 1)
        return self._sigma(self.scale, fan_in) * (-self.clip + (index + 0.5) * step)


@dataclass(frozen=True)
class Binary(Family):
    """σ·sign(N(0, 1)): ±σ with equal probability."""

    name: ClassVar[str] = "binary"
    scale: float | None = None

    def _validate(self) -> None:
        _check_positive(self.name, "scale", self.scale)

    def _values(self, draws, fan_in, fan_out):
        sign = draws.where(draws.uniform() < 0.5, draws.constant(-1.0), draws.constant(1.0))
        return self._sigma(self.scale, fan_in) * sign
