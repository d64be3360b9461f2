"""The Philox4x32-10 generator and the seeded-weight key contract."""

import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from deepreservoir import seeding
from deepreservoir.errors import ParameterError
from deepreservoir.families import FAMILIES, make_weight
from deepreservoir.seeding import (
    GENERATOR,
    GENERATOR_VERSION,
    SeedKey,
    TensorKey,
    fingerprint,
    philox4x32,
    random_uint32,
    standard_normal,
    uniform,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def words(*hex_words):
    return [int(w, 16) for w in hex_words]


# ---------------------------------------------------------------------------- Philox KAT

# Random123 known-answer vectors for Philox4x32-10 (kat_vectors).
KNOWN_ANSWERS = [
    (
        words("00000000", "00000000", "00000000", "00000000"),
        words("00000000", "00000000"),
        words("6627e8d5", "e169c58d", "bc57ac4c", "9b00dbd8"),
    ),
    (
        words("ffffffff", "ffffffff", "ffffffff", "ffffffff"),
        words("ffffffff", "ffffffff"),
        words("408f276d", "41c83b0e", "a20bc7c6", "6d5451fd"),
    ),
    (
        words("243f6a88", "85a308d3", "13198a2e", "03707344"),
        words("a4093822", "299f31d0"),
        words("d16cfe09", "94fdcceb", "5001e420", "24126ea1"),
    ),
]


@pytest.mark.parametrize(("counter", "key", "expected"), KNOWN_ANSWERS)
def test_philox_known_answer_vectors(counter, key, expected):
    out = philox4x32(np.array([counter], dtype=np.uint64), tuple(key))
    assert out.dtype == np.uint32
    assert out.shape == (1, 4)
    assert out[0].tolist() == expected


def test_philox_batches_are_elementwise():
    counters = np.array([c for c, _, _ in KNOWN_ANSWERS], dtype=np.uint64)
    # one key for the batch: rows must equal their one-row evaluations
    key = tuple(KNOWN_ANSWERS[2][1])
    batch = philox4x32(counters, key)
    for row, counter in enumerate(counters):
        assert np.array_equal(batch[row], philox4x32(counter[None, :], key)[0])


def test_generator_is_named_and_versioned():
    assert GENERATOR == "philox4x32-10"
    assert GENERATOR_VERSION == 2


# ---------------------------------------------------------------------------- word layout


def tensor_key(root=1, path="a/b", role="W", shape=(3, 4), family="normal"):
    return SeedKey(root, path).tensor(role, shape, family)


def test_random_words_follow_the_documented_counter_layout():
    key = tensor_key()
    for stream in (0, 1, 7):
        got = random_uint32(key, 37, stream)
        index = np.arange(10, dtype=np.uint64)
        counter = np.zeros((10, 4), dtype=np.uint64)
        counter[:, 0] = index
        counter[:, 2] = stream
        expected = philox4x32(counter, key.philox_key).reshape(-1)[:37]
        assert got.dtype == np.uint32
        assert np.array_equal(got, expected)


def test_random_words_across_the_internal_chunk_boundary():
    key = tensor_key(path="chunk")
    blocks = (1 << 20) + 2  # just past one internal batch of counters
    got = random_uint32(key, 4 * blocks, stream=3)
    index = np.arange(blocks - 4, blocks, dtype=np.uint64)
    counter = np.zeros((4, 4), dtype=np.uint64)
    counter[:, 0] = index
    counter[:, 2] = 3
    expected = philox4x32(counter, key.philox_key).reshape(-1)
    assert np.array_equal(got[-16:], expected)


# ---------------------------------------------------------------------------- uniforms


def test_uniform_values_lie_in_the_open_unit_interval():
    u = uniform(tensor_key(shape=(1000, 1000)))
    assert u.dtype == np.float64
    assert u.shape == (1_000_000,)
    assert np.all(u > 0.0)
    assert np.all(u < 1.0)


def test_uniform_is_uniform():
    u = uniform(tensor_key(shape=(200_000,)))
    assert scipy.stats.kstest(u, "uniform").pvalue > 1e-3
    z = standard_normal(tensor_key(shape=(200_000,)), stream=5)
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3


def fake_words(monkeypatch, first, second):
    """Make every uniform be built from the 32-bit words ``first`` and ``second``."""

    def fake(key, n_words, stream=0):
        out = np.empty(n_words, dtype=np.uint32)
        out[0::2] = first
        out[1::2] = second
        return out

    monkeypatch.setattr(seeding, "random_uint32", fake)


def words_for(k):
    """The two 32-bit words whose top 26 bits each form the 52-bit integer ``k``."""
    return (k >> 26) << 6, (k & ((1 << 26) - 1)) << 6


def test_uniform_smallest_value(monkeypatch):
    fake_words(monkeypatch, 0, 0)
    u = uniform(tensor_key(shape=(4,)))
    assert np.all(u == 2.0**-53)


def test_uniform_largest_value_is_below_one(monkeypatch):
    fake_words(monkeypatch, 0xFFFFFFFF, 0xFFFFFFFF)
    u = uniform(tensor_key(shape=(4,)))
    assert np.all(u == 1.0 - 2.0**-53)
    assert np.all(u < 1.0)
    z = seeding.standard_normal(tensor_key(shape=(4,)))
    assert np.all(np.isfinite(z))
    assert np.all(z > 8.0)


def test_uniform_ignores_the_low_six_bits_of_each_word(monkeypatch):
    fake_words(monkeypatch, 0x3F, 0x3F)
    assert np.all(uniform(tensor_key(shape=(2,))) == 2.0**-53)


@pytest.mark.parametrize(
    "k", [0, 1, 12345, 2**40 + 3, 2**51 - 1, 2**51, 2**51 + 1, 2**52 - 2, 2**52 - 1])
def test_uniform_is_exactly_k_plus_half_over_2_to_the_52(monkeypatch, k):
    fake_words(monkeypatch, *words_for(k))
    u = uniform(tensor_key(shape=(2,)))
    assert Fraction(float(u[0])) == Fraction(2 * k + 1, 2**53)
    assert Fraction(float(u[1])) == Fraction(2 * k + 1, 2**53)


def test_uniform_matches_the_documented_bit_layout():
    key = tensor_key(shape=(5000,))
    w = random_uint32(key, 10_000).astype(np.uint64)
    k = ((w[0::2] >> np.uint64(6)) << np.uint64(26)) | (w[1::2] >> np.uint64(6))
    u = uniform(key)
    assert 2000 < (k < 2**51).sum() < 3000  # both halves of (0, 1) are covered
    exact = [Fraction(2 * int(v) + 1, 2**53) for v in k[:200]]
    assert [Fraction(float(v)) for v in u[:200]] == exact
    assert np.array_equal(u, (k.astype(np.float64) + 0.5) * 2.0**-52)


@pytest.mark.parametrize("stream", [0, 3])
def test_uniform_i_uses_words_2i_and_2i_plus_1_of_counter_i_div_2(stream):
    key = tensor_key(shape=(7,))
    u = uniform(key, stream)
    for i in range(7):
        counter = np.array([[i // 2, 0, stream, 0]], dtype=np.uint64)
        block = philox4x32(counter, key.philox_key)[0].astype(np.uint64)
        high, low = block[2 * (i % 2)], block[2 * (i % 2) + 1]
        k = (int(high) >> 6 << 26) | (int(low) >> 6)
        assert Fraction(float(u[i])) == Fraction(2 * k + 1, 2**53)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3000), data=st.data())
def test_prefix_property(n, data):
    k = data.draw(st.integers(0, n))
    key = tensor_key(shape=(7, 11))
    stream = data.draw(st.integers(0, 3))
    assert np.array_equal(uniform(key, stream, size=n)[:k], uniform(key, stream, size=k))
    assert np.array_equal(random_uint32(key, n, stream)[:k], random_uint32(key, k, stream))
    assert np.array_equal(
        standard_normal(key, stream, size=n)[:k], standard_normal(key, stream, size=k)
    )


def test_default_size_is_the_tensor_size():
    key = tensor_key(shape=(6, 5, 2))
    assert key.size == 60
    assert uniform(key).shape == (60,)
    assert np.array_equal(uniform(key), uniform(key, size=60))
    assert standard_normal(key).shape == (60,)


def test_streams_differ():
    key = tensor_key(shape=(1000,))
    draws = [uniform(key, stream=s) for s in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.any(draws[i] == draws[j])
            assert abs(np.corrcoef(draws[i], draws[j])[0, 1]) < 0.15


# ---------------------------------------------------------------------------- keys

BASE = {"root": 1, "path": "a/b", "role": "W", "shape": (3, 4), "family": "normal"}
VARIANTS = [
    {},
    {"root": 2},
    {"root": 2**63 - 1},
    {"path": "a/c"},
    {"path": "a"},
    {"path": ""},
    {"role": "Win"},
    {"role": "W:mask"},
    {"shape": (4, 3)},
    {"shape": (12,)},
    {"shape": (3, 4, 1)},
    {"family": "uniform"},
    {"family": {"name": "normal", "scale": 0.5}},
    {"family": {"name": "normal", "scale": None}},
]


def test_keys_differ_by_root_path_role_shape_and_family():
    keys = [tensor_key(**{**BASE, **change}) for change in VARIANTS]
    assert len({k.philox_key for k in keys}) == len(keys)
    firsts = [uniform(k, size=8) for k in keys]
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            assert not np.array_equal(firsts[i], firsts[j]), (VARIANTS[i], VARIANTS[j])


def test_tensor_key_fields_and_equality():
    key = tensor_key()
    assert isinstance(key, TensorKey)
    assert key.node == SeedKey(1, "a/b")
    assert key.role == "W"
    assert key.shape == (3, 4)
    assert key.family == json.dumps("normal")
    assert key == tensor_key()
    assert key != tensor_key(role="Win")
    k0, k1 = key.philox_key
    assert 0 <= k0 < 2**32 and 0 <= k1 < 2**32
    # shapes given as numpy integers give the same key
    assert tensor_key(shape=(np.int64(3), np.int32(4))).philox_key == key.philox_key


def test_child_paths():
    root = SeedKey(7)
    assert root.path == ""
    assert root.child("a") == SeedKey(7, "a")
    assert root.child("a").child("b") == SeedKey(7, "a/b")


roots = st.integers(0, 2**63 - 1)
paths = st.text(max_size=12)
roles = st.text(min_size=1, max_size=6)
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)
family_specs = st.one_of(
    st.sampled_from(sorted(FAMILIES)),
    st.builds(lambda s: {"name": "cauchy", "scale": s}, st.floats(0.01, 10.0)),
)
specs = st.tuples(roots, paths, roles, shapes, family_specs)


def draw_bits(spec):
    root, path, role, shape, family = spec
    key = SeedKey(root, path).tensor(role, shape, family)
    return (
        key.philox_key,
        uniform(key).tobytes(),
        standard_normal(key, stream=2).tobytes(),
    )


@settings(max_examples=60, deadline=None)
@given(specs)
def test_same_description_gives_identical_bits(spec):
    first = draw_bits(spec)
    root, path, role, shape, family = spec
    # rebuilt from equal but distinct objects
    again = draw_bits((int(str(root)), "".join(path), str(role), tuple(list(shape)),
                       json.loads(json.dumps(family))))
    assert first == again


@settings(max_examples=30, deadline=None)
@given(st.lists(specs, min_size=2, max_size=6, unique_by=lambda s: json.dumps(s)), st.data())
def test_keys_do_not_depend_on_evaluation_order(spec_list, data):
    forward = {json.dumps(s): draw_bits(s) for s in spec_list}
    shuffled = data.draw(st.permutations(spec_list))
    for spec in shuffled:
        uniform(tensor_key(shape=(50,), path="unrelated"))  # unrelated work in between
        assert draw_bits(spec) == forward[json.dumps(spec)]


def test_family_weights_do_not_depend_on_construction_order():
    node = SeedKey(99, "order")
    names = sorted(FAMILIES)
    forward = {n: make_weight(n, node, "W", (6, 6), fan_in=6, fan_out=6) for n in names}
    for n in reversed(names):
        again = make_weight(n, node, "W", (6, 6), fan_in=6, fan_out=6)
        assert again.tobytes() == forward[n].tobytes(), n


# ---------------------------------------------------------------------------- new process

CHILD = r"""
import json, sys
from deepreservoir.families import make_weight
from deepreservoir.seeding import SeedKey, uniform
for line in sys.stdin:
    r = json.loads(line)
    node = SeedKey(r["root"], r["path"])
    key = node.tensor(r["role"], tuple(r["shape"]), r["family"])
    w = make_weight(r["family"], node, r["role"], tuple(r["shape"]),
                    fan_in=r["shape"][-1], fan_out=r["shape"][0])
    out = {"key": list(key.philox_key),
           "uniform": [float.hex(float(v)) for v in uniform(key, stream=1)],
           "weight": [float.hex(float(v)) for v in w.ravel()]}
    print(json.dumps(out), flush=True)
"""


def in_process(request):
    node = SeedKey(request["root"], request["path"])
    shape = tuple(request["shape"])
    key = node.tensor(request["role"], shape, request["family"])
    w = make_weight(request["family"], node, request["role"], shape,
                    fan_in=shape[-1], fan_out=shape[0])
    return {"key": list(key.philox_key),
            "uniform": [float.hex(float(v)) for v in uniform(key, stream=1)],
            "weight": [float.hex(float(v)) for v in w.ravel()]}


@pytest.fixture(scope="module")
def child_process():
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "4242"  # a different hash seed must not matter
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        cwd=REPO_ROOT, env=env, text=True,
    )
    yield process
    process.stdin.close()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ask(process, request):
    process.stdin.write(json.dumps(request) + "\n")
    process.stdin.flush()
    line = process.stdout.readline()
    assert line, "the child process exited without answering"
    return json.loads(line)


family_names = st.sampled_from(sorted(FAMILIES))
requests = st.fixed_dictionaries({
    "root": roots,
    "path": st.text(max_size=10),
    "role": roles,
    "shape": st.lists(st.integers(1, 6), min_size=2, max_size=2),
    "family": st.one_of(family_names,
                        st.builds(lambda s: {"name": "laplace", "b": s}, st.floats(0.01, 5.0))),
})


@settings(max_examples=25, deadline=None)
@given(requests)
def test_a_new_process_gives_the_same_bits(child_process, request):
    assert ask(child_process, request) == in_process(request)


def test_a_new_process_reproduces_a_large_tensor(child_process):
    request = {"root": 2024, "path": "big/node", "role": "W", "shape": [64, 48],
               "family": "student_t"}
    assert ask(child_process, request) == in_process(request)


# ---------------------------------------------------------------------------- SeedKey validation


@pytest.mark.parametrize("seed", [-1, -(2**63), 1.0, 2.5, float("nan"), True, False, 2**63,
                                  2**64 + 5, "3", None, np.float64(2.0)])
def test_seed_key_rejects_bad_seeds(seed):
    pattern = r"The 'seed' parameter must be a non-negative int below 2\*\*63\. Got "
    with pytest.raises(ParameterError, match=pattern + re.escape(repr(seed)) + r"\.$"):
        SeedKey(seed)


@pytest.mark.parametrize("seed", [0, 1, 2**32, 2**63 - 1])
def test_seed_key_accepts_the_valid_range(seed):
    key = SeedKey(seed, "x").tensor("W", (2,), "normal")
    assert uniform(key).shape == (2,)


@pytest.mark.parametrize("root", [np.int64(5), np.uint32(5), np.int8(5)])
def test_numpy_integer_seed_gives_the_same_key_as_int(root):
    expected = SeedKey(5, "n").tensor("W", (3,), "normal").philox_key
    key = SeedKey(root, "n")
    assert key == SeedKey(5, "n") and type(key.root) is int
    assert key.tensor("W", (3,), "normal").philox_key == expected


# ---------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_pinned_and_stable():
    array = np.arange(6.0).reshape(2, 3)
    assert fingerprint(array) == "74a2bce44005334d"
    assert fingerprint(array.copy()) == "74a2bce44005334d"
    assert fingerprint(np.asfortranarray(array)) == "74a2bce44005334d"
    assert fingerprint(array.tolist()) == "74a2bce44005334d"
    assert fingerprint(array.astype(np.float32)) == "74a2bce44005334d"
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint(np.zeros(0)))


def test_fingerprint_changes_when_one_value_or_the_shape_changes():
    array = np.random.default_rng(0).standard_normal((4, 5))
    base = fingerprint(array)
    seen = {base}
    for index in np.ndindex(array.shape):
        changed = array.copy()
        changed[index] = np.nextafter(changed[index], np.inf)
        seen.add(fingerprint(changed))
    assert len(seen) == array.size + 1
    assert fingerprint(array.reshape(5, 4)) != base
    assert fingerprint(array.ravel()) != base
