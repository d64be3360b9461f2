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

from deepreservoir.families import registry as _registry
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
from deepreservoir.families.registry import get_family
from deepreservoir.families.sparse import ErdosRenyi, SparseNormal
from deepreservoir.families.weights import connectivity_mask, make_weight

#: The 22 named families of the paper, each a default-configured instance.
FAMILIES: dict[str, Family] = _registry.FAMILIES  # the same dict; assigned here for its API doc

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
