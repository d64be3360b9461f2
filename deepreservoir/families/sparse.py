"""Sparse families: normal values on a seeded random support."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from deepreservoir.families.base import Family, _check_positive, _check_probability

__all__ = ["ErdosRenyi", "SparseNormal"]


@dataclass(frozen=True)
class SparseNormal(Family):
    """N(0, σ²) with each entry zero with probability ``zero_fraction``."""

    name: ClassVar[str] = "sparse_normal"
    zero_fraction: float = 0.2
    scale: float | None = None

    def _validate(self) -> None:
        _check_probability(self.name, "zero_fraction", self.zero_fraction)
        _check_positive(self.name, "scale", self.scale)

    def _values(self, draws, fan_in, fan_out):
        keep = draws.uniform(stream=1) >= self.zero_fraction
        return draws.where(keep, self._sigma(self.scale, fan_in) * draws.normal(),
                           draws.constant(0.0))


@dataclass(frozen=True)
class ErdosRenyi(Family):
    """Erdős–Rényi support (each entry present with probability p), N(0, σ²/p) values.

    The 1/p variance keeps the fan-in variance of ``normal``.
    """

    name: ClassVar[str] = "erdos_renyi"
    p: float = 0.2
    scale: float | None = None

    def _validate(self) -> None:
        _check_probability(self.name, "p", self.p)
        _check_positive(self.name, "scale", self.scale)

    def _values(self, draws, fan_in, fan_out):
        present = draws.uniform(stream=1) < self.p
        std = self._sigma(self.scale, fan_in) / math.sqrt(self.p)
        return draws.where(present, std * draws.normal(), draws.constant(0.0))
