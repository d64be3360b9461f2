"""Dense families of continuous i.i.d. values, each drawn entry by entry.

Built from seeded normals and uniforms with ``+ − × ÷``, ``sqrt`` and the
exact ``log``/``ndtri`` of :mod:`deepreservoir.exactmath`, so bit-exact everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from deepreservoir.errors import ParameterError, format_value
from deepreservoir.families.base import (
    Family,
    _check_positive,
    _check_probability,
    _is_finite_real,
)

__all__ = [
    "Beta",
    "Cauchy",
    "Exponential",
    "KaimingNormal",
    "KaimingUniform",
    "Laplace",
    "Mixture",
    "Normal",
    "StudentT",
    "TruncatedNormal",
    "Uniform",
    "XavierNormal",
    "XavierUniform",
]

# Φ(−2) and Φ(2) − Φ(−2), as literals so that no platform erf enters the bits.
_PHI_MINUS_2 = 0.022750131948179195
_PHI_2_MASS = 0.9544997361036416


@dataclass(frozen=True)
class Normal(Family):
    """N(0, scale²); ``scale=None`` means 1/√fan_in."""

    name: ClassVar[str] = "normal"
    scale: float | None = None

    def _validate(self) -> None:
        _check_positive(self.name, "scale", self.scale)

    def _values(self, draws, fan_in, fan_out):
        return self._sigma(self.scale, fan_in) * draws.normal()


@dataclass(frozen=True)
class TruncatedNormal(Family):
    """N(0, σ²) restricted to ±2σ, by inverse CDF."""

    name: ClassVar[str] = "truncated_normal"
    scale: float | None = None

    def _validate(self) -> None:
        _check_positive(self.name, "scale", self.scale)

    def _values(self, draws, fan_in, fan_out):
        p = _PHI_MINUS_2 + draws.uniform() * _PHI_2_MASS
        return self._sigma(self.scale, fan_in) * draws.ndtri(p)


@dataclass(frozen=True)
class Uniform(Family):
    """U(−a, a)."""

    name: ClassVar[str] = "uniform"
    a: float = 0.1

    def _validate(self) -> None:
        _check_positive(self.name, "a", self.a, allow_none=False)

    def _values(self, draws, fan_in, fan_out):
        return self.a * (2.0 * draws.uniform() - 1.0)


@dataclass(frozen=True)
class KaimingNormal(Family):
    """N(0, 2/fan_in) (He et al. 2015, ReLU gain)."""

    name: ClassVar[str] = "kaiming_normal"

    def _values(self, draws, fan_in, fan_out):
        return math.sqrt(2.0 / max(fan_in, 1)) * draws.normal()


@dataclass(frozen=True)
class KaimingUniform(Family):
    """U(±b), b = √(6/((1+a²)·fan_in)); a = √5 is torch's ``nn.Linear`` default."""

    name: ClassVar[str] = "kaiming_uniform"
    a: float = math.sqrt(5.0)

    def _validate(self) -> None:
        if not _is_finite_real(self.a):
            raise ParameterError(
                f"The 'a' parameter of the {self.name} family must be a finite float. "
                f"Got {format_value(self.a)}."
            )

    def _values(self, draws, fan_in, fan_out):
        bound = math.sqrt(6.0 / ((1.0 + self.a**2) * max(fan_in, 1)))
        return bound * (2.0 * draws.uniform() - 1.0)


@dataclass(frozen=True)
class XavierNormal(Family):
    """N(0, 2/(fan_in + fan_out)) (Glorot & Bengio 2010)."""

    name: ClassVar[str] = "xavier_normal"

    def _values(self, draws, fan_in, fan_out):
        return math.sqrt(2.0 / max(fan_in + fan_out, 1)) * draws.normal()


@dataclass(frozen=True)
class XavierUniform(Family):
    """U(±√(6/(fan_in + fan_out)))."""

    name: ClassVar[str] = "xavier_uniform"

    def _values(self, draws, fan_in, fan_out):
        bound = math.sqrt(6.0 / max(fan_in + fan_out, 1))
        return bound * (2.0 * draws.uniform() - 1.0)


@dataclass(frozen=True)
class Cauchy(Family):
    """Cauchy(0, scale) clipped to ±clip·scale; drawn as a ratio of two normals."""

    name: ClassVar[str] = "cauchy"
    scale: float = 0.1
    clip: float = 10.0

    def _validate(self) -> None:
        _check_positive(self.name, "scale", self.scale, allow_none=False)
        _check_positive(self.name, "clip", self.clip, allow_none=False)

    def _values(self, draws, fan_in, fan_out):
        ratio = draws.normal(stream=0) / draws.normal(stream=1)
        return self.scale * draws.clip(ratio, -self.clip, self.clip)


@dataclass(frozen=True)
class Laplace(Family):
    """Laplace(0, b), by inverse CDF."""

    name: ClassVar[str] = "laplace"
    b: float = 0.1

    def _validate(self) -> None:
        _check_positive(self.name, "b", self.b, allow_none=False)

    def _values(self, draws, fan_in, fan_out):
        centred = draws.uniform() - 0.5
        magnitude = -draws.log(1.0 - 2.0 * draws.abs(centred))
        return self.b * draws.sign(centred) * magnitude


@dataclass(frozen=True)
class StudentT(Family):
    """σ·t(ν) with integer ν: Z / √(χ²_ν / ν), χ²_ν a sum of ν squared normals."""

    name: ClassVar[str] = "student_t"
    nu: int = 3
    scale: float | None = None

    def _validate(self) -> None:
        if not isinstance(self.nu, int) or isinstance(self.nu, bool) or not 1 <= self.nu <= 64:
            raise ParameterError(
                f"The 'nu' parameter of the student_t family must be an int in [1, 64]. "
                f"Got {format_value(self.nu)}."
            )
        _check_positive(self.name, "scale", self.scale)

    def _values(self, draws, fan_in, fan_out):
        chi2 = draws.zeros()
        for stream in range(1, self.nu + 1):
            z = draws.normal(stream=stream)
            chi2 = chi2 + z * z  # z * z is z ** 2, bit for bit
        t = draws.normal(stream=0) / draws.sqrt(draws.div(chi2, self.nu))
        return self._sigma(self.scale, fan_in) * t


@dataclass(frozen=True)
class Mixture(Family):
    """Two-component Gaussian mixture: w·N(0, s1²) + (1 − w)·N(0, s2²)."""

    name: ClassVar[str] = "mixture"
    weight: float = 0.9
    scale1: float = 0.05
    scale2: float = 0.5

    def _validate(self) -> None:
        _check_probability(self.name, "weight", self.weight)
        _check_positive(self.name, "scale1", self.scale1, allow_none=False)
        _check_positive(self.name, "scale2", self.scale2, allow_none=False)

    def _values(self, draws, fan_in, fan_out):
        first = draws.uniform(stream=1) < self.weight
        scale = draws.where(first, draws.constant(self.scale1), draws.constant(self.scale2))
        return scale * draws.normal(stream=0)


@dataclass(frozen=True)
class Beta(Family):
    """Beta(2, 2) mapped affinely to ±``half_width``; Beta(2, 2) is the median of 3 uniforms."""

    name: ClassVar[str] = "beta"
    half_width: float = 0.1

    def _validate(self) -> None:
        _check_positive(self.name, "half_width", self.half_width, allow_none=False)

    def _values(self, draws, fan_in, fan_out):
        a, b, c = (draws.uniform(stream=s) for s in range(3))
        # the median of three, exactly (numpy's median of 3 values is the middle one)
        median = draws.maximum(draws.minimum(a, b), draws.minimum(draws.maximum(a, b), c))
        return self.half_width * (2.0 * median - 1.0)


@dataclass(frozen=True)
class Exponential(Family):
    """Exp(rate) − 1/rate: a centred exponential."""

    name: ClassVar[str] = "exponential"
    rate: float = 10.0

    def _validate(self) -> None:
        _check_positive(self.name, "rate", self.rate, allow_none=False)

    def _values(self, draws, fan_in, fan_out):
        return draws.div(-draws.log(draws.uniform()) - 1.0, self.rate)
