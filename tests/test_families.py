"""The 22 weight families: pinned bits, distributions, specs and connectivity masks."""

import math
import re

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from deepreservoir.errors import ParameterError
from deepreservoir.families import (
    FAMILIES,
    Beta,
    Binary,
    Cauchy,
    ErdosRenyi,
    Exponential,
    Family,
    KaimingNormal,
    KaimingUniform,
    Laplace,
    Mixture,
    Normal,
    Orthogonal,
    Quantized,
    SparseNormal,
    SpectralRadius,
    StudentT,
    TruncatedNormal,
    Uniform,
    XavierNormal,
    XavierUniform,
    connectivity_mask,
    get_family,
    make_weight,
)
from deepreservoir.seeding import SeedKey, standard_normal


@pytest.fixture(autouse=True)
def single_blas_thread():
    """Run LAPACK single-threaded: on a busy 2-core machine, threaded OpenBLAS can spin
    for tens of seconds on one eigendecomposition. Results do not depend on this."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional speed-up only
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield

GOLDEN_NODE = SeedKey(2024, "golden/node")
GOLDEN_SHAPE = (16, 12)

# These vectors pin generator version 1 (deepreservoir.seeding.GENERATOR_VERSION):
# the first 6 values of make_weight(name, SeedKey(2024, "golden/node"), "W", (16, 12),
# fan_in=12, fan_out=16).ravel(), as float.hex. Changing them is a breaking change of
# the file format (saved models would regenerate different scaffolds) and must be
# documented in docs/seeding.md and the changelog, with a new generator version.
GOLDEN = {
    "normal": ("-0x1.4ed5491369b25p-2", "0x1.8b3a1bb55bcbcp-2", "0x1.1881c3c0e014bp-2",
               "0x1.1d2d72ad244ebp-2", "-0x1.3fc3611f339f7p-4", "-0x1.a518d449e7dcfp-2"),
    "truncated_normal": ("0x1.552a8c2e06254p-4", "0x1.64d6a4ee86d89p-2", "0x1.95f5c783a3b56p-5",
                         "-0x1.cad6a23036b55p-3", "0x1.0a63632e4848cp-2",
                         "0x1.d73b777bd5b32p-2"),
    "uniform": ("-0x1.2de27c6a1dcefp-4", "0x1.ddc64962779b4p-7", "-0x1.70d8a1302a651p-4",
                "0x1.3b328f5bbcabdp-4", "-0x1.2cf115e67da7bp-4", "-0x1.9e526c3ebc3edp-7"),
    "orthogonal": ("0x1.f0bde16b322e8p-3", "-0x1.719ee40075204p-3", "0x1.4ebb7dae32129p-2",
                   "-0x1.60c4aabb6aec7p-4", "-0x1.12f90685c1819p-2", "0x1.e0cb043844156p-3"),
    "kaiming_normal": ("-0x1.0435d3499280cp-2", "-0x1.18630d85b7499p-7", "-0x1.0fd613721c2cep-5",
                       "-0x1.79144dd3f4d90p-2", "-0x1.6186f995f8e1fp-3", "0x1.10bce09c42368p+0"),
    "kaiming_uniform": ("0x1.0c914ea7703e3p-3", "-0x1.34ce4822bf815p-4", "-0x1.ec9cbbbe52099p-4",
                        "0x1.9624fd46da024p-4", "-0x1.510a22ed64dc6p-5", "0x1.25df4e4d7d398p-6"),
    "xavier_normal": ("0x1.4062e4613694ap-1", "0x1.5bfa0fa2a3b13p-2", "0x1.9ad5ef03de455p-3",
                      "-0x1.277fa3647954bp-4", "0x1.5bca910e8134cp-2", "0x1.49291a83af035p-4"),
    "xavier_uniform": ("-0x1.7fe1eed42fabap-2", "-0x1.bff9bc3aae115p-6", "0x1.cf47145111ca4p-3",
                       "0x1.da258bd368e64p-5", "0x1.467fba03221a4p-2", "-0x1.f250055e3110bp-4"),
    "spectral_radius": ("0x1.48f90707fe3bdp-3", "-0x1.a3ea0785a9d8bp-3", "-0x1.6fd3bb6a8dae9p-4",
                        "-0x1.23de4fc7f2d10p-7", "0x1.85556294cf273p-6", "0x1.65b31ae31dbdfp-3"),
    "cauchy": ("-0x1.2d3fcd9c181a0p-3", "-0x1.b0983e89daf77p-2", "-0x1.a51304e25ac9ap-3",
               "-0x1.c6718a922a5c8p-5", "0x1.1ac10856cef16p-6", "0x1.81f791212dda4p-5"),
    "laplace": ("0x1.adad115729607p-9", "0x1.e0fbf5c9405a8p-10", "-0x1.9b063d2fb521ap-5",
                "-0x1.3a6ca8da58fd4p-4", "-0x1.ac842faa8671ap-3", "0x1.72076d4408152p-2"),
    "student_t": ("0x1.af689fa8de6abp-4", "-0x1.9224cbe33c424p-3", "-0x1.b73979dd9d862p-6",
                  "0x1.427e0b53822e0p-2", "-0x1.7641831bb1f32p-1", "0x1.37c3091efd1d9p-4"),
    "mixture": ("0x1.992b49fcb4501p-4", "-0x1.59250c1afeceap-6", "-0x1.4c3ebb4c1d9c4p-4",
                "0x1.5612de26cbf6bp-6", "-0x1.054e5c6ddbfb7p-3", "-0x1.1616a0ee07c71p-4"),
    "sparse_normal": ("0x1.281b785153955p-2", "0x1.00373034cb81dp-1", "-0x1.3494eb2c5a5c9p-2",
                      "0x1.900a6657012f1p-4", "0x1.b453082b7b7e8p-3", "0x1.fe4591f3b72d9p-3"),
    "erdos_renyi": ("0x0.0p+0", "0x0.0p+0", "0x0.0p+0", "0x0.0p+0", "0x1.d84451957dce3p-1",
                    "0x1.9bd54068c8e85p-4"),
    "beta": ("0x1.179f68d29a79ap-7", "0x1.4bea8d5bf5b67p-6", "0x1.3d2e643babaa7p-5",
             "-0x1.acb0225e7eedcp-5", "-0x1.4b77bd7ead48bp-4", "0x1.2af227b08b9b0p-4"),
    "exponential": ("-0x1.4e238c63dfbe0p-5", "0x1.038fbc4a9360ap-4", "0x1.41f103065ed95p-3",
                    "-0x1.e00b1df3e60f6p-5", "-0x1.8d571265230bap-4", "0x1.ce1aa6aa67533p-9"),
    "quant16": ("0x1.a93b64ac67e37p-2", "0x1.1ed48fdb0ae89p-2", "-0x1.a62ff86ba1300p-7",
                "0x1.5c4df9bf31c7ap-4", "-0x1.14e9601da24e2p-6", "0x1.7c58f7dbd7e04p-4"),
    "quant8": ("-0x1.0abc5efc51e1fp-2", "0x1.61569f1265d19p-3", "0x1.0057f0e530c53p-3",
               "0x1.b47a0fcb6eb79p-3", "-0x1.5ddfcfb55ac7fp-2", "-0x1.a69ed25742913p-3"),
    "quant4": ("-0x1.f2d4a45635641p-2", "0x1.30d747fbcb4b6p-1", "-0x1.4c8dc2e423981p-3",
               "-0x1.1520cd1372febp-2", "-0x1.bb67ae8584cacp-5", "-0x1.1520cd1372febp-2"),
    "quant2": ("-0x1.4c8dc2e423981p-1", "0x1.bb67ae8584cacp-3", "0x1.bb67ae8584cacp-3",
               "-0x1.bb67ae8584cacp-3", "-0x1.bb67ae8584cacp-3", "-0x1.bb67ae8584cacp-3"),
    "binary": ("0x1.279a74590331dp-2", "0x1.279a74590331dp-2", "-0x1.279a74590331dp-2",
               "-0x1.279a74590331dp-2", "-0x1.279a74590331dp-2", "0x1.279a74590331dp-2"),
}

# Families whose values go through LAPACK (QR, eigvals): equal to rounding, not bitwise.
LAPACK_FAMILIES = {"orthogonal", "spectral_radius"}

# connectivity_mask(GOLDEN_NODE, "W", (16, 12), c).ravel()[:20], as 0/1.
GOLDEN_MASK = {
    0.1: "00010001000100001000",
    0.5: "10101111011111110001",
}
# make_weight("normal", GOLDEN_NODE, "W", (16, 12), fan_in=12, fan_out=16, connectivity=0.1):
# the flat indices of its nonzero entries and the first 6 nonzero values.
GOLDEN_MASKED_INDICES = [3, 7, 11, 16, 20, 44, 60, 68, 71, 73, 93, 104, 119, 123, 128, 143,
                         147, 151, 155, 158, 159]
GOLDEN_MASKED_VALUES = ("0x1.1d2d72ad244ebp-2", "-0x1.27c99365742f6p-5",
                        "-0x1.f3b4b19f5c47dp-3", "0x1.10f1a56d814dcp-1",
                        "0x1.2594a04bb1fc3p-1", "0x1.90ae1ea5398c8p-4")


def golden_weight(name, **kwargs):
    return make_weight(name, GOLDEN_NODE, "W", GOLDEN_SHAPE, fan_in=12, fan_out=16, **kwargs)


def test_the_22_families_are_all_pinned():
    assert len(FAMILIES) == 22
    assert set(GOLDEN) == set(FAMILIES)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_golden_vectors(name):
    values = golden_weight(name)
    assert values.shape == GOLDEN_SHAPE
    assert values.dtype == np.float64
    first = values.ravel()[:6]
    if name in LAPACK_FAMILIES:
        expected = np.array([float.fromhex(h) for h in GOLDEN[name]])
        np.testing.assert_allclose(first, expected, rtol=1e-12, atol=0)
    else:
        assert tuple(float.hex(float(v)) for v in first) == GOLDEN[name]


@pytest.mark.parametrize("connectivity", sorted(GOLDEN_MASK))
def test_golden_connectivity_mask(connectivity):
    mask = connectivity_mask(GOLDEN_NODE, "W", GOLDEN_SHAPE, connectivity)
    assert mask.shape == GOLDEN_SHAPE
    assert mask.dtype == np.bool_
    assert "".join("1" if b else "0" for b in mask.ravel()[:20]) == GOLDEN_MASK[connectivity]


def test_golden_masked_weight():
    values = golden_weight("normal", connectivity=0.1).ravel()
    nonzero = np.flatnonzero(values)
    assert nonzero.tolist() == GOLDEN_MASKED_INDICES
    assert tuple(float.hex(float(v)) for v in values[nonzero][:6]) == GOLDEN_MASKED_VALUES


# ---------------------------------------------------------------------------- statistics

SHAPE = (400, 250)
FAN_IN, FAN_OUT = 250, 400
N = SHAPE[0] * SHAPE[1]
SIGMA = 1.0 / math.sqrt(FAN_IN)
P_MIN = 1e-3


def sample(family, path=None, shape=SHAPE, **kwargs):
    name = family if isinstance(family, str) else family.name
    node = SeedKey(31337, path or f"stats/{name}")
    return make_weight(family, node, "W", shape, fan_in=FAN_IN, fan_out=FAN_OUT, **kwargs)


def assert_fraction(observed_count, n, p):
    """The observed fraction is p within 4 standard errors."""
    standard_error = math.sqrt(p * (1 - p) / n)
    assert abs(observed_count / n - p) < 4 * standard_error, (observed_count / n, p)


def assert_ks(values, cdf):
    result = scipy.stats.kstest(np.ravel(values), cdf)
    assert result.pvalue > P_MIN, result


KAIMING_BOUND = 1.0 / math.sqrt(FAN_IN)  # sqrt(6 / ((1 + 5) fan_in)) with a = sqrt(5)
XAVIER_BOUND = math.sqrt(6.0 / (FAN_IN + FAN_OUT))

CONTINUOUS = {
    "normal": scipy.stats.norm(scale=SIGMA),
    "truncated_normal": scipy.stats.truncnorm(-2.0, 2.0, scale=SIGMA),
    "uniform": scipy.stats.uniform(loc=-0.1, scale=0.2),
    "kaiming_normal": scipy.stats.norm(scale=math.sqrt(2.0 / FAN_IN)),
    "kaiming_uniform": scipy.stats.uniform(loc=-KAIMING_BOUND, scale=2 * KAIMING_BOUND),
    "xavier_normal": scipy.stats.norm(scale=math.sqrt(2.0 / (FAN_IN + FAN_OUT))),
    "xavier_uniform": scipy.stats.uniform(loc=-XAVIER_BOUND, scale=2 * XAVIER_BOUND),
    "laplace": scipy.stats.laplace(scale=0.1),
    "student_t": scipy.stats.t(3, scale=SIGMA),
    "beta": scipy.stats.beta(2, 2, loc=-0.1, scale=0.2),
    "exponential": scipy.stats.expon(loc=-0.1, scale=0.1),
}


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_continuous_family_distribution(name):
    values = sample(name)
    assert values.shape == SHAPE
    law = CONTINUOUS[name]
    low, high = law.support()
    assert np.all(values >= low) and np.all(values <= high)
    assert_ks(values, law.cdf)


@pytest.mark.parametrize(("name", "wrong"), [
    ("normal", scipy.stats.norm(scale=1.05 * SIGMA)),
    ("student_t", scipy.stats.t(4, scale=SIGMA)),
    ("kaiming_uniform", scipy.stats.uniform(loc=-XAVIER_BOUND, scale=2 * XAVIER_BOUND)),
    ("laplace", scipy.stats.laplace(scale=0.105)),
])
def test_the_distribution_tests_can_tell_neighbouring_laws_apart(name, wrong):
    assert scipy.stats.kstest(sample(name).ravel(), wrong.cdf).pvalue < P_MIN


def test_mixture_distribution():
    def cdf(x):
        return 0.9 * scipy.stats.norm.cdf(x / 0.05) + 0.1 * scipy.stats.norm.cdf(x / 0.5)

    assert_ks(sample("mixture"), cdf)


def test_cauchy_distribution_with_clipping():
    values = sample("cauchy").ravel()
    law = scipy.stats.cauchy(scale=0.1)
    assert np.all(np.abs(values) <= 1.0)  # clipped at 10 scales
    inside = values[np.abs(values) < 1.0]
    low, high = law.cdf(-1.0), law.cdf(1.0)
    assert_ks(inside, lambda x: (law.cdf(x) - low) / (high - low))
    tail = law.sf(1.0)  # P(X > 10 scales), the same on both sides
    assert_fraction(np.sum(values == 1.0), N, tail)
    assert_fraction(np.sum(values == -1.0), N, tail)
    assert inside.size + np.sum(np.abs(values) == 1.0) == N


def test_sparse_normal():
    values = sample("sparse_normal").ravel()
    zeros = values == 0.0
    assert_fraction(zeros.sum(), N, 0.2)
    assert_ks(values[~zeros], scipy.stats.norm(scale=SIGMA).cdf)


def test_erdos_renyi():
    values = sample("erdos_renyi").ravel()
    present = values != 0.0
    assert_fraction(present.sum(), N, 0.2)
    nonzero = values[present]
    std = SIGMA / math.sqrt(0.2)
    # standard error of a sample standard deviation of normals: std / sqrt(2 n)
    assert abs(nonzero.std() - std) < 4 * std / math.sqrt(2 * nonzero.size)
    assert_ks(nonzero, scipy.stats.norm(scale=std).cdf)


QUANT_BITS = {"quant16": 16, "quant8": 8, "quant4": 4, "quant2": 2}


def underlying_normal(name):
    """The N(0, 1) draw a quantised family quantises (same key as make_weight)."""
    node = SeedKey(31337, f"stats/{name}")
    key = node.tensor("W", SHAPE, FAMILIES[name].spec())
    return standard_normal(key)


@pytest.mark.parametrize("name", sorted(QUANT_BITS))
def test_quantized_levels_are_the_documented_midpoints(name):
    bits = QUANT_BITS[name]
    levels = 2**bits
    step = 2.0 * 3.0 / levels
    values = sample(name).ravel()
    distinct = np.unique(values)
    assert distinct.size <= levels
    index = np.rint((distinct / SIGMA + 3.0) / step - 0.5)
    assert np.all((index >= 0) & (index <= levels - 1))
    rebuilt = SIGMA * (-3.0 + (index + 0.5) * step)  # the documented level, bit for bit
    assert np.array_equal(distinct, rebuilt)
    if bits <= 8:
        assert distinct.size == levels  # every level is hit with 100000 draws


@pytest.mark.parametrize("name", sorted(QUANT_BITS))
def test_quantized_rounds_the_clipped_normal_to_its_cell(name):
    bits = QUANT_BITS[name]
    step = 6.0 / 2**bits
    z = np.clip(underlying_normal(name), -3.0, 3.0)
    values = sample(name).ravel() / SIGMA
    assert np.all(np.abs(values - z) <= step / 2 * (1 + 1e-9))
    if bits == 16:
        assert np.max(np.abs(values - z)) < 2e-4


@pytest.mark.parametrize("name", ["quant8", "quant4", "quant2"])
def test_quantized_level_probabilities(name):
    levels = 2 ** QUANT_BITS[name]
    step = 6.0 / levels
    values = sample(name).ravel() / SIGMA
    index = np.rint((values + 3.0) / step - 0.5).astype(int)
    counts = np.bincount(index, minlength=levels)
    edges = -3.0 + step * np.arange(1, levels)
    cdf = np.concatenate([[0.0], scipy.stats.norm.cdf(edges), [1.0]])
    expected = np.diff(cdf) * N
    assert scipy.stats.chisquare(counts, expected).pvalue > P_MIN


def test_quant16_is_normal():
    values = sample("quant16").ravel()
    assert_ks(values, scipy.stats.norm(scale=SIGMA).cdf)
    assert np.max(np.abs(values)) <= 3.0 * SIGMA


def test_binary():
    values = sample("binary").ravel()
    magnitude = 1.0 / math.sqrt(FAN_IN)
    assert set(np.unique(values).tolist()) == {-magnitude, magnitude}
    assert_fraction(np.sum(values > 0), N, 0.5)


@pytest.mark.parametrize("shape", [(50, 50), (60, 20), (20, 60)])
def test_orthogonal(shape):
    q = make_weight("orthogonal", SeedKey(5, "orth"), "W", shape,
                    fan_in=shape[1], fan_out=shape[0])
    rows, cols = shape
    if rows <= cols:
        np.testing.assert_allclose(q @ q.T, np.eye(rows), atol=1e-10, rtol=0)
    if rows >= cols:
        np.testing.assert_allclose(q.T @ q, np.eye(cols), atol=1e-10, rtol=0)


def test_orthogonal_gain():
    q = make_weight(Orthogonal(gain=2.0), SeedKey(5, "orth"), "W", (30, 30),
                    fan_in=30, fan_out=30)
    np.testing.assert_allclose(q.T @ q, 4.0 * np.eye(30), atol=1e-10, rtol=0)


def test_orthogonal_is_haar_distributed():
    # For Haar O(n), tr(Q) has mean 0 and variance 1; an uncorrected QR is biased.
    traces = np.array([
        np.trace(make_weight("orthogonal", SeedKey(5, f"haar/{i}"), "W", (12, 12),
                             fan_in=12, fan_out=12))
        for i in range(300)
    ])
    assert abs(traces.mean()) < 4 / math.sqrt(traces.size)
    assert 0.7 < traces.var() < 1.3


def test_orthogonal_needs_a_matrix():
    with pytest.raises(ParameterError, match=re.escape("Got shape (5, 2, 2).")):
        make_weight("orthogonal", SeedKey(5), "W", (5, 2, 2), fan_in=2, fan_out=5)


def test_spectral_radius_family_square():
    w = make_weight("spectral_radius", SeedKey(3, "sr"), "W", (300, 300),
                    fan_in=300, fan_out=300)
    radius = np.max(np.abs(scipy.linalg.eigvals(w)))
    assert abs(radius - 0.95) < 1e-9


def test_spectral_radius_family_non_square():
    w = sample("spectral_radius")
    assert abs(scipy.linalg.svdvals(w)[0] - 0.95) < 1e-9


def test_spectral_radius_family_custom_radius():
    w = make_weight(SpectralRadius(radius=1.3), SeedKey(3, "sr"), "W", (40, 40),
                    fan_in=40, fan_out=40)
    assert abs(np.max(np.abs(scipy.linalg.eigvals(w))) - 1.3) < 1e-9


# ---------------------------------------------------------------------------- get_family

ALL_CLASSES = [Normal, TruncatedNormal, Uniform, Orthogonal, KaimingNormal, KaimingUniform,
               XavierNormal, XavierUniform, SpectralRadius, Cauchy, Laplace, StudentT, Mixture,
               SparseNormal, ErdosRenyi, Beta, Exponential, Quantized, Binary]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_get_family_by_name_and_spec_round_trip(name):
    family = get_family(name)
    assert family is FAMILIES[name]
    assert isinstance(family, Family)
    spec = family.spec()
    assert isinstance(spec["name"], str)
    assert get_family(spec) == family
    assert get_family(dict(spec)).spec() == spec


def test_every_class_is_reachable_by_its_spec():
    for cls in ALL_CLASSES:
        family = cls()
        assert get_family(family) is family
        assert get_family(family.spec()) == family


def test_get_family_by_object_and_dict():
    by_object = Cauchy(scale=0.2)
    assert get_family(by_object) is by_object
    by_dict = get_family({"name": "cauchy", "scale": 0.2})
    assert by_dict == by_object
    assert by_dict.spec() == {"name": "cauchy", "scale": 0.2, "clip": 10.0}
    assert get_family(by_dict.spec()) == by_object
    node = SeedKey(8, "spec")
    from_dict = make_weight({"name": "cauchy", "scale": 0.2}, node, "W", (5, 5),
                            fan_in=5, fan_out=5)
    from_object = make_weight(by_object, node, "W", (5, 5), fan_in=5, fan_out=5)
    assert from_dict.tobytes() == from_object.tobytes()
    default = make_weight("cauchy", node, "W", (5, 5), fan_in=5, fan_out=5)
    assert not np.array_equal(default, from_object)


def test_unknown_family_name():
    with pytest.raises(ParameterError, match=r"The 'W' parameter must be a known weight family"
                       r".*Got 'gaussian'\.") as info:
        get_family("gaussian", "W")
    for name in FAMILIES:
        assert name in str(info.value)


def test_unknown_family_name_through_make_weight_names_the_role():
    with pytest.raises(ParameterError, match=r"'Win' parameter.*Got 'nope'\."):
        make_weight("nope", SeedKey(1), "Win", (2, 2), fan_in=2, fan_out=2)


def test_unknown_spec_name_and_fields():
    with pytest.raises(ParameterError, match=r"'family' parameter spec must name a family "
                       r"class.*cauchy.*Got 'quant8'\."):
        get_family({"name": "quant8"})
    with pytest.raises(ParameterError, match=r"'family' parameter spec must name.*Got None\."):
        get_family({"scale": 0.1})
    with pytest.raises(ParameterError, match=r"'W' parameter spec .* unknown fields.*sigma"):
        get_family({"name": "normal", "sigma": 0.1}, "W")
    with pytest.raises(ParameterError, match=r"'family' parameter must be a family name, a "
                       r"Family or a spec mapping\. Got 3\."):
        get_family(3)


@pytest.mark.parametrize(("make", "parameter", "shown"), [
    (lambda: Cauchy(scale=-1), "scale", "-1"),
    (lambda: Cauchy(clip=0.0), "clip", "0.0"),
    (lambda: Quantized(bits=0), "bits", "0"),
    (lambda: Quantized(bits=25), "bits", "25"),
    (lambda: Quantized(bits=4.0), "bits", "4.0"),
    (lambda: Quantized(bits=True), "bits", "True"),
    (lambda: SparseNormal(zero_fraction=1.5), "zero_fraction", "1.5"),
    (lambda: SparseNormal(zero_fraction=0.0), "zero_fraction", "0.0"),
    (lambda: Normal(scale=0), "scale", "0"),
    (lambda: Normal(scale=float("nan")), "scale", "nan"),
    (lambda: Normal(scale="0.1"), "scale", "'0.1'"),
    (lambda: Uniform(a=-0.1), "a", "-0.1"),
    (lambda: Laplace(b=0), "b", "0"),
    (lambda: StudentT(nu=0), "nu", "0"),
    (lambda: StudentT(nu=2.5), "nu", "2.5"),
    (lambda: Mixture(weight=1.0), "weight", "1.0"),
    (lambda: Mixture(scale2=-0.5), "scale2", "-0.5"),
    (lambda: ErdosRenyi(p=0), "p", "0"),
    (lambda: Beta(half_width=-1.0), "half_width", "-1.0"),
    (lambda: Exponential(rate=0.0), "rate", "0.0"),
    (lambda: Binary(scale=-2.0), "scale", "-2.0"),
    (lambda: SpectralRadius(radius=0.0), "radius", "0.0"),
    (lambda: Orthogonal(gain=-1.0), "gain", "-1.0"),
])
def test_bad_family_parameters(make, parameter, shown):
    pattern = rf"The '{parameter}' parameter of the \w+ family must be .*Got {re.escape(shown)}\."
    with pytest.raises(ParameterError, match=pattern):
        make()


def test_bad_family_parameters_through_a_spec():
    with pytest.raises(ParameterError, match=r"'scale' parameter of the cauchy family.*Got -1\."):
        get_family({"name": "cauchy", "scale": -1})


NON_FINITE_REASON = (
    "families._check_positive accepts +inf (`not inf > 0` is False), and KaimingUniform "
    "does not validate `a` at all, so non-finite parameters give inf/nan weights instead "
    "of a ParameterError"
)


@pytest.mark.parametrize("make", [
    pytest.param(lambda: Normal(scale=math.inf), id="normal-scale-inf"),
    pytest.param(lambda: Uniform(a=math.inf), id="uniform-a-inf"),
    pytest.param(lambda: Cauchy(scale=math.inf), id="cauchy-scale-inf"),
    pytest.param(lambda: KaimingUniform(a=math.nan), id="kaiming-uniform-a-nan"),
])
@pytest.mark.xfail(strict=True, reason=NON_FINITE_REASON)
def test_non_finite_family_parameters_are_rejected(make):
    with pytest.raises(ParameterError):
        make()


@pytest.mark.xfail(
    strict=True,
    reason="families.make_weight keys the tensor on canonical JSON of Family.spec(), which "
    "keeps the int/float type: Normal(scale=1) == Normal(scale=1.0) but their weights differ",
)
def test_equal_families_give_equal_weights():
    assert Normal(scale=1) == Normal(scale=1.0)
    node = SeedKey(8, "equal")
    a = make_weight(Normal(scale=1), node, "W", (4, 4), fan_in=4, fan_out=4)
    b = make_weight(Normal(scale=1.0), node, "W", (4, 4), fan_in=4, fan_out=4)
    assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------- connectivity


@pytest.mark.parametrize("connectivity", [0.05, 0.1, 0.5, 0.9])
def test_connectivity_fraction(connectivity):
    values = sample("normal", path="conn", connectivity=connectivity)
    assert_fraction(np.count_nonzero(values), N, connectivity)


def test_connectivity_mask_does_not_depend_on_the_family():
    node = SeedKey(77, "mask/node")
    mask = connectivity_mask(node, "W", (40, 30), 0.3)
    for name in ("normal", "uniform", "cauchy", "kaiming_uniform"):
        values = make_weight(name, node, "W", (40, 30), fan_in=30, fan_out=40, connectivity=0.3)
        assert np.array_equal(values != 0.0, mask), name
        dense = make_weight(name, node, "W", (40, 30), fan_in=30, fan_out=40)
        assert np.array_equal(values[mask], dense[mask])


def test_connectivity_mask_depends_on_node_role_and_shape():
    node = SeedKey(77, "mask/node")
    base = connectivity_mask(node, "W", (40, 30), 0.5).ravel()
    others = [
        connectivity_mask(node.child("x"), "W", (40, 30), 0.5).ravel(),
        connectivity_mask(node, "Win", (40, 30), 0.5).ravel(),
        connectivity_mask(node, "W", (30, 40), 0.5).ravel(),
        connectivity_mask(SeedKey(78, "mask/node"), "W", (40, 30), 0.5).ravel(),
    ]
    for other in others:
        assert not np.array_equal(base, other)


def test_full_connectivity_means_no_mask():
    node = SeedKey(77, "mask/node")
    assert connectivity_mask(node, "W", (4, 4), 1.0) is None
    full = make_weight("normal", node, "W", (4, 4), fan_in=4, fan_out=4, connectivity=1.0)
    plain = make_weight("normal", node, "W", (4, 4), fan_in=4, fan_out=4)
    assert full.tobytes() == plain.tobytes()
    assert np.all(plain != 0.0)
