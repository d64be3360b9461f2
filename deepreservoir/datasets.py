"""Small classification data sets generated or shipped locally (no network).

* :func:`load_mnist1d`: the MNIST-1D benchmark (Greydanus 2020), generated from
  its templates by the ``mnist1d`` package (``pip install mnist1d``); its
  ``get_dataset`` would download, :func:`load_mnist1d` never does.
* :func:`load_digits`: scikit-learn's bundled 8×8 digits.
* :func:`narma10`: the NARMA-10 input/target series (a time-series benchmark),
  under either of the two update rules in use (``definition="textbook"``, the
  default, or ``"reservoirpy"``, the rule of ``reservoirpy.datasets.narma``);
  :func:`narma10_response` runs the same system on an input you supply, and
  ``NARMA10_DEFINITIONS`` names the two rules.

The two classification sets return ``dict(x_train, y_train, x_test, y_test)``
as float32 features and int64 labels.
"""

from __future__ import annotations

import numpy as np

from deepreservoir.constraints import Interval, OneOf, Seed, validate_params
from deepreservoir.errors import DataError, ParameterError, format_value

__all__ = ["NARMA10_DEFINITIONS", "load_digits", "load_mnist1d", "narma10",
           "narma10_response"]


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
            "load_mnist1d needs the 'mnist1d' package, part of the 'demo' extra: "
            "pip install \"deepreservoir[demo]\" (or pip install mnist1d).") from None
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
        raise DataError("load_digits needs scikit-learn, part of the 'demo' extra: pip install "
                        "\"deepreservoir[demo]\" (or pip install scikit-learn).") from None
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


NARMA10_DEFINITIONS = ("textbook", "reservoirpy")
"""The two NARMA-10 update rules :func:`narma10` and :func:`narma10_response` offer."""


def _check_definition(definition: object, owner: str) -> None:
    validate_params(owner, {"definition": definition},
                    {"definition": OneOf(NARMA10_DEFINITIONS)})


def _narma10_outputs(u: np.ndarray, definition: str, owner: str) -> np.ndarray:
    """``y(0..T)`` for the input ``u(0..T-1)``, from rest (``y = 0`` before the first update).

    Raises :class:`DataError` when the system diverges (it does for some input draws).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        y = _narma10_recurrence(u, definition)
    bad = ~np.isfinite(y)
    if bad.any():
        step = int(np.argmax(bad))
        raise DataError(
            f"The {definition} NARMA-10 system diverged in {owner}: y became non-finite at "
            f"step {step} of {len(y) - 1}. It is unstable for some input draws (about one "
            f"seed in 50 over 2,300 steps); expected a finite series: use another seed or a "
            f"shorter series.")
    return y


def _narma10_recurrence(u: np.ndarray, definition: str) -> np.ndarray:
    total = len(u)
    y = np.zeros(total + 1)
    if definition == "textbook":
        # y(t+1) = 0.3 y(t) + 0.05 y(t) Σ_{i=0}^{9} y(t−i) + 1.5 u(t−9) u(t) + 0.1
        for t in range(9, total):
            y[t + 1] = (0.3 * y[t] + 0.05 * y[t] * y[t - 9: t + 1].sum()
                        + 1.5 * u[t - 9] * u[t] + 0.1)
    else:
        # y(t+1) = 0.3 y(t) + 0.05 y(t) Σ_{i=1}^{10} y(t−i) + 1.5 u(t−10) u(t) + 0.1
        for t in range(10, total):
            y[t + 1] = (0.3 * y[t] + 0.05 * y[t] * y[t - 10: t].sum()
                        + 1.5 * u[t - 10] * u[t] + 0.1)
    return y


def narma10_response(u: np.ndarray, *, definition: str = "textbook") -> np.ndarray:
    """The NARMA-10 system's one-step-ahead output ``y(t+1)`` for a given input ``u(t)``.

    The system starts at rest (``y = 0``) and is updated once per input step
    with one of two rules (see :func:`narma10` for both written out):
    ``"textbook"`` (Atiya & Parlos 2000; the sum covers ``y(t−9..t)`` and the
    input product is ``u(t−9)·u(t)``) or ``"reservoirpy"`` (the rule of
    ``reservoirpy.datasets.narma(order=10)``; the sum covers ``y(t−10..t−1)``
    and the product is ``u(t−10)·u(t)``). The first 10 (textbook) or 11
    (reservoirpy) outputs come from the start at rest; drop a transient
    before using the series.

    Parameters
    ----------
    u : array-like of real numbers, shape (T,) or (T, 1), T >= 1
        The input sequence, usually i.i.d. ``U[0, 0.5]``.
    definition : {"textbook", "reservoirpy"}, default "textbook"
        Which update rule to use.

    Returns
    -------
    y : ndarray of float64, shape (T, 1)
        ``y[t]`` is ``y(t+1)``, the output after the system has read ``u[t]``.

    Raises
    ------
    ParameterError
        ``definition`` is not one of the two names.
    DataError
        ``u`` is not a non-empty, finite, real (T,) or (T, 1) array, or the system
        diverged on it.

    Examples
    --------
    Feeding reservoirpy's own input gives its series, one step later (reservoirpy's
    ``y[k]`` is the output after ``u[k + 9]``)::

        from reservoirpy.datasets import narma
        u, y_rpy = narma(1000, order=10, a1=0.3, a2=0.05, b=1.5, c=0.1, seed=0)
        y = narma10_response(u, definition="reservoirpy")
        # y[9:-1] equals y_rpy

    >>> y = narma10_response(np.full(30, 0.25))
    >>> y.shape, float(y[9, 0])
    ((30, 1), 0.19375)
    """
    _check_definition(definition, "narma10_response")
    try:
        array = np.asarray(u, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"The 'u' parameter of narma10_response must be a real (T,) or (T, 1) "
                        f"array. Got {format_value(u)}.") from None
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or array.shape[0] < 1:
        raise DataError(f"The 'u' parameter of narma10_response must be a real (T,) or (T, 1) "
                        f"array with T >= 1. Got {format_value(u)}.")
    if not np.isfinite(array).all():
        raise DataError("The 'u' parameter of narma10_response must be finite. Got an array "
                        "with NaN or inf.")
    return _narma10_outputs(array, definition, "narma10_response")[1:, None]


def narma10(steps: int, seed: int | np.random.Generator = 0, *, transient: int = 200,
            definition: str = "textbook") -> tuple[np.ndarray, np.ndarray]:
    """NARMA-10: input ``u(t) ~ U[0, 0.5]`` and one-step target ``y(t+1)``.

    Two update rules are in use under the name NARMA-10; ``definition`` picks one:

    ``"textbook"`` (default; Atiya & Parlos 2000, and the NARMA-10 of most ESN papers)::

        y(t+1) = 0.3·y(t) + 0.05·y(t)·Σ_{i=0}^{9} y(t−i) + 1.5·u(t−9)·u(t) + 0.1

    ``"reservoirpy"`` (``reservoirpy.datasets.narma`` with ``order=10, a1=0.3,
    a2=0.05, b=1.5, c=0.1``; its sum and its delayed input reach one step
    further back)::

        y(t+1) = 0.3·y(t) + 0.05·y(t)·Σ_{i=1}^{10} y(t−i) + 1.5·u(t−10)·u(t) + 0.1

    Both start from ``y = 0``; the first ``transient`` steps are dropped. The
    input is drawn as ``rng.uniform(0, 0.5, steps + transient + 1)`` whatever the
    definition, so one seed gives the same ``u`` under both rules (the last
    draw is unused). :func:`narma10_response` computes ``y`` for an input you
    supply.

    Parameters
    ----------
    steps : int >= 1
        Length of the returned series.
    seed : int >= 0 or numpy.random.Generator
        Source of the input draws.
    transient : int >= 10
        Steps generated and dropped before the returned window.
    definition : {"textbook", "reservoirpy"}, default "textbook"
        Which update rule generates ``y``.

    Returns
    -------
    u, y : ndarray, shape (steps, 1)
        ``y[t]`` is the target for input ``u[t]``, i.e. ``y(t+1)``.

    Raises
    ------
    ParameterError
        ``steps``, ``transient``, ``seed`` or ``definition`` is out of range.
    DataError
        The system diverged on this seed's draws (never silently: the step is named).

    Examples
    --------
    >>> u, y = narma10(500, seed=3)
    >>> u.shape, y.shape
    ((500, 1), (500, 1))
    >>> u2, y2 = narma10(500, seed=3, definition="reservoirpy")
    >>> bool((u2 == u).all()), bool((y2 == y).all())
    (True, False)
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
    _check_definition(definition, "narma10")
    total = steps + transient + 1
    u = rng.uniform(0.0, 0.5, size=total)
    # y[k] = y(k); only u[: total - 1] drives the returned window
    y = _narma10_outputs(u[: total - 1], definition, "narma10")
    return (u[transient: transient + steps, None],
            y[transient + 1: transient + steps + 1, None])
