"""A user's ``.npz`` data file: loading, splitting, and every way it can be wrong."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import deepreservoir as dr
from deepreservoir.data_files import file_digest, is_data_file, load_npz
from deepreservoir.sweep import load_dataset, parse_config


def toy(n=50, features=3, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, features)).astype(np.float32), np.arange(n) % classes


def test_x_and_y_are_split_with_a_seed(tmp_path):
    x, y = toy()
    np.savez(tmp_path / "toy.npz", X=x, y=y)
    data = load_npz(tmp_path / "toy.npz", test_fraction=0.2, seed=3)
    assert data["x_train"].shape == (40, 3) and data["x_test"].shape == (10, 3)
    assert data["x_train"].dtype == np.float32 and data["y_train"].dtype == np.int64
    order = np.random.default_rng(3).permutation(50)
    np.testing.assert_array_equal(data["x_test"], x[order[:10]])
    np.testing.assert_array_equal(data["y_train"], y[order[10:]])


def test_a_given_split_is_kept_and_features_are_flattened(tmp_path):
    rng = np.random.default_rng(1)
    images, test_images = rng.random((30, 4, 4)), rng.random((7, 4, 4))
    np.savez(tmp_path / "images.npz", X=images, y=np.arange(30) % 3, X_test=test_images,
             y_test=np.arange(7) % 3)
    data = load_npz(tmp_path / "images.npz")
    assert data["x_train"].shape == (30, 16) and data["x_test"].shape == (7, 16)
    np.testing.assert_array_equal(data["x_test"], test_images.reshape(7, 16).astype(np.float32))


def test_lower_case_names_are_accepted(tmp_path):
    x, y = toy()
    np.savez(tmp_path / "lower.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:],
             y_test=y[40:])
    data = load_npz(tmp_path / "lower.npz")
    np.testing.assert_array_equal(data["y_test"], y[40:])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32), fraction=st.floats(0.05, 0.9))
def test_the_split_is_a_partition_and_reproducible(tmp_path_factory, seed, fraction):
    folder = tmp_path_factory.mktemp("split")
    x = np.arange(40, dtype=np.float32).reshape(40, 1)
    np.savez(folder / "d.npz", X=x, y=np.zeros(40, dtype=int))
    first = load_npz(folder / "d.npz", test_fraction=fraction, seed=seed)
    again = load_npz(folder / "d.npz", test_fraction=fraction, seed=seed)
    np.testing.assert_array_equal(first["x_test"], again["x_test"])
    together = np.sort(np.concatenate([first["x_train"], first["x_test"]]).ravel())
    np.testing.assert_array_equal(together, x.ravel())


def write(tmp_path, name, **arrays):
    np.savez(tmp_path / name, **arrays)
    return tmp_path / name


@pytest.mark.parametrize("make, shown", [
    (lambda p: p / "missing.npz", "does not exist"),
    (lambda p: p, "is a directory"),
    (lambda p: (p / "junk.npz").write_bytes(b"not a zip archive") and p / "junk.npz",
     "could not be read"),
    (lambda p: np.save(p / "one.npy", np.zeros(3)) or (p / "one.npy"), "single .npy"),
    (lambda p: write(p, "noy.npz", X=np.zeros((5, 2))), "no 'y' array"),
    (lambda p: write(p, "half.npz", X=np.zeros((5, 2)), y=np.zeros(5, int),
                     X_test=np.zeros((2, 2))), "both X_test and y_test"),
    (lambda p: write(p, "nan.npz", X=np.array([[0.0, np.nan]] * 4), y=np.zeros(4, int)),
     "the first at index (0, 1)"),
    (lambda p: write(p, "frac.npz", X=np.zeros((4, 2)), y=np.array([0, 0.5, 1, 1])),
     "non-integer"),
    (lambda p: write(p, "neg.npz", X=np.zeros((4, 2)), y=np.array([0, -1, 1, 1])),
     "range -1"),
    (lambda p: write(p, "short.npz", X=np.zeros((4, 2)), y=np.zeros(3, int)), "shape (4,)"),
    (lambda p: write(p, "text.npz", X=np.array([["a", "b"]] * 4), y=np.zeros(4, int)),
     "real numbers"),
    (lambda p: write(p, "obj.npz", X=np.array([[1, None]] * 4, dtype=object),
                     y=np.zeros(4, int)), "could not be read"),
    (lambda p: write(p, "width.npz", X=np.zeros((4, 2)), y=np.zeros(4, int),
                     X_test=np.zeros((2, 3)), y_test=np.zeros(2, int)), "2 features"),
    (lambda p: write(p, "both.npz", X=np.zeros((4, 2)), x_train=np.zeros((4, 2)),
                     y=np.zeros(4, int)), "both 'X' and 'x_train'"),
])
def test_bad_files_are_refused_by_name(tmp_path, make, shown):
    path = make(tmp_path)
    with pytest.raises(dr.DataError) as error:
        load_npz(path)
    assert shown in str(error.value)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("kwargs, name", [({"test_fraction": 1.5}, "test_fraction"),
                                          ({"test_fraction": 0.001}, "test_fraction"),
                                          ({"seed": -1}, "seed")])
def test_bad_split_arguments_are_parameter_errors(tmp_path, kwargs, name):
    path = write(tmp_path, "d.npz", X=np.zeros((10, 2)), y=np.zeros(10, int))
    with pytest.raises(dr.ParameterError, match=f"'{name}'"):
        load_npz(path, **kwargs)


def test_sweeps_and_studies_read_a_file_as_their_data(tmp_path):
    x, y = toy(n=60)
    path = write(tmp_path, "mine.npz", X=x, y=y)
    assert is_data_file(path) and is_data_file("A.NPZ") and not is_data_file("digits")
    data = load_dataset(str(path), num_samples=20)
    assert data["x_train"].shape == (20, 3) and len(data["y_test"]) == 12


def test_a_sweep_config_resolves_a_relative_file_and_notices_a_change(tmp_path):
    x, y = toy(n=60)
    write(tmp_path, "mine.npz", X=x, y=y)
    config = parse_config({"sweep": {"dataset": "mine.npz", "ranks": [1],
                                     "presets": ["tiny"]}}, base=tmp_path)
    assert config.dataset == str(tmp_path / "mine.npz")
    before = config.fingerprint()
    digest = file_digest(tmp_path / "mine.npz")
    write(tmp_path, "mine.npz", X=x + 1, y=y)
    assert config.fingerprint() != before and file_digest(tmp_path / "mine.npz") != digest
    with pytest.raises(dr.DataError, match="existing .npz file"):
        parse_config({"sweep": {"dataset": "absent.npz"}}, base=tmp_path)


def test_a_series_file_is_split_in_time(tmp_path):
    from deepreservoir.data_files import load_series_npz

    x = np.arange(300, dtype=float)
    np.savez(tmp_path / "s.npz", X=x, y=np.stack([x, -x], axis=1))
    series = load_series_npz(tmp_path / "s.npz", train_fraction=0.6)
    assert series["x"].shape == (300, 1) and series["y"].shape == (300, 2)
    assert series["split"] == 180
    np.testing.assert_array_equal(series["x"][:, 0], x)  # never shuffled
    np.savez(tmp_path / "ragged.npz", X=x, y=x[:-1])
    with pytest.raises(dr.DataError, match="one row per step of X"):
        load_series_npz(tmp_path / "ragged.npz")
