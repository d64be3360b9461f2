"""The 22 weight families of the LottaLoRA paper, as seeded generators.

Each family turns a :class:`~deepreservoir.seeding.TensorKey` into a float64
array. Select one by name (``W="cauchy"``), by object (``W=Cauchy(scale=0.2)``)
or by its JSON spec (``{"name": "cauchy", "scale": 0.2}``). Unless a family
defines its own scale, its default scale is ``σ = 1/√fan_in``.

================== ==========================================================
name               distribution
================== ==========================================================
normal             N(0, σ²)
truncated_normal   N(0, σ²) truncated to ±2σ
uniform            U(−a, a), a = 0.1
orthogonal         Haar orthogonal (QR of a Gaussian, sign-corrected), gain 1
kaiming_normal     N(0, 2/fan_in)
kaiming_uniform    U(±b), b = √(6/((1+a²)·fan_in)), a = √5 (torch's Linear default)
xavier_normal      N(0, 2/(fan_in+fan_out))
xavier_uniform     U(±√(6/(fan_in+fan_out)))
spectral_radius    N(0, 1) rescaled to spectral radius 0.95 (spectral norm if not square)
cauchy             Cauchy(0, 0.1), clipped to ±10 scales
laplace            Laplace(0, b = 0.1)
student_t          σ·t(ν = 3)
mixture            0.9·N(0, 0.05²) + 0.1·N(0, 0.5²)
sparse_normal      N(0, σ²) with 20 % of entries zero
erdos_renyi        entries present with p = 0.2, values N(0, σ²/p)
beta               Beta(2, 2) mapped to ±0.1
exponential        Exp(λ = 10) − 1/λ (centred)
quant16 … quant2   N(0, 1) clipped to ±3, uniformly quantised to 2^bits levels, times σ
binary             σ·sign(N(0, 1))
================== ==========================================================

Only ``orthogonal`` and ``spectral_radius`` need linear algebra (QR, eigvals),
whose last bits depend on the LAPACK build; every other family is bit-exact
everywhere (see :mod:`deepreservoir.seeding`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

import numpy as np

from deepreservoir import exactmath
from deepreservoir.errors import ParameterError, format_value
from deepreservoir.seeding import SeedKey, TensorKey, standard_normal, uniform

__all__ = [
    "FAMILIES",
    "Beta",
    "Binary",
    "Cauchy",
    "ErdosRenyi",
    "Exponential",
    "Family",
    "KaimingNormal",
    "KaimingUniform",
    "Laplace",
    "Mixture",
    "Normal",
    "Orthogonal",
    "Quantized",
    "SparseNormal",
    "SpectralRadius",
    "StudentT",
    "TruncatedNormal",
    "Uniform",
    "XavierNormal",
    "XavierUniform",
    "connectivity_mask",
    "get_family",
    "make_weight",
]

# Φ(−2) and Φ(2) − Φ(−2), as literals so that no platform erf enters the bits.
_PHI_MINUS_2 = 0.022750131948179195
_PHI_2_MASS = 0.9544997361036416


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


@dataclass(frozen=True)
class Normal(Family):
    """N(0, scale²); ``scale=None`` means 1/√fan_in."""

    name: ClassVar[str] = "normal"
    scale: float | None = None

    def _validate(self) -> None:
        _check_positive(self.name, "scale", self.scale)

    def _draw(self, key, fan_in, fan_out):
        return self._sigma(self.scale, fan_in) * standard_normal(key)


@dataclass(frozen=True)
class TruncatedNormal(Family):
    """N(0, σ²) restricted to ±2σ, by inverse CDF."""

    name: ClassVar[str] = "truncated_normal"
    scale: float | None = None

    def _validate(self) -> None:
        _check_positive(self.name, "scale", self.scale)

    def _draw(self, key, fan_in, fan_out):
        p = _PHI_MINUS_2 + uniform(key) * _PHI_2_MASS
        return self._sigma(self.scale, fan_in) * exactmath.ndtri(p)


@dataclass(frozen=True)
class Uniform(Family):
    """U(−a, a)."""

    name: ClassVar[str] = "uniform"
    a: float = 0.1

    def _validate(self) -> None:
        _check_positive(self.name, "a", self.a, allow_none=False)

    def _draw(self, key, fan_in, fan_out):
        return self.a * (2.0 * uniform(key) - 1.0)


@dataclass(frozen=True)
class Orthogonal(Family):
    """Haar-distributed orthogonal rows or columns, times ``gain``.

    QR of a seeded Gaussian matrix with the signs of R's diagonal folded into Q
    (Mezzadri 2007). Bits depend on LAPACK; values agree to about 1e-12.
    """

    name: ClassVar[str] = "orthogonal"
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
class KaimingNormal(Family):
    """N(0, 2/fan_in) (He et al. 2015, ReLU gain)."""

    name: ClassVar[str] = "kaiming_normal"

    def _draw(self, key, fan_in, fan_out):
        return math.sqrt(2.0 / max(fan_in, 1)) * standard_normal(key)


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

    def _draw(self, key, fan_in, fan_out):
        bound = math.sqrt(6.0 / ((1.0 + self.a**2) * max(fan_in, 1)))
        return bound * (2.0 * uniform(key) - 1.0)


@dataclass(frozen=True)
class XavierNormal(Family):
    """N(0, 2/(fan_in + fan_out)) (Glorot & Bengio 2010)."""

    name: ClassVar[str] = "xavier_normal"

    def _draw(self, key, fan_in, fan_out):
        return math.sqrt(2.0 / max(fan_in + fan_out, 1)) * standard_normal(key)


@dataclass(frozen=True)
class XavierUniform(Family):
    """U(±√(6/(fan_in + fan_out)))."""

    name: ClassVar[str] = "xavier_uniform"

    def _draw(self, key, fan_in, fan_out):
        bound = math.sqrt(6.0 / max(fan_in + fan_out, 1))
        return bound * (2.0 * uniform(key) - 1.0)


@dataclass(frozen=True)
class SpectralRadius(Family):
    """N(0, 1) rescaled so that the spectral radius is ``radius``.

    For a non-square shape the spectral norm (largest singular value) is used.
    The rescaling needs an eigensolver; its result is exact to about 1e-12.
    """

    name: ClassVar[str] = "spectral_radius"
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


@dataclass(frozen=True)
class Cauchy(Family):
    """Cauchy(0, scale) clipped to ±clip·scale; drawn as a ratio of two normals."""

    name: ClassVar[str] = "cauchy"
    scale: float = 0.1
    clip: float = 10.0

    def _validate(self) -> None:
        _check_positive(self.name, "scale", self.scale, allow_none=False)
        _check_positive(self.name, "clip", self.clip, allow_none=False)

    def _draw(self, key, fan_in, fan_out):
        ratio = standard_normal(key, stream=0) / standard_normal(key, stream=1)
        return self.scale * np.clip(ratio, -self.clip, self.clip)


@dataclass(frozen=True)
class Laplace(Family):
    """Laplace(0, b), by inverse CDF."""

    name: ClassVar[str] = "laplace"
    b: float = 0.1

    def _validate(self) -> None:
        _check_positive(self.name, "b", self.b, allow_none=False)

    def _draw(self, key, fan_in, fan_out):
        centred = uniform(key) - 0.5
        magnitude = -exactmath.log(1.0 - 2.0 * np.abs(centred))
        return self.b * np.sign(centred) * magnitude


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

    def _draw(self, key, fan_in, fan_out):
        chi2 = np.zeros(key.size)
        for stream in range(1, self.nu + 1):
            chi2 += standard_normal(key, stream=stream) ** 2
        t = standard_normal(key, stream=0) / np.sqrt(chi2 / self.nu)
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

    def _draw(self, key, fan_in, fan_out):
        first = uniform(key, stream=1) < self.weight
        return np.where(first, self.scale1, self.scale2) * standard_normal(key, stream=0)


@dataclass(frozen=True)
class SparseNormal(Family):
    """N(0, σ²) with each entry zero with probability ``zero_fraction``."""

    name: ClassVar[str] = "sparse_normal"
    zero_fraction: float = 0.2
    scale: float | None = None

    def _validate(self) -> None:
        _check_probability(self.name, "zero_fraction", self.zero_fraction)
        _check_positive(self.name, "scale", self.scale)

    def _draw(self, key, fan_in, fan_out):
        keep = uniform(key, stream=1) >= self.zero_fraction
        return np.where(keep, self._sigma(self.scale, fan_in) * standard_normal(key), 0.0)


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

    def _draw(self, key, fan_in, fan_out):
        present = uniform(key, stream=1) < self.p
        std = self._sigma(self.scale, fan_in) / math.sqrt(self.p)
        return np.where(present, std * standard_normal(key), 0.0)


@dataclass(frozen=True)
class Beta(Family):
    """Beta(2, 2) mapped affinely to ±``half_width``; Beta(2, 2) is the median of 3 uniforms."""

    name: ClassVar[str] = "beta"
    half_width: float = 0.1

    def _validate(self) -> None:
        _check_positive(self.name, "half_width", self.half_width, allow_none=False)

    def _draw(self, key, fan_in, fan_out):
        draws = np.stack([uniform(key, stream=s) for s in range(3)])
        return self.half_width * (2.0 * np.median(draws, axis=0) - 1.0)


@dataclass(frozen=True)
class Exponential(Family):
    """Exp(rate) − 1/rate: a centred exponential."""

    name: ClassVar[str] = "exponential"
    rate: float = 10.0

    def _validate(self) -> None:
        _check_positive(self.name, "rate", self.rate, allow_none=False)

    def _draw(self, key, fan_in, fan_out):
        return (-exactmath.log(uniform(key)) - 1.0) / self.rate


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

    def _draw(self, key, fan_in, fan_out):
        levels = 2**self.bits
        step = 2.0 * self.clip / levels
        index = np.floor((standard_normal(key) + self.clip) / step)
        index = np.clip(index, 0, levels - 1)
        return self._sigma(self.scale, fan_in) * (-self.clip + (index + 0.5) * step)


@dataclass(frozen=True)
class Binary(Family):
    """σ·sign(N(0, 1)): ±σ with equal probability."""

    name: ClassVar[str] = "binary"
    scale: float | None = None

    def _validate(self) -> None:
        _check_positive(self.name, "scale", self.scale)

    def _draw(self, key, fan_in, fan_out):
        return self._sigma(self.scale, fan_in) * np.where(uniform(key) < 0.5, -1.0, 1.0)


#: The 22 named families of the paper, each a default-configured instance.
FAMILIES: dict[str, Family] = {
    "normal": Normal(),
    "truncated_normal": TruncatedNormal(),
    "uniform": Uniform(),
    "orthogonal": Orthogonal(),
    "kaiming_normal": KaimingNormal(),
    "kaiming_uniform": KaimingUniform(),
    "xavier_normal": XavierNormal(),
    "xavier_uniform": XavierUniform(),
    "spectral_radius": SpectralRadius(),
    "cauchy": Cauchy(),
    "laplace": Laplace(),
    "student_t": StudentT(),
    "mixture": Mixture(),
    "sparse_normal": SparseNormal(),
    "erdos_renyi": ErdosRenyi(),
    "beta": Beta(),
    "exponential": Exponential(),
    "quant16": Quantized(bits=16),
    "quant8": Quantized(bits=8),
    "quant4": Quantized(bits=4),
    "quant2": Quantized(bits=2),
    "binary": Binary(),
}

_CLASSES: dict[str, type[Family]] = {
    cls.name: cls
    for cls in (Normal, TruncatedNormal, Uniform, Orthogonal, KaimingNormal, KaimingUniform,
                XavierNormal, XavierUniform, SpectralRadius, Cauchy, Laplace, StudentT,
                Mixture, SparseNormal, ErdosRenyi, Beta, Exponential, Quantized, Binary)
}


def get_family(spec: str | Family | Mapping[str, Any], parameter: str = "family") -> Family:
    """Resolve a family name, object or JSON spec to a :class:`Family`.

    Parameters
    ----------
    spec : str, Family or mapping
        ``"cauchy"``, ``Cauchy(scale=0.2)`` or ``{"name": "cauchy", "scale": 0.2}``.
    parameter : str
        Name used in error messages (e.g. ``"W"``).

    Raises
    ------
    ParameterError
        For an unknown name or a malformed spec.
    """
    if isinstance(spec, Family):
        return spec
    if isinstance(spec, str):
        if spec in FAMILIES:
            return FAMILIES[spec]
        raise ParameterError(
            f"The '{parameter}' parameter must be a known weight family, one of "
            f"{', '.join(sorted(FAMILIES))}. Got {spec!r}."
        )
    if isinstance(spec, Mapping):
        options = dict(spec)
        name = options.pop("name", None)
        if name not in _CLASSES:
            raise ParameterError(
                f"The '{parameter}' parameter spec must name a family class, one of "
                f"{', '.join(sorted(_CLASSES))}. Got {format_value(name)}."
            )
        try:
            return _CLASSES[name](**options)
        except TypeError as error:
            raise ParameterError(
                f"The '{parameter}' parameter spec {dict(spec)!r} has unknown fields: {error}."
            ) from None
    raise ParameterError(
        f"The '{parameter}' parameter must be a family name, a Family or a spec mapping. "
        f"Got {format_value(spec)}."
    )


def _check_connectivity(connectivity: float) -> None:
    if not _is_finite_real(connectivity) or not 0 < connectivity <= 1:
        raise ParameterError(
            f"The 'connectivity' parameter must be a float in (0, 1]. "
            f"Got {format_value(connectivity)}."
        )


def connectivity_mask(node: SeedKey, role: str, shape: tuple[int, ...],
                      connectivity: float) -> np.ndarray | None:
    """Seeded Bernoulli(connectivity) mask, or ``None`` for full connectivity.

    The mask has its own key (role ``ROLE:mask``), so it does not depend on the family.

    Raises
    ------
    ParameterError
        If ``connectivity`` is not a float in (0, 1].
    """
    _check_connectivity(connectivity)
    if connectivity >= 1.0:
        return None
    key = node.tensor(f"{role}:mask", shape, {"connectivity": float(connectivity)})
    return (uniform(key) < connectivity).reshape(shape)


def make_weight(family: str | Family | Mapping[str, Any], node: SeedKey, role: str,
                shape: tuple[int, ...], *, fan_in: int, fan_out: int,
                connectivity: float = 1.0) -> np.ndarray:
    """Generate one seeded frozen weight as float64.

    Parameters
    ----------
    family : str, Family or mapping
        The distribution.
    node : SeedKey
        The owning node's root seed and path.
    role : str
        The tensor's role in the node.
    shape : tuple of int
    fan_in, fan_out : int
        Used by the family's default scale.
    connectivity : float in (0, 1]
        Fraction of entries kept by an independent seeded mask.

    Returns
    -------
    ndarray of float64, shape ``shape``

    Raises
    ------
    ParameterError
        For an unknown family, a bad family parameter or ``connectivity`` outside (0, 1].
    """
    _check_connectivity(connectivity)
    resolved = get_family(family, role)
    key = node.tensor(role, shape, resolved.spec())
    values = resolved.sample(key, fan_in, fan_out)
    mask = connectivity_mask(node, role, shape, connectivity)
    return values if mask is None else np.where(mask, values, 0.0)
