"""The 22 weight families: pinned bits, distributions, specs and connectivity masks."""

import json
import math
import re

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from blas_threads import single_blas_thread  # noqa: F401  (a fixture)

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

pytestmark = pytest.mark.usefixtures("single_blas_thread")

GOLDEN_NODE = SeedKey(2024, "golden/node")
GOLDEN_SHAPE = (16, 12)

# These vectors pin generator version 2 (deepreservoir.seeding.GENERATOR_VERSION):
# the first 6 values of make_weight(name, SeedKey(2024, "golden/node"), "W", (16, 12),
# fan_in=12, fan_out=16).ravel(), as float.hex. Changing them is a breaking change of
# the file format (saved models would regenerate different scaffolds) and must be
# documented in docs/seeding.md and the changelog, with a new generator version.
GOLDEN = {
    "normal": ("-0x1.c631751b6cbb8p-2", "0x1.e6191d5005bf5p-4", "0x1.ca0ebd1263896p-2",
               "-0x1.07977e691145bp-2", "-0x1.51073df97720cp-3", "-0x1.057c3b16ad535p-5"),
    "truncated_normal": ("-0x1.117245ea7b7d7p-6", "-0x1.def5f7e1aa5bep-2", "-0x1.af7aae4264b52p-5",
                         "-0x1.72d223d2b6451p-7", "0x1.4be9f7757e846p-3", "-0x1.458b5f4d4ec4ep-3"),
    "uniform": ("-0x1.fd16deb73dfc0p-7", "0x1.9896237039d5ap-7", "-0x1.2696be855c16bp-4",
                "-0x1.32122f985380bp-4", "0x1.6156c12553305p-4", "0x1.27a58e38b666ap-5"),
    "orthogonal": ("-0x1.f031a433daf60p-4", "-0x1.b240d3b6fc59dp-6", "0x1.d62f4d6291233p-2",
                   "0x1.a16dd2e8df953p-6", "0x1.5cdf0d8dd6c63p-7", "0x1.082fd62ab1d15p-4"),
    "kaiming_normal": ("0x1.0faba936420a5p-1", "-0x1.ab19e97c15211p-2", "0x1.bc41ce199b19cp-3",
                       "-0x1.bf95ae3c9ee62p-2", "0x1.b0112cbaf57f6p-3", "-0x1.64fa493db9167p-6"),
    "kaiming_uniform": ("0x1.a98b3c2a13844p-3", "-0x1.1731ac56a0c00p-5", "0x1.1be8b28264ed7p-2",
                        "-0x1.ab16cb617e6e0p-10", "-0x1.9d244a2287832p-3", "-0x1.ea4f25c9ea720p-4"),
    "xavier_normal": ("0x1.9494ae65d612bp-2", "-0x1.0c1320a3c12f7p-2", "-0x1.33d1a8302e967p-3",
                      "-0x1.a695f576c15cbp-4", "-0x1.e0295e52d3b72p-4", "-0x1.69c14197d58d5p-4"),
    "xavier_uniform": ("-0x1.8c52a56756e9ap-3", "0x1.87f74b52d1685p-5", "0x1.537e6dffa0684p-2",
                       "-0x1.47d24f3b6a3e3p-3", "0x1.a49855c8bcd6ep-2", "-0x1.a8096a333b1e2p-3"),
    "spectral_radius": ("-0x1.602b5ab9b9acap-5", "-0x1.31d6555620b35p-3", "0x1.8ebfaa56a6a77p-6",
                        "-0x1.8ed4d72811856p-2", "-0x1.6c6c18f599a4bp-3", "0x1.66e95377210f4p-3"),
    "cauchy": ("-0x1.97006af3672a5p-5", "0x1.5de383cb53684p-4", "-0x1.bfa560fae2042p-4",
               "0x1.600821dfba4e5p-5", "0x1.0000000000000p+0", "0x1.1939faf4c6bffp-8"),
    "laplace": ("-0x1.ec46fb9f16082p-5", "0x1.0ad855e3cacffp-5", "-0x1.feb9d480c5034p-5",
                "-0x1.d2d6f297f42d7p-5", "-0x1.3af33e51e35bcp-6", "0x1.3ce3962f9bce1p-6"),
    "student_t": ("0x1.bc6451a6b9a1bp-3", "-0x1.cc8c267b95888p+0", "-0x1.cc0246c156798p-3",
                  "-0x1.72d1a188af9edp-1", "0x1.2337a29c3d099p-5", "-0x1.d9e7d535a3e3ap-1"),
    "mixture": ("-0x1.1bc0e428fa273p-3", "-0x1.f193ff0c0038cp-10", "-0x1.766cb5d448095p-3",
                "-0x1.271cc585f6a93p-5", "0x1.a60912376a1f4p-4", "-0x1.e45e849ce2b2ap-5"),
    "sparse_normal": ("0x1.8a4ed62cbad6ep-2", "-0x1.77354823e13e4p-3", "0x1.7371b363d8b89p-5",
                      "-0x1.42299dd64eacep-6", "0x0.0p+0", "0x0.0p+0"),
    "erdos_renyi": ("0x1.7963327032c31p-4", "0x0.0p+0", "0x0.0p+0", "0x0.0p+0", "0x0.0p+0",
                    "0x0.0p+0"),
    "beta": ("-0x1.bb80518e7c9d4p-6", "0x1.8c2bbc22c94dap-7", "-0x1.48a9def7f8037p-5",
             "-0x1.43bafd68779cap-5", "-0x1.435796200a1dap-7", "0x1.7c9c69a32a910p-5"),
    "exponential": ("0x1.cd33618dde690p-4", "-0x1.b010e96e290cap-5", "0x1.f61c28108220dp-6",
                    "0x1.31e6e89d899fdp-4", "-0x1.78ec8ce2d7542p-4", "0x1.a25678f49f853p-6"),
    "quant16": ("-0x1.6635b2ad3d570p-5", "-0x1.3532b8ced32d7p-3", "-0x1.eb5fec04f2a27p-2",
                "0x1.8c8b7f71e47c1p-2", "-0x1.faa6e486484fbp-3", "0x1.d5d88949b309ep-3"),
    "quant8": ("-0x1.aa15a1b44d9adp-2", "0x1.6bbb0d2986ee5p-2", "-0x1.1520cd1372febp-6",
               "0x1.56f230fb44b4dp-2", "0x1.8ae8576eea449p-3", "-0x1.ad8c711158a46p-4"),
    "quant4": ("-0x1.1520cd1372febp-2", "0x1.bb67ae8584cacp-5", "0x1.83fab8b4d4316p-2",
               "-0x1.bb67ae8584cacp-5", "-0x1.1520cd1372febp-2", "-0x1.1520cd1372febp-2"),
    "quant2": ("0x1.bb67ae8584cacp-3", "-0x1.bb67ae8584cacp-3", "0x1.bb67ae8584cacp-3",
               "-0x1.bb67ae8584cacp-3", "-0x1.bb67ae8584cacp-3", "0x1.bb67ae8584cacp-3"),
    "binary": ("0x1.279a74590331dp-2", "0x1.279a74590331dp-2", "-0x1.279a74590331dp-2",
               "0x1.279a74590331dp-2", "0x1.279a74590331dp-2", "-0x1.279a74590331dp-2"),
}

# Families whose values go through LAPACK (QR, eigvals): equal to rounding, not bitwise.
LAPACK_FAMILIES = {"orthogonal", "spectral_radius"}

# connectivity_mask(GOLDEN_NODE, "W", (16, 12), c).ravel()[:20], as 0/1.
GOLDEN_MASK = {
    0.1: "00100001000100001000",
    0.5: "10110001011000000011",
}
# make_weight("normal", GOLDEN_NODE, "W", (16, 12), fan_in=12, fan_out=16, connectivity=0.1):
# the flat indices of its nonzero entries and the first 6 nonzero values.
GOLDEN_MASKED_INDICES = [2, 7, 11, 16, 21, 23, 35, 40, 46, 60, 71, 75, 81, 100, 103, 112, 151,
                         153, 163, 183]
GOLDEN_MASKED_VALUES = ("0x1.ca0ebd1263896p-2", "-0x1.67badd260cdddp-3",
                        "0x1.3f6d5fb122636p-1", "-0x1.974ba2eba3b6bp-2",
                        "-0x1.1b5fd99d61fcap-4", "0x1.dd3ee9093f4dbp-3")


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
# Root seed of the statistical tests. Under generator version 1 it was 31337; with
# version 2 the fixed 100,000-value xavier_uniform sample of that root happened to
# give a KS p-value of 1.9e-4 (roots 1 to 7 give 0.09 to 0.93, and 10^6 raw uniforms
# of six roots 0.05 to 0.94), a chance event at this level across ~25 fixed-seed
# tests. The root was then moved to the release date rather than the level lowered.
STATS_ROOT = 20261129


def sample(family, path=None, shape=SHAPE, **kwargs):
    name = family if isinstance(family, str) else family.name
    node = SeedKey(STATS_ROOT, path or f"stats/{name}")
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
    node = SeedKey(STATS_ROOT, f"stats/{name}")
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


@pytest.mark.parametrize(("make", "parameter"), [
    pytest.param(lambda: Normal(scale=math.inf), "scale", id="normal-scale-inf"),
    pytest.param(lambda: Normal(scale=math.nan), "scale", id="normal-scale-nan"),
    pytest.param(lambda: Uniform(a=math.inf), "a", id="uniform-a-inf"),
    pytest.param(lambda: Cauchy(scale=math.inf), "scale", id="cauchy-scale-inf"),
    pytest.param(lambda: Cauchy(clip=math.nan), "clip", id="cauchy-clip-nan"),
    pytest.param(lambda: Mixture(weight=math.nan), "weight", id="mixture-weight-nan"),
    pytest.param(lambda: KaimingUniform(a=math.nan), "a", id="kaiming-uniform-a-nan"),
    pytest.param(lambda: KaimingUniform(a=-math.inf), "a", id="kaiming-uniform-a-inf"),
    pytest.param(lambda: KaimingUniform(a="5"), "a", id="kaiming-uniform-a-str"),
    pytest.param(lambda: get_family({"name": "laplace", "b": math.inf}), "b", id="spec-inf"),
])
def test_non_finite_family_parameters_are_rejected(make, parameter):
    with pytest.raises(ParameterError, match=rf"The '{parameter}' parameter of the \w+ family "
                                             r"must be a (finite )?float.*Got "):
        make()


def test_kaiming_uniform_accepts_any_finite_a():
    node = SeedKey(3, "a")
    zero = make_weight(KaimingUniform(a=0.0), node, "W", (50, 40), fan_in=40, fan_out=50)
    assert np.abs(zero).max() <= math.sqrt(6.0 / 40)
    assert np.abs(zero).max() > 0.9 * math.sqrt(6.0 / 40)
    bound = math.sqrt(6.0 / (2 * 40))  # a = ±1: the bound depends on a² only
    for a in (-1, 1.0):
        values = make_weight(KaimingUniform(a=a), node, "W", (50, 40), fan_in=40, fan_out=50)
        assert bound * 0.9 < np.abs(values).max() <= bound


@pytest.mark.parametrize(("int_spec", "float_spec"), [
    (Normal(scale=1), Normal(scale=1.0)),
    (Uniform(a=1), Uniform(a=1.0)),
    (Cauchy(scale=1, clip=10), Cauchy(scale=1.0, clip=10.0)),
    (Cauchy(scale=np.float32(0.5)), Cauchy(scale=0.5)),
    (Quantized(bits=np.int64(4), clip=3), Quantized(bits=4)),
    (StudentT(nu=np.int64(3), scale=1), StudentT(scale=1.0)),
])
def test_equal_families_give_equal_specs_and_weights(int_spec, float_spec):
    assert int_spec == float_spec
    assert json.dumps(int_spec.spec(), sort_keys=True) == json.dumps(float_spec.spec(),
                                                                     sort_keys=True)
    node = SeedKey(8, "equal")
    a = make_weight(int_spec, node, "W", (4, 4), fan_in=4, fan_out=4)
    b = make_weight(float_spec, node, "W", (4, 4), fan_in=4, fan_out=4)
    assert a.tobytes() == b.tobytes()


def test_canonical_spec_keeps_ints_and_none():
    spec = Quantized(bits=4, clip=3).spec()
    assert spec == {"name": "quantized", "bits": 4, "clip": 3.0, "scale": None}
    assert type(spec["bits"]) is int and type(spec["clip"]) is float
    assert type(StudentT(nu=3).spec()["nu"]) is int
    assert type(Normal(scale=2).scale) is float


def test_a_spec_dict_with_int_values_gives_the_family_object_weights():
    node = SeedKey(8, "dict")
    a = make_weight({"name": "laplace", "b": 1}, node, "W", (5,), fan_in=5, fan_out=5)
    b = make_weight(Laplace(b=1.0), node, "W", (5,), fan_in=5, fan_out=5)
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("connectivity", [0, 0.0, -0.1, 1.5, math.nan, math.inf, "0.5", True])
def test_make_weight_rejects_connectivity_outside_0_1(connectivity):
    pattern = r"The 'connectivity' parameter must be a float in \(0, 1\]\. Got "
    with pytest.raises(ParameterError, match=pattern):
        make_weight("normal", SeedKey(1, "c"), "W", (4, 4), fan_in=4, fan_out=4,
                    connectivity=connectivity)
    with pytest.raises(ParameterError, match=pattern):
        connectivity_mask(SeedKey(1, "c"), "W", (4, 4), connectivity)


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
