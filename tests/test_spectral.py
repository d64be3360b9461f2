"""Spectral radius and spectral norm of frozen matrices."""

import math
import re

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse
from blas_threads import single_blas_thread  # noqa: F401  (a fixture)

import deepreservoir.spectral
from deepreservoir.errors import DataError
from deepreservoir.spectral import spectral_norm, spectral_radius, spectral_radius_with_error

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
    matrix = sparse_random(50, seed=5)
    radius, error = spectral_radius_with_error(matrix)
    assert error == 0.0
    assert_relative(radius, reference_radius(matrix), 1e-10)


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
    deepreservoir.spectral._cached_radius.cache_clear()
    yield
    deepreservoir.spectral._cached_radius.cache_clear()


def test_arpack_branch_matches_dense_eigenvalues(arpack_branch, monkeypatch):
    calls = []
    arpack = deepreservoir.spectral._arpack_radius

    def spy(array, start_seed):
        calls.append(start_seed)
        return arpack(array, start_seed)

    monkeypatch.setattr(deepreservoir.spectral, "_arpack_radius", spy)
    matrix = sparse_random(600, seed=11)
    radius, error = spectral_radius_with_error(matrix)
    assert sorted(calls) == [0, 1]  # two seeded ARPACK runs, not the dense path
    expected = reference_radius(matrix)
    assert_relative(radius, expected, 1e-3)
    assert 0.0 <= error < 1e-3 * expected
    assert spectral_radius(matrix) == radius
