"""Accuracy of the portable float64 math behind the seeded weight generators."""

import hashlib

import numpy as np
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st

from deepreservoir import exactmath

TINY = 5e-324  # smallest subnormal
LOG_ULPS = 4
NDTRI_RTOL = 1e-14


def ulp_distance(actual, expected):
    """|actual - expected| in units of the last place of ``expected``."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return np.abs(actual - expected) / np.spacing(np.abs(expected))


def assert_log_close(x):
    x = np.asarray(x, dtype=np.float64)
    actual = exactmath.log(x)
    expected = np.log(x)
    assert actual.shape == x.shape
    at_one = expected == 0.0
    assert np.all(actual[at_one] == 0.0)
    distance = ulp_distance(actual[~at_one], expected[~at_one])
    worst = int(np.argmax(distance)) if distance.size else 0
    assert np.all(distance <= LOG_ULPS), (
        f"{distance.max()} ulp at x={x[~at_one][worst]!r}"
    )


def assert_ndtri_close(p):
    p = np.asarray(p, dtype=np.float64)
    actual = exactmath.ndtri(p)
    expected = scipy.special.ndtri(p)
    assert actual.shape == p.shape
    assert np.all(np.isfinite(actual))
    error = np.abs(actual - expected)
    bound = NDTRI_RTOL * np.abs(expected)
    bad = ~(error <= bound)
    assert not bad.any(), (
        f"ndtri off at p={p[bad][:5]!r}: got {actual[bad][:5]!r}, expected {expected[bad][:5]!r}"
    )


# ---------------------------------------------------------------------------- log


def test_log_over_the_whole_positive_range():
    rng = np.random.default_rng(20240101)
    x = np.exp(rng.uniform(np.log(TINY), np.log(np.finfo(np.float64).max), 200_000))
    assert_log_close(x)


def test_log_on_subnormals():
    rng = np.random.default_rng(1)
    smallest_normal = np.finfo(np.float64).tiny
    subnormals = np.concatenate([
        [TINY, 2 * TINY, 3 * TINY, np.nextafter(smallest_normal, 0.0)],
        np.ldexp(1.0, np.arange(-1074, -1022)),
        rng.uniform(0.0, smallest_normal, 20_000),
    ])
    subnormals = subnormals[subnormals > 0]
    assert np.all(subnormals < smallest_normal)
    assert_log_close(subnormals)
    assert_log_close([smallest_normal])


def test_log_of_one_is_exactly_zero_and_neighbours_are_accurate():
    assert exactmath.log(np.array([1.0]))[0] == 0.0
    assert_log_close([np.nextafter(1.0, 0.0), np.nextafter(1.0, 2.0)])
    rng = np.random.default_rng(2)
    assert_log_close(1.0 + rng.uniform(-1e-6, 1e-6, 50_000))
    assert_log_close(1.0 + rng.uniform(-0.3, 0.5, 50_000))


def test_log_of_every_power_of_two():
    exponents = np.arange(-1074, 1024)
    assert_log_close(np.ldexp(1.0, exponents))


def test_log_at_the_mantissa_split_and_the_largest_float():
    split = np.sqrt(0.5)
    neighbours = split + np.arange(-50, 51) * np.spacing(split)
    scaled = np.concatenate([np.ldexp(neighbours, e) for e in (-1000, -20, 0, 1, 30, 1000)])
    assert_log_close(scaled)
    assert_log_close([np.finfo(np.float64).max, np.nextafter(np.finfo(np.float64).max, 0.0)])


def test_log_keeps_the_shape():
    x = np.arange(1.0, 13.0).reshape(3, 4)
    assert exactmath.log(x).shape == (3, 4)
    assert_log_close(x)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=TINY, allow_infinity=False, allow_nan=False))
def test_log_property(x):
    assert_log_close(np.array([x]))


# ---------------------------------------------------------------------------- ndtri


def test_ndtri_on_a_fine_grid_of_the_unit_interval():
    k = np.arange(1, 2**20)
    assert_ndtri_close(k * 2.0**-20)


def test_ndtri_on_random_probabilities():
    rng = np.random.default_rng(3)
    assert_ndtri_close(rng.uniform(0.0, 1.0, 300_000)[1:])


def test_ndtri_in_the_lower_tail():
    rng = np.random.default_rng(4)
    p = np.exp(rng.uniform(np.log(1e-300), np.log(0.5), 100_000))
    assert_ndtri_close(p)
    assert_ndtri_close([1e-300, 2.0**-53, 2.0**-54, 1e-100, 1e-20, 1e-11, TINY, 1e-310])


def test_ndtri_in_the_upper_tail():
    rng = np.random.default_rng(5)
    gaps = np.exp(rng.uniform(np.log(2.0**-53), np.log(0.5), 100_000))
    assert_ndtri_close(1.0 - gaps)
    assert_ndtri_close([1.0 - 2.0**-53, np.nextafter(1.0, 0.0), 1.0 - 1e-10])


def test_ndtri_at_branch_boundaries():
    # AS 241 switches at |p - 0.5| = 0.425 and at r = sqrt(-log p) = 5.
    points = [0.075, 0.925, np.exp(-25.0)]
    p = np.concatenate([c + np.arange(-200, 201) * np.spacing(c) for c in points])
    assert_ndtri_close(p)


def test_ndtri_of_one_half_is_exactly_zero():
    z = exactmath.ndtri(np.array([0.5, np.nextafter(0.5, 0.0), np.nextafter(0.5, 1.0)]))
    assert z[0] == 0.0
    assert z[1] < 0.0 < z[2]
    assert_ndtri_close([np.nextafter(0.5, 0.0), np.nextafter(0.5, 1.0)])


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=TINY, max_value=1.0, exclude_max=True))
def test_ndtri_property(p):
    assert_ndtri_close(np.array([p]))


def test_ndtri_is_odd_about_one_half_for_dyadic_probabilities():
    fine = np.arange(1, 2**21) * 2.0**-21
    powers = np.ldexp(1.0, -np.arange(1, 54))  # 1 - 2**-k is exact for k <= 53
    for p in (fine, powers):
        assert np.all(1.0 - (1.0 - p) == p)  # the reflection is exact
        upper = exactmath.ndtri(1.0 - p)
        lower = exactmath.ndtri(p)
        assert np.array_equal(upper, -lower)


# ---------------------------------------------------------------------------- pinned bits

# These values feed every seeded weight; a change in their last bit changes the
# generated tensors (generator version 1), so they are pinned as exact bit patterns.
PINNED_LOG = {
    0.75: "-0x1.269621134db92p-2",
    1.0000000000000002: "0x1.0000000000000p-52",
    5e-324: "-0x1.74385446d71c3p+9",
    10.0: "0x1.26bb1bbb55516p+1",
    1e300: "0x1.5963447f87fb5p+9",
}
PINNED_NDTRI = {
    1e-300: "-0x1.286074064c26ep+5",
    2.0**-53: "-0x1.06b48528cea51p+3",
    0.01: "-0x1.29c5c4630ff0ep+1",
    0.3: "-0x1.0c7e39582c5fap-1",
    0.975: "0x1.f5c0331eeff82p+0",
    0.999: "0x1.8b8cbb7204470p+1",
}


def test_pinned_bits_of_log():
    x = np.array(list(PINNED_LOG))
    got = [float.hex(float(v)) for v in exactmath.log(x)]
    assert got == list(PINNED_LOG.values())


def test_pinned_bits_of_ndtri():
    p = np.array(list(PINNED_NDTRI))
    got = [float.hex(float(v)) for v in exactmath.ndtri(p)]
    assert got == list(PINNED_NDTRI.values())


def digest_grids():
    k = np.arange(100_000)
    central = (k + 1) / 100_001.0
    tail = np.ldexp((k % 1000 + 1000) / 2000.0, -(k % 997) - 2)
    p = np.concatenate([central, tail, 1.0 - tail[tail > 2.0**-53]])
    x = np.ldexp((k + 1) / 100_001.0, k % 2001 - 1000)
    return p, x


def digest(values):
    return hashlib.blake2b(np.ascontiguousarray(values).tobytes(), digest_size=16).hexdigest()


def test_pinned_digest_over_grids():
    # every branch of both functions, about 300,000 points in all, bit for bit
    p, x = digest_grids()
    assert np.all((p > 0) & (p < 1)) and np.all((x > 0) & np.isfinite(x))
    assert digest(exactmath.ndtri(p)) == "09448818fec28ee94cf6e4b79b350b8e"
    assert digest(exactmath.log(x)) == "e8bd9caa2c73228537adc3c427e5835e"


def test_results_do_not_depend_on_the_batch():
    rng = np.random.default_rng(6)
    x = np.exp(rng.uniform(-700, 700, 10_000))
    assert np.array_equal(exactmath.log(x)[::7], exactmath.log(x[::7]))
    p = rng.uniform(0, 1, 10_000)
    assert np.array_equal(exactmath.ndtri(p)[::7], exactmath.ndtri(p[::7]))
    assert np.array_equal(exactmath.ndtri(p.reshape(100, 100)).ravel(), exactmath.ndtri(p))
