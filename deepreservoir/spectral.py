r"""The spectral engine: spectral radius and singular values of frozen matrices.

Every spectral radius and singular value in the package is computed here: by
:class:`~deepreservoir.Reservoir` when it scales ``W`` to a target radius or
norm, by the ``spectral_radius`` weight family, and by
:mod:`deepreservoir.analysis.spectra`. The two entry points are
:func:`radius` and :func:`singular_values`; :func:`spectral_radius`,
:func:`spectral_radius_with_error` and :func:`spectral_norm` are thin wrappers.

Methods and their errors
------------------------
Which method ``"auto"`` takes: singular values are dense up to
``dense_limit = DENSE_LIMIT = 3000
#: Below ``ONE_RUN_FLOOR·‖W‖_F`` a one-run ARPACK radius is not trusted (see :func:`radius`).
ONE_RUN_FLOOR = 1e-4`` and ARPACK above. For the radius, ARPACK
is always taken above ``dense_limit``; at or below it, the method predicted to
be cheaper by a measured cost model (:func:`radius_costs`): dense LAPACK costs
O(N³) whatever the matrix, ARPACK O(N·nnz) steps, so a sparse reservoir matrix
(e.g. N = 1000 at 10 % density: 0.9 s dense against 0.45 s ARPACK on one core)
takes ARPACK and a small or dense one (N ≤ ~700 at 10 % density, or any
density ≥ 30 % up to N = 3000) stays dense. Both paths agree with each other to
about 1e-14 relative on such matrices (tests: 1e-10), and each reports its own
error bound below.

``"dense"``: LAPACK ``scipy.linalg.eigvals`` / ``scipy.linalg.svdvals`` on a
C-contiguous float64 copy of the matrix (exact to rounding). The reported error is the rounding
scale ``n·eps·‖W‖_F`` for the radius and ``max(M, N)·eps·σ_max`` for singular
values.

``"arpack"``: ARPACK with a block of
``k = ARPACK_K = 16`` eigenvalues (asked for a single one, ARPACK can converge
to the wrong eigenvalue on random matrices, whose eigenvalues crowd the edge of
a disk: ``k = 1`` misses by up to 1.6 %), at ``tol = ARPACK_TOL = 1e-12``, run
once on ``W`` and once on ``Wᵀ`` from two seeded start vectors; the larger
modulus is kept. The reported error of the radius is
``max(κ·‖W x − λ x‖, |ρ(W) − ρ(Wᵀ)|)``: the first-order perturbation bound of
the top Ritz pair (residual times the eigenvalue condition number
``κ = 1/|yᵀx|``, ``y`` the left eigenvector found on ``Wᵀ``), together with the
disagreement of the two independent runs. ``radius(..., error_bound=False)`` runs
ARPACK once, on ``W`` only and without eigenvectors, and reports the requested
tolerance ``ARPACK_TOL·ρ`` (an estimate, not a bound; a result below
``ONE_RUN_FLOOR·‖W‖_F``, as ARPACK reports for a nilpotent ``W``, is redone by
the bounded path):
that is how a :class:`~deepreservoir.Reservoir` scales its ``W`` at build, about
twice as fast, and agrees with the dense radius to 1e-10 in the tests.

Singular values come from ARPACK ``svds`` (block of at least 16) and the error
of ``σ_max`` is the residual ``sqrt(‖W v − σ u‖² + ‖Wᵀ u − σ v‖²)``, a rigorous
bound on the distance from ``σ`` to a true singular value.

Matrices of size 3 or less are always solved densely (ARPACK needs ``k < n − 1``).

Cache
-----
Results are cached in a bounded LRU (``CACHE_SIZE = 256`` entries) keyed on a
blake2b digest of the matrix bytes, its shape, the method used and the number
of singular values. Entries hold Python floats and strings only, never the
matrix, so a deleted matrix is freed. :func:`cache_info` and
:func:`clear_cache` inspect and empty it.

scipy is imported on first use, so importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from deepreservoir.errors import DataError, ParameterError, format_value

__all__ = [
    "ARPACK_K",
    "ARPACK_TOL",
    "CACHE_SIZE",
    "DENSE_LIMIT",
    "METHODS",
    "ONE_RUN_FLOOR",
    "cache_info",
    "clear_cache",
    "radius",
    "radius_costs",
    "singular_values",
    "spectral_norm",
    "spectral_radius",
    "spectral_radius_with_error",
]

DENSE_LIMIT = 3000
#: Below ``ONE_RUN_FLOOR·‖W‖_F`` a one-run ARPACK radius is not trusted (see :func:`radius`).
ONE_RUN_FLOOR = 1e-4
METHODS = ("auto", "dense", "arpack")
ARPACK_K = 16
ARPACK_TOL = 1e-12
CACHE_SIZE = 256
#: Cost model of :func:`radius_costs` (seconds, one core; see its docstring).
DENSE_EIG_COST = 6e-10
CSR_ENTRY_COST = 1.1e-9
DENSE_ENTRY_COST = 3e-10
BASIS_COST = 1.7e-9

_EPS = float(np.finfo(np.float64).eps)

# ------------------------------------------------------------------ the cache
# key -> result; results are tuples of Python floats and strings (no arrays)
_cache: OrderedDict[tuple, tuple] = OrderedDict()
_cache_lock = threading.Lock()
_cache_stats = {"hits": 0, "misses": 0}


def _digest(array: np.ndarray) -> str:
    """blake2b of a C-contiguous float64 array's bytes (hashed in place, no copy)."""
    return hashlib.blake2b(memoryview(array).cast("B"), digest_size=16).hexdigest()


def _cache_get(key: tuple) -> tuple | None:
    with _cache_lock:
        value = _cache.get(key)
        if value is None:
            _cache_stats["misses"] += 1
            return None
        _cache.move_to_end(key)
        _cache_stats["hits"] += 1
        return value


def _cache_put(key: tuple, value: tuple) -> None:
    with _cache_lock:
        _cache[key] = value
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)


def clear_cache() -> None:
    """Empty the result cache and reset its hit and miss counters."""
    with _cache_lock:
        _cache.clear()
        _cache_stats["hits"] = _cache_stats["misses"] = 0


def cache_info() -> dict[str, int]:
    """Hits, misses, current size and maximum size of the result cache.

    Returns
    -------
    dict
        Keys ``"hits"``, ``"misses"``, ``"size"``, ``"maxsize"``.
    """
    with _cache_lock:
        return {**_cache_stats, "size": len(_cache), "maxsize": CACHE_SIZE}


# ------------------------------------------------------------------ validation
def _check_finite(array: np.ndarray, owner: str) -> None:
    finite = np.isfinite(array)
    if not np.all(finite):
        raise DataError(
            f"The 'matrix' parameter of {owner} must be finite, but it contains NaN or Inf "
            f"values ({int(finite.size - np.count_nonzero(finite))} of {finite.size} entries, "
            f"shape {array.shape})."
        )


def _as_square(matrix: Any, owner: str) -> np.ndarray:
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise DataError(
            f"The 'matrix' parameter of {owner} must be a square matrix. "
            f"Got shape {array.shape}."
        )
    _check_finite(array, owner)
    return np.ascontiguousarray(array)


def _as_matrix(matrix: Any, owner: str) -> np.ndarray:
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2:
        raise DataError(
            f"The 'matrix' parameter of {owner} must be a 2-D matrix. "
            f"Got shape {array.shape}."
        )
    if array.size:
        _check_finite(array, owner)
    return np.ascontiguousarray(array)


def _check_options(method: Any, dense_limit: Any, owner: str) -> tuple[str, int]:
    if not isinstance(method, str) or method not in METHODS:
        raise ParameterError(
            f"The 'method' parameter of {owner} must be one of "
            f"{', '.join(map(repr, METHODS))}. Got {format_value(method)}."
        )
    if dense_limit is None:
        return method, DENSE_LIMIT  # read at call time
    if isinstance(dense_limit, bool) or not isinstance(dense_limit, (int, np.integer)) \
            or dense_limit < 0:
        raise ParameterError(
            f"The 'dense_limit' parameter of {owner} must be an int >= 0 or None. "
            f"Got {format_value(dense_limit)}."
        )
    return method, int(dense_limit)


def _path(size: int, method: str, dense_limit: int) -> str:
    """"dense" or "arpack" for a matrix whose largest dimension is ``size``."""
    if method == "dense" or size <= 3:
        return "dense"
    if method == "arpack":
        return "arpack"
    return "dense" if size <= dense_limit else "arpack"


def radius_costs(array: np.ndarray, runs: int = 2) -> tuple[float, float]:
    """Predicted single-thread seconds of the dense and the ARPACK radius of ``array``.

    A model fitted to timings on one core (``benchmarks/bench_generation.py``):
    dense ``eigvals`` costs :data:`DENSE_EIG_COST`·N³; ARPACK costs two runs
    (W and Wᵀ) of about ``max(N, 300)`` Arnoldi steps, each one product with
    ``W`` (CSR below 30 % density: :data:`CSR_ENTRY_COST` per stored entry,
    else dense: :data:`DENSE_ENTRY_COST` per entry) and an orthogonalisation
    against ``ncv = 4·k`` basis vectors (:data:`BASIS_COST` per N·ncv).

    Parameters
    ----------
    array : ndarray of float64, shape (N, N)
    runs : {1, 2}
        ARPACK runs: 2 with the error bound (W and Wᵀ), 1 without.

    Returns
    -------
    dense, arpack : float
        Predicted seconds; only their ratio matters.
    """
    n = array.shape[0]
    nonzero = int(np.count_nonzero(array))
    product = (nonzero * CSR_ENTRY_COST if nonzero < 0.3 * n * n
               else n * n * DENSE_ENTRY_COST)
    ncv = min(n, 4 * min(ARPACK_K, max(n - 2, 1)))
    arpack = runs * max(n, 300) * (product + n * ncv * BASIS_COST)
    return DENSE_EIG_COST * n**3, arpack


# ------------------------------------------------------------------ solvers
def _operator(array: np.ndarray):
    """CSR when sparse enough for a faster matvec, else the dense array itself."""
    import scipy.sparse

    density = np.count_nonzero(array) / max(array.size, 1)
    return scipy.sparse.csr_matrix(array) if density < 0.3 else array


def _start_vector(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def _dense_radius(array: np.ndarray) -> tuple[float, float, str]:
    n = array.shape[0]
    if n <= 2:
        values = np.linalg.eigvals(array)
    else:
        import scipy.linalg

        values = scipy.linalg.eigvals(array)
    error = n * _EPS * float(np.linalg.norm(array))
    return float(np.max(np.abs(values))), error, "dense"


def _arpack_eigs(operator, n: int, seed: int, vectors: bool = True):
    """The ``ARPACK_K`` eigenpairs (or eigenvalues) of largest modulus, from a seeded start."""
    import scipy.sparse.linalg

    k = min(ARPACK_K, n - 2)
    return scipy.sparse.linalg.eigs(
        operator, k=k, which="LM", v0=_start_vector(n, seed), ncv=min(n, 4 * k),
        tol=ARPACK_TOL, maxiter=50 * n, return_eigenvectors=vectors)


def _arpack_radius(array: np.ndarray, bound: bool = True) -> tuple[float, float, str]:
    n = array.shape[0]
    operator = _operator(array)
    if not bound:  # one run, Ritz values only: the requested tolerance as the estimate
        top = float(np.max(np.abs(_arpack_eigs(operator, n, seed=0, vectors=False))))
        if top > ONE_RUN_FLOOR * float(np.linalg.norm(array)):
            return top, ARPACK_TOL * top, "arpack"
        # Far below ‖W‖_F (a random N × N matrix has ρ ≈ ‖W‖_F/√N): what ARPACK
        # reports for a nilpotent W (true radius 0, measured 1e-5). The bounded
        # paths decide.
        return _dense_radius(array) if n <= DENSE_LIMIT else _arpack_radius(array)
    values, vectors = _arpack_eigs(operator, n, seed=0)
    top = int(np.argmax(np.abs(values)))
    lam, x = values[top], vectors[:, top]
    x = x / np.linalg.norm(x)
    residual = float(np.linalg.norm(array @ x - lam * x))
    values_t, vectors_t = _arpack_eigs(operator.T, n, seed=1)
    # Wᵀ z = λ z  ⇔  zᵀ W = λ zᵀ: z is the (unconjugated) left eigenvector for λ
    z = vectors_t[:, int(np.argmin(np.abs(values_t - lam)))]
    z = z / np.linalg.norm(z)
    kappa = 1.0 / max(float(abs(np.dot(z, x))), float(np.finfo(np.float64).tiny))
    first, second = float(abs(lam)), float(np.max(np.abs(values_t)))
    return max(first, second), max(kappa * residual, abs(first - second)), "arpack"


def _dense_singular_values(array: np.ndarray) -> tuple[np.ndarray, float]:
    import scipy.linalg

    values = scipy.linalg.svdvals(array)
    return values, max(array.shape) * _EPS * float(values[0])


def _arpack_singular_values(array: np.ndarray, count: int) -> tuple[np.ndarray, float]:
    import scipy.sparse.linalg

    size = min(array.shape)
    u, s, vt = scipy.sparse.linalg.svds(
        _operator(array), k=count, which="LM", v0=_start_vector(size, 2), tol=ARPACK_TOL,
        maxiter=50 * size, solver="arpack")
    order = np.argsort(s)[::-1]
    u, s, vt = u[:, order], s[order], vt[order]
    top_u, top_v = u[:, 0], vt[0]
    residual = np.sqrt(np.linalg.norm(array @ top_v - s[0] * top_u) ** 2
                       + np.linalg.norm(array.T @ top_u - s[0] * top_v) ** 2)
    return np.ascontiguousarray(s), float(residual)


# ------------------------------------------------------------------ the engine
def _radius(array: np.ndarray, method: str, dense_limit: int,
            bound: bool = True) -> tuple[float, float, str]:
    """(ρ, error, method used) of a validated C-contiguous float64 square matrix."""
    n = array.shape[0]
    if n == 0:
        return 0.0, 0.0, "dense"
    path = _path(n, method, dense_limit)
    if method == "auto" and path == "dense" and n > 3:
        dense_cost, arpack_cost = radius_costs(array, runs=2 if bound else 1)
        path = "arpack" if arpack_cost < dense_cost else "dense"
    runs = "bounded" if bound or path == "dense" else "one run"
    key = ("radius", _digest(array), array.shape, path, runs)
    cached = _cache_get(key)
    if cached is not None:
        return cached
    result = _dense_radius(array) if path == "dense" else _arpack_radius(array, bound)
    _cache_put(key, result)
    return result


def radius(matrix: Any, method: str = "auto", dense_limit: int | None = None, *,
           error_bound: bool = True) -> tuple[float, float, str]:
    r"""Spectral radius :math:`\rho(W) = \max_i |\lambda_i(W)|`, its error and the method used.

    Parameters
    ----------
    matrix : array_like, shape (N, N)
        A finite square matrix; converted to float64.
    method : {"auto", "dense", "arpack"}
        ``"auto"`` is ARPACK above ``dense_limit`` and, up to it, the method
        that :func:`radius_costs` predicts to be faster (ARPACK for a large
        sparse matrix). Matrices with N <= 3 are always dense.
    dense_limit : int, optional
        Largest N that ``"auto"`` may solve densely (when cheaper); None means
        :data:`DENSE_LIMIT`
        (read at call time).
    error_bound : bool
        ARPACK only: run twice (on W and Wᵀ) for the error bound and the
        cross-check (the default), or once, about twice as fast, when only the
        radius is wanted (how :class:`~deepreservoir.Reservoir` scales ``W``).

    Returns
    -------
    radius : float
        ``max |λ_i|``.
    error : float
        Dense: the rounding scale ``N·eps·‖W‖_F``. ARPACK:
        ``max(κ·residual, |ρ(W) − ρ(Wᵀ)|)`` (see the module docstring); with
        ``error_bound=False``, ARPACK's requested tolerance ``ARPACK_TOL·ρ`` (an
        estimate, not a bound).
    method : str
        ``"dense"`` or ``"arpack"``, the method actually used.

    Raises
    ------
    DataError
        If ``matrix`` is not square or holds NaN or Inf.
    ParameterError
        If ``method`` or ``dense_limit`` is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> radius(np.diag([0.5, -2.0, 1.0]))[::2]
    (2.0, 'dense')
    """
    method, dense_limit = _check_options(method, dense_limit, "radius")
    return _radius(_as_square(matrix, "radius"), method, dense_limit, bool(error_bound))


def singular_values(matrix: Any, k: int | None = None, method: str = "auto",
                    dense_limit: int | None = None) -> tuple[np.ndarray, float, str]:
    r"""Largest singular values :math:`\sigma_1 \ge \sigma_2 \ge \dots`, with the error of σ₁.

    Parameters
    ----------
    matrix : array_like, shape (M, N)
        A finite 2-D matrix; converted to float64.
    k : int, optional
        Keep the ``k`` largest. When None, the dense path returns all
        ``min(M, N)`` values and ARPACK its block of ``ARPACK_K``. ARPACK
        returns at most ``min(M, N) − 1`` values.
    method : {"auto", "dense", "arpack"}
        ``"auto"`` is dense while ``max(M, N) <= dense_limit``, ARPACK above.
        Matrices with ``min(M, N) <= 3`` are always dense.
    dense_limit : int, optional
        None means :data:`DENSE_LIMIT` (read at call time).

    Returns
    -------
    values : ndarray of float64, shape (K,)
        Sorted descending; ``K = min(k, min(M, N))`` (see ``k``).
    error : float
        Error of ``values[0]``: dense, ``max(M, N)·eps·σ₁``; ARPACK, the residual
        ``sqrt(‖W v − σ u‖² + ‖Wᵀ u − σ v‖²)``. 0 for an empty matrix.
    method : str
        ``"dense"`` or ``"arpack"``.

    Raises
    ------
    DataError
        If ``matrix`` is not 2-D or holds NaN or Inf.
    ParameterError
        If ``k``, ``method`` or ``dense_limit`` is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> singular_values(np.diag([0.5, -3.0, 2.0]), k=2)[0]
    array([3., 2.])
    """
    owner = "singular_values"
    method, dense_limit = _check_options(method, dense_limit, owner)
    if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise ParameterError(
            f"The 'k' parameter of {owner} must be an int >= 1 or None. Got {format_value(k)}."
        )
    return _singular_values(_as_matrix(matrix, owner), None if k is None else int(k),
                            method, dense_limit)


def _singular_values(array: np.ndarray, k: int | None, method: str,
                     dense_limit: int) -> tuple[np.ndarray, float, str]:
    size = min(array.shape)
    if size == 0:
        return np.zeros(0), 0.0, "dense"
    path = "dense" if size <= 3 else _path(max(array.shape), method, dense_limit)
    if path == "dense":
        count = size if k is None else min(k, size)
    else:
        count = min(ARPACK_K if k is None else k, size - 1)
    key = ("singular_values", _digest(array), array.shape, path, count)
    cached = _cache_get(key)
    if cached is not None:
        return np.array(cached[0]), cached[1], cached[2]
    if path == "dense":
        values, error = _dense_singular_values(array)
    else:  # a block of at least ARPACK_K, for the same reason as the radius
        values, error = _arpack_singular_values(array, min(max(count, ARPACK_K), size - 1))
    values = values[:count].copy()
    if count <= ARPACK_K:  # small results only: never n floats per entry
        _cache_put(key, (tuple(float(v) for v in values), error, path))
    return values, error, path


# ------------------------------------------------------------------ wrappers
def spectral_radius_with_error(matrix: Any) -> tuple[float, float]:
    """Spectral radius and an estimate of its absolute error.

    Same as ``radius(matrix)[:2]`` (method ``"auto"``, ``dense_limit``
    :data:`DENSE_LIMIT`): the cheaper of dense LAPACK and ARPACK.

    Parameters
    ----------
    matrix : array_like, shape (N, N)

    Returns
    -------
    radius : float
        ``max |λ_i|``.
    error : float
        The rounding scale ``N·eps·‖W‖_F`` on the dense path; on the ARPACK
        path (above DENSE_LIMIT, or a large sparse matrix, see :func:`radius`)
        ``max(κ·residual, |ρ(W) − ρ(Wᵀ)|)`` from the two ARPACK runs on W and
        Wᵀ. 0 for an empty matrix.

    Raises
    ------
    DataError
        If ``matrix`` is not square or holds NaN or Inf.
    """
    value, error, _ = _radius(_as_square(matrix, "spectral_radius"), "auto", DENSE_LIMIT)
    return value, error


def spectral_radius(matrix: Any) -> float:
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


def spectral_norm(matrix: Any) -> float:
    """Largest singular value ``σ_max(W)`` of a 2-D float matrix.

    Same as ``singular_values(matrix, k=1)[0][0]`` (dense SVD while
    ``max(M, N) <= DENSE_LIMIT``, ARPACK ``svds`` above); 0 for an empty matrix.

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
    values, _, _ = _singular_values(_as_matrix(matrix, "spectral_norm"), 1, "auto",
                                    DENSE_LIMIT)
    return float(values[0]) if values.size else 0.0
