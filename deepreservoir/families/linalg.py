"""Families drawn as whole matrices with linear algebra (QR, eigenvalues).

The only families whose last bits depend on the LAPACK build; values agree
across builds to about 1e-12 (see :mod:`deepreservoir.seeding`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from deepreservoir.errors import ParameterError
from deepreservoir.families.base import Family, _check_positive
from deepreservoir.seeding import standard_normal

__all__ = ["Orthogonal", "SpectralRadius"]


@dataclass(frozen=True)
class Orthogonal(Family):
    """Haar-distributed orthogonal rows or columns, times ``gain``.

    QR of a seeded Gaussian matrix with the signs of R's diagonal folded into Q
    (Mezzadri 2007). Bits depend on LAPACK; values agree to about 1e-12.
    """

    name: ClassVar[str] = "orthogonal"
    elementwise: ClassVar[bool] = False
    gain: float = 1.0

    def _validate(self) -> None:
        _check_positive(self.name, "gain", self.gain, allow_none=False)

    def _draw(self, key, fan_in, fan_out):
        if len(key.shape) != 2:
            raise ParameterError(
                f"The orthogonal family needs a 2-D shape. Got shape {key.shape}."
            )
        rows, cols = key.shape
        tall = (max(rows, cols), min(rows, cols))
        gaussian = standard_normal(key).reshape(tall)
        q, r = np.linalg.qr(gaussian)
        q = q * np.sign(np.where(np.diag(r) == 0, 1.0, np.diag(r)))
        q = q if rows >= cols else q.T
        return self.gain * q


@dataclass(frozen=True)
class SpectralRadius(Family):
    """N(0, 1) rescaled so that the spectral radius is ``radius``.

    For a non-square shape the spectral norm (largest singular value) is used.
    The rescaling needs an eigensolver; its result is exact to about 1e-12.
    """

    name: ClassVar[str] = "spectral_radius"
    elementwise: ClassVar[bool] = False
    radius: float = 0.95

    def _validate(self) -> None:
        _check_positive(self.name, "radius", self.radius, allow_none=False)

    def _draw(self, key, fan_in, fan_out):
        from deepreservoir.spectral import spectral_norm, spectral_radius

        matrix = standard_normal(key).reshape(key.shape)
        if len(key.shape) == 2 and key.shape[0] == key.shape[1]:
            current = spectral_radius(matrix)
        else:
            current = spectral_norm(matrix.reshape(key.shape[0], -1))
        return matrix * (self.radius / current)
