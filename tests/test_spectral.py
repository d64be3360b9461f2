"""Spectral radius and spectral norm of frozen matrices."""

import gc
import math
import re
import subprocess
import sys
import tracemalloc
import weakref
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse
from blas_threads import single_blas_thread  # noqa: F401  (a fixture)

import deepreservoir.spectral
from deepreservoir.errors import DataError, ParameterError
from deepreservoir.spectral import (
    cache_info,
    radius,
    singular_values,
    spectral_norm,
    spectral_radius,
    spectral_radius_with_error,
)

pytestmark = pytest.mark.usefixtures("single_blas_thread")


def sparse_random(n, density=0.1, seed=0):
    rng = np.random.default_rng(seed)
    matrix = scipy.sparse.random(n, n, density=density, random_state=rng,
                                 data_rvs=rng.standard_normal)
    return matrix.toarray()


def reference_radius(matrix):
    return float(np.max(np.abs(scipy.linalg.eigvals(matrix))))


def assert_relative(actual, expected, rtol):
    assert abs(actual - expected) <= rtol * abs(expected), (actual, expected)


@pytest.mark.parametrize(("n", "seed"), [
    (10, 3), (200, 1), (1000, 2), pytest.param(2000, 4, marks=pytest.mark.slow),
])
def test_radius_matches_dense_eigenvalues(n, seed):
    matrix = sparse_random(n, seed=seed)
    expected = reference_radius(matrix)
    assert expected > 0
    assert_relative(spectral_radius(matrix), expected, 1e-10)


def test_radius_with_error_on_the_dense_path():
    # The dense error is the rounding scale n·eps·‖W‖_F (it was 0.0 before the
    # engine was shared with deepreservoir.analysis, which reported this scale).
    matrix = sparse_random(50, seed=5)
    radius, error = spectral_radius_with_error(matrix)
    expected = reference_radius(matrix)
    assert error == 50 * np.finfo(float).eps * np.linalg.norm(matrix)
    assert abs(radius - expected) <= error
    assert_relative(radius, expected, 1e-10)


def test_radius_of_a_diagonal_matrix():
    diagonal = np.array([0.3, -2.5, 1.0, 0.7, 2.25])
    assert spectral_radius(np.diag(diagonal)) == pytest.approx(2.5, rel=1e-14)
    assert spectral_radius(np.diag([0.5, -0.25])) == pytest.approx(0.5, rel=1e-14)
    assert spectral_radius(np.array([[-3.0]])) == 3.0


@pytest.mark.parametrize("angle", [0.3, 1.0, 2.5])
def test_radius_of_a_scaled_rotation(angle):
    scale = 1.7
    block = scale * np.array([[math.cos(angle), -math.sin(angle)],
                              [math.sin(angle), math.cos(angle)]])
    assert spectral_radius(block) == pytest.approx(scale, rel=1e-13)
    embedded = scipy.linalg.block_diag(block, np.diag([0.4, -1.2, 0.9]))
    assert spectral_radius(embedded) == pytest.approx(scale, rel=1e-13)


def test_radius_of_the_docstring_example():
    assert spectral_radius(np.array([[0.0, 2.0], [0.5, 0.0]])) == pytest.approx(1.0, rel=1e-15)


def test_radius_of_a_nilpotent_matrix_is_zero():
    rng = np.random.default_rng(6)
    strictly_upper = np.triu(rng.standard_normal((40, 40)), k=1)
    assert spectral_radius(strictly_upper) == pytest.approx(0.0, abs=1e-12)
    shift = np.eye(30, k=1)
    assert spectral_radius(shift) == pytest.approx(0.0, abs=1e-12)


def test_radius_of_a_permutation_matrix_is_one():
    permutation = np.random.default_rng(7).permutation(120)
    matrix = np.eye(120)[permutation]
    assert spectral_radius(matrix) == pytest.approx(1.0, rel=1e-12)


def test_radius_of_a_scaled_matrix_scales():
    matrix = sparse_random(80, seed=8)
    radius = spectral_radius(matrix)
    matrix *= 3.0  # same object, new content: a cached answer must not be reused
    assert spectral_radius(matrix) == pytest.approx(3.0 * radius, rel=1e-12)


def test_radius_of_an_empty_matrix():
    assert spectral_radius(np.zeros((0, 0))) == 0.0


def test_radius_accepts_lists_and_integer_arrays():
    assert spectral_radius([[2, 0, 0], [0, 1, 0], [0, 0, -4]]) == pytest.approx(4.0, rel=1e-14)


@pytest.mark.parametrize("shape", [(3, 4), (5,), (2, 2, 2), (4, 1)])
def test_radius_of_a_non_square_input_names_the_shape(shape):
    with pytest.raises(DataError, match=r"square matrix\. Got shape " + re.escape(f"{shape}.")):
        spectral_radius(np.ones(shape))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("n", [2, 5])
def test_radius_of_a_non_finite_input(bad, n):
    matrix = np.eye(n)
    matrix[1, 0] = bad
    with pytest.raises(DataError, match=r"The 'matrix' parameter of spectral_radius must be "
                                        r"finite, but it contains NaN or Inf values \(1 of "):
        spectral_radius(matrix)


@pytest.mark.parametrize("shape", [(30, 50), (200, 80), (64, 64), (1, 7)])
def test_norm_matches_singular_values(shape):
    matrix = np.random.default_rng(sum(shape)).standard_normal(shape)
    expected = float(np.max(scipy.linalg.svdvals(matrix)))
    assert spectral_norm(matrix) == pytest.approx(expected, rel=1e-12)


def test_norm_known_answers():
    assert spectral_norm(np.diag([0.5, -3.0, 2.0])) == pytest.approx(3.0, rel=1e-14)
    q, _ = np.linalg.qr(np.random.default_rng(9).standard_normal((20, 20)))
    assert spectral_norm(2.5 * q) == pytest.approx(2.5, rel=1e-12)
    assert spectral_norm(np.ones((4, 9))) == pytest.approx(6.0, rel=1e-14)  # sqrt(4 * 9)
    assert spectral_norm(np.zeros((0, 3))) == 0.0
    # the norm bounds the radius
    matrix = sparse_random(60, seed=10)
    assert spectral_radius(matrix) <= spectral_norm(matrix) * (1 + 1e-12)


def test_norm_of_a_non_matrix_names_the_shape():
    with pytest.raises(DataError, match=re.escape("2-D matrix. Got shape (5,).")):
        spectral_norm(np.ones(5))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("shape", [(2, 2), (3, 5)])
def test_norm_of_a_non_finite_input(bad, shape):
    matrix = np.ones(shape)
    matrix[0, 1] = bad
    matrix[1, 0] = bad
    with pytest.raises(DataError, match=r"The 'matrix' parameter of spectral_norm must be "
                                        r"finite, but it contains NaN or Inf values \(2 of "
                                        + re.escape(f"{shape[0] * shape[1]} entries, "
                                                    f"shape {shape}).")):
        spectral_norm(matrix)


@pytest.fixture
def arpack_branch(monkeypatch):
    monkeypatch.setattr(deepreservoir.spectral, "DENSE_LIMIT", 100)
    deepreservoir.spectral.clear_cache()
    yield
    deepreservoir.spectral.clear_cache()


def test_arpack_branch_matches_dense_eigenvalues(arpack_branch, monkeypatch):
    calls = []
    eigs = deepreservoir.spectral._arpack_eigs

    def spy(operator, n, seed):
        calls.append(seed)
        return eigs(operator, n, seed)

    monkeypatch.setattr(deepreservoir.spectral, "_arpack_eigs", spy)
    matrix = sparse_random(600, seed=11)
    radius, error = spectral_radius_with_error(matrix)
    assert sorted(calls) == [0, 1]  # ARPACK on W and on Wᵀ, not the dense path
    expected = reference_radius(matrix)
    assert_relative(radius, expected, 1e-10)
    assert abs(radius - expected) <= max(error, 1e-13 * expected)
    assert 0.0 <= error < 1e-9 * expected
    assert spectral_radius(matrix) == radius
    assert sorted(calls) == [0, 1]  # the second call is answered by the cache


# ---------------------------------------------------------------- the one engine
@pytest.fixture
def empty_cache():
    deepreservoir.spectral.clear_cache()
    yield
    deepreservoir.spectral.clear_cache()


def test_analysis_and_engine_agree_exactly_on_the_dense_path(empty_cache):
    import torch

    from deepreservoir import analysis

    matrix = sparse_random(300, seed=12)
    engine = deepreservoir.spectral.spectral_radius(matrix)
    deepreservoir.spectral.clear_cache()  # recomputed, not looked up
    result = analysis.spectral_radius(matrix)
    assert result.attrs["method"] == "dense"
    assert float(result) == engine
    assert float(result["error"]) == radius(matrix)[1]
    assert float(analysis.spectral_radius(torch.as_tensor(matrix))) == engine
    assert_relative(engine, reference_radius(matrix), 1e-10)
    # float32 weights (a Reservoir's W_) are widened the same way on both sides
    single = matrix.astype(np.float32)
    assert float(analysis.spectral_radius(torch.as_tensor(single))) == spectral_radius(single)


def test_analysis_and_engine_agree_exactly_on_the_arpack_path(empty_cache, monkeypatch):
    from deepreservoir import analysis

    matrix = sparse_random(400, seed=13)
    value, error, used = radius(matrix, dense_limit=100)
    assert used == "arpack"
    deepreservoir.spectral.clear_cache()  # ARPACK is deterministic (seeded start vectors)
    result = analysis.spectral_radius(matrix, dense_limit=100)
    assert result.attrs["method"] == "arpack"
    assert float(result) == value
    assert float(result["error"]) == error
    deepreservoir.spectral.clear_cache()
    monkeypatch.setattr(deepreservoir.spectral, "DENSE_LIMIT", 100)
    assert spectral_radius(matrix) == value
    expected = reference_radius(matrix)
    assert_relative(value, expected, 1e-10)
    assert abs(value - expected) <= max(error, 1e-13 * expected)
    assert error < 1e-9 * expected


@pytest.mark.parametrize("dense_limit", [3000, 100])
def test_analysis_and_engine_agree_on_singular_values(empty_cache, dense_limit):
    from deepreservoir import analysis

    matrix = np.random.default_rng(14).standard_normal((150, 120))
    values, error, used = singular_values(matrix, k=4, dense_limit=dense_limit)
    assert used == ("dense" if dense_limit == 3000 else "arpack")
    deepreservoir.spectral.clear_cache()
    np.testing.assert_array_equal(
        analysis.singular_values(matrix, k=4, dense_limit=dense_limit).values, values)
    norm = analysis.spectral_norm(matrix, dense_limit=dense_limit)
    assert float(norm) == values[0]
    np.testing.assert_allclose(values, scipy.linalg.svdvals(matrix)[:4], rtol=1e-12)
    assert 0.0 < error < 1e-10 * values[0]


def test_singular_values_shapes_and_methods():
    matrix = np.random.default_rng(15).standard_normal((40, 30))
    exact = scipy.linalg.svdvals(matrix)
    values, error, used = singular_values(matrix)
    assert (values.shape, used) == ((30,), "dense")
    np.testing.assert_array_equal(values, exact)
    assert error == 40 * np.finfo(float).eps * exact[0]
    values, _, used = singular_values(matrix, method="arpack")
    assert (values.shape, used) == ((16,), "arpack")  # the ARPACK block
    np.testing.assert_allclose(values, exact[:16], rtol=1e-10)
    assert singular_values(matrix, k=50, method="arpack")[0].shape == (29,)
    assert singular_values(matrix, k=50)[0].shape == (30,)
    assert singular_values(np.ones((3, 200)), method="arpack")[2] == "dense"  # tiny side
    assert singular_values(np.zeros((0, 4)))[0].shape == (0,)


def test_radius_methods_and_tiny_matrices():
    matrix = sparse_random(60, seed=16)
    dense, arpack = radius(matrix, method="dense"), radius(matrix, method="arpack")
    assert (dense[2], arpack[2]) == ("dense", "arpack")
    assert_relative(arpack[0], dense[0], 1e-10)
    assert radius(matrix, dense_limit=59)[2] == "arpack"
    assert radius(matrix, dense_limit=60)[2] == "dense"
    for n in (1, 2, 3):  # ARPACK needs k < n - 1
        assert radius(np.eye(n), method="arpack") == (1.0, radius(np.eye(n))[1], "dense")
    assert radius(np.eye(4), method="arpack")[2] == "arpack"
    assert radius(np.zeros((0, 0))) == (0.0, 0.0, "dense")


@pytest.mark.parametrize(("call", "pattern"), [
    (lambda: radius(np.eye(3), method="qr"), r"'method' parameter of radius must be one of"),
    (lambda: radius(np.eye(3), dense_limit=-1), r"'dense_limit' parameter of radius"),
    (lambda: radius(np.eye(3), dense_limit=2.5), r"'dense_limit' parameter of radius"),
    (lambda: singular_values(np.eye(3), k=0), r"'k' parameter of singular_values"),
    (lambda: singular_values(np.eye(3), k=True), r"'k' parameter of singular_values"),
])
def test_engine_rejects_bad_options(call, pattern):
    with pytest.raises(ParameterError, match=pattern):
        call()


def test_engine_rejects_bad_matrices():
    with pytest.raises(DataError, match=r"'matrix' parameter of radius must be a square"):
        radius(np.ones((2, 3)))
    with pytest.raises(DataError, match=r"'matrix' parameter of singular_values must be a 2-D"):
        singular_values(np.ones(3))
    with pytest.raises(DataError, match=r"'matrix' parameter of radius must be finite"):
        radius(np.full((3, 3), np.nan))


# ---------------------------------------------------------------- the cache
def _plain(value):
    """True if value is built from str, int, float and tuples only (no arrays, no bytes)."""
    if isinstance(value, tuple):
        return all(_plain(item) for item in value)
    return type(value) in (str, int, float)


def test_cache_keeps_no_matrix_alive(empty_cache):
    matrices = [sparse_random(n, seed=seed) for seed, n in enumerate((50, 120, 300, 200))]
    matrices.append(np.random.default_rng(17).standard_normal((80, 50)))
    refs = [weakref.ref(matrix) for matrix in matrices]
    for matrix in matrices[:3]:
        spectral_radius(matrix)
        spectral_norm(matrix)
    radius(matrices[3], dense_limit=100)  # the ARPACK path
    singular_values(matrices[3], k=3, dense_limit=100)
    singular_values(matrices[4], k=2)
    cache = deepreservoir.spectral._cache
    assert len(cache) == 9
    for key, value in cache.items():
        assert _plain(key) and _plain(value), (key, value)
        assert all(len(item) <= 64 for item in key if isinstance(item, str))  # a digest
    del matrix, matrices
    gc.collect()
    assert all(ref() is None for ref in refs)
    assert len(cache) == 9  # results outlive their matrices; the matrices do not


def test_cache_memory_is_released():
    deepreservoir.spectral.clear_cache()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for seed in range(6):
            spectral_radius(sparse_random(400, seed=seed))  # 1.28 MB each
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        deepreservoir.spectral.clear_cache()
    assert after - before < 200_000  # six 400×400 matrices would be 7.7 MB


def test_cache_is_hit_for_an_equal_matrix(empty_cache, monkeypatch):
    calls = []
    dense = deepreservoir.spectral._dense_radius

    def spy(array):
        calls.append(array.shape)
        return dense(array)

    monkeypatch.setattr(deepreservoir.spectral, "_dense_radius", spy)
    matrix = sparse_random(100, seed=18)
    first = radius(matrix)
    info = cache_info()
    assert (len(calls), info["misses"], info["hits"]) == (1, 1, 0)
    assert radius(matrix.copy()) == first  # an equal matrix, another object
    assert radius(np.asfortranarray(matrix)) == first
    assert radius(matrix, method="dense") == first  # "auto" resolved to "dense": same entry
    assert spectral_radius_with_error(matrix.tolist()) == first[:2]
    assert len(calls) == 1
    assert cache_info()["hits"] == 4
    changed = matrix.copy()
    changed[3, 4] += 1e-3
    radius(changed)
    assert len(calls) == 2


def test_cache_is_a_bounded_lru(empty_cache, monkeypatch):
    monkeypatch.setattr(deepreservoir.spectral, "CACHE_SIZE", 3)
    matrices = [np.diag([float(i + 1), 0.5, 0.25]) for i in range(5)]
    for matrix in matrices[:3]:
        spectral_radius(matrix)
    spectral_radius(matrices[0])  # now the most recent
    spectral_radius(matrices[3])  # evicts matrices[1], the least recent
    spectral_radius(matrices[4])  # evicts matrices[2]
    info = cache_info()
    assert (info["size"], info["maxsize"], info["hits"]) == (3, 3, 1)
    spectral_radius(matrices[0])
    assert cache_info()["hits"] == 2
    spectral_radius(matrices[1])
    assert cache_info()["hits"] == 2


def test_engine_imports_without_xarray_torch_or_scipy():
    # Load deepreservoir.spectral without running the package __init__, with
    # xarray, torch and scipy unimportable: the engine needs only numpy to import
    # (scipy is imported on first use; 2×2 matrices never need it).
    package = Path(deepreservoir.spectral.__file__).parent
    script = f"""
import sys, types
for name in ("xarray", "torch", "scipy"):
    sys.modules[name] = None
stub = types.ModuleType("deepreservoir")
stub.__path__ = [{str(package)!r}]
sys.modules["deepreservoir"] = stub
import deepreservoir.spectral as engine
assert engine.radius([[0.0, 2.0], [0.5, 0.0]])[::2] == (1.0, "dense")
assert not any(name.split(".")[0] in ("xarray", "torch", "scipy")
               for name, module in sys.modules.items() if module is not None)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_arpack_run_finds_the_dense_radius(seed):
    """What a Reservoir uses to scale W: one ARPACK run (no Wᵀ cross-check) on a
    sparse random matrix, whose eigenvalues crowd the edge of a disk."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((600, 600)) * (rng.random((600, 600)) < 0.1)
    once, residual, method = deepreservoir.spectral.radius(W, "arpack", error_bound=False)
    dense = deepreservoir.spectral.radius(W, "dense")[0]
    assert method == "arpack" and residual == pytest.approx(1e-12 * once)
    assert abs(once - dense) <= 1e-10 * dense


def test_a_built_reservoir_has_exactly_its_spectral_radius():
    import torch

    import deepreservoir as dr

    reservoir = dr.Reservoir(800, sr=0.9, rc_connectivity=0.1, seed=3, dtype=torch.float64)
    reservoir.run(np.zeros((2, 1)))
    assert abs(deepreservoir.spectral.radius(reservoir.W_.numpy(), "dense")[0] - 0.9) < 1e-10


def test_a_nilpotent_sparse_matrix_is_not_given_a_spurious_radius():
    """One ARPACK run reports ~1e-5 for a strictly triangular W (radius 0): the build
    falls back to a bounded path and refuses to rescale, as it always did."""
    import torch

    import deepreservoir as dr
    from deepreservoir.errors import ParameterError

    W = np.triu(np.random.default_rng(0).standard_normal((600, 600)), 1)
    W *= np.random.default_rng(1).random((600, 600)) < 0.002
    assert deepreservoir.spectral.radius(W, "arpack", error_bound=False)[0] == 0.0
    with pytest.raises(ParameterError, match="spectral_radius 0"):
        dr.Reservoir(1000, rc_connectivity=0.0003, seed=0, dtype=torch.float64).run(
            np.zeros((2, 1)))
