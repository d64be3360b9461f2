"""Spectral radius and spectral norm of frozen matrices, accurate and cached.

The spectral radius sets the scale of a reservoir, so it must be right.
ARPACK asked for a single eigenvalue (``k=1``) can converge to the wrong one on
random matrices, whose eigenvalues crowd the edge of a disk: reservoirpy's
default path misses by up to 1.6 %. Here matrices up to ``DENSE_LIMIT`` use
LAPACK's dense ``eigvals`` (exact to rounding). Larger ones use ARPACK with a
block of ``k = 32`` eigenvalues, run from two seeded starting vectors, and the
larger of the two answers is kept; both runs' spread is reported as the error
estimate by :func:`spectral_radius_with_error`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from deepreservoir.errors import DataError
from deepreservoir.seeding import fingerprint

__all__ = [
    "DENSE_LIMIT",
    "spectral_norm",
    "spectral_radius",
    "spectral_radius_with_error",
]

DENSE_LIMIT = 3000
_ARPACK_K = 32


def _check_finite(array: np.ndarray, function: str) -> None:
    finite = np.isfinite(array)
    if not np.all(finite):
        raise DataError(
            f"The 'matrix' parameter of {function} must be finite, but it contains NaN or Inf "
            f"values ({int(finite.size - np.count_nonzero(finite))} of {finite.size} entries, "
            f"shape {array.shape})."
        )


def _as_square(matrix: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise DataError(
            f"The 'matrix' parameter of {what} must be a square matrix. "
            f"Got shape {array.shape}."
        )
    _check_finite(array, what)
    return array


def _arpack_radius(array: np.ndarray, start_seed: int) -> float:
    n = array.shape[0]
    k = min(_ARPACK_K, n - 2)
    operator = scipy.sparse.csr_matrix(array) if np.mean(array != 0) < 0.3 else array
    start = np.random.default_rng(start_seed).standard_normal(n)
    values = scipy.sparse.linalg.eigs(operator, k=k, which="LM", v0=start,
                                      ncv=min(n - 1, 2 * k + 16), tol=1e-12,
                                      return_eigenvectors=False, maxiter=50 * n)
    return float(np.max(np.abs(values)))


@lru_cache(maxsize=256)
def _cached_radius(digest: str, n: int, data: bytes) -> tuple[float, float]:
    array = np.frombuffer(data, dtype=np.float64).reshape(n, n)
    if n <= DENSE_LIMIT:
        return float(np.max(np.abs(scipy.linalg.eigvals(array)))), 0.0
    first, second = _arpack_radius(array, 0), _arpack_radius(array, 1)
    return max(first, second), abs(first - second)


def spectral_radius_with_error(matrix: np.ndarray) -> tuple[float, float]:
    """Spectral radius and an estimate of its absolute error.

    Parameters
    ----------
    matrix : array_like, shape (N, N)

    Returns
    -------
    radius : float
        ``max |λ_i|``.
    error : float
        0 for the dense path (exact to rounding); otherwise the disagreement of
        two ARPACK runs from different starting vectors.
    """
    array = np.ascontiguousarray(_as_square(matrix, "spectral_radius"))
    if array.shape[0] == 0:
        return 0.0, 0.0
    if array.shape[0] <= 2:
        return float(np.max(np.abs(np.linalg.eigvals(array)))), 0.0
    return _cached_radius(fingerprint(array), array.shape[0], array.tobytes())


def spectral_radius(matrix: np.ndarray) -> float:
    """Spectral radius ``ρ(W) = max_i |λ_i(W)|`` of a square float matrix.

    Parameters
    ----------
    matrix : array_like, shape (N, N)

    Returns
    -------
    float

    Raises
    ------
    DataError
        If ``matrix`` is not square or holds NaN or Inf.

    Examples
    --------
    >>> import numpy as np
    >>> spectral_radius(np.array([[0.0, 2.0], [0.5, 0.0]]))
    1.0
    """
    return spectral_radius_with_error(matrix)[0]


def spectral_norm(matrix: np.ndarray) -> float:
    """Largest singular value ``σ_max(W)`` of a 2-D float matrix.

    Parameters
    ----------
    matrix : array_like, shape (M, N)

    Returns
    -------
    float

    Raises
    ------
    DataError
        If ``matrix`` is not 2-D or holds NaN or Inf.
    """
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2:
        raise DataError(
            f"The 'matrix' parameter of spectral_norm must be a 2-D matrix. "
            f"Got shape {array.shape}."
        )
    if array.size == 0:
        return 0.0
    _check_finite(array, "spectral_norm")
    return float(scipy.linalg.svdvals(array)[0])
