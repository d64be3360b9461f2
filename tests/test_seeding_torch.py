"""The torch Philox path and tile draws: the same bits as the numpy path, on any device."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_families import GOLDEN, GOLDEN_NODE, GOLDEN_SHAPE, LAPACK_FAMILIES
from test_seeding import KNOWN_ANSWERS

from deepreservoir import exactmath, exactmath_torch, seeding, seeding_torch
from deepreservoir.errors import ParameterError
from deepreservoir.families import FAMILIES, Mixture, StudentT, make_weight
from deepreservoir.seeding import SeedKey

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ELEMENTWISE = sorted(name for name, family in FAMILIES.items() if family.elementwise)
KEY = SeedKey(3, "tiles").tensor("W", (40, 25), "normal")


def same_bits(tensor, array):
    """Equal values and equal signs of zero."""
    values = tensor.detach().cpu().numpy()
    return (values.shape == array.shape and np.array_equal(values, array)
            and np.array_equal(np.signbit(values), np.signbit(array)))


def test_elementwise_flag():
    assert {n for n, f in FAMILIES.items() if not f.elementwise} == LAPACK_FAMILIES
    assert len(ELEMENTWISE) == 20


@pytest.mark.parametrize(("counter", "key", "expected"), KNOWN_ANSWERS)
def test_torch_philox_known_answer_vectors(counter, key, expected):
    out = seeding_torch.philox4x32(torch.tensor([counter], dtype=torch.int64), tuple(key))
    assert out.dtype == torch.int64
    assert out[0].tolist() == expected


def test_torch_rounds_equal_numpy_rounds():
    for use_torch in (False, True):
        words = seeding_torch._blocks(KEY, 2**32 - 5, 300, 7, torch.device("cpu"), use_torch)
        counters = np.zeros((300, 4), dtype=np.uint64)
        index = np.arange(2**32 - 5, 2**32 + 295, dtype=np.uint64)
        counters[:, 0], counters[:, 1], counters[:, 2] = index & 0xFFFFFFFF, index >> 32, 7
        assert np.array_equal(words.numpy(), seeding.philox4x32(counters, KEY.philox_key))


@settings(max_examples=25, deadline=None)
@given(offset=st.integers(0, 600), n=st.integers(0, 400), stream=st.integers(0, 5))
def test_words_uniforms_and_normals_at_any_offset(offset, n, stream):
    words = seeding_torch.random_uint32(KEY, n, stream, offset=offset)
    assert np.array_equal(words.numpy(), seeding.random_uint32(KEY, offset + n, stream)[offset:])
    size = min(n, KEY.size - offset)
    assert same_bits(seeding_torch.uniform(KEY, stream, size, offset),
                     seeding.uniform(KEY, stream)[offset:offset + size])
    assert same_bits(seeding_torch.standard_normal(KEY, stream, size, offset),
                     seeding.standard_normal(KEY, stream)[offset:offset + size])


def test_default_size_is_the_rest_of_the_tensor():
    assert same_bits(seeding_torch.uniform(KEY, offset=999), seeding.uniform(KEY)[999:])
    assert seeding_torch.uniform(KEY, offset=1000).shape == (0,)


def test_uniform_at_equals_indexing():
    index = np.array([999, 0, 1, 2, 500, 501, 2, 37])
    assert np.array_equal(seeding.uniform_at(KEY, index, 3), seeding.uniform(KEY, 3)[index])
    assert np.array_equal(seeding.standard_normal_at(KEY, index),
                          seeding.standard_normal(KEY)[index])


def test_torch_kernels_equal_exactmath():
    u = seeding.uniform(SeedKey(1).tensor("u", (20000,), "x"))
    extremes = np.array([2.0**-53, 1 - 2.0**-53, 0.075, 0.925, 1e-300, 0.5 + 2.0**-53])
    p = np.concatenate([u, extremes])
    assert same_bits(exactmath_torch.ndtri_kernels(torch.from_numpy(p)), exactmath.ndtri(p))
    assert same_bits(exactmath_torch.log_kernels(torch.from_numpy(p)), exactmath.log(p))
    assert same_bits(exactmath_torch.ndtri(torch.from_numpy(p)), exactmath.ndtri(p))
    assert same_bits(exactmath_torch.sqrt(torch.from_numpy(p)), np.sqrt(p))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_golden_vectors_through_the_torch_path(name):
    tile = seeding_torch.draw_rows(name, GOLDEN_NODE, "W", GOLDEN_SHAPE, fan_in=12, fan_out=16)
    assert tile.dtype == torch.float64 and tile.shape == GOLDEN_SHAPE
    first = tuple(float.hex(v) for v in tile.reshape(-1)[:6].tolist())
    assert first == GOLDEN[name]
    whole = make_weight(name, GOLDEN_NODE, "W", GOLDEN_SHAPE, fan_in=12, fan_out=16)
    assert same_bits(tile, whole)


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("connectivity", [1.0, 0.1, 0.5])
def test_every_row_tile_equals_the_rows_of_the_whole_weight(name, connectivity):
    shape = (13, 7)
    whole = make_weight(name, SeedKey(9, "n"), "W", shape, fan_in=7, fan_out=13,
                        connectivity=connectivity)
    for start, stop in [(0, 13), (0, 1), (5, 6), (3, 11), (12, 13), (4, 4)]:
        tile = seeding_torch.draw_rows(name, SeedKey(9, "n"), "W", shape, fan_in=7, fan_out=13,
                                       connectivity=connectivity, start=start, stop=stop)
        assert same_bits(tile, whole[start:stop]), (start, stop)


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(1, 30), cols=st.integers(1, 9), data=st.data())
def test_any_tile_of_any_shape(rows, cols, data):
    stop = data.draw(st.integers(0, rows))
    start = data.draw(st.integers(0, stop))
    name = data.draw(st.sampled_from(["normal", "cauchy", "student_t", "beta", "quant4"]))
    connectivity = data.draw(st.sampled_from([1.0, 0.25]))
    kwargs = {"fan_in": cols, "fan_out": rows, "connectivity": connectivity}
    whole = make_weight(name, SeedKey(1, "h"), "Win", (rows, cols), **kwargs)
    tile = seeding_torch.draw_rows(name, SeedKey(1, "h"), "Win", (rows, cols), start=start,
                                   stop=stop, **kwargs)
    assert same_bits(tile, whole[start:stop])


def test_one_dimensional_shapes_and_dtype():
    whole = make_weight("binary", SeedKey(2), "bias", (17,), fan_in=1, fan_out=17)
    tile = seeding_torch.draw_rows("binary", SeedKey(2), "bias", (17,), fan_in=1, fan_out=17,
                                   start=4, stop=9, dtype=torch.float32)
    assert tile.dtype == torch.float32
    assert torch.equal(tile, torch.as_tensor(whole[4:9]).to(torch.float32))


def test_configured_families_and_specs():
    for family in (StudentT(nu=5, scale=0.3), Mixture(weight=0.5), {"name": "laplace", "b": 2.0}):
        whole = make_weight(family, SeedKey(4), "W", (6, 5), fan_in=5, fan_out=6)
        tile = seeding_torch.draw_rows(family, SeedKey(4), "W", (6, 5), fan_in=5, fan_out=6)
        assert same_bits(tile, whole)


def test_masked_numpy_draw_equals_masking_the_full_draw():
    node = SeedKey(11, "mask")
    for name in ELEMENTWISE:
        full = FAMILIES[name].sample(node.tensor("W", (30, 20), FAMILIES[name].spec()), 20, 30)
        mask = seeding.uniform(node.tensor("W:mask", (30, 20), {"connectivity": 0.2})) < 0.2
        expected = np.where(mask.reshape(30, 20), full, 0.0)
        got = make_weight(name, node, "W", (30, 20), fan_in=20, fan_out=30, connectivity=0.2)
        assert np.array_equal(got, expected) and np.array_equal(np.signbit(got),
                                                                  np.signbit(expected)), name


@pytest.mark.parametrize("name", sorted(LAPACK_FAMILIES))
def test_materialised_families_are_refused_by_name(name):
    with pytest.raises(ParameterError, match=rf"draw_rows must be an elementwise family.*"
                                             rf"Got '{name}': the {name} family is "
                                             rf"materialised only"):
        seeding_torch.draw_rows(name, SeedKey(1), "W", (4, 4), fan_in=4, fan_out=4)
    with pytest.raises(ParameterError, match="materialised only"):
        FAMILIES[name].sample_at(SeedKey(1).tensor("W", (4, 4), name), np.arange(3), 4, 4)


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"start": 3, "stop": 2}, r"'start' parameter of draw_rows must be an int in \[0, 2\]\. Got 3"),
    ({"stop": 9}, r"'stop' parameter of draw_rows must be an int in \[0, 5\]\. Got 9"),
    ({"shape": (2, 2, 2)}, r"'shape' parameter of draw_rows must be a tuple of one or two"),
    ({"connectivity": 0.0}, r"'connectivity' parameter must be a float in \(0, 1\]"),
    ({"family": "nope"}, r"'W' parameter must be a known weight family"),
])
def test_draw_rows_rejects_bad_arguments(kwargs, pattern):
    arguments = {"family": "normal", "shape": (5, 4), **kwargs}
    family, shape = arguments.pop("family"), arguments.pop("shape")
    with pytest.raises(ParameterError, match=pattern):
        seeding_torch.draw_rows(family, SeedKey(1), "W", shape, fan_in=4, fan_out=5, **arguments)


def test_bad_offsets_are_rejected():
    with pytest.raises(ParameterError, match=r"'offset' parameter of uniform"):
        seeding_torch.uniform(KEY, offset=1001)
    with pytest.raises(ParameterError, match=r"'n_words' parameter of random_uint32"):
        seeding_torch.random_uint32(KEY, -1)


@cuda
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_cuda_tiles_equal_cpu_bits(name):
    kwargs = {"fan_in": 50, "fan_out": 64, "connectivity": 0.3, "start": 7, "stop": 60}
    on_cpu = seeding_torch.draw_rows(name, SeedKey(5), "W", (64, 50), **kwargs)
    on_gpu = seeding_torch.draw_rows(name, SeedKey(5), "W", (64, 50), device="cuda", **kwargs)
    assert on_gpu.device.type == "cuda"
    assert same_bits(on_gpu, on_cpu.numpy())


@cuda
def test_cuda_words_and_normals_equal_cpu_bits():
    words = seeding_torch.random_uint32(KEY, 999, 2, offset=1, device="cuda")
    assert np.array_equal(words.cpu().numpy(), seeding.random_uint32(KEY, 1000, 2)[1:])
    p = torch.from_numpy(seeding.uniform(SeedKey(1).tensor("u", (50000,), "x")))
    assert same_bits(exactmath_torch.ndtri(p.cuda()), exactmath.ndtri(p.numpy()))
    assert same_bits(seeding_torch.standard_normal(KEY, 1, device="cuda"),
                     seeding.standard_normal(KEY, 1))
