r"""Spectral radius, spectral norm and singular values of frozen and effective matrices.

For every layer of a model (a layer is a node with a recurrent matrix ``W_``
or an ``effective_weight()``), this module reports

* the spectral radius :math:`\rho(W) = \max_i |\lambda_i(W)|`,
* the spectral norm :math:`\sigma_{\max}(W) = \|W\|_2`,
* the singular values :math:`\sigma_1 \ge \sigma_2 \ge \dots`,
* the leaky effective radius :math:`\rho(a W + (1 - a) I)` of a leaky
  reservoir with leak rate :math:`a`,

for two matrices per layer: ``"effective"`` (``effective_weight()`` when the
node has it — for a LoRA layer :math:`\beta W_{seed} + (\alpha / r) B A` —
else ``W_``) and ``"frozen"`` (``W_``; the same matrix as ``"effective"`` for a
plain reservoir).

Methods and their errors
------------------------
Every number comes from the package's one spectral engine,
:mod:`deepreservoir.spectral` (:func:`deepreservoir.spectral.radius` and
:func:`deepreservoir.spectral.singular_values`), so a matrix analysed here has
exactly the radius a :class:`~deepreservoir.Reservoir` was scaled with. Tensors
are copied to the CPU as float64.

``"dense"`` (default up to ``dense_limit = 3000``): LAPACK ``eigvals`` /
``svdvals`` (scipy). The reported error is the rounding scale
``n·eps·‖W‖_F`` (radius) or ``max(M, N)·eps·σ_max`` (singular values).

``"arpack"`` (default above ``dense_limit``): ARPACK with a block of
``k = 16`` eigenvalues (a single one can converge to the wrong eigenvalue when
many crowd the edge of the spectrum) at ``tol = 1e-12``. The reported error of
the radius is ``max(κ·‖W x − λ x‖, |ρ(W) − ρ(Wᵀ)|)``: the first-order
perturbation bound of the top Ritz pair (residual times the eigenvalue
condition number ``κ = 1/|yᴴx|`` from the left eigenvector ``y`` found on
``Wᵀ``), together with the disagreement of the two independent runs on ``W``
and ``Wᵀ``. For singular values the error is the residual
``sqrt(‖W v − σ u‖² + ‖Wᵀ u − σ v‖²)``, a rigorous bound on the distance from
σ to a true singular value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from deepreservoir import spectral as engine
from deepreservoir.analysis._common import (
    Layer,
    as_square,
    as_tensor,
    check_finite,
    check_int,
    check_real,
    find_layers,
    make_attrs,
)
from deepreservoir.errors import ParameterError, format_value
from deepreservoir.spectral import DENSE_LIMIT, METHODS

__all__ = [
    "leaky_spectral_radius",
    "singular_values",
    "spectra",
    "spectral_norm",
    "spectral_radius",
]


def _check_method(method: Any, owner: str) -> str:
    if method not in METHODS:
        raise ParameterError(
            f"The 'method' parameter of {owner} must be one of {', '.join(map(repr, METHODS))}. "
            f"Got {format_value(method)}."
        )
    return method


def _numpy(matrix: Tensor) -> np.ndarray:
    """A float64 CPU copy (or view) of a tensor, for the engine."""
    return matrix.detach().to("cpu", torch.float64).numpy()


def _radius_of(matrix: Tensor, method: str, dense_limit: int) -> tuple[float, float, str]:
    """(ρ, error, method used) of one square matrix, by the engine."""
    return engine.radius(_numpy(matrix), method=method, dense_limit=dense_limit)


def _singular_values_of(matrix: Tensor, method: str, dense_limit: int,
                        k: int | None) -> tuple[np.ndarray, float, str]:
    """(σ sorted descending, error of σ_max, method used) of one matrix, by the engine."""
    return engine.singular_values(_numpy(matrix), k=k, method=method, dense_limit=dense_limit)


def _is_matrix(target: Any) -> bool:
    return isinstance(target, (Tensor, np.ndarray)) and np.ndim(target) == 2


def _check_common(method: Any, dense_limit: Any, owner: str) -> tuple[str, int]:
    return _check_method(method, owner), check_int(dense_limit, "dense_limit", owner, low=4)


def _leaky(matrix: Tensor, lr: float) -> Tensor:
    eye = torch.eye(matrix.shape[0], dtype=matrix.dtype, device=matrix.device)
    return lr * matrix + (1.0 - lr) * eye


def _matrices(layer: Layer) -> dict[str, Tensor]:
    frozen = layer.frozen if layer.frozen is not None else layer.weight
    return {"effective": layer.weight.to(torch.float64), "frozen": frozen.to(torch.float64)}


def _per_layer(layers: list[Layer], compute, name: str, attrs: dict) -> xr.DataArray:
    kinds = ("effective", "frozen")
    values = np.full((len(layers), 2), np.nan)
    errors = np.full((len(layers), 2), np.nan)
    methods = []
    for i, layer in enumerate(layers):
        for j, (kind, matrix) in enumerate(_matrices(layer).items()):
            if kind == "frozen" and layer.frozen is None:  # W_ is the effective matrix
                values[i, j], errors[i, j] = values[i, 0], errors[i, 0]
                continue
            result = compute(layer, matrix)
            if result is None:
                continue
            values[i, j], errors[i, j], used = result
            methods.append(used)
    attrs = dict(attrs)
    attrs["method"] = ", ".join(sorted(set(methods))) or "none"
    return xr.DataArray(
        values, dims=("layer", "matrix"),
        coords={"layer": [layer.name for layer in layers], "matrix": list(kinds),
                "error": (("layer", "matrix"), errors)},
        name=name, attrs=attrs)


def spectral_radius(target: Any, *, method: str = "auto",
                    dense_limit: int = DENSE_LIMIT) -> xr.DataArray:
    r"""Spectral radius :math:`\rho(W) = \max_i |\lambda_i(W)|`, with its error.

    Parameters
    ----------
    target : Tensor or ndarray of shape (N, N), Node, Model, or sequence of matrices
        A single matrix, or something whose layers are analysed.
    method : {"auto", "dense", "arpack"}
        ``"auto"`` is dense up to ``dense_limit`` and ARPACK above.
    dense_limit : int
        Largest N solved densely by ``"auto"``.

    Returns
    -------
    xarray.DataArray
        For a matrix: a 0-d array (``float(result)`` is the radius) with the
        coordinate ``error``. Otherwise dims ``(layer, matrix)`` with
        ``matrix ∈ {"effective", "frozen"}`` and a coordinate ``error`` of the
        same shape; rectangular layers give NaN.
        ``attrs``: ``kind="spectral_radius"``, ``method``, ``dense_limit``.

    Raises
    ------
    DataError
        If a matrix passed directly is not square or not finite.

    Examples
    --------
    >>> import numpy as np
    >>> float(spectral_radius(np.array([[0.0, 2.0], [0.5, 0.0]])))
    1.0
    """
    owner = "spectral_radius"
    method, dense_limit = _check_common(method, dense_limit, owner)
    attrs = make_attrs("spectral_radius", method, dense_limit=dense_limit)
    if _is_matrix(target):
        matrix = as_square(target, "target", owner)
        radius, error, used = _radius_of(matrix, method, dense_limit)
        attrs["method"] = used
        return xr.DataArray(radius, coords={"error": error}, name="spectral_radius",
                            attrs=attrs)
    layers = find_layers(target, owner)

    def compute(layer, matrix):
        if matrix.shape[0] != matrix.shape[1]:
            return None
        return _radius_of(matrix, method, dense_limit)

    return _per_layer(layers, compute, "spectral_radius", attrs)


def spectral_norm(target: Any, *, method: str = "auto",
                  dense_limit: int = DENSE_LIMIT) -> xr.DataArray:
    r"""Spectral norm :math:`\sigma_{\max}(W) = \max_{\|v\|=1} \|W v\|`, with its error.

    Parameters
    ----------
    target : Tensor or ndarray of shape (M, N), Node, Model, or sequence of matrices
    method : {"auto", "dense", "arpack"}
    dense_limit : int

    Returns
    -------
    xarray.DataArray
        0-d for a matrix; otherwise dims ``(layer, matrix)``; coordinate ``error``
        (a rigorous residual bound for ARPACK). ``attrs["kind"] = "spectral_norm"``.
    """
    owner = "spectral_norm"
    method, dense_limit = _check_common(method, dense_limit, owner)
    attrs = make_attrs("spectral_norm", method, dense_limit=dense_limit)

    def compute(layer, matrix):
        values, error, used = _singular_values_of(matrix, method, dense_limit, k=1)
        return (float(values[0]) if values.size else 0.0), error, used

    if _is_matrix(target):
        matrix = check_finite(as_tensor(target, "target", owner), "target", owner)
        value, error, used = compute(None, matrix)
        attrs["method"] = used
        return xr.DataArray(value, coords={"error": error}, name="spectral_norm", attrs=attrs)
    return _per_layer(find_layers(target, owner), compute, "spectral_norm", attrs)


def singular_values(target: Any, *, k: int | None = None, method: str = "auto",
                    dense_limit: int = DENSE_LIMIT) -> xr.DataArray:
    r"""Singular values :math:`\sigma_1 \ge \dots \ge \sigma_{\min(M, N)}` of each matrix.

    Parameters
    ----------
    target : Tensor or ndarray of shape (M, N), Node, Model, or sequence of matrices
    k : int, optional
        Keep the ``k`` largest. ARPACK computes 16 when None;
        the dense path returns all when ``k`` is None.
    method : {"auto", "dense", "arpack"}
    dense_limit : int

    Returns
    -------
    xarray.DataArray
        dims ``("index",)`` for a matrix, else ``(layer, matrix, index)`` padded
        with NaN; ``attrs["kind"] = "singular_values"``.
    """
    owner = "singular_values"
    method, dense_limit = _check_common(method, dense_limit, owner)
    if k is not None:
        k = check_int(k, "k", owner, low=1)
    attrs = make_attrs("singular_values", method, dense_limit=dense_limit, k=k)

    def compute(matrix):
        values, _, used = _singular_values_of(matrix, method, dense_limit, k)
        return values, used

    if _is_matrix(target):
        matrix = check_finite(as_tensor(target, "target", owner), "target", owner)
        values, used = compute(matrix)
        attrs["method"] = used
        return xr.DataArray(values, dims=("index",), coords={"index": np.arange(values.size)},
                            name="singular_values", attrs=attrs)
    layers = find_layers(target, owner)
    rows, methods = [], set()
    for layer in layers:
        row = []
        for kind, matrix in _matrices(layer).items():
            if kind == "frozen" and layer.frozen is None:
                row.append(row[0])  # W_ is the effective matrix
                continue
            values, used = compute(matrix)
            methods.add(used)
            row.append(values)
        rows.append(row)
    width = max(v.size for row in rows for v in row)
    data = np.full((len(layers), 2, width), np.nan)
    for i, row in enumerate(rows):
        for j, values in enumerate(row):
            data[i, j, : values.size] = values
    attrs["method"] = ", ".join(sorted(methods))
    return xr.DataArray(data, dims=("layer", "matrix", "index"),
                        coords={"layer": [layer.name for layer in layers],
                                "matrix": ["effective", "frozen"], "index": np.arange(width)},
                        name="singular_values", attrs=attrs)


def leaky_spectral_radius(target: Any, *, lr: float | None = None, method: str = "auto",
                          dense_limit: int = DENSE_LIMIT) -> xr.DataArray:
    r"""Leaky effective radius :math:`\rho(a W + (1 - a) I)`.

    The linearisation at the origin of ``x' = (1 − a)x + a·tanh(W x + u)`` is
    ``a W + (1 − a) I``; its radius below 1 is necessary for the echo state
    property of a leaky reservoir (with inputs that include 0).

    Parameters
    ----------
    target : Tensor or ndarray of shape (N, N), Node, Model, or sequence of matrices
    lr : float in (0, 1], optional
        The leak rate ``a``. Required for a bare matrix; nodes use their own ``lr``
        unless it is given.
    method, dense_limit : see :func:`spectral_radius`

    Returns
    -------
    xarray.DataArray
        0-d for a matrix; else dims ``(layer, matrix)``.
        ``attrs["kind"] = "leaky_spectral_radius"``.
    """
    owner = "leaky_spectral_radius"
    method, dense_limit = _check_common(method, dense_limit, owner)
    if lr is not None:
        lr = check_real(lr, "lr", owner, 0.0, 1.0, closed="right")
    attrs = make_attrs("leaky_spectral_radius", method, dense_limit=dense_limit, lr=lr)
    if _is_matrix(target):
        if lr is None:
            raise ParameterError(
                f"The 'lr' parameter of {owner} must be a float in (0, 1] when the target is "
                f"a matrix. Got None."
            )
        matrix = as_square(target, "target", owner)
        radius, error, used = _radius_of(_leaky(matrix, lr), method, dense_limit)
        attrs["method"] = used
        return xr.DataArray(radius, coords={"error": error}, name="leaky_spectral_radius",
                            attrs=attrs)
    layers = find_layers(target, owner)

    def compute(layer, matrix):
        if matrix.shape[0] != matrix.shape[1]:
            return None
        rate = layer.lr if lr is None else lr
        return _radius_of(_leaky(matrix, rate), method, dense_limit)

    return _per_layer(layers, compute, "leaky_spectral_radius", attrs)


def spectra(target: Any, *, method: str = "auto", dense_limit: int = DENSE_LIMIT,
            k: int | None = None) -> xr.Dataset:
    r"""Every spectral quantity of every layer, in one Dataset.

    Parameters
    ----------
    target : Node, Model, matrix, or sequence of matrices
    method : {"auto", "dense", "arpack"}
    dense_limit : int
    k : int, optional
        Number of singular values kept (all on the dense path when None).

    Returns
    -------
    xarray.Dataset
        dims ``layer``, ``matrix`` (``"effective"``, ``"frozen"``) and ``index``.
        Variables: ``spectral_radius``, ``spectral_radius_error``,
        ``spectral_norm``, ``spectral_norm_error``, ``leaky_spectral_radius``,
        ``leaky_spectral_radius_error`` (layer, matrix), ``lr`` (layer) and
        ``singular_values`` (layer, matrix, index).
        ``attrs["kind"] = "spectra"``; plot with :func:`deepreservoir.analysis.plot`.
    """
    owner = "spectra"
    method, dense_limit = _check_common(method, dense_limit, owner)
    if _is_matrix(target):
        target = [target]
    layers = find_layers(target, owner)
    options = dict(method=method, dense_limit=dense_limit)
    radius = spectral_radius(layers, **options)
    norm = spectral_norm(layers, **options)
    leaky = leaky_spectral_radius(layers, **options)
    sv = singular_values(layers, k=k, **options)

    def split(array: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
        error = array.coords["error"].variable
        return array.drop_vars("error"), xr.DataArray(error, dims=array.dims,
                                                      coords={d: array[d] for d in array.dims})

    variables = {}
    for name, array in (("spectral_radius", radius), ("spectral_norm", norm),
                        ("leaky_spectral_radius", leaky)):
        variables[name], variables[f"{name}_error"] = split(array)
    variables["singular_values"] = sv
    variables["lr"] = xr.DataArray([layer.lr for layer in layers], dims=("layer",),
                                   coords={"layer": [layer.name for layer in layers]})
    methods = sorted({m for a in (radius, norm, sv) for m in a.attrs["method"].split(", ")})
    return xr.Dataset(variables, attrs=make_attrs("spectra", ", ".join(methods),
                                                   dense_limit=dense_limit, k=k))
