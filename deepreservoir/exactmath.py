"""Portable float64 math built only from correctly rounded IEEE-754 operations.

Seeded weights must be the same bits on every machine and every year. The
platform's ``log`` and ``erfinv`` are allowed to differ in the last bit between
libm and SIMD implementations, so the transforms used by the weight generators
are written here with ``+ - * /``, ``sqrt`` and the exact ``frexp``/``ldexp``
only. Each numpy ufunc call rounds once, and numpy never fuses them into FMAs,
so the results below are bit-reproducible wherever numpy follows IEEE-754.

Accuracy (checked in the tests): :func:`log` within 2 ulp of ``numpy.log``;
:func:`ndtri` within 1e-14 relative of ``scipy.special.ndtri`` on (0, 1).
"""

from __future__ import annotations

import numpy as np

__all__ = ["log", "ndtri"]

_LN2_HI = 6.93147180369123816490e-01  # upper bits of ln 2, exact in binary
_LN2_LO = 1.90821492927058770002e-10  # ln 2 - _LN2_HI
_SQRT_HALF = 0.70710678118654752440

# 2 * atanh(s) = 2 * sum_k s^(2k+1) / (2k+1); with |s| <= 0.1716 fifteen terms reach 1e-18.
_ATANH_TERMS = tuple(1.0 / (2 * k + 1) for k in range(15))


def log(x: np.ndarray) -> np.ndarray:
    """Natural logarithm of positive finite float64 values, bit-reproducible.

    Parameters
    ----------
    x : ndarray of float64, any shape
        Positive finite values.

    Returns
    -------
    ndarray of float64, same shape
        ``log(x)``, computed as ``e·ln2 + 2·atanh((m−1)/(m+1))`` with
        ``x = m·2^e`` and ``m ∈ [√½, √2)``.
    """
    x = np.asarray(x, dtype=np.float64)
    mantissa, exponent = np.frexp(x)
    low = mantissa < _SQRT_HALF
    mantissa = np.where(low, mantissa * 2.0, mantissa)
    exponent = (exponent - low).astype(np.float64)
    s = (mantissa - 1.0) / (mantissa + 1.0)
    s2 = s * s
    series = np.full_like(s, _ATANH_TERMS[-1])
    for coefficient in reversed(_ATANH_TERMS[:-1]):
        series = series * s2 + coefficient
    log_mantissa = 2.0 * s * series
    return exponent * _LN2_HI + (log_mantissa + exponent * _LN2_LO)


# Wichura (1988), algorithm AS 241 (PPND16): rational approximations of the
# standard normal quantile with relative error about 1e-16.
_A = (3.387132872796366608, 133.14166789178437745, 1971.5909503065514427,
      13731.693765509461125, 45921.953931549871457, 67265.770927008700853,
      33430.575583588128105, 2509.0809287301226727)
_B = (1.0, 42.313330701600911252, 687.1870074920579083, 5394.1960214247511077,
      21213.794301586595867, 39307.89580009271061, 28729.085735721942674,
      5226.495278852545925)
_C = (1.42343711074968357734, 4.6303378461565452959, 5.7694972214606914055,
      3.64784832476320460504, 1.27045825245236838258, 0.24178072517745061177,
      0.0227238449892691845833, 7.7454501427834140764e-4)
_D = (1.0, 2.05319162663775882187, 1.6763848301838038494, 0.68976733498510000455,
      0.14810397642748007459, 0.0151986665636164571966, 5.475938084995344946e-4,
      1.05075007164441684324e-9)
_E = (6.6579046435011037772, 5.4637849111641143699, 1.7848265399172913358,
      0.29656057182850489123, 0.026532189526576123093, 0.0012426609473880784386,
      2.71155556874348757815e-5, 2.01033439929228813265e-7)
_F = (1.0, 0.59983220655588793769, 0.13692988092273580531, 0.0148753612908506148525,
      7.868691311456132591e-4, 1.8463183175100546818e-5, 1.4215117583164458887e-7,
      2.04426310338993978564e-15)


def _poly(coefficients: tuple, r: np.ndarray) -> np.ndarray:
    result = np.full_like(r, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        result = result * r + c
    return result


def ndtri(p: np.ndarray) -> np.ndarray:
    """Standard normal quantile Φ⁻¹(p) for p in the open interval (0, 1).

    Parameters
    ----------
    p : ndarray of float64, any shape
        Probabilities strictly between 0 and 1.

    Returns
    -------
    ndarray of float64, same shape
        ``z`` with ``Φ(z) = p``, by Wichura's AS 241 with the portable :func:`log`.
    """
    p = np.asarray(p, dtype=np.float64)
    flat = p.reshape(-1)
    out = np.empty_like(flat)
    q = flat - 0.5
    central = np.abs(q) <= 0.425
    # Each branch is evaluated on its own elements only; every operation is
    # elementwise, so the bits equal those of evaluating both branches everywhere.
    q_central = q[central]
    r_central = 0.180625 - q_central * q_central
    out[central] = q_central * _poly(_A, r_central) / _poly(_B, r_central)
    outer = ~central
    p_tail, q_tail = flat[outer], q[outer]
    r = np.sqrt(-log(np.minimum(p_tail, 1.0 - p_tail)))
    near = r <= 5.0
    z_tail = np.empty_like(r)
    r_near = r[near] - 1.6
    z_tail[near] = _poly(_C, r_near) / _poly(_D, r_near)
    far = ~near
    r_far = r[far] - 5.0
    z_tail[far] = _poly(_E, r_far) / _poly(_F, r_far)
    out[outer] = np.where(q_tail < 0.0, -z_tail, z_tail)
    return out.reshape(p.shape)
