"""The portable float64 math of :mod:`deepreservoir.exactmath`, on torch tensors.

Same formulas, same constants, same order of operations as the numpy module,
so the bits are the same on numpy, torch CPU and torch CUDA. Only correctly
rounded IEEE-754 operations are used: ``+ − ×`` (each a separate eager kernel,
never fused into an FMA), ``÷`` between two tensors, ``sqrt`` and the exact
``frexp``. A division by a Python number is never written: on CUDA torch turns
``tensor / scalar`` into a multiplication by the rounded reciprocal, which can
differ in the last bit. Additions never use ``alpha`` other than 1.

``sqrt`` is the one exception to "any torch kernel": torch's CPU ``sqrt`` of
float64 (the vectorised MKL/Sleef kernel) is *not* correctly rounded; about 1 %
of values differ from the IEEE result in the last bit (measured with torch
2.13). :func:`sqrt` therefore takes numpy's ``sqrt`` (the hardware
instruction, correctly rounded) on CPU and torch's on CUDA, where float64
``sqrt`` is IEEE round-to-nearest (0 ulp in the CUDA math documentation).
"""

from __future__ import annotations

import numpy as np
import torch

from deepreservoir import exactmath
from deepreservoir.exactmath import (
    _A,
    _ATANH_TERMS,
    _B,
    _C,
    _D,
    _E,
    _F,
    _LN2_HI,
    _LN2_LO,
    _SQRT_HALF,
)

__all__ = ["log", "log_kernels", "ndtri", "ndtri_kernels", "sqrt"]


def sqrt(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root of a float64 tensor (see the module docstring).

    Parameters
    ----------
    x : Tensor of float64, any shape, any device

    Returns
    -------
    Tensor of float64, same shape and device
    """
    if x.device.type == "cuda":
        return torch.sqrt(x)
    host = x.detach().to("cpu", torch.float64).contiguous().numpy()
    return torch.from_numpy(np.sqrt(host)).to(x.device)


def _on_host(function, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(function(x.detach().contiguous().numpy()))


def log(x: torch.Tensor) -> torch.Tensor:
    """Natural logarithm of positive finite float64 values, bit-equal to ``exactmath.log``.

    On CPU this is numpy's :func:`deepreservoir.exactmath.log` (faster there);
    elsewhere :func:`log_kernels`, the same formula in torch kernels.

    Parameters
    ----------
    x : Tensor of float64, any shape, any device
        Positive finite values.

    Returns
    -------
    Tensor of float64, same shape and device
    """
    if x.device.type == "cpu":
        return _on_host(exactmath.log, x)
    return log_kernels(x)


def log_kernels(x: torch.Tensor) -> torch.Tensor:
    """:func:`log` computed with torch kernels on ``x``'s device (any device).

    Parameters
    ----------
    x : Tensor of float64, any shape, any device
        Positive finite values.

    Returns
    -------
    Tensor of float64, same shape and device
    """
    mantissa, exponent = torch.frexp(x)
    low = mantissa < _SQRT_HALF
    mantissa = torch.where(low, mantissa * 2.0, mantissa)
    exponent = (exponent.to(torch.int64) - low.to(torch.int64)).to(torch.float64)
    s = (mantissa - 1.0) / (mantissa + 1.0)
    s2 = s * s
    series = torch.full_like(s, _ATANH_TERMS[-1])
    for coefficient in reversed(_ATANH_TERMS[:-1]):
        series = series * s2 + coefficient
    log_mantissa = 2.0 * s * series
    return exponent * _LN2_HI + (log_mantissa + exponent * _LN2_LO)


def _poly(coefficients: tuple, r: torch.Tensor) -> torch.Tensor:
    result = torch.full_like(r, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        result = result * r + c
    return result


def ndtri(p: torch.Tensor) -> torch.Tensor:
    """Standard normal quantile, bit-equal to :func:`deepreservoir.exactmath.ndtri`.

    On CPU this is numpy's :func:`deepreservoir.exactmath.ndtri` (faster there);
    elsewhere :func:`ndtri_kernels`, the same formula in torch kernels.

    Parameters
    ----------
    p : Tensor of float64, any shape, any device
        Probabilities strictly between 0 and 1.

    Returns
    -------
    Tensor of float64, same shape and device
    """
    if p.device.type == "cpu":
        return _on_host(exactmath.ndtri, p)
    return ndtri_kernels(p)


def ndtri_kernels(p: torch.Tensor) -> torch.Tensor:
    """:func:`ndtri` computed with torch kernels on ``p``'s device (any device).

    Parameters
    ----------
    p : Tensor of float64, any shape, any device
        Probabilities strictly between 0 and 1.

    Returns
    -------
    Tensor of float64, same shape and device
    """
    q = p - 0.5
    central = q.abs() <= 0.425
    r_central = 0.180625 - q * q
    z_central = q * _poly(_A, r_central) / _poly(_B, r_central)
    tail = torch.minimum(p, 1.0 - p)
    tail = torch.where(central, torch.full_like(tail, 0.5), tail)  # discarded branch
    r = sqrt(-log_kernels(tail))
    near = r <= 5.0
    r_near = r - 1.6
    r_far = r - 5.0
    z_tail = torch.where(near, _poly(_C, r_near) / _poly(_D, r_near),
                         _poly(_E, r_far) / _poly(_F, r_far))
    z_tail = torch.where(q < 0.0, -z_tail, z_tail)
    return torch.where(central, z_central, z_tail)
