"""``load_task``: the train and test arrays of an experiment's data set, and bad options."""

from __future__ import annotations

import numpy as np
import pytest
import reservoirpy.datasets as rpy

from deepreservoir.datasets import narma10
from deepreservoir.errors import DataError
from deepreservoir.experiment_data import DATA_OPTIONS, DATASETS, data_kind, load_task


def _shapes(task):
    return [a.shape for a in (task.x_train, task.y_train, task.x_test, task.y_test)]


@pytest.mark.parametrize("options, forecast, test_size", [
    ({"steps": 500}, 1, 0.2),
    ({"steps": 500, "forecast": 10, "test_size": 100}, 10, 100),
    ({"steps": 400, "test_size": 0.3, "tau": 20, "seed": 3}, 1, 0.3),
])
def test_mackey_glass_is_split_as_reservoirpys_to_forecasting(options, forecast, test_size):
    task = load_task("mackey_glass", options)
    assert task.kind == "series"
    series = rpy.mackey_glass(options["steps"], tau=options.get("tau", 17),
                              seed=options.get("seed", 0))
    x_train, x_test, y_train, y_test = rpy.to_forecasting(series, forecast=forecast,
                                                          test_size=test_size)
    for got, expected in zip((task.x_train, task.x_test, task.y_train, task.y_test),
                             (x_train, x_test, y_train, y_test), strict=True):
        assert got.dtype == np.float64 and got.ndim == 2
        np.testing.assert_array_equal(got, expected)


def test_mackey_glass_split_shapes_by_hand():
    assert _shapes(load_task("mackey_glass", {"steps": 500})) == [(399, 1)] * 2 + [(100, 1)] * 2
    task = load_task("mackey_glass", {"steps": 500, "forecast": 10, "test_size": 100})
    assert _shapes(task) == [(390, 1)] * 2 + [(100, 1)] * 2
    np.testing.assert_array_equal(task.y_train[:-10], task.x_train[10:])  # 10 steps ahead
    np.testing.assert_array_equal(task.x_test[:10], task.y_train[-10:])


def test_normalize_maps_the_series_onto_minus_one_one():
    raw = load_task("mackey_glass", {"steps": 500})
    task = load_task("mackey_glass", {"steps": 500, "normalize": True})
    whole = np.concatenate([task.x_train, task.x_test, task.y_test[-1:]])
    assert whole.min() == -1.0 and whole.max() == 1.0
    low = min(raw.x_train.min(), raw.y_test.min())
    high = max(raw.x_train.max(), raw.y_test.max())
    np.testing.assert_allclose(task.x_train, 2 * (raw.x_train - low) / (high - low) - 1,
                               rtol=0, atol=1e-12)


def test_a_reservoirpy_generator_with_its_own_keywords():
    task = load_task("reservoirpy:doublescroll", {"steps": 300, "method": "RK23"})
    assert task.kind == "series"
    assert _shapes(task) == [(239, 3)] * 2 + [(60, 3)] * 2
    assert all(np.isfinite(a).all() for a in (task.x_train, task.x_test))
    expected = rpy.doublescroll(300, method="RK23")
    np.testing.assert_array_equal(task.x_train, expected[:239])


def test_narma10_maps_its_input_to_its_output():
    task = load_task("narma10", {"steps": 300})
    assert task.kind == "series"
    assert _shapes(task) == [(240, 1)] * 2 + [(60, 1)] * 2
    u, y = narma10(300, 0, definition="textbook")
    np.testing.assert_array_equal(task.x_train.ravel(), np.asarray(u).ravel()[:240])
    np.testing.assert_array_equal(task.y_test.ravel(), np.asarray(y).ravel()[240:])
    other = load_task("narma10", {"steps": 300, "test_size": 50, "seed": 1})
    assert _shapes(other) == [(250, 1)] * 2 + [(50, 1)] * 2
    assert not np.array_equal(other.x_train[:240], task.x_train)


def test_digits_are_classes():
    task = load_task("digits", {"num_samples": 200})
    assert task.kind == "classes"
    assert task.x_train.shape == (200, 64) and task.y_train.shape == (200,)
    assert task.x_test.shape[1] == 64 and task.y_test.shape == (task.x_test.shape[0],)
    assert task.x_train.dtype == np.float32 and task.y_train.dtype == np.int64
    assert set(np.unique(task.y_test)) == set(range(10))
    whole = load_task("digits")
    np.testing.assert_array_equal(whole.x_train[:200], task.x_train)
    np.testing.assert_array_equal(whole.x_test, task.x_test)


def test_a_classification_file(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "c.npz", X=rng.normal(size=(50, 3)), y=np.arange(50) % 4)
    task = load_task(str(tmp_path / "c.npz"), {"test_fraction": 0.2})
    assert task.kind == "classes"
    assert _shapes(task) == [(40, 3), (40,), (10, 3), (10,)]
    assert task.x_train.dtype == np.float32 and task.y_train.dtype == np.int64
    np.savez(tmp_path / "given.npz", X=rng.normal(size=(30, 2)), y=np.arange(30) % 3,
             X_test=rng.normal(size=(7, 2)), y_test=np.arange(7) % 3)
    assert _shapes(load_task(str(tmp_path / "given.npz"))) == [(30, 2), (30,), (7, 2), (7,)]


def test_a_series_file_is_split_in_time(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=300)
    np.savez(tmp_path / "s.npz", X=x, y=y)
    task = load_task(str(tmp_path / "s.npz"), {"kind": "series", "train_fraction": 0.75})
    assert task.kind == "series"
    assert _shapes(task) == [(225, 2), (225, 1), (75, 2), (75, 1)]
    np.testing.assert_array_equal(task.x_train, x[:225])
    np.testing.assert_array_equal(task.y_test.ravel(), y[225:])


def test_tasks_are_cached_per_options():
    first = load_task("mackey_glass", {"steps": 300})
    assert load_task("mackey_glass", {"steps": 300}) is first
    assert load_task("mackey_glass", {"steps": 301}) is not first


def test_data_kind():
    assert data_kind("mackey_glass", {}) == "series"
    assert data_kind("reservoirpy:lorenz", {"anything": 1}) == "series"
    assert data_kind("narma10", {}) == "series"
    assert data_kind("digits", {}) == "classes" and data_kind("mnist1d", {}) == "classes"
    assert data_kind("x.npz", {}) == "classes"
    assert data_kind("x.npz", {"kind": "series"}) == "series"
    assert set(DATASETS) <= set(DATA_OPTIONS)


@pytest.mark.parametrize("dataset, options, shown", [
    ("mackey_glass", {"steps": 500, "test_size": 0}, "data.test_size"),
    ("mackey_glass", {"steps": 500, "test_size": 0.0}, "data.test_size"),
    ("mackey_glass", {"steps": 500, "test_size": 1.0}, "data.test_size"),
    ("mackey_glass", {"steps": 500, "test_size": True}, "data.test_size"),
    ("mackey_glass", {"steps": 500, "test_size": 498}, "data.test_size"),
    ("mackey_glass", {"steps": 500, "forecast": 250}, "data.forecast"),
    ("mackey_glass", {"steps": 500, "forecast": 0}, "data.forecast"),
    ("mackey_glass", {"steps": 500, "normalize": 1}, "data.normalize"),
    ("mackey_glass", {"steps": 500, "normalize": "yes"}, "data.normalize"),
    ("mackey_glass", {"steps": 10}, "data.steps"),
    ("mackey_glass", {"steps": 500.0}, "data.steps"),
    ("mackey_glass", {"tau": 0}, "data.tau"),
    ("mackey_glass", {"length": 3}, "length"),
    ("narma10", {"steps": 300, "test_size": 299}, "data.test_size"),
    ("reservoirpy:mso2", {"steps": 300, "bogus": 1}, "reservoirpy.datasets.mso2"),
    ("reservoirpy:doublescroll", {"steps": 300, "method": "nope"},
     "reservoirpy.datasets.doublescroll"),
    ("reservoirpy:narma", {"steps": 300}, "reservoirpy.datasets.narma"),
    ("reservoirpy:doublescroll", {"steps": 300, "method": "RK23", "normalize": "yes"},
     "data.normalize"),
    ("nope", {}, "'nope'"),
    ("digits", {"steps": 3}, "steps"),
])
def test_a_bad_option_is_a_data_error_naming_it(dataset, options, shown):
    with pytest.raises(DataError) as caught:
        load_task(dataset, options)
    assert shown in str(caught.value)


def test_a_bad_npz_kind(tmp_path):
    np.savez(tmp_path / "c.npz", X=np.zeros((10, 2)), y=np.arange(10) % 2)
    with pytest.raises(DataError, match="data.kind"):
        load_task(str(tmp_path / "c.npz"), {"kind": "images"})


def _npz_options(tmp_path, kind):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "c.npz", X=rng.normal(size=(300, 2)), y=np.arange(300) % 2)
    np.savez(tmp_path / "s.npz", X=rng.normal(size=(300, 2)), y=rng.normal(size=300))
    return str(tmp_path / ("s.npz" if kind == "series" else "c.npz"))


@pytest.mark.parametrize("dataset, options, shown", [
    pytest.param("digits", {"num_samples": -3}, "num_samples"),
    pytest.param("digits", {"num_samples": 0}, "num_samples"),
    pytest.param("digits", {"num_samples": "x"}, "num_samples"),
    pytest.param("narma10", {"steps": 300, "definition": "nope"}, "definition"),
    pytest.param("npz", {"test_fraction": 1.5}, "test_fraction"),
    pytest.param("series", {"kind": "series", "train_fraction": 1.5}, "train_fraction"),
])
def test_a_bad_option_value_of_other_data_sets_is_a_data_error(tmp_path, dataset, options,
                                                               shown):
    if dataset in ("npz", "series"):
        dataset = _npz_options(tmp_path, dataset)
    with pytest.raises(DataError) as caught:
        load_task(dataset, options)
    assert shown in str(caught.value)
