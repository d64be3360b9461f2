"""Small classification data sets generated or shipped locally (no network).

* :func:`load_mnist1d`: the MNIST-1D benchmark (Greydanus 2020), generated from
  its templates by the ``mnist1d`` package (``pip install mnist1d``); its
  ``get_dataset`` would download, :func:`load_mnist1d` never does.
* :func:`load_digits`: scikit-learn's bundled 8×8 digits.

Both return ``dict(x_train, y_train, x_test, y_test)`` as float32 features and
int64 labels.
"""

from __future__ import annotations

import numpy as np

from deepreservoir.errors import DataError

__all__ = ["load_digits", "load_mnist1d"]


def load_mnist1d(seed: int = 42, num_samples: int = 5000) -> dict[str, np.ndarray]:
    """MNIST-1D generated locally: 40 features, 10 classes, 80/20 train/test.

    Parameters
    ----------
    seed : int
        The generator's seed (the package default is 42).
    num_samples : int
        Total samples before the split (default 5000, the package default).
    """
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

    The test split is a seeded, stratified-free random draw of ``test_fraction``.
    """
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:  # pragma: no cover - optional dependency
        raise DataError("load_digits needs scikit-learn: pip install scikit-learn.") from None
    bunch = sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = round(test_fraction * len(y))
    test, train = order[:n_test], order[n_test:]
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}
