r"""Intrinsic dimension of point clouds: reservoir states, layer activations, any data.

All estimators take ``X`` of shape (n_points, n_features) — a ``(B, T, N)``
state batch is flattened to ``(B·T, N)`` — as a torch tensor (on any device)
or an array, and run in torch (``torch.linalg.eigvalsh``, ``torch.cdist``,
``torch.topk``).

=====================  =========================================================
method                 definition
=====================  =========================================================
PCA threshold          smallest ``k`` whose covariance eigenvalues explain a
                       fraction ``variance`` of the total:
                       :math:`\min\{k : \sum_{i\le k}\lambda_i \ge v \sum_i \lambda_i\}`.
                       The fraction is explicit: ``variance=0.9`` means 90 %.
                       (scikit-dimension's ``lPCA(ver="ratio")`` default
                       ``alphaRatio=0.05`` means 5 %, not 95 %.)
participation ratio    :math:`(\sum_i \lambda_i)^2 / \sum_i \lambda_i^2`
TwoNN (Facco 2017)     :math:`\mu_i = r_2(i) / r_1(i)`, the ratio of the distances
                       to the second and first nearest neighbours, follows
                       :math:`P(\mu) = d\,\mu^{-d-1}`. The largest
                       ``discard_fraction`` (10 %) of the :math:`\mu_i` are
                       discarded; ``method="linear"`` fits
                       :math:`-\log(1 - F(\mu)) = d \log \mu` through the origin
                       (Facco et al.), ``method="mle"`` uses the censored
                       maximum likelihood :math:`\hat d = (n_{keep} - 1) / S`,
                       :math:`S = \sum_{kept} \log\mu_i + (n - n_{keep}) \log \mu_{(n_{keep})}`.
MLE (Levina–Bickel)    :math:`\hat m_k(x) = [\frac{1}{k-1} \sum_{j<k} \log(T_k(x) / T_j(x))]^{-1}`
                       with :math:`T_j(x)` the distance to the j-th neighbour,
                       averaged over points (``average="mean"``, Levina &
                       Bickel 2005) or as :math:`1 / \overline{1/\hat m_k}`
                       (``average="harmonic"``, MacKay & Ghahramani).
=====================  =========================================================
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from deepreservoir.analysis._common import (
    as_points,
    as_sequence,
    check_int,
    check_real,
    ensure_built,
    find_layers,
    layer_drive,
    layer_inputs,
    make_attrs,
)
from deepreservoir.errors import DataError, ParameterError, format_value
from deepreservoir.graph import Graph as Model
from deepreservoir.nodes.base import Node

__all__ = [
    "intrinsic_dimension",
    "mle_dimension",
    "participation_ratio",
    "pca_dimension",
    "twonn",
]

_CHUNK = 2048


def _eigenvalues(X: Tensor) -> Tensor:
    """Covariance eigenvalues, descending (from the smaller Gram side)."""
    centred = X - X.mean(dim=0, keepdim=True)
    n, p = centred.shape
    gram = centred.T @ centred if p <= n else centred @ centred.T
    values = torch.linalg.eigvalsh(gram / max(n - 1, 1)).flip(0)
    return values.clamp_min(0.0)


def _require_points(X: Tensor, needed: int, owner: str, why: str) -> None:
    if X.shape[0] < needed:
        raise DataError(
            f"{owner} needs at least {needed} points ({why}). Got {X.shape[0]} points."
        )


def pca_dimension(X: Any, variance: float = 0.9) -> int:
    r"""Smallest number of principal components explaining a fraction ``variance``.

    :math:`\min\{k : \sum_{i \le k} \lambda_i \ge v \sum_i \lambda_i\}`, with
    :math:`\lambda_i` the covariance eigenvalues in decreasing order.

    Parameters
    ----------
    X : array_like or Tensor, shape (n_points, n_features) or (B, T, N)
    variance : float in (0, 1]
        The fraction of variance to explain, stated explicitly (0.9 = 90 %).

    Returns
    -------
    int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((500, 3)) @ np.diag([10, 1, 0.1])
    >>> pca_dimension(X, variance=0.9), pca_dimension(X, variance=0.99999)
    (1, 3)
    """
    owner = "pca_dimension"
    variance = check_real(variance, "variance", owner, 0.0, 1.0, closed="right")
    points = as_points(X, "X", owner)
    _require_points(points, 2, owner, "a covariance needs two")
    values = _eigenvalues(points)
    total = float(values.sum())
    if total == 0.0:
        return 0
    cumulative = torch.cumsum(values, 0) / total
    # tolerate rounding at the threshold: 1 − 1e-12 of the target counts as reached
    reached = torch.nonzero(cumulative >= variance * (1 - 1e-12))
    return int(reached[0, 0]) + 1


def participation_ratio(X: Any) -> float:
    r"""Participation ratio :math:`(\sum_i \lambda_i)^2 / \sum_i \lambda_i^2` of the covariance.

    Parameters
    ----------
    X : array_like or Tensor, shape (n_points, n_features) or (B, T, N)

    Returns
    -------
    float
        Between 1 and ``min(n_points - 1, n_features)``; equals ``d`` for
        isotropic data in a ``d``-dimensional subspace.
    """
    owner = "participation_ratio"
    points = as_points(X, "X", owner)
    _require_points(points, 2, owner, "a covariance needs two")
    values = _eigenvalues(points)
    squares = float((values**2).sum())
    return float(values.sum()) ** 2 / squares if squares > 0 else 0.0


def _neighbour_distances(X: Tensor, k: int) -> Tensor:
    """Distances to the k nearest other points, ascending: (n, k). Rows in chunks."""
    n = X.shape[0]
    out = []
    for start in range(0, n, _CHUNK):
        block = X[start:start + _CHUNK]
        distances = torch.cdist(block, X)
        rows = torch.arange(block.shape[0], device=X.device)
        distances[rows, rows + start] = float("inf")  # exclude the point itself
        out.append(torch.topk(distances, k, dim=1, largest=False).values)
    return torch.cat(out)


def twonn(X: Any, *, discard_fraction: float = 0.1, method: str = "linear") -> float:
    r"""TwoNN intrinsic dimension (Facco, d'Errico, Rodriguez & Laio 2017).

    Parameters
    ----------
    X : array_like or Tensor, shape (n_points, n_features) or (B, T, N)
    discard_fraction : float in [0, 1)
        Fraction of the largest :math:`\mu = r_2/r_1` discarded (10 % in the paper).
    method : {"linear", "mle"}
        ``"linear"``: least-squares slope of :math:`-\log(1 - F_{emp}(\mu_{(i)}))`
        against :math:`\log \mu_{(i)}` through the origin, over the kept
        points, with :math:`F_{emp}(\mu_{(i)}) = i / n`. ``"mle"``: the censored
        maximum likelihood in the module docstring.

    Returns
    -------
    float

    Raises
    ------
    DataError
        Fewer than ``max(3, ceil(2 / (1 − discard_fraction)))`` points, or NaN.
    """
    owner = "twonn"
    discard_fraction = check_real(discard_fraction, "discard_fraction", owner, 0.0, 1.0,
                                  closed="left")
    if method not in ("linear", "mle"):
        raise ParameterError(
            f"The 'method' parameter of {owner} must be 'linear' or 'mle'. "
            f"Got {format_value(method)}."
        )
    points = as_points(X, "X", owner)
    needed = max(3, int(np.ceil(2.0 / (1.0 - discard_fraction))) + 1)
    _require_points(points, needed, owner,
                    f"two neighbours per point and 2 ratios kept after discarding "
                    f"{discard_fraction:g} of them")
    distances = _neighbour_distances(points, 2)
    r1, r2 = distances[:, 0], distances[:, 1]
    valid = r1 > 0
    if int(valid.sum()) < needed:
        raise DataError(
            f"{owner} needs at least {needed} points with a non-zero distance to their "
            f"nearest neighbour. Got {int(valid.sum())} (the rest are duplicates)."
        )
    mu = torch.sort(r2[valid] / r1[valid]).values
    n = mu.numel()
    keep = int(n * (1.0 - discard_fraction))
    log_mu = torch.log(mu[:keep])
    if method == "mle":
        censored = (n - keep) * torch.log(mu[keep - 1])
        return float((keep - 1) / (log_mu.sum() + censored))
    if keep == n:  # F_emp = 1 at the largest μ: -log(1 - F) is infinite, leave it out
        keep -= 1
        log_mu = log_mu[:keep]
    empirical = torch.arange(1, keep + 1, dtype=mu.dtype, device=mu.device) / n
    y = -torch.log1p(-empirical)
    return float((log_mu * y).sum() / (log_mu**2).sum())


def mle_dimension(X: Any, k: int = 20, *, average: str = "mean") -> float:
    r"""Levina–Bickel maximum-likelihood dimension with ``k`` neighbours.

    :math:`\hat m_k(x) = \big[\frac{1}{k-1} \sum_{j=1}^{k-1} \log \frac{T_k(x)}{T_j(x)}\big]^{-1}`

    Parameters
    ----------
    X : array_like or Tensor, shape (n_points, n_features) or (B, T, N)
    k : int >= 2
        Number of neighbours; must be below the number of points.
    average : {"mean", "harmonic"}
        Average of the per-point estimates: arithmetic (Levina & Bickel) or
        harmonic (MacKay & Ghahramani, = inverse of the mean inverse).

    Returns
    -------
    float

    Raises
    ------
    ParameterError
        If ``k`` < 2 or ``k`` >= the number of points.
    DataError
        If there are fewer than 3 points, NaN, or duplicates at the k-th neighbour.
    """
    owner = "mle_dimension"
    k = check_int(k, "k", owner, low=2)
    if average not in ("mean", "harmonic"):
        raise ParameterError(
            f"The 'average' parameter of {owner} must be 'mean' or 'harmonic'. "
            f"Got {format_value(average)}."
        )
    points = as_points(X, "X", owner)
    _require_points(points, 3, owner, "k >= 2 neighbours besides the point itself")
    if k >= points.shape[0]:
        raise ParameterError(
            f"The 'k' parameter of {owner} must be < the number of points "
            f"({points.shape[0]}), since each point has {points.shape[0] - 1} neighbours. "
            f"Got {k}."
        )
    distances = _neighbour_distances(points, k)
    if bool((distances[:, 0] <= 0).any()):
        raise DataError(
            f"{owner} found {int((distances[:, 0] <= 0).sum())} points with a duplicate: "
            f"the log distance ratios are undefined. Remove duplicate points."
        )
    logs = torch.log(distances[:, -1:] / distances[:, :-1]).sum(dim=1) / (k - 1)
    local = 1.0 / logs
    if average == "harmonic":
        return float(1.0 / logs.mean())  # 1 / mean(1 / m̂_k(x))
    return float(local.mean())


_METHODS = ("pca", "participation_ratio", "twonn", "mle")


def _all_estimates(points: Tensor, variance: float, k: int, discard_fraction: float,
                   methods: tuple[str, ...]) -> list[float]:
    out = []
    for method in methods:
        if method == "pca":
            out.append(float(pca_dimension(points, variance=variance)))
        elif method == "participation_ratio":
            out.append(participation_ratio(points))
        elif method == "twonn":
            out.append(twonn(points, discard_fraction=discard_fraction))
        else:
            out.append(mle_dimension(points, k=k))
    return out


def intrinsic_dimension(target: Any, inputs: Any = None, *, methods: Any = _METHODS,
                        variance: float = 0.9, k: int = 20, discard_fraction: float = 0.1,
                        warmup: int = 0) -> xr.DataArray:
    r"""Every estimator on one point cloud, or on each reservoir's states.

    Parameters
    ----------
    target : array_like or Tensor (n_points, n_features) or (B, T, N); or Model / node
        Points, or a model whose reservoirs' states (driven by ``inputs``) are
        the point clouds.
    inputs : array_like (T,) or (T, F)
        Input of a model or node.
    methods : sequence of {"pca", "participation_ratio", "twonn", "mle"}
    variance : float
        Fraction for the PCA threshold (0.9 = 90 % of the variance).
    k : int
        Neighbours of the MLE.
    discard_fraction : float
        TwoNN discarded fraction.
    warmup : int
        States dropped at the start (models only).

    Returns
    -------
    xarray.DataArray
        dims ``(estimator,)`` for points, ``(layer, estimator)`` for a model
        (not "method": ``DataArray.sel`` reserves that keyword).
        ``attrs["kind"] = "intrinsic_dimension"`` and the parameters.
    """
    owner = "intrinsic_dimension"
    methods = tuple(methods)
    for method in methods:
        if method not in _METHODS:
            raise ParameterError(
                f"The 'methods' parameter of {owner} must contain only "
                f"{', '.join(map(repr, _METHODS))}. Got {format_value(method)}."
            )
    warmup = check_int(warmup, "warmup", owner, low=0)
    attrs = make_attrs("intrinsic_dimension", ", ".join(methods), variance=variance, k=k,
                       discard_fraction=discard_fraction, warmup=warmup)
    if not isinstance(target, (Model, Node)):
        points = as_points(target, "target", owner)
        values = _all_estimates(points, variance, k, discard_fraction, methods)
        return xr.DataArray(values, dims=("estimator",), coords={"estimator": list(methods)},
                            name="intrinsic_dimension", attrs=attrs)
    if inputs is None:
        raise ParameterError(
            f"The 'inputs' parameter of {owner} is needed to compute a model's states. "
            f"Got None."
        )
    from deepreservoir import functional as F
    series = as_sequence(inputs, owner)
    model = ensure_built(target, series.shape[1], owner)
    layers = find_layers(target, owner, recurrent_only=True, square_only=True)
    received = layer_inputs(model, series, [layer.name for layer in layers], owner)
    rows = []
    for layer in layers:
        W = layer.weight.to(torch.float64)
        drive = layer_drive(layer, received[layer.name][0])
        with torch.no_grad():
            states, _ = F.run_reservoir(torch.zeros(1, W.shape[0], dtype=W.dtype,
                                                    device=W.device),
                                        drive[None], W, layer.lr,
                                        F.get_activation(layer.activation))
        rows.append(_all_estimates(states[0, warmup:], variance, k, discard_fraction,
                                   methods))
    return xr.DataArray(np.asarray(rows), dims=("layer", "estimator"),
                        coords={"layer": [layer.name for layer in layers],
                                "estimator": list(methods)},
                        name="intrinsic_dimension", attrs=attrs)
