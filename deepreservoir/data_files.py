"""A user's data set on disk: a ``.npz`` file with ``X`` and ``y``.

Every study (``deepreservoir reproduce NAME --data FILE``) and every sweep
(``dataset = "FILE.npz"`` in its TOML) accepts such a file, so anyone with
MNIST, CIFAR-10 or their own data on disk can run the paper's tables on it.
Nothing is downloaded.

The file holds either

* ``X`` and ``y``: all samples; the test split is drawn with a seed, or
* ``X``, ``y``, ``X_test`` and ``y_test``: the train/test split as given.

(The lower-case names ``x_train``, ``y_train``, ``x_test``, ``y_test`` are
accepted too.) Create one with ``numpy.savez(path, X=X, y=y)``.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from deepreservoir.constraints import Interval, Seed, validate_params
from deepreservoir.errors import DataError, ParameterError

__all__ = ["MAX_CLASSES", "MIN_SERIES_STEPS", "file_digest", "is_data_file", "load_npz",
           "load_series_npz", "read_npz"]

#: Fewest steps a series file may have (each half must hold a few training windows).
MIN_SERIES_STEPS = 240

#: Largest number of classes a classification file may have.
MAX_CLASSES = 100_000

_NAMES = {"x_train": ("X", "x_train"), "y_train": ("y", "y_train"),
          "x_test": ("X_test", "x_test"), "y_test": ("y_test",)}


def is_data_file(name: Any) -> bool:
    """Whether ``name`` names a data file (a path ending in ``.npz``) rather than a built-in set."""
    return isinstance(name, (str, os.PathLike)) and str(name).lower().endswith(".npz")


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (16 hex digits): sweeps use it to notice changed data."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def read_npz(path: Any, what: str, expected: str) -> dict[str, np.ndarray]:
    """Every array of a ``.npz`` file (no pickles), or a :class:`DataError` naming the file.

    Parameters
    ----------
    path : str or PathLike
    what : str
        How errors name the file ("data file", "series file").
    expected : str
        What the file should hold, for the error message ("X and y").
    """
    shown = str(path)
    if not isinstance(path, (str, os.PathLike)) or not Path(path).is_file():
        state = ("is a directory" if isinstance(path, (str, os.PathLike)) and Path(path).is_dir()
                 else "does not exist")
        raise DataError(f"The {what} {shown!r} {state}; expected a .npz file with {expected}.")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"The {what} {shown!r} is a single .npy array; expected a .npz "
                            f"archive with {expected} (numpy.savez(path, X=X, y=y)).")
        with loaded as archive:
            return {name: archive[name] for name in archive.files}
    except DataError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"The {what} {shown!r} could not be read as a .npz archive "
                        f"({error}); expected numpy.savez(path, X=X, y=y).") from None


def _pick(arrays: dict[str, np.ndarray], key: str, path: str) -> np.ndarray | None:
    present = [name for name in _NAMES[key] if name in arrays]
    if len(present) > 1:
        raise DataError(f"The data file {path!r} holds both {present[0]!r} and {present[1]!r}; "
                        f"expected one of them.")
    return arrays[present[0]] if present else None


def _features(array: np.ndarray, name: str, path: str) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise DataError(f"The array {name!r} of the data file {path!r} must hold real numbers. "
                        f"Got dtype {array.dtype}.")
    if array.ndim < 2 or array.shape[0] < 1:
        raise DataError(f"The array {name!r} of the data file {path!r} must have shape "
                        f"(samples, features...) with at least one sample. Got shape "
                        f"{array.shape}.")
    values = array.astype(np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"The array {name!r} of the data file {path!r} must be finite. Got "
                        f"{int(bad.sum())} NaN/inf value(s), the first at index {first}.")
    return values.reshape(len(values), -1)


def _labels(array: np.ndarray, name: str, path: str, samples: int) -> np.ndarray:
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or not np.array_equal(array, np.round(array)):
            raise DataError(f"The array {name!r} of the data file {path!r} must hold class "
                            f"labels (integers 0…K−1). Got non-integer floats.")
    elif array.dtype.kind not in "biu":
        raise DataError(f"The array {name!r} of the data file {path!r} must hold integer class "
                        f"labels 0…K−1. Got dtype {array.dtype}.")
    labels = np.asarray(array).reshape(-1).astype(np.int64)
    if array.ndim != 1 or len(labels) != samples:
        raise DataError(f"The array {name!r} of the data file {path!r} must have shape "
                        f"({samples},), one label per sample. Got shape {array.shape}.")
    if len(labels) and (labels.min() < 0 or labels.max() >= MAX_CLASSES):
        raise DataError(f"The array {name!r} of the data file {path!r} must hold labels in "
                        f"0…{MAX_CLASSES - 1}. Got the range {labels.min()}…{labels.max()}.")
    return labels


def load_npz(path: str | os.PathLike, *, test_fraction: float = 0.2, seed: int = 0,
             ) -> dict[str, np.ndarray]:
    """Load a classification data set from a ``.npz`` file.

    Parameters
    ----------
    path : path
        A ``.npz`` file with ``X (N, ...)`` and ``y (N,)`` (integer labels 0…K−1),
        and optionally ``X_test`` and ``y_test``. Features are flattened to ``(N, F)``.
    test_fraction : float in (0, 1)
        The share of samples held out for testing when the file has no test split.
    seed : int >= 0
        Seed of that split (a permutation by ``numpy.random.default_rng(seed)``).

    Returns
    -------
    dict
        ``x_train (N, F)`` and ``x_test`` as float32, ``y_train (N,)`` and ``y_test`` as
        int64.

    Raises
    ------
    DataError
        The file is missing, not a ``.npz``, corrupted, lacks ``X`` or ``y``, or holds
        arrays of the wrong shape or dtype, non-finite features or bad labels.
    ParameterError
        ``test_fraction`` or ``seed`` is out of range.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from deepreservoir.data_files import load_npz
    >>> folder = tempfile.mkdtemp()
    >>> np.savez(os.path.join(folder, "toy.npz"), X=np.random.rand(50, 3), y=np.arange(50) % 2)
    >>> data = load_npz(os.path.join(folder, "toy.npz"), test_fraction=0.2)
    >>> data["x_train"].shape, data["x_test"].shape
    ((40, 3), (10, 3))
    """
    validate_params("load_npz", {"test_fraction": test_fraction, "seed": seed},
                    {"test_fraction": Interval(float, 0, 1, closed="neither"), "seed": Seed()})
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"The 'path' parameter of load_npz must be a path to a .npz file. "
                             f"Got {type(path).__name__}.")
    shown = str(path)
    arrays = read_npz(path, "data file", "X and y")
    found = {key: _pick(arrays, key, shown) for key in _NAMES}
    for key in ("x_train", "y_train"):
        if found[key] is None:
            raise DataError(f"The data file {shown!r} has no {_NAMES[key][0]!r} array; it holds "
                            f"{sorted(arrays) or 'nothing'}. Expected X and y (and optionally "
                            f"X_test and y_test).")
    if (found["x_test"] is None) != (found["y_test"] is None):
        raise DataError(f"The data file {shown!r} must hold both X_test and y_test or neither. "
                        f"Got only {'X_test' if found['y_test'] is None else 'y_test'}.")
    x = _features(found["x_train"], "X", shown)
    y = _labels(found["y_train"], "y", shown, len(x))
    if found["x_test"] is not None:
        x_test = _features(found["x_test"], "X_test", shown)
        y_test = _labels(found["y_test"], "y_test", shown, len(x_test))
        if x_test.shape[1] != x.shape[1]:
            raise DataError(f"The data file {shown!r}: X_test must have the {x.shape[1]} "
                            f"features of X. Got {x_test.shape[1]}.")
    else:
        n_test = round(test_fraction * len(y))
        if not 0 < n_test < len(y):
            raise ParameterError(
                f"The 'test_fraction' parameter of load_npz must leave at least one sample in "
                f"each split of the {len(y)} samples of {shown!r}. Got {test_fraction!r}.")
        order = np.random.default_rng(seed).permutation(len(y))
        x, y, x_test, y_test = x[order[n_test:]], y[order[n_test:]], x[order[:n_test]], \
            y[order[:n_test]]
    return {"x_train": x, "y_train": y, "x_test": x_test, "y_test": y_test}


def load_series_npz(path: str | os.PathLike, *, train_fraction: float = 0.5
                    ) -> dict[str, np.ndarray | int]:
    """Load one time series from a ``.npz`` file: inputs ``X`` and one-step targets ``y``.

    Parameters
    ----------
    path : path
        A ``.npz`` file with ``X`` of shape ``(T,)`` or ``(T, F)`` (the input at each
        step) and ``y`` of shape ``(T,)`` or ``(T, O)`` (the target at each step),
        real and finite, ``T >= MIN_SERIES_STEPS``.
    train_fraction : float in (0, 1)
        The split *in time*: the first ``round(train_fraction·T)`` steps train, the
        rest test (never shuffled: a series' future must not leak into its past).

    Returns
    -------
    dict
        ``x (T, F)`` and ``y (T, O)`` as float64, and ``split`` (the first test step).

    Raises
    ------
    DataError
        The file is missing or unreadable, lacks ``X`` or ``y``, or holds arrays of the
        wrong shape, non-real or non-finite values, or too few steps.
    """
    validate_params("load_series_npz", {"train_fraction": train_fraction},
                    {"train_fraction": Interval(float, 0, 1, closed="neither")})
    shown = str(path)
    arrays = read_npz(path, "series file", "X (T, F) and y (T, O)")
    found = {}
    for key in ("X", "y"):
        if key not in arrays:
            raise DataError(f"The series file {shown!r} has no {key!r} array; it holds "
                            f"{sorted(arrays) or 'nothing'}. Expected X (T, F) and y (T, O).")
        array = arrays[key]
        if array.dtype.kind not in "biuf" or array.ndim not in (1, 2):
            raise DataError(f"The array {key!r} of the series file {shown!r} must be real, of "
                            f"shape (T,) or (T, features). Got dtype {array.dtype}, shape "
                            f"{array.shape}.")
        values = array.astype(np.float64).reshape(len(array), -1)
        if not np.isfinite(values).all():
            step = int(np.argwhere(~np.isfinite(values))[0][0])
            raise DataError(f"The array {key!r} of the series file {shown!r} must be finite. "
                            f"Got NaN or inf at step {step}.")
        found[key] = values
    steps = len(found["X"])
    if len(found["y"]) != steps:
        raise DataError(f"The series file {shown!r}: y must have one row per step of X "
                        f"({steps}). Got {len(found['y'])}.")
    if steps < MIN_SERIES_STEPS:
        raise DataError(f"The series file {shown!r} must hold at least {MIN_SERIES_STEPS} "
                        f"steps. Got {steps}.")
    return {"x": found["X"], "y": found["y"], "split": round(train_fraction * steps)}
