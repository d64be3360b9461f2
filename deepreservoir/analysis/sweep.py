r"""Rank sweeps and the saturation rank, the LoRA estimate of a task's intrinsic dimension.

LottaLoRA defines the saturation rank

.. math::

    r^*(\varepsilon) = \min\{ r : \mathrm{loss}(r) \le \mathrm{loss}(\mathrm{full}) + \varepsilon \}

(for a score where higher is better, :math:`\mathrm{score}(r) \ge
\mathrm{score}(\mathrm{full}) - \varepsilon`). :func:`rank_sweep` collects a
metric over ranks and seeds from any user callable, so it does not depend on a
particular training API; :func:`saturation_rank` is a pure function of the
resulting Dataset.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from deepreservoir.analysis._common import make_attrs
from deepreservoir.errors import DataError, ParameterError, format_value

__all__ = ["rank_sweep", "saturation_rank"]


def _check_ranks(ranks: Any, owner: str) -> list[int]:
    if isinstance(ranks, (str, bytes)) or not isinstance(ranks, Sequence) or not ranks:
        raise ParameterError(
            f"The 'ranks' parameter of {owner} must be a non-empty sequence of positive ints. "
            f"Got {format_value(ranks)}."
        )
    out = []
    for rank in ranks:
        if not isinstance(rank, numbers.Integral) or isinstance(rank, bool) or rank < 1:
            raise ParameterError(
                f"The 'ranks' parameter of {owner} must contain positive ints. "
                f"Got {format_value(rank)} in {format_value(list(ranks))}."
            )
        out.append(int(rank))
    if len(set(out)) != len(out):
        raise ParameterError(
            f"The 'ranks' parameter of {owner} must not repeat a rank. Got {out}."
        )
    return sorted(out)


def _check_seeds(seeds: Any, owner: str) -> list[int]:
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ParameterError(
                f"The 'seeds' parameter of {owner} must be a positive int (a count) or a "
                f"sequence of ints >= 0. Got {seeds}."
            )
        return list(range(int(seeds)))
    if isinstance(seeds, Sequence) and seeds and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0
            for s in seeds):
        return [int(s) for s in seeds]
    raise ParameterError(
        f"The 'seeds' parameter of {owner} must be a positive int (a count) or a non-empty "
        f"sequence of ints >= 0. Got {format_value(seeds)}."
    )


def _metrics(result: Any, where: str, owner: str) -> dict[str, float]:
    if not isinstance(result, Mapping) or not result:
        raise DataError(
            f"The callable passed to {owner} must return a non-empty dict of metric name to "
            f"float. At {where} it returned {format_value(result)}."
        )
    out = {}
    for key, value in result.items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"The metric {key!r} returned by the callable of {owner} at {where} must be a "
                f"float. Got {format_value(value)}."
            ) from exc
    return out


def _fit_and_evaluate(build: Callable[..., Any], data: Any, fit: Mapping[str, Any] | None,
                      owner: str) -> Callable[..., dict[str, float]]:
    """``train_and_score`` from ``build(*args) -> Model`` and (X, y, X_test, y_test)."""
    if not (isinstance(data, Sequence) and len(data) == 4):
        raise ParameterError(
            f"The 'data' parameter of {owner} must be a tuple (X_train, y_train, X_test, "
            f"y_test). Got {format_value(data)}."
        )
    options = dict(fit or {})
    options.setdefault("verbose", 0)
    loss = options.get("loss", "mse")
    X, y, X_test, y_test = data

    def train_and_score(*args: int) -> dict[str, float]:
        from deepreservoir.graph import Graph as Model
        from deepreservoir.nodes.base import Node
        from deepreservoir.training import evaluate

        model = build(*args)
        if isinstance(model, Node):
            model = model._as_model()
        if not isinstance(model, Model):
            raise DataError(
                f"The build callable of {owner} must return a Model or a node. "
                f"Got {format_value(model)} for {args}."
            )
        model.fit(X, y, **{"seed": args[-1], **options})
        return evaluate(model, X_test, y_test, loss=loss)
    return train_and_score


def rank_sweep(train_and_score: Callable[[int, int], Any], ranks: Sequence[int],
               seeds: int | Sequence[int] = 3, *,
               full: Callable[[int], Any] | None = None, data: Any = None,
               fit: Mapping[str, Any] | None = None) -> xr.Dataset:
    r"""Train at every rank and seed and collect the metrics.

    Two ways to call it:

    * ``rank_sweep(train_and_score, ranks, seeds)``: the callable
      ``(rank, seed) -> dict[str, float]`` trains and scores by itself;
    * ``rank_sweep(build, ranks, seeds, data=(X, y, X_test, y_test), fit={...})``:
      ``build(rank, seed)`` returns an untrained model (e.g. a ``LoRAReadout``
      of rank ``rank``); it is trained by ``model.fit(X, y, seed=seed, **fit)``
      and scored by :func:`deepreservoir.training.evaluate` on the test data
      (``loss`` from ``fit``, default ``"mse"``).

    Parameters
    ----------
    train_and_score : callable
        ``(rank, seed) -> dict[str, float]`` (e.g. ``{"loss": 0.12, "accuracy":
        0.96}``; every call must return the same metric names), or, with
        ``data``, ``build(rank, seed) -> Model``.
    ranks : sequence of positive int
    seeds : int or sequence of int
        A count (seeds ``0..n-1``) or explicit seeds.
    full : callable, optional
        ``seed -> dict[str, float]`` (with ``data``: ``seed -> Model``, trained
        the same way): the fully trained reference, stored as ``{metric}_full``
        (seed) and used by :func:`saturation_rank`.
    data : tuple (X_train, y_train, X_test, y_test), optional
    fit : dict, optional
        Keywords for ``model.fit`` with ``data`` (``verbose`` defaults to 0).

    Returns
    -------
    xarray.Dataset
        One variable per metric, dims ``(rank, seed)``; ``attrs``:
        ``kind="rank_sweep"``, ``metrics``.

    Raises
    ------
    ParameterError
        If ``ranks`` are not distinct positive ints or ``seeds`` is invalid.
    DataError
        If the callable returns something other than a dict of floats, or
        different metric names for different calls.
    """
    owner = "rank_sweep"
    if data is not None and callable(train_and_score):
        train_and_score = _fit_and_evaluate(train_and_score, data, fit, owner)
        if full is not None and callable(full):
            full = _fit_and_evaluate(full, data, fit, owner)
    if not callable(train_and_score):
        raise ParameterError(
            f"The 'train_and_score' parameter of {owner} must be a callable (rank, seed) -> "
            f"dict. Got {format_value(train_and_score)}."
        )
    ranks = _check_ranks(ranks, owner)
    seeds = _check_seeds(seeds, owner)
    names: list[str] | None = None
    table: dict[str, np.ndarray] = {}
    for i, rank in enumerate(ranks):
        for j, seed in enumerate(seeds):
            metrics = _metrics(train_and_score(rank, seed), f"rank={rank}, seed={seed}", owner)
            if names is None:
                names = list(metrics)
                table = {name: np.full((len(ranks), len(seeds)), np.nan) for name in names}
            if set(metrics) != set(names):
                raise DataError(
                    f"The callable passed to {owner} returned metrics {sorted(metrics)} at "
                    f"rank={rank}, seed={seed} but {sorted(names)} before."
                )
            for name, value in metrics.items():
                table[name][i, j] = value
    data = {name: (("rank", "seed"), values) for name, values in table.items()}
    if full is not None:
        references = [_metrics(full(seed), f"seed={seed} (full)", owner) for seed in seeds]
        for name in names or []:
            if any(name not in ref for ref in references):
                raise DataError(
                    f"The 'full' callable of {owner} must return the metric {name!r} too. "
                    f"Got {sorted(references[0])}."
                )
            data[f"{name}_full"] = ("seed", [ref[name] for ref in references])
    return xr.Dataset(data, coords={"rank": ranks, "seed": seeds},
                      attrs=make_attrs("rank_sweep", "model.fit + evaluate" if data is not None
                                       else "user train_and_score", metrics=names,
                                       metric=(names or [""])[0]))


def _first_rank(curve: np.ndarray, ranks: np.ndarray, reference: float, epsilon: float,
                greater_is_better: bool) -> float:
    if greater_is_better:
        ok = curve >= reference - epsilon
    else:
        ok = curve <= reference + epsilon
    ok &= np.isfinite(curve)
    hits = np.flatnonzero(ok)
    return float(ranks[hits[0]]) if hits.size else float("nan")


def saturation_rank(sweep: xr.Dataset, epsilon: float | Sequence[float], *,
                    metric: str | None = None, full: float | None = None,
                    greater_is_better: bool = False) -> xr.Dataset:
    r"""Saturation rank :math:`r^*(\varepsilon)` of a rank sweep, with its spread over seeds.

    Parameters
    ----------
    sweep : xarray.Dataset
        A :func:`rank_sweep` result (dims ``rank``, ``seed``).
    epsilon : float or sequence of float >= 0
        Tolerances :math:`\varepsilon`, in the metric's units.
    metric : str, optional
        Variable to use (default: the sweep's first metric).
    full : float, optional
        Reference value :math:`\mathrm{loss}(\mathrm{full})`. Default: the
        sweep's ``{metric}_full`` variable (per seed) if present, else the best
        value at the largest rank of each seed (then
        :math:`r^*(0)` is at most the largest rank).
    greater_is_better : bool
        For scores such as accuracy: :math:`\mathrm{score}(r) \ge
        \mathrm{score}(\mathrm{full}) - \varepsilon`.

    Returns
    -------
    xarray.Dataset
        dims ``epsilon`` and ``seed``. ``r_star`` (epsilon): from the
        seed-averaged curve against the seed-averaged reference;
        ``r_star_seed`` (epsilon, seed): per seed, against that seed's reference;
        ``r_star_median``, ``r_star_low``, ``r_star_high`` (epsilon): the
        median and the min/max over seeds. NaN where no rank in the sweep is
        within ε. ``attrs["kind"] = "saturation_rank"``.

    Raises
    ------
    ParameterError
        If ``epsilon`` is negative or ``metric`` is not in the sweep.
    DataError
        If ``sweep`` lacks the ``rank`` and ``seed`` dims.
    """
    owner = "saturation_rank"
    if not isinstance(sweep, xr.Dataset) or "rank" not in sweep.dims or "seed" not in sweep.dims:
        raise DataError(
            f"The 'sweep' argument of {owner} must be a rank_sweep Dataset with dims 'rank' "
            f"and 'seed'. Got {format_value(sweep)}."
        )
    eps = np.atleast_1d(np.asarray(epsilon, dtype=float))
    if eps.ndim != 1 or not np.all(np.isfinite(eps)) or np.any(eps < 0):
        raise ParameterError(
            f"The 'epsilon' parameter of {owner} must be a float >= 0 or a sequence of them. "
            f"Got {format_value(epsilon)}."
        )
    if metric is None:
        metric = str(sweep.attrs.get("metric", next(iter(sweep.data_vars))))
    if metric not in sweep.data_vars or sweep[metric].dims != ("rank", "seed"):
        options = [v for v in sweep.data_vars if sweep[v].dims == ("rank", "seed")]
        raise ParameterError(
            f"The 'metric' parameter of {owner} must be one of {options}. Got {metric!r}."
        )
    _check_ranks(list(int(r) for r in sweep["rank"].values), owner)
    data = sweep[metric].sortby("rank")
    ranks = data["rank"].values
    values = data.values
    if full is not None:
        references = np.full(values.shape[1], float(full))
        source = "given"
    elif f"{metric}_full" in sweep:
        references = sweep[f"{metric}_full"].values.astype(float)
        source = f"{metric}_full"
    else:
        references = values[-1]
        source = "largest rank"
    per_seed = np.array([[_first_rank(values[:, j], ranks, references[j], e, greater_is_better)
                          for j in range(values.shape[1])] for e in eps])
    pooled = np.array([_first_rank(np.nanmean(values, axis=1), ranks, float(np.mean(references)),
                                   e, greater_is_better) for e in eps])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        median = np.nanmedian(per_seed, axis=1)
        low = np.nanmin(per_seed, axis=1)
        high = np.nanmax(per_seed, axis=1)
    return xr.Dataset(
        {"r_star": ("epsilon", pooled), "r_star_seed": (("epsilon", "seed"), per_seed),
         "r_star_median": ("epsilon", median), "r_star_low": ("epsilon", low),
         "r_star_high": ("epsilon", high)},
        coords={"epsilon": eps, "seed": data["seed"].values},
        attrs=make_attrs("saturation_rank", "min r with metric within epsilon of full",
                         metric=metric, reference=source, greater_is_better=greater_is_better))
