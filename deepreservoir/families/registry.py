"""The 22 named families and :func:`get_family`, which resolves names, objects and specs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deepreservoir.errors import ParameterError, format_value
from deepreservoir.families.base import Family
from deepreservoir.families.continuous import (
    Beta,
    Cauchy,
    Exponential,
    KaimingNormal,
    KaimingUniform,
    Laplace,
    Mixture,
    Normal,
    StudentT,
    TruncatedNormal,
    Uniform,
    XavierNormal,
    XavierUniform,
)
from deepreservoir.families.discrete import Binary, Quantized
from deepreservoir.families.linalg import Orthogonal, SpectralRadius
from deepreservoir.families.sparse import ErdosRenyi, SparseNormal

__all__ = ["FAMILIES", "get_family"]


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
