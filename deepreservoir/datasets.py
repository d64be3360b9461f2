"""Small classification data sets generated or shipped locally (no network).

* :func:`load_mnist1d`: the MNIST-1D benchmark (Greydanus 2020), generated from
  its templates by the ``mnist1d`` package (``pip install mnist1d``); its
  ``get_dataset`` would download, :func:`load_mnist1d` never does.
* :func:`load_digits`: scikit-learn's bundled 8×8 digits.
* :func:`narma10`: the NARMA-10 input/target series (a time-series benchmark).

The two classification sets return ``dict(x_train, y_train, x_test, y_test)``
as float32 features and int64 labels.
"""

from __future__ import annotations

import numpy as np

from deepreservoir.constraints import Interval, Seed, validate_params
from deepreservoir.errors import DataError, ParameterError

__all__ = ["load_digits", "load_mnist1d", "narma10"]


def load_mnist1d(seed: int = 42, num_samples: int = 5000) -> dict[str, np.ndarray]:
    """MNIST-1D generated locally: 40 features, 10 classes, 80/20 train/test.

    Parameters
    ----------
    seed : int in [0, 2**32 - 1]
        The generator's seed (the package default is 42; the package seeds
        numpy's legacy global generator, which takes 32-bit seeds).
    num_samples : int >= 10
        Total samples before the split (default 5000, the package default); it
        is rounded down to a multiple of the 10 classes.
    """
    validate_params("load_mnist1d", {"seed": seed, "num_samples": num_samples},
                    {"seed": Interval(int, 0, 2**32 - 1),
                     "num_samples": Interval(int, 10, None)})
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:  # pragma: no cover - optional dependency
        raise DataError(
            "load_mnist1d needs the 'mnist1d' package: pip install mnist1d "
            "(or pip install deepreservoir[bench]).") from None
    args = get_dataset_args()
    args.seed = int(seed)
    args.num_samples = int(num_samples)
    data = make_dataset(args)
    return {"x_train": np.asarray(data["x"], dtype=np.float32),
            "y_train": np.asarray(data["y"], dtype=np.int64),
            "x_test": np.asarray(data["x_test"], dtype=np.float32),
            "y_test": np.asarray(data["y_test"], dtype=np.int64)}


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> dict[str, np.ndarray]:
    """scikit-learn's 8×8 digits (1797 samples, 64 features scaled to [0, 1], 10 classes).

    The test split is a seeded, stratified-free random draw of ``test_fraction``
    (a float in (0, 1) that leaves at least one sample on each side); ``seed`` is
    a non-negative int below 2**63.
    """
    validate_params("load_digits", {"test_fraction": test_fraction, "seed": seed},
                    {"test_fraction": Interval(float, 0, 1, closed="neither"),
                     "seed": Seed()})
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:  # pragma: no cover - optional dependency
        raise DataError("load_digits needs scikit-learn: pip install scikit-learn.") from None
    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = round(test_fraction * len(y))
    if not 0 < n_test < len(y):
        raise ParameterError(
            f"The 'test_fraction' parameter of load_digits must leave at least one sample in "
            f"each split of the {len(y)} samples. Got {test_fraction!r} ({n_test} test "
            f"samples).")
    test, train = order[:n_test], order[n_test:]
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def narma10(steps: int, seed: int | np.random.Generator = 0, *, transient: int = 200
            ) -> tuple[np.ndarray, np.ndarray]:
    """NARMA-10: input ``u(t) ~ U[0, 0.5]`` and one-step target ``y(t+1)``.

    ``y(t+1) = 0.3·y(t) + 0.05·y(t)·Σ_{i=0}^{9} y(t−i) + 1.5·u(t−9)·u(t) + 0.1``,
    started from ``y = 0``; the first ``transient`` steps are dropped.

    Parameters
    ----------
    steps : int >= 1
        Length of the returned series.
    seed : int >= 0 or numpy.random.Generator
        Source of the input draws.
    transient : int >= 10
        Steps generated and dropped before the returned window.

    Returns
    -------
    u, y : ndarray, shape (steps, 1)
        ``y[t]`` is the target for input ``u[t]``, i.e. ``y(t+1)``.

    Examples
    --------
    >>> u, y = narma10(500, seed=3)
    >>> u.shape, y.shape
    ((500, 1), (500, 1))
    """
    for name, value, low in (("steps", steps, 1), ("transient", transient, 10)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ParameterError(f"The '{name}' parameter of narma10 must be an int >= {low}. "
                                 f"Got {value!r}.")
    if isinstance(seed, np.random.Generator):
        rng = seed
    elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        rng = np.random.default_rng(int(seed))
    else:
        raise ParameterError(f"The 'seed' parameter of narma10 must be an int >= 0 or a "
                             f"numpy Generator. Got {seed!r}.")
    total = steps + transient + 1
    u = rng.uniform(0.0, 0.5, size=total)
    y = np.zeros(total)
    for t in range(9, total - 1):
        y[t + 1] = (0.3 * y[t] + 0.05 * y[t] * y[t - 9: t + 1].sum()
                    + 1.5 * u[t - 9] * u[t] + 0.1)
    return (u[transient: transient + steps, None],
            y[transient + 1: transient + steps + 1, None])

